"""A Kubernetes *strategic merge patch* for the two types KServe merges: Container and PodSpec.

KServe overlays the InferenceService's container on the runtime's with
``strategicpatch.StrategicMergePatch`` (``pkg/utils/container_merge.go``) and does the same for
the pod-level fields (``MergePodSpec``). The rules, as apimachinery applies them:

* maps (resources, probes, securityContext, affinity, nodeSelector, ...) merge key by key,
  recursively, the patch winning on scalars;
* the lists Kubernetes tags ``patchStrategy: merge`` merge item by item on their merge key
  (``env`` by ``name``, ``ports`` by ``containerPort``, ``volumeMounts`` by ``mountPath``,
  ``volumes`` by ``name``, ...); every other list (``command``, ``args``, ``tolerations``) is
  replaced;
* merged-list order follows ``normalizeElementOrder``: the patch's items in patch order, with
  the base-only items slotted in by their base position -- so a *new* ISVC env var lands
  before the runtime's remaining ones, and an overridden one keeps its runtime position.

Go drops ``null`` and empty lists when it re-serialises the ISVC (``omitempty``), so they never
reach the merge; :func:`prune` does the same here. Pure; no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from autoscaler.reconciler.failures import PlanError, Reason

JSON = dict[str, Any]
Schema = dict[str, tuple[str, "Schema"]]
"""field -> (merge key, schema of the list items) for the lists merged by key."""

CONTAINER: Schema = {
    "env": ("name", {}),
    "ports": ("containerPort", {}),
    "volumeMounts": ("mountPath", {}),
    "volumeDevices": ("devicePath", {}),
}
POD: Schema = {
    "containers": ("name", CONTAINER),
    "initContainers": ("name", CONTAINER),
    "ephemeralContainers": ("name", CONTAINER),
    "volumes": ("name", {}),
    "imagePullSecrets": ("name", {}),
    "hostAliases": ("ip", {}),
    "topologySpreadConstraints": ("topologyKey", {}),
    "resourceClaims": ("name", {}),
}


def prune(value: Any) -> Any:
    """``value`` without ``None`` fields and empty lists, as a Go round trip would leave it."""
    if isinstance(value, dict):
        return {
            k: prune(v)
            for k, v in value.items()
            if v is not None and not (isinstance(v, list) and not v)
        }
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def merge(base: JSON, patch: JSON, schema: Schema) -> JSON:
    """``patch`` strategically merged onto a copy of ``base`` (neither argument is changed)."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        current = result.get(key)
        if key in schema and isinstance(value, list) and isinstance(current, list):
            merge_key, item_schema = schema[key]
            result[key] = _merge_list(current, value, merge_key, item_schema, key)
        elif isinstance(value, dict) and isinstance(current, dict):
            result[key] = merge(current, value, {})
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(
    base: list[Any], patch: list[Any], key: str, schema: Schema, field: str
) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PlanError(
                Reason.INVALID_PREDICTOR_SPEC, f"every {field} item needs its merge key {key!r}"
            )
        index = _index(merged, key, item[key])
        if index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = merge(merged[index], item, schema)
    patch_keys = [item[key] for item in patch]
    patched = sorted(
        (m for m in merged if m.get(key) in patch_keys), key=lambda m: patch_keys.index(m[key])
    )
    base_only = [m for m in merged if m.get(key) not in patch_keys]
    return _interleave(base_only, patched, base, key)


def _interleave(left: list[JSON], right: list[JSON], order: list[Any], key: str) -> list[JSON]:
    """apimachinery's ``mergeSortedSlice``: take ``left`` first only when both are in ``order``."""
    out: list[JSON] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
            continue
        if i < len(left):
            li = _index(order, key, left[i].get(key))
            ri = _index(order, key, right[j].get(key))
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
                continue
        out.append(right[j])
        j += 1
    return out


def _index(items: list[Any], key: str, value: object) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return i
    return None
