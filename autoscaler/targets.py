"""What the scaling loop scales, read from the Kubernetes caches.

A *target* is an InferenceService with ``serving.kserve.io/autoscalerClass: external`` in a
raw/standard deployment mode; its pods are the predictor pods labelled
``serving.kserve.io/inferenceservice=<name>`` in its namespace. Pod identity, phase,
readiness and address come from the pod cache (never from metrics), so a series left behind by
a deleted pod never reaches a policy.

:class:`TargetIndex` and :class:`PodIndex` give the same lists tick after tick without
re-reading objects that did not change: an informer replaces the object of an InferenceService
or pod that changed (its cache holds the decoded JSON of the last event and is never edited in
place), so an object seen on the previous tick yields the same :class:`Target` or
:class:`PodTarget` as then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    predictor: str = field(init=False, repr=False, compare=False)
    """The predictor Deployment's name, as KServe raw mode names it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictor", f"{self.key.name}-predictor")


def is_external(isvc: JSON) -> bool:
    md = isvc.get("metadata") or {}
    ann = md.get("annotations") or {}
    if ann.get(CLASS_ANNOTATION) != "external":
        return False
    mode = ann.get(MODE_ANNOTATION) or (isvc.get("spec") or {}).get("deploymentMode") or ""
    return mode not in LEFT_ALONE_MODES and md.get("deletionTimestamp") is None


def targets(isvcs: Iterable[JSON], namespaces: tuple[str, ...] = ()) -> list[Target]:
    return TargetIndex(namespaces).update(isvcs)


def _target(obj: JSON, namespaces: tuple[str, ...]) -> Target | None:
    md = obj.get("metadata") or {}
    if namespaces and md.get("namespace") not in namespaces:
        return None
    if is_external(obj):
        return Target(TargetKey(md["namespace"], md["name"]), obj)
    return None


def _order(t: Target) -> tuple[str, str]:
    return (t.key.namespace, t.key.name)


class TargetIndex:
    """:func:`targets`, tick after tick: an object seen on the previous tick keeps its
    :class:`Target` (and so its :class:`TargetKey`), and an unchanged set keeps its order."""

    def __init__(self, namespaces: tuple[str, ...] = ()) -> None:
        self.namespaces = namespaces
        self._seen: dict[int, tuple[JSON, Target | None]] = {}
        self._found: list[Target] = []
        self._sorted: list[Target] = []

    def update(self, isvcs: Iterable[JSON]) -> list[Target]:
        seen, fresh, found = self._seen, {}, []
        for obj in isvcs:
            entry = seen.get(id(obj))
            if entry is None or entry[0] is not obj:
                entry = (obj, _target(obj, self.namespaces))
            fresh[id(obj)] = entry
            if entry[1] is not None:
                found.append(entry[1])
        self._seen = fresh
        last = self._found
        if len(found) != len(last) or any(a is not b for a, b in zip(found, last, strict=True)):
            self._found, self._sorted = found, sorted(found, key=_order)
        return list(self._sorted)


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
    return PodIndex().update(pods, wanted)


class PodIndex:
    """:func:`pod_targets`, tick after tick: a pod object seen on the previous tick keeps its
    :class:`PodTarget` (no timestamp parsed again) while it belongs to the same target."""

    def __init__(self) -> None:
        # id -> (pod, (namespace, ISVC label), counted: not terminating nor finished, target)
        self._seen: dict[int, tuple[JSON, tuple[Any, Any], bool, PodTarget | None]] = {}

    def update(self, pods: Iterable[JSON], wanted: Iterable[Target]) -> list[PodTarget]:
        keys: dict[tuple[Any, Any], TargetKey] = {
            (t.key.namespace, t.key.name): t.key for t in wanted
        }
        seen, fresh, out = self._seen, {}, []
        for p in pods:
            entry = seen.get(id(p))
            if entry is None or entry[0] is not p:
                md = p.get("metadata") or {}
                owner = (md.get("namespace"), (md.get("labels") or {}).get(ISVC_LABEL))
                counted = md.get("deletionTimestamp") is None and (p.get("status") or {}).get(
                    "phase"
                ) not in ("Succeeded", "Failed")
                entry = (p, owner, counted, None)
            key = keys.get(entry[1])
            if key is not None and entry[2]:
                t = entry[3]
                if t is None or (t.isvc is not key and t.isvc != key):
                    t = pod_target(p, key)
                    entry = (p, entry[1], True, t)
                out.append(t)
            fresh[id(p)] = entry
        self._seen = fresh
        return out


def dcgm_urls(pods: Iterable[JSON], port: int) -> list[str]:
    """Metrics URLs of the Ready dcgm-exporter pods (one per GPU node)."""
    out = []
    for p in pods:
        t = pod_target(p, TargetKey("", ""))
        if t.ready and t.ip:
            out.append(f"http://{t.ip}:{port}/metrics")
    return sorted(out)
