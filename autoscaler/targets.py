"""What the scaling loop scales, read from the Kubernetes caches.

A *target* is an InferenceService with ``serving.kserve.io/autoscalerClass: external`` in a
raw/standard deployment mode; its pods are the predictor pods labelled
``serving.kserve.io/inferenceservice=<name>`` in its namespace. Pod identity, phase,
readiness and address come from the pod cache (never from metrics), so a series left behind by
a deleted pod never reaches a policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.source import PodTarget
from policies.signals import TargetKey

ISVC_LABEL = "serving.kserve.io/inferenceservice"
CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
LEFT_ALONE_MODES = ("Serverless", "ModelMesh")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Target:
    key: TargetKey
    isvc: JSON

    @property
    def predictor(self) -> str:
        """The predictor Deployment's name, as KServe raw mode names it."""
        return f"{self.key.name}-predictor"


def is_external(isvc: JSON) -> bool:
    md = isvc.get("metadata") or {}
    ann = md.get("annotations") or {}
    if ann.get(CLASS_ANNOTATION) != "external":
        return False
    mode = ann.get(MODE_ANNOTATION) or (isvc.get("spec") or {}).get("deploymentMode") or ""
    return mode not in LEFT_ALONE_MODES and md.get("deletionTimestamp") is None


def targets(isvcs: Iterable[JSON], namespaces: tuple[str, ...] = ()) -> list[Target]:
    out = []
    for obj in isvcs:
        md = obj.get("metadata") or {}
        if namespaces and md.get("namespace") not in namespaces:
            continue
        if is_external(obj):
            out.append(Target(TargetKey(md["namespace"], md["name"]), obj))
    return sorted(out, key=lambda t: (t.key.namespace, t.key.name))


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pod_target(pod: JSON, key: TargetKey) -> PodTarget:
    md, st = pod.get("metadata") or {}, pod.get("status") or {}
    ann = md.get("annotations") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )
    port = ann.get("prometheus.kserve.io/port", "")
    return PodTarget(
        isvc=key,
        namespace=md.get("namespace", ""),
        pod=md.get("name", ""),
        ready=ready and md.get("deletionTimestamp") is None,
        phase=st.get("phase") or "Pending",
        created_at=_ts(md.get("creationTimestamp")),
        ip=st.get("podIP") or None,
        port=int(port) if port.isdigit() else 8080,
        path=ann.get("prometheus.kserve.io/path") or "/metrics",
    )


def pod_targets(pods: Iterable[JSON], wanted: Iterable[Target]) -> list[PodTarget]:
    """The pods of every wanted target; terminating pods are left out (capacity leaving)."""
    keys: dict[tuple[str | None, str | None], TargetKey] = {
        (t.key.namespace, t.key.name): t.key for t in wanted
    }
    out = []
    for p in pods:
        md = p.get("metadata") or {}
        key = keys.get((md.get("namespace"), (md.get("labels") or {}).get(ISVC_LABEL)))
        if key is None or md.get("deletionTimestamp") is not None:
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        out.append(pod_target(p, key))
    return out


def dcgm_urls(pods: Iterable[JSON], port: int) -> list[str]:
    """Metrics URLs of the Ready dcgm-exporter pods (one per GPU node)."""
    out = []
    for p in pods:
        t = pod_target(p, TargetKey("", ""))
        if t.ready and t.ip:
            out.append(f"http://{t.ip}:{port}/metrics")
    return sorted(out)
