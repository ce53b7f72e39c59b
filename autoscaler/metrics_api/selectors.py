"""Kubernetes label selectors in their string form (``labelSelector=`` of a list request).

The grammar and the matching rules are those of ``k8s.io/apimachinery/pkg/labels``:

* requirements are separated by commas and all must hold; an empty selector matches all;
* ``key`` (exists), ``!key`` (does not exist), ``key=value`` / ``key==value``,
  ``key!=value`` (absent or different), ``key in (a,b)``, ``key notin (a,b)`` (absent or
  none of them), ``key>N`` / ``key<N`` (present and an integer greater/smaller than ``N``);
* keys are qualified names (an optional DNS-subdomain prefix and ``/``, then a name of at
  most 63 characters), values are empty or names of at most 63 characters.

Pure: :func:`parse` raises :class:`SelectorError` (the API answers 400) and nothing else, on
any input; :meth:`Selector.matches` cannot fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EVERYTHING", "Requirement", "Selector", "SelectorError", "parse"]

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"[-+]?[0-9]+")
_TOKEN = re.compile(r"\s*(==|!=|[=!<>(),]|[^\s=!<>(),]+)")
_OPERATORS = frozenset({"=", "==", "!=", "in", "notin", "<", ">"})
MAX_LENGTH = 16 << 10
"""Longer selectors are refused before parsing."""


class SelectorError(ValueError):
    """The selector string is not a valid label selector; the message says why."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause: ``key`` ``operator`` ``values`` (``exists``/``!`` take no values)."""

    key: str
    operator: str
    """One of ``exists``, ``!``, ``in``, ``notin``, ``<``, ``>`` (``=``/``==`` become
    ``in`` and ``!=`` becomes ``notin``, with one value)."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this clause."""
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return value is not None
            case "!":
                return value is None
            case "in":
                return value is not None and value in self.values
            case "notin":
                return value is None or value not in self.values
            case _:
                if value is None or not _INTEGER.fullmatch(value):
                    return False
                bound = int(next(iter(self.values)))
                return int(value) > bound if self.operator == ">" else int(value) < bound


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector: the conjunction of its requirements."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every requirement holds for ``labels``."""
        return all(r.matches(labels) for r in self.requirements)


EVERYTHING = Selector()


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"invalid label key {key!r}: bad prefix (a DNS subdomain)")
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(
            f"invalid label key {key!r}: a name of at most 63 alphanumerics, '-', '_' or '.'"
        )


def _check_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"invalid label value {value!r}: at most 63 alphanumerics, '-', '_' or '.'"
        )


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        out.append(m.group(1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str) -> str:
        tok = self.peek()
        if tok is None:
            raise SelectorError(f"unexpected end of selector: expected {what}")
        self.i += 1
        return tok

    def identifier(self, what: str) -> str:
        tok = self.take(what)
        if tok in "=!<>(),":
            raise SelectorError(f"found {tok!r}, expected {what}")
        return tok

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.i += 1
            key = self.identifier("a label key after '!'")
            _check_key(key)
            return Requirement(key, "!")
        key = self.identifier("a label key")
        _check_key(key)
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.i += 1
        if op not in _OPERATORS:
            raise SelectorError(f"found {op!r} after {key!r}, expected an operator")
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        value = self.peek()
        # "key=" (then the end or a comma) selects the empty value
        empty = value is None or value == ","
        value = "" if empty else self.identifier(f"a value after {key}{op}")
        _check_value(value)
        if op in ("<", ">"):
            if not _INTEGER.fullmatch(value):
                raise SelectorError(f"{key}{op}{value}: the value must be an integer")
            return Requirement(key, op, frozenset({value}))
        return Requirement(key, "notin" if op == "!=" else "in", frozenset({value}))

    def value_set(self) -> frozenset[str]:
        if self.take("'('") != "(":
            raise SelectorError("expected '(' after in/notin")
        values: set[str] = set()
        expect_value, after_comma = True, False
        while True:
            tok = self.take("a value or ')'")
            if tok == ")":
                if expect_value and after_comma:
                    values.add("")  # "(a,)" holds the empty value too
                break
            if tok == ",":
                after_comma = True
                if expect_value:
                    values.add("")  # "(a,,b)" and "(,a)" hold the empty value
                expect_value = True
                continue
            if not expect_value or tok in "=!<>(":
                raise SelectorError(f"found {tok!r} in a value set")
            _check_value(tok)
            values.add(tok)
            expect_value = False
        if not values:
            raise SelectorError("in/notin need at least one value")
        return frozenset(values)


def parse(text: str) -> Selector:
    """Parse a selector string; :class:`SelectorError` says what is wrong with it."""
    if len(text) > MAX_LENGTH:
        raise SelectorError(f"selector longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    if parser.peek() is None:
        return EVERYTHING
    requirements = [parser.requirement()]
    while parser.peek() is not None:
        if parser.take("','") != ",":
            raise SelectorError(f"found {parser.tokens[parser.i - 1]!r}, expected ','")
        requirements.append(parser.requirement())
    return Selector(tuple(requirements))
