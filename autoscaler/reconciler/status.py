"""The ``status`` KServe writes on a raw-mode InferenceService, computed from what we know.

Inputs: the InferenceService (its previous status too), the predictor Deployment as read back
from the API server (or ``None``), the plan's failure (or ``None``), the settings and ``now``.
KServe's rules (``inference_service_status.go`` ``PropagateRawStatus``, the raw ingress
reconciler, ``controller.go``):

* ``PredictorReady`` follows the Deployment: True when ``Available=True`` or
  ``Progressing=True/NewReplicaSetAvailable``; Unknown while progressing otherwise; False on
  ``Available=False``, a failed ``Progressing`` with a message, or ``ReplicaFailure=True``
  (reason and message copied); False with no reason on a Deployment without conditions. A plan
  failure makes it False with the failure's reason and message.
* ``IngressReady`` is True (no Ingress is created: KServe's ``disableIngressCreation``
  behaviour); ``Ready`` is True iff both are, else it carries the first non-True one's
  reason; ``Stopped`` (severity Info) tracks ``serving.kserve.io/stop``.
* ``url`` = ``<scheme>://<isvc>-<ns>.<ingress-domain>``, ``address.url`` =
  ``http://<isvc>-predictor.<ns>.svc.<cluster-domain>`` (``:<port>`` when headless),
  ``components.predictor.url`` = ``http://<isvc>-predictor-<ns>.<ingress-domain>`` once ready
  (and kept afterwards), ``deploymentMode: Standard``, the runtime name, ``modelStatus``.
* ``observedGeneration`` is the *Deployment's* ``status.observedGeneration`` (KServe's quirk).

``lastTransitionTime`` only moves when a condition's status changes. Pure; no I/O.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from autoscaler.reconciler import names, validate
from autoscaler.reconciler.failures import LEFT_ALONE, Failure, Reason
from autoscaler.reconciler.plan import RuntimeRef
from autoscaler.reconciler.settings import Settings

JSON = dict[str, Any]
PREDICTOR_READY, INGRESS_READY, READY, STOPPED = (
    "PredictorReady",
    "IngressReady",
    "Ready",
    "Stopped",
)
_KSERVE_FAILURE_REASONS = {  # modelStatus.lastFailureInfo.reason is an enum in the CRD
    Reason.RUNTIME_NOT_RECOGNIZED: "RuntimeNotRecognized",
    Reason.RUNTIME_DISABLED: "RuntimeDisabled",
    Reason.NO_SUPPORTING_RUNTIME: "NoSupportingRuntime",
    Reason.AMBIGUOUS_RUNTIME: "NoSupportingRuntime",
}
_NOT_SPEC_ERRORS = frozenset({Reason.RECONCILE_FAILED, Reason.INTERNAL_ERROR})


def compute_status(
    isvc: JSON,
    deployment: JSON | None,
    failure: Failure | None,
    settings: Settings,
    *,
    now: datetime,
    runtime: RuntimeRef | None = None,
) -> JSON:
    """The full ``status`` to write for ``isvc``."""
    previous = validate.submap(isvc, "status")
    metadata = validate.submap(isvc, "metadata")
    name = str(metadata.get("name", ""))
    namespace = str(metadata.get("namespace") or settings.default_namespace)
    annotations = validate.submap(metadata, "annotations")
    stamp = _timestamp(now)
    conditions = {c["type"]: c for c in previous.get("conditions", []) if isinstance(c, dict)}

    def put(kind: str, status: str, reason: str = "", message: str = "") -> None:
        conditions[kind] = _condition(kind, status, reason, message, conditions.get(kind), stamp)

    if failure is not None and failure.reason in LEFT_ALONE:
        status = copy.deepcopy(previous)
        put(PREDICTOR_READY, "False", failure.reason.value, failure.message)
        put(READY, "False", failure.reason.value, failure.message)
        status["conditions"] = _sorted(conditions)
        return status

    if annotations.get(names.STOP_ANNOTATION) == "true":
        for kind in (PREDICTOR_READY, INGRESS_READY):
            put(kind, "False", Reason.STOPPED.value)
        put(READY, "False", Reason.STOPPED.value)
        put(STOPPED, "True")
        conditions[STOPPED]["severity"] = "Info"
        return {"conditions": _sorted(conditions), "deploymentMode": "Standard"}

    status = copy.deepcopy(previous)
    if failure is not None:
        put(PREDICTOR_READY, "False", failure.reason.value, failure.message)
        conditions.setdefault(INGRESS_READY, {"type": INGRESS_READY, "status": "Unknown"})
    else:
        predictor = predictor_condition(deployment) if deployment is not None else None
        put(PREDICTOR_READY, *(predictor or ("Unknown",)))
        put(INGRESS_READY, "True")
        status["url"] = f"{settings.url_scheme}://" + names.ingress_host(
            name, namespace, settings.ingress_domain
        )
        status["address"] = {"url": _address(name, namespace, deployment, settings)}
    ready = next(
        (
            conditions[k]
            for k in (PREDICTOR_READY, INGRESS_READY)
            if conditions[k]["status"] != "True"
        ),
        None,
    )
    if ready is None:
        put(READY, "True")
    else:
        put(READY, ready["status"], ready.get("reason", ""), ready.get("message", ""))
    put(STOPPED, "False")
    conditions[STOPPED]["severity"] = "Info"
    status["conditions"] = _sorted(conditions)

    predictor_ready = conditions[PREDICTOR_READY]["status"] == "True"
    if predictor_ready:
        host = names.ingress_host(names.predictor_name(name), namespace, settings.ingress_domain)
        status.setdefault("components", {})["predictor"] = {"url": f"http://{host}"}
    status["modelStatus"] = _model_status(
        previous, deployment, failure, ready=conditions[READY]["status"] == "True"
    )
    status["deploymentMode"] = "Standard"
    if runtime is not None:
        key, other = "servingRuntimeName", "clusterServingRuntimeName"
        if runtime.kind == names.CLUSTER_SERVING_RUNTIME_KIND:
            key, other = other, key
        status[key] = runtime.name
        status.pop(other, None)
    generation = ((deployment or {}).get("status") or {}).get("observedGeneration")
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def predictor_condition(deployment: JSON) -> tuple[str, str, str]:
    """``(status, reason, message)`` of ``PredictorReady`` from one Deployment's conditions."""
    found = {c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []}
    available, progressing = found.get("Available"), found.get("Progressing")
    failed = found.get("ReplicaFailure")
    result = ("False", "", "")
    if available and available.get("status") == "True":
        result = _triple("True", available)
    if progressing and progressing.get("status") == "False" and progressing.get("message"):
        result = _triple("False", progressing)
    elif progressing and progressing.get("status") == "True":
        if progressing.get("reason") == "NewReplicaSetAvailable":
            result = _triple("True", progressing)
        elif not (available and available.get("status") == "True"):
            result = _triple("Unknown", progressing)
    if available and available.get("status") == "False":
        result = _triple("False", available)
    if failed and failed.get("status") == "True":
        result = _triple("False", failed)
    return result


