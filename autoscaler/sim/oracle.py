"""The offline oracle: the smallest replica schedule that meets the SLO, knowing the future.

It is a reference, not a policy: it reads the arrivals ahead of time and knows each pod's
cold start. Method (greedy, forward in time, one bucket of ``bucket_s`` = 60 s at a time):

1. At a bucket boundary ``b0`` the fleet is in the state the schedule so far has left it
   (queues, pods still draining). For ``n`` replicas, a copy of that run switches to ``n``
   at ``b0`` and runs to ``b1 + slo + 1 s``; ``n`` is enough when the arrivals of
   ``[b0, b1)`` reach an SLO attainment ≥ ``target`` (0.99; a request without a first token
   by then is a miss). The smallest enough ``n`` is searched from the previous bucket's
   (steps of 1, 2, 4, … then bisection), assuming more replicas never hurt — true for
   least-loaded balancing up to ties. The run then goes on with that ``n`` to ``b1``.
2. Provisioning ahead: the oracle's new pods are created *one cold start before* ``b0``
   (the simulator's ``prescient`` mode, with the same seeded cold-start draws as every
   policy), so they are ready exactly at ``b0`` and cost GPU time from creation, cold start
   included. Removed pods drain and are paid for like everybody's.

Limits (why it is "lower-bound-ish", not a bound): greedy per bucket, it never buys capacity
early to save later (a burst at the start of a bucket can force more pods than a
finer-grained schedule needs), and its 60 s granularity over-provisions the quiet part of a
bucket; the per-bucket floor makes the whole run's attainment close to, not exactly,
``target``; scale steps are unlimited. A policy can use fewer GPU-hours by missing more.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from autoscaler.sim.fast import FastSim, SimConfig
from autoscaler.sim.traces import Trace
from policies.signals import MetricsSnapshot, TargetKey


@dataclass(frozen=True)
class Oracle:
    """Replays a planned schedule; the simulator provisions its pods ahead of time."""

    need: tuple[int, ...]
    bucket_s: float = 60.0
    name: str = "oracle"
    scrape_interval_s: float = 60.0
    prescient: bool = True

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        if not self.need:
            return current
        return self.need[min(len(self.need) - 1, int(now // self.bucket_s))]


@dataclass
class _Manual:
    """The planner's scaler: whatever ``desired`` is set to, provisioned ahead."""

    desired: int
    name: str = "oracle"
    scrape_interval_s: float = 60.0
    prescient: bool = True

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        return self.desired


def smallest_ok(ok: Callable[[int], bool], guess: int, lo: int, hi: int) -> int:
    """The smallest ``n`` in ``[lo, hi]`` with ``ok(n)`` for a monotone ``ok`` (``hi`` if none).

    Starts at ``guess``, moves by 1, 2, 4, … until the answer is bracketed, then bisects.
    Example: ``ok = n >= 7``, guess 2 → probes 2, 3, 5, 9, 7, 6 → 7.
    """
    guess = min(hi, max(lo, guess))
    if ok(guess):
        good, bad, step = guess, lo - 1, 1
        while good - step >= lo:
            if not ok(good - step):
                bad = good - step
                break
            good -= step
            step *= 2
    else:
        bad, good, step = guess, hi, 1
        while bad + step < hi:
            if ok(bad + step):
                good = bad + step
                break
            bad += step
            step *= 2
    while good - bad > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def attainment_with(sim: FastSim, n: int, judged: npt.NDArray[np.bool_], until: float) -> float:
    """SLO attainment of the ``judged`` requests on a fork of ``sim`` switched to ``n``."""
    probe = sim.fork()
    assert isinstance(probe.scaler, _Manual)
    probe.scaler.desired = n
    probe.step(until)
    return float(np.mean(probe.ttft[judged] <= sim.cfg.slo_ttft_s))


def _enough(
    sim: FastSim, judged: npt.NDArray[np.bool_], until: float, target: float
) -> Callable[[int], bool]:
    """``n ↦ attainment_with(sim, n, …) ≥ target``, each ``n`` simulated once."""

    @functools.cache
    def ok(n: int) -> bool:
        return attainment_with(sim, n, judged, until) >= target

    return ok


def plan(
    trace: Trace,
    cfg: SimConfig,
    *,
    bucket_s: float = 60.0,
    target: float = 0.99,
    end_s: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> Oracle:
    """Compute the oracle's schedule for ``trace`` under ``cfg`` (module docstring)."""
    sim = FastSim(cfg, _Manual(cfg.initial_replicas), trace, end_s)
    buckets = max(1, math.ceil(sim.end / bucket_s))
    need: list[int] = []
    prev = cfg.initial_replicas
    for b in range(buckets):
        b0, b1 = b * bucket_s, (b + 1) * bucket_s
        judged = (trace.t >= b0) & (trace.t < b1) & sim.fits
        if judged.any():
            ok = _enough(sim, judged, b1 + cfg.slo_ttft_s + 1.0, target)
            prev = smallest_ok(ok, prev, cfg.min_replicas, cfg.max_replicas)
        else:
            prev = cfg.min_replicas
        need.append(prev)
        assert isinstance(sim.scaler, _Manual)
        sim.scaler.desired = prev
        sim.step(b1)
        if progress is not None:
            progress((b + 1) / buckets)
    return Oracle(tuple(need), bucket_s)


def initial_need(
    trace: Trace, cfg: SimConfig, *, bucket_s: float = 60.0, target: float = 0.99
) -> int:
    """Warm replicas for ``t = 0``: the fewest that serve the first bucket within ``target``.

    Every policy starts from this count, so none is punished for a cold fleet at t = 0.
    """
    judged = (trace.t < bucket_s) & (trace.prompt + trace.output <= cfg.profile.kv_cache_tokens)

    def ok(n: int) -> bool:
        if not judged.any():
            return True
        warm = replace(cfg, min_replicas=1, initial_replicas=n, max_replicas=n)
        return (
            attainment_with(
                FastSim(warm, _Manual(n), trace), n, judged, bucket_s + cfg.slo_ttft_s + 1.0
            )
            >= target
        )

    return smallest_ok(ok, cfg.min_replicas, cfg.min_replicas, cfg.max_replicas)
