"""Each scaling formula, once, with a worked example.

Pure functions of plain numbers and samples. :mod:`policies.default` strings them together;
tests check each one on its docstring's example.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from policies.decision import Proposal
from policies.signals import PodSignals, Sample, Signal
from policies.spec import CONCURRENCY, RateLimit

_EPS = 1e-9


def ceil_replicas(total: float, target: float) -> int:
    """Replicas that hold ``total`` load at ``target`` each: ``ceil(total / target)``.

    A relative epsilon keeps float noise from adding a pod. Example: KV use 0.5 + 0.7 + 0.9 =
    2.1 at target 0.8 → ceil(2.625) = 3; queue 10 at target 5 → exactly 2 (not 3).
    """
    if total <= 0:
        return 0
    return math.ceil(total / target - _EPS * max(1.0, total / target))


def pod_value(pod: PodSignals, signal: str, now: float, max_age: float) -> float | None:
    """The fresh value of ``signal`` on ``pod``, or ``None`` (missing, stale or NaN).

    ``concurrency`` is queue depth + running, fresh only when both are. Example: queue 3 and
    running 8 sampled 4 s ago, ``max_age`` 60 → 11.0; the same sampled 70 s ago → ``None``.
    """
    if signal == CONCURRENCY:
        parts = [
            pod_value(pod, Signal.QUEUE_DEPTH, now, max_age),
            pod_value(pod, Signal.RUNNING, now, max_age),
        ]
        return None if None in parts else sum(p for p in parts if p is not None)
    sample: Sample | None = getattr(pod, signal)  # the signal names are the field names
    if sample is None or now - sample.at > max_age:
        return None
    value = sample.value
    return value if math.isfinite(value) else None


def signal_proposal(
    signal: str,
    target: float,
    ready: Sequence[PodSignals],
    current: int,
    now: float,
    max_age: float,
    tolerance_up: float,
    tolerance_down: float,
) -> Proposal:
    """One signal's replica proposal, by the HPA's rule for a per-pod average target.

    ``observed`` = mean over ready pods with a fresh sample. Missing pods count as *empty* when
    the signal asks for more (``total_up`` = Σ values) and as *at target* when it asks for
    fewer (``total_down`` = Σ values + missing × target), so missing data can only hold a
    scale-down back. Scale-up: ``ceil(total_up / target)`` when ``total_up / (ready × target)``
    exceeds 1 + tolerance; scale-down: ``ceil(total_down / target)`` when
    ``total_down / (ready × target)`` is under 1 − tolerance; otherwise ``current``.

    Example: 2 ready pods with queue 9 and 7, target 5 → ratio 1.6 → ceil(16 / 5) = 4.
    With one of them missing: total_up 9, ratio 9 / 10 = 0.9 (inside tolerance) → current.
    """
    values = [v for p in ready if (v := pod_value(p, signal, now, max_age)) is not None]
    missing = len(ready) - len(values)
    if not values:
        return Proposal(signal, target, None, None, None, 0, missing)
    total_up = math.fsum(values)
    total_down = total_up + missing * target
    observed = total_up / len(values)
    n = len(ready)
    if total_up / (n * target) > 1.0 + tolerance_up:
        replicas = max(ceil_replicas(total_up, target), 1)
    elif total_down / (n * target) < 1.0 - tolerance_down:
        replicas = ceil_replicas(total_down, target)
    else:
        replicas = current
    return Proposal(signal, target, observed, replicas, total_up, len(values), missing)


def cold_start_replicas(proposals: Iterable[Proposal], panic_threshold: float) -> int:
    """Replicas needed while pods are starting: each signal's total at ``panic_threshold`` ×
    target per pod.

    The backlog that piles up during a cold start is not steady demand: the pods on the way
    drain it once ready. So while any pod is starting, scale-up only goes past the pods that
    already exist when even the relaxed target (panic threshold × target) is exceeded.
    Example: queue total 50, target 5, threshold 2 → ceil(50 / 10) = 5; with 4 pods existing
    (1 ready, 3 starting) that adds one pod, where the plain rule would ask for 10.
    """
    return max(
        (
            ceil_replicas(p.total, p.target * panic_threshold)
            for p in proposals
            if p.total is not None
        ),
        default=0,
    )


def n_minus_1_floor(
    proposals: Iterable[Proposal], candidate: int, current: int, tolerance_down: float
) -> int:
    """The fewest replicas in ``[candidate, current]`` that keep every signal under target.

    Before removing pods, check that the load of the pods that remain — including what the
    removed ones carried, missing pods counted at target — stays at or below
    ``target × (1 − tolerance)`` per pod, so the removal does not trigger the next scale-up.
    Example: KV 0.5 on each of 3 pods (total 1.5), target 0.8, tolerance 0.1: 2 pods would
    each carry 0.75 > 0.72 → floor 3 (no removal); at 0.4 each (total 1.2) 2 pods carry 0.6
    → floor 2.
    """
    floor = candidate
    for p in proposals:
        if p.total is None:
            continue
        total_down = p.total + p.missing * p.target
        need = ceil_replicas(total_down, p.target * (1.0 - tolerance_down))
        floor = max(floor, need)
    return min(max(floor, candidate), current)


def stabilize(
    recommendations: Iterable[tuple[float, int]],
    proposal: int,
    current: int,
    now: float,
    up_window: float,
    down_window: float,
) -> int:
    """The HPA's stabilization: scale up to the lowest, down to the highest recent proposal.

    ``up`` = min of the proposals made less than ``up_window`` seconds ago and now, ``down``
    = max of those made less than ``down_window`` ago (a 0 s window: only now's); the result
    is ``up`` if current < up, ``down`` if current > down, else current.
    Example: proposals 6, 3, 2 over the last 3 minutes, a 180 s down window, current 6 →
    max = 6 → stays 6; once the 6 is older than 180 s → 3.
    """
    past = list(recommendations)
    up = min([proposal] + [r for t, r in past if now - t < up_window])
    down = max([proposal] + [r for t, r in past if now - t < down_window])
    if current < up:
        return up
    if current > down:
        return down
    return current


def rate_limit(
    desired: int,
    current: int,
    events: Iterable[tuple[float, int]],
    now: float,
    up: RateLimit,
    down: RateLimit,
) -> int:
    """Cut ``desired`` to what the direction's policies allow, as the HPA's ``behavior`` does.

    Scale-up: the replicas at the period's start are ``current`` − pods added within it; a
    ``Pods`` policy allows start + value, a ``Percent`` policy ``ceil(start × (1 + v/100))``;
    ``Max`` takes the most permissive. Scale-down mirrors it with removals and
    ``ceil(start × (1 − v/100))``. Example: current 2, nothing added in the last 15 s, policies
    Pods 4 and Percent 100 → limit max(6, 4) = 6, so desired 10 → 6. Scale-down 10 → 2 with
    Pods 1 and Percent 25 per 30 s → limit min(9, ceil(7.5) = 8) = 8.
    """
    events = list(events)
    if desired > current:
        return min(desired, _limit(current, events, now, up, up_direction=True))
    if desired < current:
        return max(desired, _limit(current, events, now, down, up_direction=False))
    return desired


def _limit(
    current: int, events: list[tuple[float, int]], now: float, rl: RateLimit, up_direction: bool
) -> int:
    if rl.select == "Disabled":
        return current
    if not rl.policies:
        return 10**9 if up_direction else 0
    limits = []
    for p in rl.policies:
        changed = sum(d for t, d in events if now - t < p.period_s and (d > 0) == up_direction)
        start = current - changed  # changed > 0 up, < 0 down
        if up_direction:
            lim = start + p.value if p.kind == "Pods" else math.ceil(start * (1 + p.value / 100))
        else:
            lim = start - p.value if p.kind == "Pods" else math.ceil(start * (1 - p.value / 100))
        limits.append(int(lim))
    permissive = max if up_direction else min
    strict = min if up_direction else max
    lim = (permissive if rl.select == "Max" else strict)(limits)
    return max(lim, current) if up_direction else min(lim, current)


def trend_projection(
    history: Sequence[tuple[float, float]], now: float, lead: float
) -> tuple[float, float] | None:
    """Least-squares line through ``history`` (time, total), evaluated ``lead`` s after now.

    Returns (projected total, slope per second), or ``None`` with fewer than 4 points or
    points spanning less than 5 s. Example: totals 10, 12, 14, 16 at t = 0, 5, 10, 15 (slope
    0.4/s), now 15, lead 30 → 16 + 0.4 × 30 = 28.
    """
    if len(history) < 4:
        return None
    t = np.array([h[0] for h in history], dtype=float)
    y = np.array([h[1] for h in history], dtype=float)
    if t.max() - t.min() < 5.0:
        return None
    slope, intercept = np.polyfit(t - now, y, 1)
    return float(intercept + slope * lead), float(slope)


def saturation_update(
    previous: float | None,
    ready: Sequence[PodSignals],
    now: float,
    max_age: float,
    weight: float = 0.3,
) -> float | None:
    """Learn how many running requests a replica holds when it is saturated.

    A replica is saturated when requests wait on it (queue depth ≥ 1); its running count then
    is its capacity for this model and traffic. The estimate is an exponential average
    (``weight`` for the new sample) of the mean running count over saturated ready pods;
    unchanged when no pod is saturated. Example: previous 60, pods saturated at 70 and 80
    running → 0.7 × 60 + 0.3 × 75 = 64.5.
    """
    running = [
        r
        for p in ready
        if (q := pod_value(p, Signal.QUEUE_DEPTH, now, max_age)) is not None
        and q >= 1
        and (r := pod_value(p, Signal.RUNNING, now, max_age)) is not None
        and r > 0
    ]
    if not running:
        return previous
    sample = math.fsum(running) / len(running)
    return sample if previous is None else (1 - weight) * previous + weight * sample


def capacity_floor(
    ready: Sequence[PodSignals],
    saturation: float | None,
    now: float,
    max_age: float,
    headroom: float,
) -> int:
    """The fewest replicas that keep the running requests under ``headroom`` × capacity.

    Queue depth and KV use say nothing about a compute-bound replica below saturation: the
    queue is 0 and the cache half empty until the batch is full. The running count does: with
    ``saturation`` the learned per-replica capacity (:func:`saturation_update`), removing pods
    is safe only while Σ running / n ≤ headroom × saturation. 0 when nothing was learned yet.
    Example: 13 pods running 30 each (390), capacity 60, headroom 0.8 → ceil(390 / 48) = 9.
    """
    if not saturation:
        return 0
    total = math.fsum(
        v for p in ready if (v := pod_value(p, Signal.RUNNING, now, max_age)) is not None
    )
    return ceil_replicas(total, saturation * headroom)
