"""The offline oracle: its search, its per-minute plan and its provisioning ahead of time."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.sim.fast import FastSim, SimConfig
from autoscaler.sim.oracle import Oracle, initial_need, plan, smallest_ok
from autoscaler.sim.profiles import LLAMA_8B_H100 as P
from autoscaler.sim.traces import Trace, load_trace
from tests.conftest import SHARED


def test_smallest_ok_walks_from_the_guess_then_bisects() -> None:
    probes: list[int] = []

    def ok(n: int) -> bool:
        probes.append(n)
        return n >= 7

    assert smallest_ok(ok, 2, 1, 16) == 7
    assert probes == [2, 3, 5, 9, 7, 6]
    assert smallest_ok(lambda n: n >= 3, 10, 1, 16) == 3
    assert smallest_ok(lambda n: True, 5, 1, 16) == 1
    assert smallest_ok(lambda n: False, 5, 1, 16) == 16


def poisson(rate: float, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate * (t1 - t0))
    return np.sort(rng.uniform(t0, t1, n))


@pytest.fixture(scope="module")
def burst() -> Trace:
    """1 req/s for 2 minutes, 30 req/s in the third, 1 req/s for 2 more; 1,000 in / 200 out."""
    rng = np.random.default_rng(5)
    t = np.concatenate(
        [poisson(1, 0, 120, rng), poisson(30, 120, 180, rng), poisson(1, 180, 300, rng)]
    )
    n = len(t)
    return Trace(t, np.full(n, 1000, np.int64), np.full(n, 200, np.int64))


def test_the_plan_sizes_each_minute_for_its_own_load(burst: Trace) -> None:
    cfg = SimConfig(P, max_replicas=12)
    oracle = plan(burst, cfg, end_s=300.0)
    assert oracle.need[0] == oracle.need[1] == oracle.need[3] == oracle.need[4] == 1
    assert oracle.need[2] >= 3  # 30 req/s is several replicas of this profile
    assert initial_need(burst, cfg) == 1


def test_the_oracle_pods_are_created_a_cold_start_early_and_meet_the_slo(burst: Trace) -> None:
    cfg = SimConfig(P, max_replicas=12)
    oracle = plan(burst, cfg, end_s=300.0)
    sim = FastSim(cfg, oracle, burst, 300.0)
    result = sim.run()
    extra = [p for p in sim.gone + sim.pods if p.created_at != 0.0]
    assert len(extra) == oracle.need[2] - 1
    for p in extra:
        assert p.ready_at == 120.0  # ready when the burst's minute starts
        assert p.ready_at - p.created_at >= P.cold_start_min_s
    assert result.slo_attainment >= 0.98
    assert result.max_replicas == oracle.need[2]


def test_an_empty_schedule_keeps_the_current_scale() -> None:
    assert Oracle(()).decide(None, None, 5.0, 3) == 3  # type: ignore[arg-type]
    assert Oracle((1, 4, 2)).decide(None, None, 60.0, 1) == 4  # type: ignore[arg-type]
    assert Oracle((1, 4, 2)).decide(None, None, 1e6, 1) == 2  # type: ignore[arg-type]


def test_replaying_the_plan_meets_the_target_it_was_planned_for() -> None:
    """Greedy per minute on the state the schedule leaves: the replay is the planned run."""
    tr = load_trace(SHARED / "traces" / "azure_llm_2023_conv.csv.gz", duration=240, rate_scale=6)
    cfg = SimConfig(P, max_replicas=12, initial_replicas=initial_need(tr, SimConfig(P)))
    oracle = plan(tr, cfg, target=0.99)
    result = FastSim(cfg, oracle, tr).run()
    minute = (result.arrival // 60).astype(int)
    for b in range(4):
        assert np.mean(result.ttft[minute == b] <= cfg.slo_ttft_s) >= 0.99, b
    assert 3 <= max(oracle.need) < 12
