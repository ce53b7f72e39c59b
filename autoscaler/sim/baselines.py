"""What the simulator compares: the :class:`Autoscaler` seam, our policies behind it, and the
baselines as each behaves by DEFAULT (sources: ``shared/research/anchors.md`` §1, §2, §4).

* ``hpa-gpu`` (§1): a Kubernetes HPA on ``DCGM_FI_DEV_GPU_UTIL`` as a Pods metric through
  prometheus-adapter (Prometheus scrape 15 s), target ``AverageValue`` 80; defaults: 15 s
  sync, tolerance 0.1, scale-up ``max(+4 pods, +100 %)`` per 15 s with no window, scale-down
  window 300 s (highest recommendation) and 100 % per 15 s. Pending pods are unready and
  missing pods set aside, exactly as the HPA's replica calculator does for non-CPU metrics; a
  starting pod is Running and DCGM reports its idle GPU (0 %), so it counts as a pod at 0 %.
* ``keda-queue`` (§2): a KEDA ScaledObject with a Prometheus trigger
  ``sum(vllm:num_requests_waiting)``, threshold 5, ``metricType: AverageValue``. KEDA hands
  the value to its HPA (same defaults as above), which asks for it at every 15 s sync; the
  query runs live by default (``useCachedMetrics: false``), so KEDA's 30 s ``pollingInterval``
  only drives activation 0↔1 and the 300 s ``cooldownPeriod`` only scale to zero. Every
  policy here has ``minReplicaCount`` = 1 (KEDA's own default 0 would scale to zero whenever
  the queue is empty for 300 s, even with requests running; the comparison is about 1↔N).
* ``kpa-concurrency`` (§4): Knative's KPA on in-flight requests per pod (vLLM waiting +
  running, the queue-proxy's concurrency), scraped every 1 s, 2 s tick, 60 s stable window,
  6 s panic window, panic at 200 % of target, ``max-scale-up-rate`` 1000,
  ``max-scale-down-rate`` 2. Target per pod: the default ``container-concurrency-target-
  default`` 100 × ``target-percentage`` 70 % = 70, because KServe leaves ``containerConcurrency``
  at 0. Setting ``containerConcurrency = max_num_seqs`` (256) would give 179: larger, so the
  baseline would only provision less.

Every autoscaler is called once per simulated loop tick (1 s) and keeps its own cadence.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policies.signals import MetricsSnapshot, PodSignals, TargetKey, TargetSignals


class Autoscaler(Protocol):
    """The simulator's seam: a named autoscaler fed snapshots from its own metric pipeline."""

    @property
    def name(self) -> str: ...

    @property
    def scrape_interval_s(self) -> float:
        """Age of the data it sees: pods are scraped every this many seconds."""
        ...

    @property
    def prescient(self) -> bool:
        """True only for the oracle: its pods are created a cold start before it asks."""
        ...

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        """Desired replicas at ``now`` given ``current`` (live, non-terminating) pods."""
        ...


def _target(snapshot: MetricsSnapshot, key: TargetKey) -> TargetSignals:
    return snapshot.targets.get(key) or TargetSignals(key)


@dataclass
class FixedReplicas:
    """A constant replica count (tests, and a sanity reference)."""

    replicas: int
    name: str = "fixed"
    scrape_interval_s: float = 15.0
    prescient: bool = False

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        return self.replicas


# ---- HPA -------------------------------------------------------------------------------


def hpa_pods_metric_replicas(
    values: Sequence[tuple[PodSignals, float | None]], target: float, tolerance: float
) -> int | None:
    """The HPA replica calculator for a Pods metric, non-CPU (``calcPlainMetricReplicas``).

    ``values`` pairs each pod with its metric (``None``: missing). Pending pods are unready;
    pods without a value are missing. With ratio = mean(values)/target: no unready-on-scale-up
    and nothing missing → ``ceil(ratio × counted)`` outside tolerance. Otherwise missing pods
    count as the target on scale-down and 0 on scale-up, unready pods as 0 on scale-up, the
    ratio is recomputed over all of them, and the change is dropped if it falls inside the
    tolerance or flips direction. ``None`` when no pod has a value (the HPA errors, holds).
    Example: values 100, 100 and a starting pod at 0, target 80 → ratio 200/3/80 = 0.83 →
    ``ceil(0.83 × 3)`` = 3: the idle starting pod holds the fleet where it is.
    """
    counted = [v for p, v in values if p.phase != "Pending" and v is not None]
    unready = sum(1 for p, _ in values if p.phase == "Pending")
    missing = sum(1 for p, v in values if p.phase != "Pending" and v is None)
    if not counted:
        return None
    ratio = sum(counted) / len(counted) / target
    up_with_unready = unready > 0 and ratio > 1.0
    if not up_with_unready and not missing:
        return None if abs(1.0 - ratio) <= tolerance else math.ceil(ratio * len(counted))
    filled = list(counted) + [target if ratio < 1.0 else 0.0] * missing
    if up_with_unready:
        filled += [0.0] * unready
    new_ratio = sum(filled) / len(filled) / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0) != (new_ratio < 1.0):
        return None
    n = math.ceil(new_ratio * len(filled))
    current = len(counted) + missing + unready
    if (new_ratio < 1.0 and n > current) or (new_ratio > 1.0 and n < current):
        return None
    return n


