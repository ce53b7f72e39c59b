"""Choose the ServingRuntime / ClusterServingRuntime that serves an InferenceService's model.

KServe's rules (``predictor.go`` ``reconcileModel``, ``predictor_model.go``
``GetSupportingRuntimes``, ``servingruntime_types.go``):

* ``model.runtime`` set: the namespaced ServingRuntime of that name, else the
  ClusterServingRuntime. It must not be ``disabled``, must list the model's protocol (when the
  model names one) and must list the model format (any entry, ``autoSelect`` or not).
* ``model.runtime`` unset: candidates are runtimes that are enabled, single-model, single-node,
  list the model format *with* ``autoSelect: true`` and support the model's protocol (``v1``
  when unset). Namespaced candidates beat cluster ones. Within a scope KServe sorts by the
  runtime's best protocol (v1 before v2), then the format's ``priority`` (higher first,
  unset last), then newest ``creationTimestamp``, then name.

One deliberate difference: when the two best candidates of the winning scope have the same
priority and the same best protocol, KServe silently takes the newer one; here that is an
:attr:`~Reason.AMBIGUOUS_RUNTIME` failure, because which runtime serves a model should not
depend on when someone happened to apply a manifest. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.reconciler import names, validate
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.spec import Model

JSON = dict[str, Any]
_PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
_UNKNOWN_PROTOCOL = 5


@dataclass(frozen=True)
class Runtime:
    """A parsed ServingRuntime or ClusterServingRuntime."""

    kind: str
    name: str
    spec: JSON
    annotations: dict[str, str]
    created: str

    @property
    def is_cluster(self) -> bool:
        return self.kind == names.CLUSTER_SERVING_RUNTIME_KIND

    @property
    def disabled(self) -> bool:
        return self.spec.get("disabled") is True

    @property
    def protocols(self) -> list[str]:
        return list(self.spec.get("protocolVersions") or [])

    @property
    def formats(self) -> list[JSON]:
        return list(self.spec.get("supportedModelFormats") or [])

    def supports_protocol(self, protocol: str | None) -> bool:
        return not protocol or not self.protocols or protocol in self.protocols

    def supports_format(self, model: Model, *, auto_select_only: bool) -> bool:
        labels: set[str] = set()
        for fmt in self.formats:
            if auto_select_only and fmt.get("autoSelect") is not True:
                continue
            labels.add(str(fmt.get("name")))
            if fmt.get("version") is not None:
                labels.add(f"{fmt.get('name')}:{fmt['version']}")
        return _format_label(model) in labels

    def priority(self, format_name: str) -> int | None:
        for fmt in self.formats:
            if fmt.get("name") == format_name:
                value = fmt.get("priority")
                return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None

    @property
    def protocol_rank(self) -> int:
        ranks = [_PROTOCOL_RANK.get(p, _UNKNOWN_PROTOCOL) for p in self.protocols]
        return min(ranks, default=_UNKNOWN_PROTOCOL)


def parse_runtime(obj: object, kind: str) -> Runtime:
    """A runtime manifest checked for the fields selection and merging read."""
    if not isinstance(obj, dict):
        raise PlanError(Reason.INVALID_RUNTIME, f"a {kind} must be a mapping")
    metadata = validate.submap(obj, "metadata")
    name = metadata.get("name")
    spec = obj.get("spec")
    if not isinstance(name, str) or not isinstance(spec, dict):
        raise PlanError(Reason.INVALID_RUNTIME, f"{kind} {name!r} needs metadata.name and spec")
    for key in ("containers", "supportedModelFormats", "protocolVersions"):
        value = spec.get(key)
        if value is not None and not isinstance(value, list):
            raise PlanError(Reason.INVALID_RUNTIME, f"{kind} {name}: spec.{key} must be a list")
    if not all(isinstance(f, dict) for f in spec.get("supportedModelFormats") or []):
        raise PlanError(Reason.INVALID_RUNTIME, f"{kind} {name}: bad spec.supportedModelFormats")
    annotations = validate.submap(metadata, "annotations")
    return Runtime(
        kind, name, spec, dict(annotations), str(metadata.get("creationTimestamp") or "")
    )


def select_runtime(
    model: Model,
    namespace: str,
    runtimes: Sequence[JSON],
    cluster_runtimes: Sequence[JSON],
) -> Runtime:
    """The runtime for ``model`` in ``namespace``; raises ``PlanError`` with KServe's reasons."""
    local = [r for r in runtimes if _namespace_of(r) in (None, namespace)]
    if model.runtime:
        return _explicit(model, model.runtime, local, cluster_runtimes)
    return _auto_select(model, local, cluster_runtimes)


