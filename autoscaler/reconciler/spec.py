"""Parse an InferenceService dict once into a validated, resolved :class:`Isvc`.

Raw Kubernetes JSON comes in; a frozen value with no optionals left to guess comes out, or a
:class:`~autoscaler.reconciler.failures.PlanError` naming the field that is wrong. Without
KServe's webhooks nobody else checks the shape (``render`` reads plain files, and the minimal
CRD has no schema), so every field the builders read is type-checked here.

This module also does what KServe's *defaulting* webhook would have done before the controller
saw the object: framework shorthands (``predictor.sklearn``, ``predictor.huggingface``, ...)
become ``predictor.model`` with a ``modelFormat``, and ``vLLM``/``triton``/``huggingface``
models default to protocol ``v2``. Pure; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from autoscaler.reconciler import names, validate
from autoscaler.reconciler.failures import PlanError, Reason

JSON = dict[str, Any]

# predictor.<framework> shorthand -> modelFormat.name (KServe constants.SupportedModel*)
FRAMEWORKS: dict[str, str] = {
    name: name
    for name in (
        "sklearn",
        "xgboost",
        "tensorflow",
        "pytorch",
        "triton",
        "onnx",
        "huggingface",
        "pmml",
        "lightgbm",
        "paddle",
    )
}
_V2_SHORTHANDS = frozenset({"triton", "huggingface"})
_V2_FORMATS = frozenset({"triton", "vLLM"})

# predictor.model keys that are not corev1.Container fields
_MODEL_ONLY = frozenset(
    {"modelFormat", "runtime", "storageUri", "storage", "protocolVersion", "runtimeVersion"}
)
# predictor keys that are corev1.PodSpec fields (everything else is KServe's own)
POD_FIELDS = frozenset(
    """activeDeadlineSeconds affinity automountServiceAccountToken containers dnsConfig dnsPolicy
    enableServiceLinks hostAliases hostIPC hostNetwork hostPID hostUsers hostname hostnameOverride
    imagePullSecrets initContainers nodeName nodeSelector os overhead preemptionPolicy priority
    priorityClassName readinessGates resourceClaims resources restartPolicy runtimeClassName
    schedulerName schedulingGates securityContext serviceAccount serviceAccountName
    setHostnameAsFQDN shareProcessNamespace subdomain terminationGracePeriodSeconds tolerations
    topologySpreadConstraints volumes""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Model:
    """``spec.predictor.model`` (or a framework shorthand), split into format and container."""

    format_name: str
    format_version: str | None
    runtime: str | None
    protocol_version: str | None
    runtime_version: str | None
    container: JSON
    """The corev1.Container fields the ISVC sets (args, env, resources, probes, ...)."""


@dataclass(frozen=True)
class Predictor:
    """The resolved ``spec.predictor``."""

    model: Model | None
    containers: tuple[JSON, ...]
    """``predictor.containers``: the whole pod for a custom predictor, else sidecars."""
    pod: JSON
    """The corev1.PodSpec fields of the predictor, minus ``containers``."""
    storage_uri: str | None
    min_replicas: int | None
    max_replicas: int
    scale_metric: str | None
    scale_target: int | None
    auto_scaling: JSON | None
    deployment_strategy: JSON | None
    labels: dict[str, str]
    annotations: dict[str, str]
    name: str | None


@dataclass(frozen=True)
class Meta:
    """What the reconciler needs from ``metadata`` and ``status``."""

    name: str
    namespace: str
    uid: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    status: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Isvc:
    """A validated InferenceService."""

    meta: Meta
    predictor: Predictor

    @property
    def component_name(self) -> str:
        """``<isvc>-predictor``: the name of the Deployment, Service and HPA."""
        return names.predictor_name(self.meta.name, self.predictor.name)


