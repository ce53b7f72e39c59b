"""Fast discrete-event simulation of one InferenceService under one autoscaler.

In-process, no HTTP, no sleeping: time is the simulation's own clock, and the run is a pure
function of (arrivals, config, autoscaler, seed). The pieces, in the order one loop tick sees
them:

* **Fleet.** :class:`~autoscaler.sim.replica.Replica` objects, the same engine model as the
  live fleet. A pod the autoscaler creates costs GPU time from creation and serves only after
  its cold start (drawn from the profile with a seeded RNG); until then the autoscaler sees it
  as ``PodSignals(ready=False, phase="Running")``.
* **Balancer.** ``least-loaded`` (fewest in-flight requests, as the vLLM router and KServe's
  inference gateway do) or ``round-robin``, over ready pods that are not terminating. The
  balancer knows each pod's in-flight count as of its last sync (every ``lb_sync_s``) or its
  last dispatch to that pod, like a router refreshing engine stats; ``lb_sync_s = 0`` syncs at
  every arrival (exact, slower). A ready pod always exists: the fleet starts with
  ``initial_replicas`` warm pods and scale-down removes starting pods before ready ones.
* **Metric pipeline.** Pods are scraped every ``scrape_interval_s`` (the autoscaler's: 5 s for
  a direct scrape, 15 s for Prometheus). The snapshot given to the autoscaler at each tick
  holds the values of the last scrape, stamped with the scrape time, in the very
  :class:`~policies.signals.MetricsSnapshot` type the live service builds; pod existence and
  readiness are current (the Kubernetes cache). See :func:`scrape`.
* **Scale actions.** Scale-up creates pods at once (cold start follows). Scale-down picks
  victims as a ReplicaSet does (:func:`removal_order`): starting pods first, then the most
  recently ready. A removed ready pod terminates gracefully: it leaves the balancer at once,
  finishes what it holds, and is deleted when empty; its GPU time counts until then.

Accounting is in :mod:`autoscaler.sim.report`.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from autoscaler.sim.baselines import Autoscaler
from autoscaler.sim.profiles import Profile
from autoscaler.sim.replica import EventKind, Replica, Request
from autoscaler.sim.report import SimResult, collect
from autoscaler.sim.traces import Trace
from policies.signals import MetricsSnapshot, PodSignals, Sample, TargetKey, TargetSignals

BALANCERS = ("least-loaded", "round-robin")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The fixed environment every policy runs in. Times in seconds."""

    profile: Profile
    slo_ttft_s: float = 2.0
    seed: int = 1
    tick_s: float = 1.0
    """The autoscaler loop period (the service's default tick)."""
    balancer: str = "least-loaded"
    lb_sync_s: float = 0.25
    min_replicas: int = 1
    max_replicas: int = 16
    initial_replicas: int = 1
    """Pods ready (warm) at t = 0, the same for every policy."""
    rate_window_s: float = 60.0
    """Window of the TTFT percentiles and the preemption rate (``rate(...[1m])``)."""
    drain_s: float = 300.0
    """Simulated time after the last arrival for requests in flight to get a first token."""
    key: TargetKey = field(default_factory=lambda: TargetKey("default", "sim"))


@dataclass(eq=False)
class Pod:
    name: str
    replica: Replica
    created_at: float
    ready_at: float
    ready: bool = False
    drain_from: float | None = None
    deleted_at: float | None = None
    lb_load: int = 0
    last_finish: float = 0.0
    busy_mark: float = 0.0
    ttfts: deque[tuple[float, float]] = field(default_factory=deque)
    preemptions: deque[tuple[float, int]] = field(default_factory=deque)
    scraped: PodSignals | None = None


def removal_order(pods: list[Pod]) -> list[Pod]:
    """Pods in the order a ReplicaSet deletes them on scale-down.

    Kubernetes ranks not-ready before ready, then the shorter time ready first (newest), then
    (our tie-break) the fewest requests held. Example: starting pod s, pods ready at 10 s and
    50 s → ``[s, ready@50, ready@10]``.
    """
    return sorted(pods, key=lambda p: (p.ready, -p.ready_at, p.replica.load))


