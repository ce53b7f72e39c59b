"""The fast simulator: determinism, capacity, cold starts, graceful drain, the metric pipeline
and the GPU-hour accounting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from autoscaler.sim.baselines import FixedReplicas, KedaQueue
from autoscaler.sim.fast import FastSim, Pod, SimConfig, removal_order
from autoscaler.sim.profiles import LLAMA_8B_H100 as P
from autoscaler.sim.replica import Replica
from autoscaler.sim.report import gpu_hours, per_minute
from autoscaler.sim.traces import Trace, load_trace
from policies.signals import MetricsSnapshot, TargetKey
from tests.conftest import SHARED

CONV = SHARED / "traces" / "azure_llm_2023_conv.csv.gz"


def trace_of(rows: list[tuple[float, int, int]]) -> Trace:
    t, p, o = zip(*rows, strict=True)
    return Trace(np.array(t, float), np.array(p, np.int64), np.array(o, np.int64))


@dataclass
class Scripted:
    """Asks for ``plan[t]`` replicas from time ``t`` on; records every snapshot it sees."""

    plan: dict[float, int]
    name: str = "scripted"
    scrape_interval_s: float = 5.0
    prescient: bool = False
    seen: dict[float, MetricsSnapshot] = field(default_factory=dict)

    def decide(self, snapshot: MetricsSnapshot, key: TargetKey, now: float, current: int) -> int:
        self.seen[now] = snapshot
        return max((n for t, n in self.plan.items() if t <= now), default=current)


def test_same_seed_same_run_and_the_seed_moves_the_cold_starts() -> None:
    tr = load_trace(CONV, duration=300, rate_scale=4)
    cfg = SimConfig(P, initial_replicas=1, max_replicas=8)
    a, b = FastSim(cfg, KedaQueue(), tr), FastSim(cfg, KedaQueue(), tr)
    ra, rb = a.run(), b.run()
    assert ra.summary() == rb.summary()
    assert np.array_equal(ra.ticks, rb.ticks)
    assert np.array_equal(ra.ttft, rb.ttft)
    assert ra.pods_created > 1
    other = FastSim(SimConfig(P, seed=2, initial_replicas=1, max_replicas=8), KedaQueue(), tr)
    other.run()
    cold = [p.ready_at - p.created_at for p in a.gone + a.pods]
    assert cold[1:] != [p.ready_at - p.created_at for p in other.gone + other.pods][1:]


def test_more_replicas_serve_more_requests_within_the_slo() -> None:
    tr = load_trace(CONV, duration=300, rate_scale=3)  # ~16 req/s, two replicas' worth
    cfg = SimConfig(P)
    one = FastSim(cfg, FixedReplicas(1), tr).run()
    four = FastSim(cfg, FixedReplicas(4), tr).run()
    assert one.slo_attainment < 0.5
    assert four.slo_attainment > 0.99
    assert four.gpu_hours == pytest.approx(4 * tr.t[-1] / 3600, rel=0.01)
    assert four.max_replicas == 4
    assert four.scale_events == 1


def test_a_new_pod_is_running_but_not_ready_until_its_cold_start_ends() -> None:
    tr = trace_of([(t, 500, 50) for t in np.arange(0.5, 200, 0.5)])
    scaler = Scripted({10.0: 2})
    sim = FastSim(SimConfig(P), scaler, tr)
    sim.run()
    new = sim.pods[1]
    assert new.created_at == 10.0
    cold = new.ready_at - new.created_at
    assert cold >= P.cold_start_min_s
    before = scaler.seen[float(int(new.ready_at))]  # the last tick before it is ready
    pod = next(p for p in before.targets[sim.cfg.key].pods if p.pod == new.name)
    assert (pod.ready, pod.phase, pod.created_at) == (False, "Running", 10.0)
    assert pod.queue_depth is None  # no vLLM server yet
    assert pod.gpu_utilization is not None
    assert pod.gpu_utilization.value == 0.0
    after = scaler.seen[float(int(new.ready_at)) + 1]
    assert next(p for p in after.targets[sim.cfg.key].pods if p.pod == new.name).ready


def test_snapshots_hold_the_last_scrape_stamped_with_its_time() -> None:
    tr = trace_of([(t, 2000, 200) for t in np.arange(0.1, 30, 0.1)])
    scaler = Scripted({})
    FastSim(SimConfig(P), scaler, tr).run()
    (pod,) = scaler.seen[7.0].targets[TargetKey("default", "sim")].pods
    assert pod.queue_depth is not None
    assert pod.queue_depth.at == 5.0
    assert pod.running is not None
    assert pod.running.value > 0
    assert pod.gpu_utilization is not None
    assert pod.gpu_utilization.value == 100.0
    assert pod.ttft_p50_seconds is not None
    assert pod.ttft_p50_seconds.at == 5.0
    (pod,) = scaler.seen[10.0].targets[TargetKey("default", "sim")].pods
    assert pod.queue_depth is not None
    assert pod.queue_depth.at == 10.0


def test_gpu_utilization_is_the_busy_fraction_of_the_scrape_interval() -> None:
    """One 16,000-token prompt at 0.5 s: 1 s of prefill + one decode step, then idle."""
    tr = trace_of([(0.5, 16_000, 2)])
    scaler = Scripted({})
    FastSim(SimConfig(P), scaler, tr, 20.0).run()
    (pod,) = scaler.seen[5.0].targets[TargetKey("default", "sim")].pods
    busy = 1.0 + P.decode_step_s(1, 16_001)
    assert pod.gpu_utilization is not None
    assert pod.gpu_utilization.value == pytest.approx(100 * busy / 5.0)
    (pod,) = scaler.seen[10.0].targets[TargetKey("default", "sim")].pods
    assert pod.gpu_utilization is not None
    assert pod.gpu_utilization.value == 0.0


def test_scale_down_drains_the_removed_pod_and_pays_for_the_drain() -> None:
    """Two warm pods share 8 long requests; at 5 s one is removed: it takes no new request,
    finishes its 4 and is deleted at its last completion; nothing is lost."""
    rows = [(0.1 * i, 1000, 2000) for i in range(8)] + [(6.0 + i, 100, 10) for i in range(5)]
    scaler = Scripted({5.0: 1})
    sim = FastSim(SimConfig(P, initial_replicas=2), scaler, trace_of(rows), 120.0)
    result = sim.run()
    (gone,) = sim.gone
    assert gone.drain_from == 5.0
    assert gone.deleted_at is not None
    assert gone.deleted_at > 15.0
    assert gone.deleted_at == gone.last_finish
    assert gone.replica.counters.requests_finished == 4  # none after the drain began
    assert result.unserved == 0
    assert result.slo_attainment == 1.0
    assert result.gpu_hours == pytest.approx((120.0 + gone.deleted_at) / 3600)


def test_requests_larger_than_the_cache_are_refused_and_count_as_misses() -> None:
    tr = trace_of([(1.0, 100, 10), (2.0, P.kv_cache_tokens, 10)])
    r = FastSim(SimConfig(P), FixedReplicas(1), tr).run()
    assert (r.refused, r.unserved, r.slo_attainment) == (1, 0, 0.5)
    assert r.ttft_percentile(50) == pytest.approx(100 / P.prefill_tokens_per_s)


def test_removal_order_is_the_replicasets() -> None:
    def pod(name: str, ready: bool, ready_at: float) -> Pod:
        return Pod(name, Replica(P), 0.0, ready_at, ready=ready)

    pods = [pod("old", True, 10.0), pod("starting", False, 90.0), pod("new", True, 50.0)]
    assert [p.name for p in removal_order(pods)] == ["starting", "new", "old"]


def test_gpu_hours_count_creation_to_deletion_within_the_window() -> None:
    """The docstring example: 3,600 s + 900 s on 1 GPU = 1.25 GPU-hours; 2 GPUs double it."""
    warm = Pod("a", Replica(P), 0.0, 0.0)
    later = Pod("b", Replica(P), 1800.0, 1845.0, deleted_at=2700.0)
    early = Pod("c", Replica(P), -30.0, 0.0, deleted_at=10.0)  # oracle pod: clipped at 0
    assert gpu_hours([warm, later], 1, 3600.0) == pytest.approx(1.25)
    assert gpu_hours([warm, later], 2, 3600.0) == pytest.approx(2.5)
    assert gpu_hours([early], 1, 3600.0) == pytest.approx(10 / 3600)


def test_a_fork_runs_on_without_touching_the_original() -> None:
    tr = load_trace(CONV, duration=120, rate_scale=3)
    cfg = SimConfig(P, max_replicas=8)
    sim = FastSim(cfg, KedaQueue(), tr)
    sim.step(60.0)
    assert sim.now == 59.0
    fork = sim.fork()
    fork.run()
    assert fork.done
    assert not sim.done
    assert sim.now == 59.0
    assert np.isnan(sim.ttft).sum() > np.isnan(fork.ttft).sum()
    whole = FastSim(cfg, KedaQueue(), tr).run()
    after = sim.run()
    assert after.summary() == whole.summary()
    assert np.array_equal(after.ttft, whole.ttft)


def test_round_robin_alternates_and_least_loaded_prefers_the_idle_pod() -> None:
    rows = [(0.01 * i, 100, 400) for i in range(10)]
    rr = FastSim(
        SimConfig(P, initial_replicas=2, balancer="round-robin"), Scripted({}), trace_of(rows)
    )
    rr.run()
    assert [p.replica.counters.prompt_tokens for p in rr.pods] == [500, 500]
    # One long request on pod 1, then short ones: least-loaded sends them to pod 2.
    rows = [(0.0, 100, 2000)] + [(1.0 + 0.5 * i, 100, 10) for i in range(6)]
    ll = FastSim(SimConfig(P, initial_replicas=2, lb_sync_s=0), Scripted({}), trace_of(rows))
    ll.run()
    assert [p.replica.counters.prompt_tokens for p in ll.pods] == [100, 600]
    with pytest.raises(ValueError, match="unknown balancer"):
        FastSim(SimConfig(P, balancer="random"), Scripted({}), trace_of(rows))


def test_per_minute_series_cover_the_window() -> None:
    rows = [(float(t), 100, 10) for t in range(0, 120, 2)] + [
        (float(t), 100, 10) for t in range(120, 180)
    ]
    result = FastSim(
        SimConfig(P, initial_replicas=2), FixedReplicas(2), trace_of(rows), 180.0
    ).run()
    m = per_minute(result)
    assert m["t"].tolist() == [0.0, 60.0, 120.0]
    assert m["load"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert m["replicas"].tolist() == [2.0, 2.0, 2.0]
    assert np.all(m["ttft_p99"] < 0.1)
