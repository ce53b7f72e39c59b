"""Pure builders of the predictor's Deployment, Service and HPA, shaped as KServe RawDeployment.

``make_deployment``, ``make_service`` and ``make_hpa`` each take the InferenceService (a plain
dict), the selected runtime (``None`` for a custom-container predictor) and the
:class:`~autoscaler.reconciler.settings.Settings`, and return a plain dict ready for
server-side apply. They raise :class:`~autoscaler.reconciler.failures.PlanError` on input they
cannot build from; :func:`autoscaler.reconciler.plan.plan` is the entry point that never raises.

Shared metadata (KServe ``predictor.go`` ``buildObjectMeta``): name ``<isvc>-predictor``;
labels = runtime ``spec.labels`` < ISVC labels < ``predictor.labels`` < the fixed
``serving.kserve.io/inferenceservice``/``component`` < ``app=isvc.<isvc>-predictor``;
annotations = runtime ``spec.annotations`` < ISVC annotations (minus the disallowed list, plus
the storage-URI annotation) < ``predictor.annotations``; a controller owner reference to the ISVC.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from autoscaler.reconciler import names, podspec
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.hpa import hpa_spec
from autoscaler.reconciler.runtime import Runtime
from autoscaler.reconciler.settings import Settings
from autoscaler.reconciler.spec import Isvc, parse_isvc

JSON = dict[str, Any]
SUPPORTED_CLASSES = ("hpa", "external", "none")
_LEGACY_RAW = "RawDeployment"


@dataclass(frozen=True)
class Scaling:
    """Who owns ``Deployment.spec.replicas`` and what it starts at."""

    autoscaler_class: str
    replicas: int
    """``spec.replicas`` on creation (and, when not owned by a scaler, on every apply)."""
    owned_by_scaler: bool
    """True for ``hpa``/``external``: leave ``spec.replicas`` out of applies once it exists."""


def object_meta(isvc: Isvc, runtime: Runtime | None, settings: Settings) -> JSON:
    """``metadata`` shared by the predictor Deployment, Service and HPA."""
    meta, predictor = isvc.meta, isvc.predictor
    runtime_spec = runtime.spec if runtime is not None else {}
    allowed = _without(settings.disallowed_annotations)
    own = allowed(meta.annotations)
    if own.get(names.DEPLOYMENT_MODE_ANNOTATION, _LEGACY_RAW) == _LEGACY_RAW:
        # what KServe's defaulting webhook stores on a raw-mode ISVC before the controller reads it
        own[names.DEPLOYMENT_MODE_ANNOTATION] = "Standard"
    if predictor.storage_uri:
        own[names.STORAGE_URI_ANNOTATION] = predictor.storage_uri
    annotations = {
        **allowed(runtime_spec.get("annotations") or {}),
        **own,
        **allowed(predictor.annotations),
    }
    labels = {
        **(runtime_spec.get("labels") or {}),
        **meta.labels,
        **predictor.labels,
        **names.fixed_labels(meta.name),
        **names.selector(isvc.component_name),
    }
    result: JSON = {
        "name": isvc.component_name,
        "namespace": meta.namespace,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner_reference(isvc)],
    }
    return result


def owner_reference(isvc: Isvc) -> JSON:
    """A controller reference to the InferenceService (garbage collection deletes the children)."""
    ref: JSON = {
        "apiVersion": names.ISVC_API_VERSION,
        "kind": names.ISVC_KIND,
        "name": isvc.meta.name,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if isvc.meta.uid:
        ref["uid"] = isvc.meta.uid
    return ref


def scaling(isvc: Isvc, runtime: Runtime | None, settings: Settings) -> Scaling:
    """The autoscaler class (from the merged annotations, default ``hpa``) and replica policy."""
    annotations = object_meta(isvc, runtime, settings)["annotations"]
    cls = annotations.get(names.AUTOSCALER_CLASS_ANNOTATION, "hpa")
    check_autoscaler_class(cls)
    low = isvc.predictor.min_replicas
    if cls == "hpa":
        return Scaling(cls, max(low or 1, 1), owned_by_scaler=True)
    return Scaling(cls, 1 if low is None else low, owned_by_scaler=cls == "external")


def check_autoscaler_class(cls: str) -> None:
    """Raise ``UnsupportedAutoscalerClass`` unless ``cls`` is one this reconciler implements."""
    if cls in SUPPORTED_CLASSES:
        return
    hint = (
        " (KEDA ScaledObjects are not created by this reconciler; use 'external' and point a "
        "ScaledObject or llm-autoscaler at the <isvc>-predictor Deployment)"
        if cls == "keda"
        else ""
    )
    raise PlanError(
        Reason.UNSUPPORTED_AUTOSCALER_CLASS,
        f"{names.AUTOSCALER_CLASS_ANNOTATION} [{cls}] is not supported; supported: "
        f"{', '.join(SUPPORTED_CLASSES)}{hint}",
    )


def make_deployment(isvc: JSON, runtime: Runtime | None, settings: Settings) -> JSON:
    """The ``apps/v1`` Deployment ``<isvc>-predictor``."""
    parsed = parse_isvc(isvc, settings.default_namespace)
    meta = object_meta(parsed, runtime, settings)
    pod = podspec.build_pod_spec(parsed, runtime, meta["annotations"], settings)
    template_meta = copy.deepcopy(
        {k: meta[k] for k in ("name", "namespace", "labels", "annotations")}
    )
    spec: JSON = {
        "replicas": scaling(parsed, runtime, settings).replicas,
        "selector": {"matchLabels": names.selector(parsed.component_name)},
        "template": {"metadata": template_meta, "spec": pod},
    }
    strategy = parsed.predictor.deployment_strategy
    if strategy is not None:
        spec["strategy"] = strategy
    else:
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        }
        spec["revisionHistoryLimit"] = 10
        spec["progressDeadlineSeconds"] = 600
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def make_service(isvc: JSON, runtime: Runtime | None, settings: Settings) -> JSON:
    """The ``v1`` Service ``<isvc>-predictor``: port 80 -> the serving container's first port."""
    parsed = parse_isvc(isvc, settings.default_namespace)
    meta = object_meta(parsed, runtime, settings)
    pod = podspec.build_pod_spec(parsed, runtime, meta["annotations"], settings)
    containers = pod["containers"]
    container = next(
        (c for c in containers if c["name"] == names.TRANSFORMER_CONTAINER), containers[0]
    )
    ports = [
        _service_port(p, first=i == 0) for i, p in enumerate(container.get("ports") or [])
    ] or [
        {
            "name": parsed.component_name,
            "protocol": "TCP",
            "port": names.SERVICE_PORT,
            "targetPort": names.DEFAULT_HTTP_PORT,
        }
    ]
    spec: JSON = {"selector": names.selector(parsed.component_name), "ports": ports}
    if settings.service_cluster_ip_none:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def make_hpa(isvc: JSON, runtime: Runtime | None, settings: Settings) -> JSON:
    """The ``autoscaling/v2`` HPA ``<isvc>-predictor`` for autoscaler class ``hpa``."""
    parsed = parse_isvc(isvc, settings.default_namespace)
    meta = object_meta(parsed, runtime, settings)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": hpa_spec(parsed.predictor, parsed.component_name),
    }


def _service_port(port: JSON, *, first: bool) -> JSON:
    out: JSON = {}
    if port.get("name"):
        out["name"] = port["name"]
    out["protocol"] = port.get("protocol") or "TCP"
    out["port"] = names.SERVICE_PORT if first else port["containerPort"]
    out["targetPort"] = port["containerPort"]
    if any(s in str(port.get("name", "")) for s in ("grpc", "h2c")):
        out["appProtocol"] = "kubernetes.io/h2c"
    return out


def _without(disallowed: tuple[str, ...]) -> Any:
    def allowed(annotations: dict[str, str]) -> dict[str, str]:
        return {
            k: v
            for k, v in annotations.items()
            if k not in disallowed and not k.startswith(names.NOT_PROPAGATED_PREFIXES)
        }

    return allowed