def scrape(pod: Pod, now: float, interval: float, window: float, key: TargetKey) -> PodSignals:
    """What one scrape of ``pod`` at ``now`` yields (samples stamped ``now``).

    * GPU utilization (DCGM): busy fraction of the last ``interval`` × 100, clipped to
      [0, 100]; 0 while the pod starts (the GPU is held, idle);
    * vLLM gauges (queue depth, running, KV-cache use): current values, only once the pod is
      ready (the server is not up before);
    * TTFT p50/p95: percentiles of the first tokens emitted in the last ``window`` (missing
      when none, as ``histogram_quantile`` is NaN on an empty window);
    * preemption rate: increase of the counter over the last ``window`` / elapsed time.
    """
    r = pod.replica
    util = 100.0 * (r.counters.busy_seconds - pod.busy_mark) / interval
    pod.busy_mark = r.counters.busy_seconds
    base = PodSignals(
        namespace=key.namespace,
        pod=pod.name,
        ready=pod.ready,
        created_at=pod.created_at,
        gpu_utilization=Sample(min(100.0, max(0.0, util)), now),
    )
    if not pod.ready:
        return base
    while pod.ttfts and pod.ttfts[0][0] <= now - window:
        pod.ttfts.popleft()
    pod.preemptions.append((now, r.counters.preemptions))
    while pod.preemptions[0][0] < now - window:
        pod.preemptions.popleft()
    t0, n0 = pod.preemptions[0]
    ttft = np.fromiter((v for _, v in pod.ttfts), dtype=np.float64, count=len(pod.ttfts))
    p50, p95 = np.percentile(ttft, [50, 95]) if len(ttft) else (None, None)
    return replace(
        base,
        queue_depth=Sample(float(r.num_waiting), now),
        running=Sample(float(r.num_running), now),
        kv_cache_usage=Sample(r.kv_cache_usage, now),
        ttft_p50_seconds=None if p50 is None else Sample(float(p50), now),
        ttft_p95_seconds=None if p95 is None else Sample(float(p95), now),
        preemption_rate=Sample((r.counters.preemptions - n0) / (now - t0), now)
        if now > t0
        else None,
    )


