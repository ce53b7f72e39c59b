"""What the scaling loop keeps from one tick to the next so that a tick over thousands of
InferenceServices stays cheap: the bound metric children (same series, same values as
``labels().set()``), the target and pod lists re-read only for replaced objects, and decision
records rendered as JSON only when asked for."""

from __future__ import annotations

import copy
import dataclasses

from prometheus_client import CollectorRegistry

from autoscaler.decisions import Decider, TargetMetrics, observe
from autoscaler.targets import PodIndex, TargetIndex, pod_targets, targets
from autoscaler.telemetry import Telemetry
from policies.signals import PodSignals, Sample, TargetKey, TargetSignals
from tests.unit.test_scaling_loop import World, isvc, pod

KEY = TargetKey("ns", "a")


def value(w: World, name: str, **labels: str) -> float | None:
    registry: CollectorRegistry = w.loop.telemetry.registry
    return registry.get_sample_value(name, {"namespace": "ns", "isvc": "a", **labels})


async def test_own_series_follow_every_decision_and_go_with_the_target() -> None:
    w = World(isvc("a"))
    w.deploy("a", 1)
    w.source.queue["a"] = 8
    await w.tick()  # 1 -> 2
    assert value(w, "llm_autoscaler_desired_replicas") == 2
    assert value(w, "llm_autoscaler_current_replicas") == 1
    assert value(w, "llm_autoscaler_ready_replicas") == 1
    assert (value(w, "llm_autoscaler_min_replicas"), value(w, "llm_autoscaler_max_replicas")) == (
        1,
        10,
    )
    assert value(w, "llm_autoscaler_signal_observed", signal="queue_depth") == 8
    assert value(w, "llm_autoscaler_signal_target", signal="queue_depth") == 5
    w.source.queue["a"] = 5
    for _ in range(3):
        await w.tick()
    assert value(w, "llm_autoscaler_current_replicas") == 2
    assert value(w, "llm_autoscaler_ready_replicas") == 2
    assert value(w, "llm_autoscaler_signal_observed", signal="queue_depth") == 5  # per pod
    up = {"rule": "scale-up", "direction": "up"}
    steady = {"rule": "steady", "direction": "none"}
    assert value(w, "llm_autoscaler_decisions_total", **up) == 1
    assert value(w, "llm_autoscaler_decisions_total", **steady) == 3
    w.isvcs = []
    await w.tick()
    assert value(w, "llm_autoscaler_desired_replicas") is None  # forgotten with the target
    assert value(w, "llm_autoscaler_signal_observed", signal="queue_depth") is None
    assert value(w, "llm_autoscaler_decisions_total", **steady) == 3  # counters stay
    w.isvcs = [isvc("a")]
    await w.tick()
    assert value(w, "llm_autoscaler_desired_replicas") == 2  # and back, bound anew
    assert value(w, "llm_autoscaler_decisions_total", **steady) == 4


def test_bound_children_export_what_labels_would() -> None:
    now = 1_800_000_000.0
    signals = TargetSignals(
        KEY,
        tuple(
            PodSignals("ns", f"a-{i}", True, queue_depth=Sample(q, now), running=Sample(3, now))
            for i, q in enumerate((9.0, 7.0))
        ),
    )
    decider = Decider()
    spec, errors = decider.resolve(isvc("a"))
    assert not errors
    record, _ = decider.decide(signals, spec, None, now, 2, snapshot_available=True)
    plain, bound = Telemetry(), Telemetry()
    metrics = TargetMetrics(bound, KEY)
    for _ in range(2):
        observe(plain, KEY, record, 2, signals)
        observe(bound, KEY, record, 2, signals, metrics)

    def samples(t: Telemetry) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (s.name, sorted(s.labels.items()), s.value)
            for m in t.registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        )

    assert samples(bound) == samples(plain)


def test_record_json_is_built_when_read() -> None:
    now = 1_800_000_000.0
    signals = TargetSignals(KEY, (PodSignals("ns", "a-0", True, queue_depth=Sample(8, now)),))
    decider = Decider()
    spec, _ = decider.resolve(isvc("a"))
    record, _ = decider.decide(signals, spec, None, now, 1, snapshot_available=True)
    decision = record.decision
    d = record.to_json()
    assert list(d) == [
        *("at", "key", "current", "desired", "rule", "reason", "inputs", "proposals", "winner"),
        *("direction", "time"),
    ]
    assert d == {
        "at": now,
        "key": "ns/a",
        "current": 1,
        "desired": decision.desired_replicas,
        "rule": str(decision.rule),
        "reason": decision.reason,
        "inputs": dict(decision.inputs),
        "proposals": [dataclasses.asdict(p) for p in decision.proposals],
        "winner": decision.winner,
        "direction": decision.direction,
        "time": "2027-01-15T08:00:00Z",
    }
    assert record.summary == f"{decision.rule}: {decision.desired_replicas} replicas"


def test_resolved_specs_follow_annotations_changed_in_place() -> None:
    decider = Decider()
    obj = isvc("a")
    assert decider.resolve(obj)[1] == []
    obj["metadata"]["annotations"]["llm-autoscaler.io/target-queue-depth"] = "lots"
    assert decider.resolve(obj)[1]  # re-resolved: the fingerprint is a copy, not the dict
    obj["metadata"]["annotations"]["llm-autoscaler.io/target-queue-depth"] = "4"
    spec, errors = decider.resolve(obj)
    assert errors == []
    assert spec is not None
    assert spec.targets["queue_depth"] == 4.0


def test_indexes_reread_only_replaced_objects() -> None:
    a, b = isvc("a"), isvc("b")
    index = TargetIndex()
    first = index.update([b, a])
    assert [t.key.name for t in first] == ["a", "b"]  # sorted
    assert [t.key.name for t in targets([b, a])] == ["a", "b"]
    again = index.update([a, b])
    assert [x is y for x, y in zip(first, again, strict=True)] == [True, True]
    a2 = copy.deepcopy(a)
    a2["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = "hpa"
    assert [t.key.name for t in index.update([a2, b])] == ["b"]  # the replaced object, re-read
    assert index.update([a2, b])[0] is again[1]

    wanted = index.update([a, b])
    pods = [pod("a", 0), pod("b", 0)]
    pi = PodIndex()
    got = pi.update(pods, wanted)
    assert got == pod_targets(pods, wanted)
    assert [x is y for x, y in zip(got, pi.update(pods, wanted), strict=True)] == [True, True]
    leaving = copy.deepcopy(pods[0])
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    assert [p.pod for p in pi.update([leaving, pods[1]], wanted)] == ["b-0"]
    assert [p.pod for p in pi.update(pods, wanted[1:])] == ["b-0"]  # a no longer wanted
    assert [p.pod for p in pi.update(pods, wanted)] == ["a-0", "b-0"]
