"""Is a live object already what we would apply? The no-write rule of the apply layer.

The controller server-side-applies a desired object only when this module says the live copy
(from the informer cache) differs in a field we manage. Two checks, both must pass to skip:

1. **The hash annotation** ``llm-autoscaler.io/applied-hash`` on the live object equals the
   hash of what we would apply now. It changes whenever *our intent* changes, including a
   field we stop setting (a label removed from the ISVC): a subset test alone cannot see that,
   and only a new apply makes server-side apply drop the field we no longer own.
2. **Containment**: every field of the desired object is in the live object with the same
   value (:func:`contains`). It catches drift, someone editing a field we own by hand. Fields
   the API server adds (defaults, ``status``, ``clusterIP``) are ignored. So is a zero value
   we set that the server omits (``hostIPC: false``), and two spellings of one quantity
   (``1000m`` and ``1``) are the same value.

Also here: who owns ``Deployment.spec.replicas`` according to ``managedFields``
(:func:`owns_field`), and the RFC 7386 merge patch between two statuses (:func:`merge_patch`).
Pure; no I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from autoscaler.reconciler.quantity import parse_quantity

JSON = dict[str, Any]

MANAGER = "llm-autoscaler"
"""The field manager of every server-side apply (and status patch) the reconciler makes."""

HANDOFF_MANAGER = "llm-autoscaler-initial-replicas"
"""Co-owns ``spec.replicas`` of a scaler-owned Deployment so that dropping the field from our
applies does not reset it to the default 1 (see :func:`replicas_handoff`)."""

HASH_ANNOTATION = "llm-autoscaler.io/applied-hash"
REPLICAS = ("spec", "replicas")


def applied_hash(obj: JSON) -> str:
    """A short stable hash of ``obj`` as we would apply it (the hash annotation excluded)."""
    body = copy.deepcopy(obj)
    annotations = (body.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(HASH_ANNOTATION, None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(obj: JSON) -> JSON:
    """A copy of ``obj`` carrying :data:`HASH_ANNOTATION` with its own hash."""
    out = copy.deepcopy(obj)
    digest = applied_hash(out)
    out.setdefault("metadata", {}).setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return out


def up_to_date(stamped: JSON, live: JSON) -> bool:
    """True when applying ``stamped`` (from :func:`stamp`) to ``live`` would change nothing."""
    want = ((stamped.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return want is not None and want == have and contains(live, stamped)


def contains(live: object, desired: object) -> bool:
    """Every field of ``desired`` is in ``live`` with an equal value (lists: same length, in
    order, element-wise). Missing in ``live`` equals a zero value in ``desired``."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return live is None and _is_zero(desired)
        return all(contains(live[k], v) if k in live else _is_zero(v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return live is None and not desired
        return len(live) == len(desired) and all(
            contains(a, b) for a, b in zip(live, desired, strict=True)
        )
    if live is None:
        return _is_zero(desired)
    if isinstance(live, bool) or isinstance(desired, bool):  # True == 1 in Python, not in JSON
        return live is desired
    return bool(live == desired) or _same_quantity(live, desired)


def _is_zero(value: object) -> bool:
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    return value is None or value in ("", 0, False, [])


def _same_quantity(a: object, b: object) -> bool:
    """``1`` and ``"1"``, ``"1000m"`` and ``"1"``: one quantity, as the API server stores it."""
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if not isinstance(a, str | int | float) or not isinstance(b, str | int | float):
        return False
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return False


def owns_field(obj: JSON, manager: str, path: tuple[str, ...], operation: str = "Apply") -> bool:
    """Whether ``managedFields`` says ``manager`` (``operation``) owns the field at ``path``."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != operation:
            continue
        node: object = entry.get("fieldsV1") or {}
        for part in path:
            node = node.get(f"f:{part}") if isinstance(node, dict) else None
        if node is not None:
            return True
    return False


def without_replicas(deployment: JSON) -> JSON:
    """``deployment`` with ``spec.replicas`` left out (the scaler owns it)."""
    out = copy.deepcopy(deployment)
    (out.get("spec") or {}).pop("replicas", None)
    return out


def replicas_handoff(live: JSON) -> JSON:
    """The apply, by :data:`HANDOFF_MANAGER`, that co-owns ``spec.replicas`` at its live value.

    Server-side apply resets a field to its default when its last owner stops applying it. We
    set ``replicas`` when we create a Deployment (``minReplicas``); when the HPA or an external
    scaler owns it from then on, our applies leave it out. Without a second owner that would
    reset the Deployment to 1 replica; this manager keeps the value where it is and never
    applies again, so the scaler's writes are never fought.
    """
    md = live.get("metadata") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": md.get("name"), "namespace": md.get("namespace")},
        "spec": {"replicas": (live.get("spec") or {}).get("replicas")},
    }


def merge_patch(old: JSON, new: JSON) -> JSON:
    """The RFC 7386 JSON merge patch turning ``old`` into ``new`` (``None`` deletes a key)."""
    patch: JSON = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch
