"""Scenario tests of the default and forecast policies, with an injected clock.

Each test is one scenario named after the rule it exercises; minutes of windows run in
milliseconds because ``now`` is an argument, never a clock read.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import PolicyState, make_policy
from policies.decision import Rule
from policies.signals import PodSignals, Sample, TargetKey, TargetSignals
from policies.spec import RateLimit, RatePolicy, ScalingSpec

KEY = TargetKey("llm", "llama")
SPEC = ScalingSpec(
    min_replicas=1, max_replicas=10, targets={"queue_depth": 5.0, "kv_cache_usage": 0.8}
)


def pod(
    i: int,
    now: float,
    queue: float | None = 0.0,
    kv: float | None = 0.1,
    *,
    ready: bool = True,
    created: float | None = 0.0,
    age: float = 0.0,
    phase: str = "Running",
) -> PodSignals:
    at = now - age
    return PodSignals(
        "llm",
        f"p{i}",
        ready,
        phase,
        created,
        queue_depth=None if queue is None else Sample(queue, at),
        kv_cache_usage=None if kv is None else Sample(kv, at),
    )


def fleet(
    n: int,
    now: float,
    queue: float | None = 0.0,
    kv: float | None = 0.1,
    *,
    starting: int = 0,
    started_at: float = 0.0,
    **kw: object,
) -> TargetSignals:
    pods = [pod(i, now, queue, kv, **kw) for i in range(n)]  # type: ignore[arg-type]
    pods += [
        pod(100 + i, now, None, None, ready=False, created=started_at) for i in range(starting)
    ]
    return TargetSignals(KEY, tuple(pods))


def decide(
    signals: TargetSignals,
    current: int,
    now: float,
    state: PolicyState | None = None,
    spec: ScalingSpec = SPEC,
    available: bool = True,
    policy: str = "default",
):
    return make_policy(policy).decide(
        signals, spec, state, now, current, snapshot_available=available
    )


# ---- steady and scale-up ---------------------------------------------------------------


def test_steady_inside_tolerance_keeps_the_count() -> None:
    d, _ = decide(fleet(3, 10, queue=5.4, kv=0.5), 3, 10)
    assert (d.desired_replicas, d.rule) == (3, Rule.STEADY)


def test_scale_up_is_proportional_and_names_the_winning_signal() -> None:
    d, _ = decide(fleet(2, 10, queue=8, kv=0.5), 2, 10)
    assert d.desired_replicas == 4  # ceil(16 / 5)
    assert d.rule == Rule.SCALE_UP
    assert d.winner == "queue_depth"
    by_signal = {p.signal: p.replicas for p in d.proposals}
    assert by_signal == {"queue_depth": 4, "kv_cache_usage": 2}


def test_panic_skips_the_rate_limit() -> None:
    d, _ = decide(fleet(1, 10, queue=40, kv=0.9), 1, 10)
    assert (d.desired_replicas, d.rule) == (8, Rule.PANIC)  # not capped at 1 + 4


def test_scale_up_below_panic_is_rate_limited() -> None:
    spec = ScalingSpec(
        min_replicas=1, max_replicas=50, targets={"queue_depth": 5.0}, panic_threshold=10.0
    )
    d, _ = decide(fleet(2, 10, queue=40), 2, 10, spec=spec)
    assert (d.desired_replicas, d.rule) == (6, Rule.RATE_LIMITED)  # 16 wanted, +4 allowed
    # another step within the same 15 s period counts the 4 already added
    d2, _ = decide(fleet(6, 12, queue=40), 6, 12, state=_, spec=spec)
    assert d2.desired_replicas == 6
    assert d2.rule == Rule.RATE_LIMITED


def test_scale_up_clamps_to_max_replicas() -> None:
    d, _ = decide(fleet(4, 10, queue=100, kv=1.0), 4, 10)
    assert (d.desired_replicas, d.rule) == (10, Rule.MAX_REPLICAS)
    d, _ = decide(fleet(10, 10, queue=100, kv=1.0), 10, 10)
    assert (d.desired_replicas, d.rule) == (10, Rule.MAX_REPLICAS)


# ---- cold start ------------------------------------------------------------------------


def test_cold_start_pods_on_the_way_hold_a_rising_queue() -> None:
    # 1 ready pod with queue 30 (wants 6); 3 pods already starting hold 10 each meanwhile
    d, _ = decide(fleet(1, 30, queue=30, kv=0.9, starting=3, started_at=10), 4, 30)
    assert (d.desired_replicas, d.rule) == (4, Rule.COLD_START_PENDING)


def test_cold_start_adds_only_past_the_relaxed_target() -> None:
    # queue 50 on the one ready pod: plain rule wants 10, relaxed (2 × 5 per pod) wants 5
    d, _ = decide(fleet(1, 30, queue=50, kv=0.9, starting=3, started_at=10), 4, 30)
    assert d.desired_replicas == 5
    assert d.inputs["cold_start_replicas"] == 5


def test_a_rising_queue_during_a_cold_start_does_not_add_pod_after_pod() -> None:
    state, current, requested = None, 1, []
    for t in range(0, 120):  # the queue grows by 1 per second for two minutes
        ready = 1
        sig = fleet(ready, t, queue=6 + t, kv=0.95, starting=current - ready, started_at=1)
        d, state = decide(sig, current, float(t), state)
        current = d.desired_replicas
        requested.append(current)
    # without cold-start accounting every tick would add pods (ceil((6 + t) / 5) → 26)
    assert max(requested) <= math.ceil((6 + 119) / 10) + 1
    assert requested[1] >= 2  # but it did scale up at once


def test_stuck_pods_are_not_capacity_on_the_way() -> None:
    # a pod Pending for far longer than 2 × cold start does not hold scale-up back
    d, _ = decide(fleet(1, 1000, queue=12, kv=0.9, starting=1, started_at=0), 2, 1000)
    assert d.desired_replicas > 2
    assert d.inputs["stuck"] == 1


def test_no_pod_ready_yet_holds_for_cold_start() -> None:
    d, _ = decide(fleet(0, 30, starting=2, started_at=10), 2, 30)
    assert (d.desired_replicas, d.rule) == (2, Rule.COLD_START_PENDING)


# ---- scale-down ------------------------------------------------------------------------


def test_scale_down_waits_for_the_window_then_goes_one_step_at_a_time() -> None:
    state, current, history = None, 1, []
    for t in range(0, 600):
        busy = t < 60
        sig = fleet(current, t, queue=20 if busy else 0, kv=0.95 if busy else 0.05)
        d, state = decide(sig, current, float(t), state)
        history.append((t, d.desired_replicas, d.rule))
        current = d.desired_replicas
    peak = max(r for _, r, _ in history)
    assert peak == 10
    first_down = next(t for t, r, _ in history if t > 60 and r < peak)
    assert first_down >= 59 + SPEC.scale_down_window_s  # the highest proposal held for the window
    rules = {rule for t, _, rule in history if 60 < t < first_down}
    assert rules <= {Rule.STABILIZED, Rule.MAX_REPLICAS}
    drops = [a - b for (_, a, _), (_, b, _) in itertools.pairwise(history) if b < a]
    assert max(drops) <= 3  # max(1 pod, 25 %) per 30 s
    assert current == 1


def test_scale_down_is_stabilized_not_immediate() -> None:
    state = None
    d, state = decide(fleet(4, 0, queue=20, kv=0.9), 4, 0, state)
    d, state = decide(fleet(4, 10, queue=0, kv=0.1), 4, 10, state)
    assert (d.desired_replicas, d.rule) == (4, Rule.STABILIZED)
    assert f"{SPEC.scale_down_window_s:g}s" in d.reason


def test_n_minus_1_refuses_a_removal_that_would_overload_the_rest() -> None:
    spec = ScalingSpec(
        min_replicas=1, max_replicas=10, targets={"kv_cache_usage": 0.8}, scale_down_window_s=0
    )
    # 3 pods at 0.64 KV (ratio 0.8, below tolerance): proportional wants ceil(1.92/.8) = 3 …
    d, _ = decide(fleet(3, 0, kv=0.64), 3, 0, spec=spec)
    assert d.desired_replicas == 3
    # … 4 pods at 0.55 (total 2.2): proportional says 3 (0.73 each), N−1 needs ≤ 0.72 → hold
    d, _ = decide(fleet(4, 0, kv=0.55), 4, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (4, Rule.N_MINUS_1)


def test_missing_pod_samples_block_scale_down_but_not_scale_up() -> None:
    pods = (pod(0, 0, queue=0, kv=0.1), pod(1, 0, queue=None, kv=None))
    spec = ScalingSpec(
        min_replicas=1, max_replicas=10, targets={"queue_depth": 5.0}, scale_down_window_s=0
    )
    d, _ = decide(TargetSignals(KEY, pods), 2, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (2, Rule.HOLD_PARTIAL_DATA)
    assert "1 pod samples missing" in d.reason
    pods = (pod(0, 0, queue=30), pod(1, 0, queue=None))
    d, _ = decide(TargetSignals(KEY, pods), 2, 0, spec=spec)
    assert d.desired_replicas == 6  # missing counted as empty on the way up


def test_a_signal_without_data_blocks_scale_down() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=10,
        scale_down_window_s=0,
        targets={"queue_depth": 5.0, "gpu_utilization": 80.0},
    )
    d, _ = decide(fleet(4, 0, queue=0), 4, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (4, Rule.HOLD_PARTIAL_DATA)
    assert "gpu_utilization" in d.reason


def test_stale_and_nan_samples_are_missing() -> None:
    spec = ScalingSpec(
        min_replicas=1, max_replicas=10, targets={"queue_depth": 5.0}, scale_down_window_s=0
    )
    stale = fleet(3, 100, queue=0, age=61)
    d, _ = decide(stale, 3, 100, spec=spec)
    assert d.rule == Rule.FROZEN_NO_DATA
    assert d.desired_replicas == 3
    nan = fleet(3, 100, queue=math.nan)
    d, _ = decide(nan, 3, 100, spec=spec)
    assert d.rule == Rule.FROZEN_NO_DATA
    assert d.desired_replicas == 3


def test_scale_down_rate_limit_counts_recent_removals() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=20,
        targets={"queue_depth": 5.0},
        scale_down_window_s=0,
        scale_down=RateLimit((RatePolicy("Pods", 2, 60.0),)),
    )
    d, st = decide(fleet(10, 0, queue=0), 10, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (8, Rule.RATE_LIMITED)
    d, st = decide(fleet(8, 30, queue=0), 8, 30, st, spec=spec)
    assert d.desired_replicas == 8  # two already removed in this 60 s period
    d, st = decide(fleet(8, 61, queue=0), 8, 61, st, spec=spec)
    assert d.desired_replicas == 6


def test_disabled_scale_down_never_removes() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=20,
        targets={"queue_depth": 5.0},
        scale_down_window_s=0,
        scale_down=RateLimit((), "Disabled"),
    )
    d, _ = decide(fleet(5, 0, queue=0), 5, 0, spec=spec)
    assert d.desired_replicas == 5


# ---- no data ---------------------------------------------------------------------------


def test_unavailable_snapshot_freezes_the_count() -> None:
    state = None
    for t in range(0, 600, 10):
        d, state = decide(TargetSignals(KEY), 7, float(t), state, available=False)
        assert (d.desired_replicas, d.rule) == (7, Rule.FROZEN_NO_DATA)
    assert "600" not in d.reason
    assert "590s" in d.reason


def test_fallback_applies_after_its_timeout_and_clears_when_data_returns() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=10,
        targets={"queue_depth": 5.0},
        fallback_replicas=4,
        fallback_after_s=120,
    )
    d, st = decide(TargetSignals(KEY), 7, 0, None, spec=spec, available=False)
    assert d.desired_replicas == 7
    d, st = decide(TargetSignals(KEY), 7, 119, st, spec=spec, available=False)
    assert d.desired_replicas == 7
    d, st = decide(TargetSignals(KEY), 7, 120, st, spec=spec, available=False)
    assert (d.desired_replicas, d.rule) == (4, Rule.FALLBACK)
    d, st = decide(fleet(4, 130, queue=5), 4, 130, st, spec=spec)
    assert st.unavailable_since is None
    assert d.rule == Rule.STEADY


def test_no_ready_pod_reporting_freezes() -> None:
    d, _ = decide(fleet(3, 0, queue=None, kv=None), 3, 0)
    assert (d.desired_replicas, d.rule) == (3, Rule.FROZEN_NO_DATA)
    d, _ = decide(TargetSignals(KEY), 3, 0)
    assert (d.desired_replicas, d.rule) == (3, Rule.FROZEN_NO_DATA)


# ---- zero and clamps -------------------------------------------------------------------


def test_zero_holds_without_demand_and_wakes_on_demand() -> None:
    spec = ScalingSpec(min_replicas=0, max_replicas=4, targets={"queue_depth": 5.0})
    d, _ = decide(TargetSignals(KEY), 0, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (0, Rule.HOLD_AT_ZERO)
    woke = TargetSignals(KEY, (), demand=Sample(3, 0))
    d, _ = decide(woke, 0, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (1, Rule.SCALE_FROM_ZERO)
    d, _ = decide(TargetSignals(KEY), 0, 0)  # min 1
    assert (d.desired_replicas, d.rule) == (1, Rule.MIN_REPLICAS)


def test_without_a_demand_signal_the_policy_never_proposes_zero() -> None:
    spec = ScalingSpec(
        min_replicas=0,
        max_replicas=4,
        targets={"queue_depth": 5.0},
        scale_down_window_s=0,
        scale_down=RateLimit((RatePolicy("Pods", 9, 1),)),
    )
    d, _ = decide(fleet(2, 0, queue=0), 2, 0, spec=spec)
    assert d.desired_replicas == 1
    with_demand = TargetSignals(KEY, fleet(2, 0, queue=0).pods, demand=Sample(0, 0))
    d, _ = decide(with_demand, 2, 0, spec=spec)
    assert d.desired_replicas == 0


def test_outside_min_max_is_brought_back() -> None:
    spec = ScalingSpec(min_replicas=3, max_replicas=5, targets={"queue_depth": 5.0})
    d, _ = decide(fleet(2, 0, queue=5), 2, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (3, Rule.MIN_REPLICAS)
    d, _ = decide(fleet(7, 0, queue=5), 7, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (5, Rule.MAX_REPLICAS)
    d, _ = decide(fleet(0, 0, starting=2), 2, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (3, Rule.MIN_REPLICAS)
    d, _ = decide(TargetSignals(KEY), 7, 0, spec=spec, available=False)
    assert (d.desired_replicas, d.rule) == (5, Rule.MAX_REPLICAS)


# ---- other signals ---------------------------------------------------------------------


def test_concurrency_and_ttft_targets() -> None:
    spec = ScalingSpec(
        min_replicas=1, max_replicas=10, targets={"concurrency": 8.0, "ttft_p95_seconds": 2.0}
    )
    p = PodSignals(
        "llm",
        "p0",
        True,
        queue_depth=Sample(4, 0),
        running=Sample(12, 0),
        ttft_p95_seconds=Sample(3.0, 0),
    )
    d, _ = decide(TargetSignals(KEY, (p,)), 1, 0, spec=spec)
    assert {x.signal: x.replicas for x in d.proposals} == {"concurrency": 2, "ttft_p95_seconds": 2}
    half = PodSignals("llm", "p0", True, queue_depth=Sample(4, 0))
    d, _ = decide(TargetSignals(KEY, (half,)), 1, 0, spec=spec)
    assert {x.signal: x.replicas for x in d.proposals}["concurrency"] is None


# ---- forecast --------------------------------------------------------------------------


def test_forecast_pre_scales_ahead_of_a_ramp() -> None:
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=40,
        targets={"queue_depth": 5.0},
        cold_start_s=60,
        policy="forecast",
    )
    state, current, rules = None, 4, []
    for t in range(0, 30, 5):
        # a queue rising 0.25/s on each of 4 pods: 16 → 21.25 in total, at or under target
        q = 4.0 + 0.0625 * t
        d, state = decide(
            fleet(current, t, queue=q, kv=0.3),
            current,
            float(t),
            state,
            spec=spec,
            policy="forecast",
        )
        rules.append(d.rule)
        current = d.desired_replicas
    assert Rule.FORECAST in rules
    assert current > 4
    base, _ = decide(fleet(4, 25, queue=5.5, kv=0.3), 4, 25, None, spec=spec)
    assert base.desired_replicas == 4  # the default policy would not have moved


def test_forecast_is_quiet_on_flat_or_falling_load() -> None:
    spec = ScalingSpec(min_replicas=1, max_replicas=40, targets={"queue_depth": 5.0})
    state = None
    for t in range(0, 60, 5):
        d, state = decide(
            fleet(4, t, queue=5.0 - 0.05 * t, kv=0.3),
            4,
            float(t),
            state,
            spec=spec,
            policy="forecast",
        )
        assert d.rule != Rule.FORECAST
        assert d.desired_replicas == 4


def test_unknown_policy_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="known: default, forecast"):
        make_policy("magic")


def test_state_is_pruned_to_the_windows() -> None:
    state = None
    for t in range(0, 1000, 1):
        _, state = decide(fleet(2, t, queue=5), 2, float(t), state)
    assert state is not None
    assert len(state.recommendations) <= SPEC.scale_down_window_s + 1
    assert len(state.history) <= SPEC.forecast_window_s + 1


def test_at_min_replicas_a_lower_proposal_says_so() -> None:
    spec = ScalingSpec(
        min_replicas=2, max_replicas=4, targets={"queue_depth": 5.0}, scale_down_window_s=0
    )
    d, _ = decide(fleet(2, 0, queue=0), 2, 0, spec=spec)
    assert (d.desired_replicas, d.rule) == (2, Rule.MIN_REPLICAS)


def test_learned_capacity_stops_a_scale_down_that_queue_and_kv_would_allow() -> None:
    """Compute-bound replicas show no queue and little KV use until they saturate; the
    running count at the last saturation is their capacity, and scale-down keeps under it."""
    spec = ScalingSpec(
        min_replicas=1,
        max_replicas=20,
        targets={"queue_depth": 5.0, "kv_cache_usage": 0.8},
        scale_down_window_s=0,
        scale_down=RateLimit((RatePolicy("Percent", 100, 1),)),
    )

    def pods(n: int, now: float, queue: float, running: float) -> TargetSignals:
        return TargetSignals(
            KEY,
            tuple(
                PodSignals(
                    "llm",
                    f"p{i}",
                    True,
                    created_at=0.0,
                    queue_depth=Sample(queue, now),
                    running=Sample(running, now),
                    kv_cache_usage=Sample(0.2, now),
                )
                for i in range(n)
            ),
        )

    # 4 saturated pods: 60 running each with a queue → capacity 60 learned
    _, st = decide(pods(4, 0, 3, 60), 4, 0, spec=spec)
    assert st.saturation == 60
    # later 10 pods run 30 each (300 in all), no queue, KV 0.2: proportional rules say 3
    d, st = decide(pods(10, 10, 0, 30), 10, 10, st, spec=spec)
    assert d.inputs["capacity_floor"] == 6  # ceil(300 / (60 × 0.9))
    assert d.desired_replicas == 6
    assert d.rule == Rule.N_MINUS_1


@given(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=5),
)
def test_compressed_recommendations_stabilize_exactly_as_the_full_list(
    proposals: list[int], up_window: int, down_window: int, current: int
) -> None:
    """One entry per run of equal proposals gives the same stabilized count as one per tick,
    for every window and current count."""
    from policies import formulas
    from policies.default import _recommend

    full: list[tuple[float, int]] = []
    kept: tuple[tuple[float, int], ...] = ()
    for t, p in enumerate(proposals):
        now = float(t)
        assert formulas.stabilize(
            kept, p, current, now, up_window, down_window
        ) == formulas.stabilize(full, p, current, now, up_window, down_window)
        full.append((now, p))
        kept = _recommend(kept, now, p)
    assert len(kept) == 1 + sum(a != b for a, b in itertools.pairwise(proposals))


def test_only_trend_policies_keep_a_signal_history() -> None:
    _, state = decide(fleet(2, 0, queue=1, kv=0.3), 2, 0, None)
    assert state.history == ()
    _, state = make_policy("forecast").decide(fleet(2, 0, queue=1, kv=0.3), SPEC, None, 0, 2)
    assert len(state.history) == 1