def hpa_external_average_replicas(
    usage: float, target: float, status_replicas: int, tolerance: float
) -> int:
    """HPA External metric with an ``AverageValue`` target (``GetExternalPerPodMetricReplicas``).

    ratio = usage / (target × status_replicas); outside tolerance → ``ceil(usage / target)``,
    independent of readiness. Example: 23 waiting, target 5, 2 pods → ratio 2.3 → 5 replicas.
    """
    ratio = usage / (target * status_replicas) if status_replicas else math.inf
    if abs(1.0 - ratio) <= tolerance:
        return status_replicas
    return math.ceil(usage / target)


@dataclass
class HpaBehavior:
    """``spec.behavior`` defaults and the controller's stabilization and rate limits."""

    sync_period_s: float = 15.0
    tolerance: float = 0.1
    up_window_s: float = 0.0
    down_window_s: float = 300.0
    up_pods: int = 4
    up_percent: float = 100.0
    down_percent: float = 100.0
    period_s: float = 15.0
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    events: deque[tuple[float, int]] = field(default_factory=deque)

    def normalize(self, desired: int, current: int, now: float) -> int:
        """Stabilize then rate-limit (``normalizeDesiredReplicasWithBehaviors``).

        Stabilized = ``current`` clamped to [min of recommendations in the up window, max of
        those in the down window], the new one included: with the 300 s down window a drop in
        load lowers the replicas only once every recommendation of the last 300 s is lower.
        Then scale-up is capped at ``max(start + 4, ceil(start × 2))`` and scale-down at
        ``start × (1 − 100 %)``, where ``start`` is the count before this period's changes.
        """
        if not self.recommendations and not self.events:
            self.recommendations.append((now, current))  # maybeInitScaleDownStabilizationWindow
        keep = max(self.up_window_s, self.down_window_s)
        while self.recommendations and self.recommendations[0][0] <= now - keep:
            self.recommendations.popleft()
        up = min([desired] + [r for t, r in self.recommendations if t > now - self.up_window_s])
        down = max([desired] + [r for t, r in self.recommendations if t > now - self.down_window_s])
        self.recommendations.append((now, desired))
        stabilized = min(max(current, up), down)
        while self.events and self.events[0][0] <= now - self.period_s:
            self.events.popleft()
        start = current - sum(d for _, d in self.events)
        if stabilized > current:
            limit = max(start + self.up_pods, math.ceil(start * (1 + self.up_percent / 100)))
            stabilized = min(stabilized, max(limit, current))
        elif stabilized < current:
            limit = int(start * (1 - self.down_percent / 100))
            stabilized = max(stabilized, min(limit, current))
        if stabilized != current:
            self.events.append((now, stabilized - current))
        return stabilized


@dataclass
class HpaGpu:
    """``hpa-gpu``: HPA on DCGM GPU utilization, ``AverageValue`` 80 (module docstring)."""

    target: float = 80.0
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    name: str = "hpa-gpu"
    scrape_interval_s: float = 15.0
    prescient: bool = False
    _next: float = 0.0

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        if now < self._next:
            return current
        self._next = now + self.behavior.sync_period_s
        pods = _target(snapshot, key).pods
        values = [(p, None if p.gpu_utilization is None else p.gpu_utilization.value) for p in pods]
        raw = hpa_pods_metric_replicas(values, self.target, self.behavior.tolerance)
        return self.behavior.normalize(current if raw is None else raw, current, now)


@dataclass
class KedaQueue:
    """``keda-queue``: KEDA Prometheus trigger on the summed queue, ``AverageValue`` 5."""

    threshold: float = 5.0
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    name: str = "keda-queue"
    scrape_interval_s: float = 15.0
    prescient: bool = False
    _next: float = 0.0

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        if now < self._next:
            return current
        self._next = now + self.behavior.sync_period_s
        pods = _target(snapshot, key).pods
        # Empty result: ignoreNullValues (default true) makes it 0.
        usage = sum(p.queue_depth.value for p in pods if p.queue_depth is not None)
        raw = hpa_external_average_replicas(usage, self.threshold, current, self.behavior.tolerance)
        return self.behavior.normalize(raw, current, now)