class FastSim:
    """One run: ``FastSim(config, autoscaler, trace).run()`` → :class:`SimResult`.

    The run can also be driven in steps (:meth:`step`) and forked (:meth:`fork`): the oracle
    tries replica counts on copies of the fleet at a bucket boundary.
    """

    def __init__(
        self, config: SimConfig, autoscaler: Autoscaler, trace: Trace, end_s: float | None = None
    ) -> None:
        """Cost is counted over ``[0, end_s]`` (default: the last arrival)."""
        if config.balancer not in BALANCERS:
            raise ValueError(f"unknown balancer {config.balancer!r}; known: {BALANCERS}")
        if not 1 <= config.min_replicas <= config.initial_replicas <= config.max_replicas:
            raise ValueError("need 1 <= min_replicas <= initial_replicas <= max_replicas")
        self.cfg, self.scaler, self.trace = config, autoscaler, trace
        self.end = float(end_s) if end_s is not None else float(trace.t[-1]) if len(trace) else 0.0
        self.rng = random.Random(config.seed)
        self.pods: list[Pod] = []
        self.gone: list[Pod] = []
        self.rr = self.created = self.first_tokens = 0
        self.fits = trace.prompt + trace.output <= config.profile.kv_cache_tokens
        self.ttft = np.full(len(trace), np.nan)
        """TTFT per request, NaN until its first token."""
        self.ticks: list[tuple[float, int, int, int]] = []
        self.scale_events = 0
        self.next_arrival, self.tick = 0, 0
        self.now = 0.0
        self.next_sync = config.lb_sync_s
        self.scrape_every = max(1, round(autoscaler.scrape_interval_s / config.tick_s))
        for _ in range(config.initial_replicas):
            self._new_pod(0.0, 0.0).ready = True

    # ---- fleet ---------------------------------------------------------------------------
    def _new_pod(self, now: float, cold_s: float) -> Pod:
        prescient = self.scaler.prescient
        created, ready_at = (now - cold_s, now) if prescient else (now, now + cold_s)
        self.created += 1
        name = f"{self.cfg.key.name}-predictor-{self.created:05d}"
        pod = Pod(name, Replica(self.cfg.profile, clock=ready_at), created, ready_at)
        self.pods.append(pod)
        return pod

    def _advance(self, pod: Pod, until: float) -> None:
        for ev in pod.replica.advance(until):
            if ev.kind is EventKind.FIRST_TOKEN:
                ttft = ev.at - ev.request.arrival
                pod.ttfts.append((ev.at, ttft))
                self.ttft[ev.request.id] = ttft
                self.first_tokens += 1
            elif ev.kind is EventKind.FINISHED:
                pod.last_finish = ev.at

    def _serving(self) -> list[Pod]:
        return [p for p in self.pods if p.ready and p.drain_from is None]

    def _activate(self, now: float) -> None:
        for p in self.pods:
            if not p.ready and p.ready_at <= now:
                p.ready = True

    def _sync(self, now: float) -> None:
        self._activate(now)
        for p in self.pods:
            if p.ready:
                self._advance(p, now)
                p.lb_load = p.replica.load

    def _pick(self, serving: list[Pod]) -> Pod:
        if self.cfg.balancer == "round-robin":
            self.rr += 1
            return serving[(self.rr - 1) % len(serving)]
        return min(serving, key=lambda p: p.lb_load)

    def _dispatch(self, i: int) -> None:
        tr = self.trace
        req = Request(i, float(tr.t[i]), int(tr.prompt[i]), int(tr.output[i]))
        pod = self._pick(self._serving())
        self._advance(pod, req.arrival)
        pod.replica.submit(req)
        pod.lb_load = pod.replica.load

    def _scale(self, desired: int, now: float) -> None:
        live = [p for p in self.pods if p.drain_from is None]
        for _ in range(desired - len(live)):
            self._new_pod(now, self.cfg.profile.cold_start_s(self.rng))
        for p in removal_order(live)[: max(0, len(live) - desired)]:
            p.drain_from = now
            if not p.ready:
                p.deleted_at = now

    def _reap(self) -> None:
        for p in self.pods:
            if p.drain_from is not None and p.deleted_at is None and p.replica.load == 0:
                p.deleted_at = max(p.drain_from, p.last_finish)
        self.gone += [p for p in self.pods if p.deleted_at is not None]
        self.pods = [p for p in self.pods if p.deleted_at is None]

    def snapshot(self, now: float) -> MetricsSnapshot:
        """The autoscaler's view at ``now``: live pods, samples from their last scrape."""
        k = self.cfg.key
        pods = []
        for p in self.pods:
            if p.drain_from is not None:
                continue
            s = p.scraped or PodSignals(k.namespace, p.name, ready=p.ready, created_at=p.created_at)
            pods.append(s if s.ready == p.ready else replace(s, ready=p.ready))
        return MetricsSnapshot(now, source="fast-sim", targets={k: TargetSignals(k, tuple(pods))})

    # ---- the run -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every arrival dispatched and answered and the cost window over, or out of time."""
        served = self.next_arrival >= len(self.trace) and self.first_tokens >= self.fits.sum()
        return (served and self.now >= self.end) or self.now >= self.end + self.cfg.drain_s

    def _tick(self) -> None:
        """One loop tick: dispatch the arrivals before it, scrape when due, let the
        autoscaler decide on the snapshot, act."""
        cfg, tr = self.cfg, self.trace
        self.tick += 1
        now = self.now = self.tick * cfg.tick_s
        sync_s = cfg.lb_sync_s if cfg.lb_sync_s > 0 else None
        while self.next_arrival < len(tr) and tr.t[self.next_arrival] < now:
            i, t = self.next_arrival, float(tr.t[self.next_arrival])
            self.next_arrival += 1
            if not self.fits[i]:
                continue
            while sync_s is not None and self.next_sync <= t:
                self._sync(self.next_sync)
                self.next_sync += sync_s
            if sync_s is None:
                self._sync(t)
            else:
                self._activate(t)
            self._dispatch(i)
        while sync_s is not None and self.next_sync <= now:
            self._sync(self.next_sync)
            self.next_sync += sync_s
        self._activate(now)
        for p in self.pods:
            self._advance(p, now)
        self._reap()
        if self.tick % self.scrape_every == 0:
            interval = self.scrape_every * cfg.tick_s
            for p in self.pods:
                if p.drain_from is None:
                    p.scraped = scrape(p, now, interval, cfg.rate_window_s, cfg.key)
        live = sum(1 for p in self.pods if p.drain_from is None)
        desired = self.scaler.decide(self.snapshot(now), cfg.key, now, live)
        desired = min(cfg.max_replicas, max(cfg.min_replicas, desired))
        if desired != live:
            self.scale_events += 1
            self._scale(desired, now)
        ready = sum(1 for p in self.pods if p.ready and p.drain_from is None)
        waiting = sum(p.replica.num_waiting for p in self.pods)
        self.ticks.append((now, desired, ready, waiting))

    def step(self, until: float) -> None:
        """Run the ticks before ``until`` (a tick at ``until`` is left for the next step)."""
        while (self.tick + 1) * self.cfg.tick_s < until - 1e-9:
            self._tick()

    def fork(self) -> FastSim:
        """An independent copy of the run as it stands (the trace and config are shared,
        the history of deleted pods and ticks is not copied)."""
        memo: dict[int, object] = {
            id(self.trace): self.trace,
            id(self.cfg): self.cfg,
            id(self.fits): self.fits,
            id(self.gone): [],
            id(self.ticks): [],
        }
        return copy.deepcopy(self, memo)

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        """Tick until :attr:`done`; ``progress`` gets the fraction of ``end`` every 60 ticks."""
        while not self.done:
            self._tick()
            if progress is not None and self.tick % 60 == 0 and self.end > 0:
                progress(min(1.0, self.now / self.end))
        return self.result()

    def result(self) -> SimResult:
        """The accounting of the run so far (:mod:`autoscaler.sim.report`)."""
        return collect(
            name=self.scaler.name,
            arrival=self.trace.t,
            ttft=self.ttft,
            fits=self.fits,
            pods=self.gone + self.pods,
            gpus=self.cfg.profile.gpus,
            slo_ttft_s=self.cfg.slo_ttft_s,
            end=self.end,
            horizon=self.now,
            ticks=self.ticks,
            scale_events=self.scale_events,
        )
