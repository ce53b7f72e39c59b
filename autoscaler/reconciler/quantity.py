"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) parsed to exact decimals.

kubernetes-asyncio ships no quantity parser, so this is the grammar of
``k8s.io/apimachinery/pkg/api/resource`` in a few lines::

    quantity  ::= sign? number suffix?
    number    ::= digits | digits "." digits? | "." digits
    suffix    ::= Ki | Mi | Gi | Ti | Pi | Ei          (binary SI)
                | n | u | m | k | M | G | T | P | E    (decimal SI)
                | (e | E) sign? digits                 (decimal exponent)

YAML may hand us a bare int or float (``cpu: 1``); those are quantities too.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: object) -> Decimal:
    """The exact value of a Kubernetes quantity; ``ValueError`` if it is not one.

    >>> parse_quantity("500m"), parse_quantity("2Gi"), parse_quantity(1)
    (Decimal('0.500'), Decimal('2147483648'), Decimal('1'))
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"quantity must be a string or a number, not {type(value).__name__}")
    text = str(value) if not isinstance(value, str) else value.strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2Gi, 1)")
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Decimal(1024 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        return number.scaleb(int(suffix[1:]))
    return number


def canonical(value: object) -> str:
    """A quantity as the string the API server stores for YAML numbers (``1`` -> ``"1"``)."""
    parse_quantity(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