def _triple(status: str, condition: JSON) -> tuple[str, str, str]:
    return status, str(condition.get("reason") or ""), str(condition.get("message") or "")


def _condition(
    kind: str, status: str, reason: str, message: str, before: JSON | None, stamp: str
) -> JSON:
    out: JSON = {"type": kind, "status": status, "lastTransitionTime": stamp}
    if before is not None and before.get("status") == status:
        out["lastTransitionTime"] = before.get("lastTransitionTime") or stamp
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _sorted(conditions: dict[str, JSON]) -> list[JSON]:
    return [conditions[k] for k in sorted(conditions)]


def _address(name: str, namespace: str, deployment: JSON | None, settings: Settings) -> str:
    """The in-cluster URL; a headless Service has no port mapping, so name the pod's port."""
    host = names.service_host(names.predictor_name(name), namespace, settings.cluster_domain)
    if not settings.service_cluster_ip_none:
        return f"http://{host}"
    return f"http://{host}:{_http_port(deployment)}"


def _http_port(deployment: JSON | None) -> int:
    """The serving container's first non-gRPC port (KServe ``httpTargetPort``), else 8080."""
    pod = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or [{}]
    serving = next(
        (c for c in containers if c.get("name") == names.TRANSFORMER_CONTAINER), containers[0]
    )
    for port in serving.get("ports") or []:
        if not any(s in str(port.get("name", "")) for s in ("grpc", "h2c")):
            return int(port["containerPort"])
    return names.DEFAULT_HTTP_PORT


def _model_status(
    previous: JSON, deployment: JSON | None, failure: Failure | None, *, ready: bool
) -> JSON:
    before = validate.submap(previous, "modelStatus")
    active = ((before.get("states") or {}).get("activeModelState")) or ""
    if failure is not None and failure.reason not in _NOT_SPEC_ERRORS:
        return {
            "transitionStatus": "InvalidSpec",
            "states": {"activeModelState": active, "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {
                "reason": _KSERVE_FAILURE_REASONS.get(failure.reason, "InvalidPredictorSpec"),
                "message": failure.message,
            },
        }
    if failure is not None:
        return copy.deepcopy(before) or {"transitionStatus": "InProgress"}
    copies = {
        "failedCopies": 0,
        "totalCopies": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
    }
    if ready:
        states = {"activeModelState": "Loaded", "targetModelState": "Loaded"}
        return {"transitionStatus": "UpToDate", "states": states, "copies": copies}
    states = {"activeModelState": active, "targetModelState": "Pending"}
    return {"transitionStatus": "InProgress", "states": states, "copies": copies}


def _timestamp(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