@dataclass
class KpaConcurrency:
    """``kpa-concurrency``: Knative's KPA on in-flight requests (module docstring)."""

    target: float = 70.0
    tick_s: float = 2.0
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    max_up_rate: float = 1000.0
    max_down_rate: float = 2.0
    name: str = "kpa-concurrency"
    scrape_interval_s: float = 1.0
    prescient: bool = False
    _samples: deque[tuple[float, float]] = field(default_factory=deque)
    _last_at: float = -math.inf
    _next: float = 0.0
    _panic_since: float | None = None
    _max_panic: int = 0
    _started: bool = False

    def observe(self, pods: Sequence[PodSignals]) -> None:
        """Record the total in-flight requests on ready pods, once per scrape."""
        pairs = [(p.queue_depth, p.running) for p in pods if p.ready]
        fresh = [(q, r) for q, r in pairs if q is not None and r is not None]
        at = max((q.at for q, _ in fresh), default=None)
        if at is None or at <= self._last_at:
            return
        self._last_at = at
        self._samples.append((at, sum(q.value + r.value for q, r in fresh)))
        while self._samples[0][0] <= at - self.stable_window_s:
            self._samples.popleft()

    def window_average(self, now: float, window: float) -> float:
        """Mean of the samples in ``(now − window, now]`` (0 when none)."""
        vals = [v for t, v in self._samples if t > now - window]
        return sum(vals) / len(vals) if vals else 0.0

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        """Knative ``Scale``: stable and panic proposals, clamped by the rates; see §4.1."""
        target = _target(snapshot, key)
        self.observe(target.pods)
        if not self._started:  # a fresh KPA starts in panic at the current scale
            self._started, self._panic_since, self._max_panic = True, now, current
        if now < self._next:
            return current
        self._next = now + self.tick_s
        ready = max(1, len(target.ready_pods))
        lo, hi = math.floor(ready / self.max_down_rate), math.ceil(self.max_up_rate * ready)
        dspc = math.ceil(self.window_average(now, self.stable_window_s) / self.target)
        dppc = math.ceil(self.window_average(now, self.panic_window_s) / self.target)
        stable, panic = min(max(dspc, lo), hi), min(max(dppc, lo), hi)
        if dppc / ready >= self.panic_threshold:
            self._panic_since = now
        elif self._panic_since is not None and now > self._panic_since + self.stable_window_s:
            self._panic_since, self._max_panic = None, 0
        if self._panic_since is None:
            return stable
        want = max(stable, panic)
        self._max_panic = max(self._max_panic, want)
        return self._max_panic


# ---- our policies ----------------------------------------------------------------------


@dataclass
class PolicyAutoscaler:
    """Our ``policies`` package behind the seam: the same call the scaling loop makes."""

    policy: str
    min_replicas: int
    max_replicas: int
    scrape_interval_s: float = 5.0
    prescient: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    _state: Any = None
    _spec: Any = None

    @property
    def name(self) -> str:
        return self.policy

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        from policies import make_policy

        if self._spec is None:
            self._spec = resolve_policy_spec(
                key, self.policy, self.min_replicas, self.max_replicas, self.annotations
            )
        decision, self._state = make_policy(self.policy).decide(
            _target(snapshot, key),
            self._spec,
            self._state,
            now,
            current,
            snapshot_available=snapshot.available,
        )
        return int(decision.desired_replicas)


def resolve_policy_spec(
    key: TargetKey, policy: str, lo: int, hi: int, annotations: dict[str, str]
) -> Any:
    """Resolve the spec of a minimal ISVC exactly as the service does (cluster defaults)."""
    from policies.spec import ClusterDefaults, resolve_spec

    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": key.name,
            "namespace": key.namespace,
            "generation": 1,
            "annotations": {"serving.kserve.io/autoscalerClass": "external", **annotations},
        },
        "spec": {"predictor": {"minReplicas": lo, "maxReplicas": hi}},
    }
    result = resolve_spec(isvc, ClusterDefaults())
    if result.spec is None:
        raise ValueError(f"policy {policy!r}: invalid spec: {result.errors}")
    return result.spec


POLICIES = ("default", "forecast", "hpa-gpu", "keda-queue", "kpa-concurrency", "oracle")
"""Names the ``simulate`` command knows; ``oracle`` is planned by :mod:`autoscaler.sim.oracle`."""


def make_autoscaler(name: str, *, min_replicas: int, max_replicas: int) -> Autoscaler:
    """A fresh autoscaler by name (not ``oracle``); ``ValueError`` for an unknown name."""
    baselines: dict[str, type[HpaGpu] | type[KedaQueue] | type[KpaConcurrency]] = {
        "hpa-gpu": HpaGpu,
        "keda-queue": KedaQueue,
        "kpa-concurrency": KpaConcurrency,
    }
    if name in baselines:
        return baselines[name]()
    if name in ("default", "forecast"):
        from policies import make_policy

        make_policy(name)  # fails early (ImportError/ValueError) if the package lacks it
        return PolicyAutoscaler(name, min_replicas, max_replicas)
    known = ", ".join(p for p in POLICIES if p != "oracle")
    raise ValueError(f"unknown policy {name!r}; known: {known}")
