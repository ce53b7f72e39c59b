"""Baselines as they behave by default, on constructed snapshots: the HPA's replica
calculator, stabilization and rate limits (anchors §1), KEDA's AverageValue queue trigger
(§2) and Knative's KPA panic and stable modes (§4)."""

from __future__ import annotations

import pytest

from autoscaler.sim.baselines import (
    HpaBehavior,
    HpaGpu,
    KedaQueue,
    KpaConcurrency,
    hpa_external_average_replicas,
    hpa_pods_metric_replicas,
)
from policies.signals import MetricsSnapshot, PodSignals, Sample, TargetKey, TargetSignals

KEY = TargetKey("ns", "isvc")


def pod(
    i: int,
    now: float,
    *,
    ready: bool = True,
    phase: str = "Running",
    queue: float | None = None,
    running: float | None = None,
    util: float | None = None,
) -> PodSignals:
    def s(v: float | None) -> Sample | None:
        return None if v is None else Sample(v, now)

    return PodSignals(
        "ns",
        f"p{i}",
        ready=ready,
        phase=phase,
        queue_depth=s(queue),
        running=s(running),
        gpu_utilization=s(util),
    )


def snap(now: float, pods: list[PodSignals]) -> MetricsSnapshot:
    return MetricsSnapshot(now, targets={KEY: TargetSignals(KEY, tuple(pods))})


def queue_snap(now: float, replicas: int, total_waiting: float) -> MetricsSnapshot:
    per = total_waiting / replicas
    return snap(now, [pod(i, now, queue=per, running=1.0) for i in range(replicas)])


def test_hpa_calculator_counts_a_starting_running_pod_at_zero() -> None:
    """Non-CPU Pods metric: a Running-but-unready pod with a value is a pod like any other."""
    values = [(pod(0, 0, util=100), 100.0), (pod(1, 0, util=100), 100.0)]
    values.append((pod(2, 0, ready=False, util=0), 0.0))
    assert hpa_pods_metric_replicas(values, 80.0, 0.1) == 3  # ratio 0.83 → ceil(2.5): hold


def test_hpa_calculator_drops_a_scale_up_that_pending_pods_would_reverse() -> None:
    values: list[tuple[PodSignals, float | None]] = [
        (pod(0, 0, util=100), 100.0),
        (pod(1, 0, util=100), 100.0),
        (pod(2, 0, ready=False, phase="Pending"), None),
    ]
    assert hpa_pods_metric_replicas(values, 80.0, 0.1) is None  # 1.25 → 0.83 flips: no change
    hot: list[tuple[PodSignals, float | None]] = [(p, 200.0) for p, _ in values[:2]]
    hot.append(values[2])
    assert hpa_pods_metric_replicas(hot, 80.0, 0.1) == 5  # (200+200+0)/3/80 = 1.67 → 5


def test_hpa_calculator_counts_missing_pods_as_the_target_on_scale_down() -> None:
    values = [(pod(0, 0, util=40), 40.0), (pod(1, 0, util=40), 40.0), (pod(2, 0), None)]
    assert hpa_pods_metric_replicas(values, 80.0, 0.1) == 2  # (40+40+80)/3/80 → ceil(2.0)
    assert hpa_pods_metric_replicas([(pod(0, 0), None)], 80.0, 0.1) is None  # no metrics


def test_hpa_external_average_value() -> None:
    assert hpa_external_average_replicas(23, 5, 2, 0.1) == 5
    assert hpa_external_average_replicas(10.4, 5, 2, 0.1) == 2  # ratio 1.04: inside tolerance
    assert hpa_external_average_replicas(0, 5, 4, 0.1) == 0  # the floor is minReplicas


