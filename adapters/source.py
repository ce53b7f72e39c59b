"""The metrics-source seam: what the scaling loop asks for once per tick, and what it gets.

A :class:`MetricsSource` turns the current pod set (from the Kubernetes cache: identity,
readiness, creation time, owning InferenceService, where its ``/metrics`` is) into one
:class:`~policies.signals.MetricsSnapshot`. Two implementations: direct scrape
(:mod:`adapters.scrape`) and Prometheus (:mod:`adapters.prometheus`); :class:`StaticSource` is
the fake for tests of the loop. Pods come from the cache, never from metrics: a series of a
pod that is not in ``targets`` never reaches a policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from policies.signals import MetricsSnapshot, PodSignals, Sample, Signal, TargetKey, TargetSignals

__all__ = ["MetricsSource", "PodKey", "PodTarget", "StaticSource", "assemble"]

PodKey = tuple[str, str]
"""``(namespace, pod name)``."""


@dataclass(frozen=True, slots=True)
class PodTarget:
    """One predictor pod as the Kubernetes cache knows it."""

    isvc: TargetKey
    namespace: str
    pod: str
    ready: bool = True
    phase: str = "Running"
    created_at: float | None = None
    """Pod creation time, unix seconds."""
    ip: str | None = None
    port: int = 8080
    path: str = "/metrics"
    url: str | None = None
    """Full metrics URL; overrides ``ip``/``port``/``path`` when set."""

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.pod)

    def metrics_url(self) -> str | None:
        """Where to scrape this pod; ``None`` when it has no address yet."""
        if self.url:
            return self.url
        if not self.ip:
            return None
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}{self.path}"


class MetricsSource(Protocol):
    """One snapshot per tick for every target; never raises for an unreachable backend
    (that is ``MetricsSnapshot.unavailable``), never reports a missing value as 0."""

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot: ...


def assemble(
    targets: Iterable[PodTarget],
    values: Mapping[PodKey, Mapping[Signal, Sample]],
    now: float,
    source: str,
) -> MetricsSnapshot:
    """Group per-pod samples into a snapshot, every target pod present (missing: ``None``)."""
    pods: dict[TargetKey, list[PodSignals]] = {}
    for t in targets:
        get = values.get(t.key, {}).get
        pods.setdefault(t.isvc, []).append(
            PodSignals(
                namespace=t.namespace,
                pod=t.pod,
                ready=t.ready,
                phase=t.phase,
                created_at=t.created_at,
                queue_depth=get(Signal.QUEUE_DEPTH),
                running=get(Signal.RUNNING),
                kv_cache_usage=get(Signal.KV_CACHE_USAGE),
                gpu_utilization=get(Signal.GPU_UTILIZATION),
                ttft_p50_seconds=get(Signal.TTFT_P50),
                ttft_p95_seconds=get(Signal.TTFT_P95),
                preemption_rate=get(Signal.PREEMPTION_RATE),
            )
        )
    return MetricsSnapshot(
        taken_at=now,
        source=source,
        targets={k: TargetSignals(key=k, pods=tuple(v)) for k, v in pods.items()},
    )


class StaticSource:
    """A :class:`MetricsSource` fake: fixed per-pod values (or unavailable), calls recorded."""

    def __init__(
        self,
        values: Mapping[PodKey, Mapping[Signal, float]] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        self.values = dict(values or {})
        self.error = error
        self.calls: list[tuple[tuple[PodTarget, ...], float]] = []

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        self.calls.append((tuple(targets), now))
        if self.error is not None:
            return MetricsSnapshot.unavailable(now, self.error, source="static")
        samples = {
            pod: {signal: Sample(v, now) for signal, v in per_pod.items()}
            for pod, per_pod in self.values.items()
        }
        return assemble(targets, samples, now, "static")