def _explicit(model: Model, name: str, local: Sequence[JSON], cluster: Sequence[JSON]) -> Runtime:
    runtime = _find(name, local, names.SERVING_RUNTIME_KIND) or _find(
        name, cluster, names.CLUSTER_SERVING_RUNTIME_KIND
    )
    if runtime is None:
        raise PlanError(
            Reason.RUNTIME_NOT_RECOGNIZED,
            f"No ServingRuntimes or ClusterServingRuntimes with the name: {name} "
            "(waiting for runtime to become available)",
        )
    if runtime.disabled:
        raise PlanError(Reason.RUNTIME_DISABLED, f"specified runtime {name} is disabled")
    if model.protocol_version and not runtime.supports_protocol(model.protocol_version):
        raise PlanError(
            Reason.NO_SUPPORTING_RUNTIME,
            f"specified runtime {name} does not support protocol version "
            f"{model.protocol_version} (it supports {', '.join(runtime.protocols)})",
        )
    if not runtime.supports_format(model, auto_select_only=False):
        raise PlanError(
            Reason.NO_SUPPORTING_RUNTIME,
            f"specified runtime {name} does not support model format {_format_label(model)}",
        )
    return runtime


def _auto_select(model: Model, local: Sequence[JSON], cluster: Sequence[JSON]) -> Runtime:
    for kind, objects in (
        (names.SERVING_RUNTIME_KIND, local),
        (names.CLUSTER_SERVING_RUNTIME_KIND, cluster),
    ):
        candidates = _candidates(model, objects, kind)
        if not candidates:
            continue
        best = candidates[0]
        if len(candidates) > 1 and _rank(candidates[1], model) == _rank(best, model):
            other = candidates[1]
            raise PlanError(
                Reason.AMBIGUOUS_RUNTIME,
                f"{kind}s {best.name} and {other.name} both auto-select model format "
                f"{model.format_name} with priority {best.priority(model.format_name)}; set "
                "spec.predictor.model.runtime or give them different priorities",
            )
        return best
    raise PlanError(
        Reason.NO_SUPPORTING_RUNTIME,
        f"no runtime found to support model format {_format_label(model)} "
        f"(protocol {model.protocol_version or 'v1'}) with autoSelect enabled",
    )


def _candidates(model: Model, objects: Sequence[JSON], kind: str) -> list[Runtime]:
    protocol = model.protocol_version or "v1"
    found: list[Runtime] = []
    for obj in objects:
        try:
            runtime = parse_runtime(obj, kind)
        except PlanError:
            continue  # a malformed runtime cannot serve anything; the others still can
        if (
            not runtime.disabled
            and runtime.spec.get("multiModel") is not True
            and runtime.spec.get("workerSpec") is None
            and runtime.supports_format(model, auto_select_only=True)
            and runtime.supports_protocol(protocol)
        ):
            found.append(runtime)
    # KServe: protocol rank asc, newest first, name asc; then a stable sort by priority desc
    found.sort(key=lambda r: r.name)
    found.sort(key=lambda r: r.created, reverse=True)
    found.sort(key=lambda r: r.protocol_rank)
    found.sort(key=lambda r: _priority_key(r.priority(model.format_name)))
    return found


def _rank(runtime: Runtime, model: Model) -> tuple[tuple[int, int], int]:
    return _priority_key(runtime.priority(model.format_name)), runtime.protocol_rank


def _priority_key(priority: int | None) -> tuple[int, int]:
    """Set priorities first, higher first; unset ones last."""
    return (1, 0) if priority is None else (0, -priority)


def _find(name: str, objects: Sequence[JSON], kind: str) -> Runtime | None:
    for obj in objects:
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(metadata, dict) and metadata.get("name") == name:
            return parse_runtime(obj, kind)
    return None


def _namespace_of(obj: JSON) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata.get("namespace") if isinstance(metadata, dict) else None


def _format_label(model: Model) -> str:
    if model.format_version is not None:
        return f"{model.format_name}:{model.format_version}"
    return model.format_name