def parse_meta(obj: object, default_namespace: str = "default") -> Meta:
    """The metadata of an InferenceService; raises ``PlanError`` if malformed."""
    if not isinstance(obj, dict):
        raise PlanError(Reason.INVALID_PREDICTOR_SPEC, "an InferenceService must be a mapping")
    metadata = validate.mapping(obj.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not re.fullmatch(names.ISVC_NAME_PATTERN, name):
        raise PlanError(
            Reason.INVALID_NAME,
            f"metadata.name {name!r} is not a valid InferenceService name: lower case "
            f"alphanumerics or '-', starting with a letter (regex {names.ISVC_NAME_PATTERN})",
        )
    namespace = metadata.get("namespace") or default_namespace
    uid = metadata.get("uid")
    return Meta(
        name=name,
        namespace=validate.string(namespace, "metadata.namespace"),
        uid=validate.string(uid, "metadata.uid") if uid is not None else None,
        labels=validate.str_map(metadata.get("labels"), "metadata.labels"),
        annotations=validate.str_map(metadata.get("annotations"), "metadata.annotations"),
        status=obj["status"] if isinstance(obj.get("status"), dict) else {},
    )


def raw_predictor(obj: JSON) -> JSON:
    """``spec.predictor`` as a mapping; ``NoPredictor`` if it is missing or empty."""
    spec = obj.get("spec")
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    if not isinstance(predictor, dict) or not predictor:
        raise PlanError(Reason.NO_PREDICTOR, "spec.predictor is required and must be a mapping")
    return predictor


def parse_predictor(obj: JSON) -> Predictor:
    """The validated ``spec.predictor`` with webhook defaults applied."""
    raw = raw_predictor(obj)
    containers = tuple(
        validate.container(c, f"spec.predictor.containers[{i}]")
        for i, c in enumerate(validate.sequence(raw.get("containers"), "spec.predictor.containers"))
    )
    model = _implementation(raw, containers)
    pod = {k: v for k, v in raw.items() if k in POD_FIELDS and k != "containers" and v is not None}
    validate.pod_fields(pod, "spec.predictor")
    min_replicas, max_replicas = validate.replicas(raw.get("minReplicas"), raw.get("maxReplicas"))
    return Predictor(
        model=model,
        containers=containers,
        pod=pod,
        storage_uri=_storage_uri(raw, model, containers),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_metric=validate.optional_string(raw.get("scaleMetric"), "spec.predictor.scaleMetric"),
        scale_target=validate.optional_int(raw.get("scaleTarget"), "spec.predictor.scaleTarget"),
        auto_scaling=validate.optional_mapping(
            raw.get("autoScaling"), "spec.predictor.autoScaling"
        ),
        deployment_strategy=validate.optional_mapping(
            raw.get("deploymentStrategy"), "spec.predictor.deploymentStrategy"
        ),
        labels=validate.str_map(raw.get("labels"), "spec.predictor.labels"),
        annotations=validate.str_map(raw.get("annotations"), "spec.predictor.annotations"),
        name=validate.optional_string(raw.get("name"), "spec.predictor.name"),
    )


def parse_isvc(obj: object, default_namespace: str = "default") -> Isvc:
    """Metadata and predictor together (what the builders need)."""
    meta = parse_meta(obj, default_namespace)
    assert isinstance(obj, dict)  # parse_meta checked it
    return Isvc(meta=meta, predictor=parse_predictor(obj))


def _implementation(raw: JSON, containers: tuple[JSON, ...]) -> Model | None:
    """KServe's "exactly one implementation" rule; the model, or None for a custom predictor."""
    found = [key for key in (*FRAMEWORKS, "model") if raw.get(key) is not None]
    has_custom = any(c["name"] == names.KSERVE_CONTAINER for c in containers)
    if has_custom or (containers and not found):
        found.append("containers")
    if not found:
        raise PlanError(
            Reason.NO_PREDICTOR,
            "spec.predictor sets no implementation: set model, containers (with a "
            f"'{names.KSERVE_CONTAINER}'), or one of {', '.join(FRAMEWORKS)}",
        )
    if len(found) > 1:
        raise PlanError(
            Reason.INVALID_PREDICTOR_SPEC,
            f"spec.predictor must set exactly one implementation, found {', '.join(found)}",
        )
    key = found[0]
    if key == "containers":
        if not has_custom:
            raise PlanError(
                Reason.INVALID_PREDICTOR_SPEC,
                f"spec.predictor.containers has no container named '{names.KSERVE_CONTAINER}'",
            )
        return None
    return _model(key, validate.mapping(raw[key], f"spec.predictor.{key}"))


def _model(key: str, body: JSON) -> Model:
    path = f"spec.predictor.{key}"
    if body.get("name"):
        raise PlanError(Reason.INVALID_PREDICTOR_SPEC, f"the 'name' field is not allowed in {path}")
    if key == "model":
        fmt = validate.mapping(body.get("modelFormat"), f"{path}.modelFormat")
        format_name = fmt.get("name")
        if not isinstance(format_name, str) or not format_name:
            raise PlanError(Reason.INVALID_PREDICTOR_SPEC, f"{path}.modelFormat.name is required")
        version = fmt.get("version")
        format_version = None if version is None else str(version)
    else:
        format_name, format_version = FRAMEWORKS[key], None
    protocol = validate.optional_string(body.get("protocolVersion"), f"{path}.protocolVersion")
    if protocol is None and (key in _V2_SHORTHANDS or format_name in _V2_FORMATS):
        protocol = "v2"
    container = {k: v for k, v in body.items() if k not in _MODEL_ONLY and k != "name"}
    return Model(
        format_name=format_name,
        format_version=format_version,
        runtime=validate.optional_string(body.get("runtime"), f"{path}.runtime") or None,
        protocol_version=protocol,
        runtime_version=validate.optional_string(
            body.get("runtimeVersion"), f"{path}.runtimeVersion"
        ),
        container=validate.container(container, path, named=False),
    )


def _storage_uri(raw: JSON, model: Model | None, containers: tuple[JSON, ...]) -> str | None:
    if model is not None:
        key = next(k for k in (*FRAMEWORKS, "model") if raw.get(k) is not None)
        uri = raw[key].get("storageUri")
        return validate.optional_string(uri, f"spec.predictor.{key}.storageUri")
    for container in containers:  # a custom predictor asks for a download with STORAGE_URI
        for env in container.get("env", ()):
            if env["name"] != names.STORAGE_URI_ENV:
                continue
            if container["name"] == names.KSERVE_CONTAINER:
                return str(env.get("value", "")) or None
            if container["name"] == names.TRANSFORMER_CONTAINER:
                raise PlanError(
                    Reason.INVALID_STORAGE_URI,
                    f"{names.STORAGE_URI_ENV} may only be set on '{names.KSERVE_CONTAINER}', "
                    f"not on '{names.TRANSFORMER_CONTAINER}'",
                )
    return None
