"""The metrics snapshot: what every metric source produces and every policy consumes.

One type for every source (Prometheus, direct scrape). Values are *states, not zeros*:
a signal a pod did not report, or reported stale or NaN, is ``None`` (missing), never 0.
A source that could not be read at all yields a snapshot with ``available=False``.

Pod existence, phase and readiness come from the Kubernetes cache, never from metrics,
so series left behind by deleted pods never reach a policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Sample:
    """One observed value and the unix time (seconds) at which it was sampled."""

    value: float
    at: float

    def is_fresh(self, now: float, max_age: float) -> bool:
        """True when the sample is finite and no older than ``max_age`` seconds at ``now``."""
        return math.isfinite(self.value) and (now - self.at) <= max_age


class Signal(StrEnum):
    """The per-pod signals an autoscaler reads. Values are the snapshot field names."""

    QUEUE_DEPTH = "queue_depth"  # vllm:num_requests_waiting, requests
    RUNNING = "running"  # vllm:num_requests_running, requests
    KV_CACHE_USAGE = "kv_cache_usage"  # vllm:kv_cache_usage_perc, fraction 0-1
    GPU_UTILIZATION = "gpu_utilization"  # DCGM_FI_DEV_GPU_UTIL mean over the pod's GPUs, 0-100
    TTFT_P50 = "ttft_p50_seconds"  # from vllm:time_to_first_token_seconds histogram
    TTFT_P95 = "ttft_p95_seconds"
    PREEMPTION_RATE = "preemption_rate"  # rate(vllm:num_preemptions_total), per second


@dataclass(frozen=True, slots=True)
class PodSignals:
    """Signals of one predictor pod. ``None`` means missing (never reported, stale or NaN)."""

    namespace: str
    pod: str
    ready: bool
    """Pod Ready condition from the Kubernetes cache."""
    phase: str = "Running"
    """Pod phase from the Kubernetes cache (Pending, Running, ...)."""
    created_at: float | None = None
    """Pod creation time (unix seconds), used for cold-start accounting."""
    queue_depth: Sample | None = None
    running: Sample | None = None
    kv_cache_usage: Sample | None = None
    gpu_utilization: Sample | None = None
    ttft_p50_seconds: Sample | None = None
    ttft_p95_seconds: Sample | None = None
    preemption_rate: Sample | None = None

    def get(self, signal: Signal) -> Sample | None:
        """The sample of ``signal`` for this pod, or ``None`` when missing."""
        sample: Sample | None = getattr(self, signal.value)
        return sample


@dataclass(frozen=True, slots=True)
class TargetKey:
    """Identifies one scaling target: an InferenceService."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class TargetSignals:
    """All predictor pods of one InferenceService (ready or not) with their signals."""

    key: TargetKey
    pods: tuple[PodSignals, ...] = ()
    demand: Sample | None = None
    """Requests waiting for this InferenceService outside its pods (a gateway's queue), when
    such a source exists; the only signal that can wake a model scaled to zero."""

    @property
    def ready_pods(self) -> tuple[PodSignals, ...]:
        return tuple(p for p in self.pods if p.ready)

    @property
    def starting_pods(self) -> tuple[PodSignals, ...]:
        """Pods that exist and are not ready yet: capacity on the way."""
        return tuple(p for p in self.pods if not p.ready and p.phase in ("Pending", "Running"))


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """One tick's view of every target.

    ``available=False`` means the source could not be read at all (for example Prometheus
    unreachable); ``targets`` is then empty and ``error`` says why. Policies freeze on it.
    """

    taken_at: float
    available: bool = True
    error: str | None = None
    source: str = ""
    targets: Mapping[TargetKey, TargetSignals] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, taken_at: float, error: str, source: str = "") -> MetricsSnapshot:
        return cls(taken_at=taken_at, available=False, error=error, source=source, targets={})