def test_hpa_scales_up_at_most_max_4_pods_or_100_percent_per_15_s() -> None:
    keda = KedaQueue()
    assert keda.decide(queue_snap(0, 2, 500), KEY, 0.0, 2) == 6  # wants 100: max(2+4, 2×2)
    assert keda.decide(queue_snap(5, 6, 500), KEY, 5.0, 6) == 6  # between syncs: no change
    assert keda.decide(queue_snap(15, 6, 500), KEY, 15.0, 6) == 12  # max(6+4, 6×2)
    assert keda.decide(queue_snap(30, 12, 500), KEY, 30.0, 12) == 24


def test_keda_hpa_does_not_scale_down_before_the_300_s_window() -> None:
    keda = KedaQueue()
    assert keda.decide(queue_snap(0, 4, 40), KEY, 0.0, 4) == 8
    for t in range(15, 300, 15):
        assert keda.decide(queue_snap(t, 8, 0), KEY, float(t), 8) == 8, t
    assert keda.decide(queue_snap(300, 8, 0), KEY, 300.0, 8) == 0  # clamped to min outside


def test_hpa_initial_window_holds_the_starting_replicas() -> None:
    """maybeInitScaleDownStabilizationWindow: a new HPA does not drop the current count."""
    behavior = HpaBehavior()
    assert behavior.normalize(1, 3, 0.0) == 3
    assert behavior.normalize(1, 3, 299.0) == 3
    assert behavior.normalize(1, 3, 300.0) == 1


def test_hpa_gpu_scales_on_average_utilization_every_15_s() -> None:
    hpa = HpaGpu()
    hot = snap(0, [pod(i, 0, util=100.0) for i in range(2)])
    assert hpa.decide(hot, KEY, 0.0, 2) == 3  # 100/80 → ceil(1.25 × 2)
    assert hpa.decide(hot, KEY, 10.0, 3) == 3  # next sync at 15 s
    calm = snap(15, [pod(i, 15, util=75.0) for i in range(3)])
    assert hpa.decide(calm, KEY, 15.0, 3) == 3  # 75/80 inside tolerance


def kpa_snap(now: float, ready: int, total: float) -> MetricsSnapshot:
    per = total / ready
    return snap(now, [pod(i, now, queue=0.0, running=per) for i in range(ready)])


def test_kpa_starts_in_panic_and_holds_the_scale_for_a_stable_window() -> None:
    kpa = KpaConcurrency()
    replicas = 6
    for t in range(0, 62):
        replicas = kpa.decide(kpa_snap(t, replicas, 10.0), KEY, float(t), replicas)
        assert replicas == 6, t
    # Out of panic: the stable proposal (1) is clamped to halving per 2 s tick.
    seen = []
    for t in range(62, 70):
        replicas = kpa.decide(kpa_snap(t, replicas, 10.0), KEY, float(t), replicas)
        seen.append(replicas)
    assert seen[:4] == [3, 3, 1, 1]


def test_kpa_panics_on_a_burst_and_never_scales_down_while_panicking() -> None:
    kpa = KpaConcurrency()
    replicas = 1
    for t in range(0, 120):  # past the initial panic, steady at one pod's target
        replicas = kpa.decide(kpa_snap(t, 1, 60.0), KEY, float(t), replicas)
    assert replicas == 1
    for t in range(120, 130):  # 10× the target concurrency on one ready pod
        replicas = kpa.decide(kpa_snap(t, 1, 700.0), KEY, float(t), replicas)
    assert replicas == 10  # the 6 s panic window, not the 60 s stable one (≈ 3)
    for t in range(130, 190):  # back to calm: panic holds for 60 s after the last burst
        replicas = kpa.decide(kpa_snap(t, 1, 60.0), KEY, float(t), replicas)
        assert replicas == 10, t


@pytest.mark.parametrize("scaler", [HpaGpu(), KedaQueue(), KpaConcurrency()])
def test_baselines_declare_their_default_pipelines(
    scaler: HpaGpu | KedaQueue | KpaConcurrency,
) -> None:
    expected = {"hpa-gpu": 15.0, "keda-queue": 15.0, "kpa-concurrency": 1.0}
    assert scaler.scrape_interval_s == expected[scaler.name]
    assert scaler.prescient is False
