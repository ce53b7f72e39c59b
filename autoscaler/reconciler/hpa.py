"""The ``autoscaling/v2`` HPA spec KServe builds for autoscaler class ``hpa``, with its checks.

KServe ``hpa_reconciler.go`` (``createHPA``, ``getHPAMetrics``) and the webhook's
``validateScalingHPACompExtension``:

* ``minReplicas = max(predictor.minReplicas, 1)`` (an HPA cannot scale to zero), and
  ``maxReplicas = max(predictor.maxReplicas, minReplicas)``;
* with ``predictor.autoScaling``: one Resource metric per ``metrics[]`` entry -- ``cpu`` as
  Utilization (``averageUtilization`` default 80), ``memory`` as Utilization or AverageValue as
  written; every entry must be ``type: Resource``;
* otherwise ``scaleMetric`` (default ``cpu``) with ``scaleTarget``: cpu Utilization (default 80,
  1..100), memory Utilization only when ``scaleTarget`` is set;
* ``behavior: {}`` (the API server fills in the standard scale-up/down policies).

Pure; no I/O.
"""

from __future__ import annotations

from typing import Any

from autoscaler.reconciler import names, validate
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.quantity import canonical
from autoscaler.reconciler.spec import Predictor

JSON = dict[str, Any]
_RESOURCE_METRICS = ("cpu", "memory")


def hpa_spec(predictor: Predictor, target_name: str) -> JSON:
    """``HorizontalPodAutoscaler.spec`` scaling the Deployment ``target_name``."""
    low = max(predictor.min_replicas or 1, 1)
    spec: JSON = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_name},
        "minReplicas": low,
        "maxReplicas": max(predictor.max_replicas, low),
    }
    metrics = hpa_metrics(predictor)
    if metrics:
        spec["metrics"] = metrics
    spec["behavior"] = {}
    return spec


def hpa_metrics(predictor: Predictor) -> list[JSON]:
    """The HPA ``metrics``; ``InvalidAutoscalingSpec`` for what KServe's webhook rejects."""
    if predictor.auto_scaling is not None:
        entries = predictor.auto_scaling.get("metrics") or []
        if not isinstance(entries, list):
            raise PlanError(Reason.INVALID_AUTOSCALING, "autoScaling.metrics must be a list")
        return [m for i, e in enumerate(entries) if (m := _auto_scaling_metric(e, i)) is not None]
    metric = predictor.scale_metric or "cpu"
    target = predictor.scale_target
    if metric not in _RESOURCE_METRICS:
        raise PlanError(
            Reason.INVALID_AUTOSCALING,
            f"scaleMetric [{metric}] is not supported by autoscaler class hpa "
            f"(supported: {', '.join(_RESOURCE_METRICS)})",
        )
    if metric == "cpu":
        target = names.DEFAULT_CPU_UTILIZATION if target is None else target
        _check_utilization(target, "scaleTarget", upper=100)
    elif target is None:
        return []  # KServe sets no default memory target
    elif target < 1:
        raise PlanError(Reason.INVALID_AUTOSCALING, "the target memory should be at least 1")
    return [_resource(metric, {"type": "Utilization", "averageUtilization": target})]


def _auto_scaling_metric(entry: object, index: int) -> JSON | None:
    where = f"autoScaling.metrics[{index}]"
    if not isinstance(entry, dict) or entry.get("type") != "Resource":
        kind = entry.get("type") if isinstance(entry, dict) else entry
        raise PlanError(
            Reason.INVALID_AUTOSCALING,
            f"{where}: invalid HPA metric source type [{kind}]; autoscaler class hpa supports "
            "only Resource (use autoscaler class external for custom or external metrics)",
        )
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        raise PlanError(Reason.INVALID_AUTOSCALING, f"{where}.resource is not set")
    name = resource.get("name")
    target = validate.submap(resource, "target")
    if name == "cpu":
        utilization = target.get("averageUtilization", names.DEFAULT_CPU_UTILIZATION)
        _check_utilization(utilization, f"{where}.resource.target.averageUtilization")
        return _resource("cpu", {"type": "Utilization", "averageUtilization": utilization})
    if name != "memory":
        return None  # KServe skips other resource names
    if target.get("type") == "AverageValue":
        try:
            value = canonical(target.get("averageValue"))
        except ValueError as exc:
            raise PlanError(Reason.INVALID_AUTOSCALING, f"{where}: {exc}") from exc
        return _resource("memory", {"type": "AverageValue", "averageValue": value})
    utilization = target.get("averageUtilization")
    _check_utilization(utilization, f"{where}.resource.target.averageUtilization")
    return _resource("memory", {"type": "Utilization", "averageUtilization": utilization})


def _check_utilization(value: object, where: str, upper: int | None = None) -> None:
    """A positive integer percentage (at most ``upper`` when given)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or (upper is not None and value > upper)
    ):
        bounds = f"[1-{upper}]" if upper else "positive"
        raise PlanError(
            Reason.INVALID_AUTOSCALING,
            f"{where}: the target utilization percentage should be a {bounds} integer, "
            f"got {value!r}",
        )


def _resource(name: str, target: JSON) -> JSON:
    return {"type": "Resource", "resource": {"name": name, "target": target}}
