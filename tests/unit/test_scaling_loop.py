"""The scaling loop with fakes at our seams (source, scale client, event sink, annotator).

The real Kubernetes writes are covered end to end in ``tests/e2e/test_scaling.py``; here each
test is one loop behaviour: act only on change, one Event per change, invalid specs reported
and left alone, foreign scalers detected and not fought, slow targets isolated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from adapters.kube import Scale, ScaleConflictError
from adapters.source import PodTarget
from autoscaler.decisions import Decider
from autoscaler.scaling import DECISION_ANNOTATION, ScalingLoop
from autoscaler.telemetry import Telemetry
from policies.signals import MetricsSnapshot, PodSignals, Sample, TargetKey, TargetSignals


def isvc(name: str, **ann: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": 1,
            "annotations": {"serving.kserve.io/autoscalerClass": "external", **ann},
        },
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 10}},
    }


def pod(isvc_name: str, i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{isvc_name}-{i}",
            "namespace": "ns",
            "labels": {"serving.kserve.io/inferenceservice": isvc_name},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.0.0.{i}",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class FakeSource:
    """Every ready pod reports ``queue`` (per ISVC name) and KV 0.1, stamped now."""

    name = "fake"

    def __init__(self) -> None:
        self.queue: dict[str, float] = {}
        self.available = True

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        if not self.available:
            return MetricsSnapshot.unavailable(now, "connection refused", "fake")
        out: dict[TargetKey, TargetSignals] = {}
        for t in targets:
            sig = out.setdefault(t.isvc, TargetSignals(t.isvc))
            p = PodSignals(
                t.namespace,
                t.pod,
                t.ready,
                t.phase,
                t.created_at,
                queue_depth=Sample(self.queue.get(t.isvc.name, 0.0), now),
                kv_cache_usage=Sample(0.1, now),
            )
            out[t.isvc] = TargetSignals(t.isvc, (*sig.pods, p))
        return MetricsSnapshot(now, targets=out, source="fake")


class FakeScaler:
    def __init__(self) -> None:
        self.replicas: dict[str, int] = {}
        self.version = 0
        self.writes: list[tuple[str, int]] = []
        self.conflict_once = False
        self.slow: set[str] = set()

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        if name.removesuffix("-predictor") in self.slow:
            await asyncio.sleep(10)
        if name not in self.replicas:
            return None
        return Scale(self.replicas[name], self.replicas[name], str(self.version))

    async def set_replicas(self, namespace: str, name: str, replicas: int, expect: Scale) -> Scale:
        if name.removesuffix("-predictor") in self.slow:
            await asyncio.sleep(10)
        if self.conflict_once:
            self.conflict_once = False
            raise ScaleConflictError(name)
        self.replicas[name] = replicas
        self.version += 1
        self.writes.append((name, replicas))
        return Scale(replicas, replicas, str(self.version))


class CachedFakeScaler(FakeScaler):
    """Reads answered at once from a cache, as the service's ``CachedScaler``: the loop then
    decides every target inline and only its API writes are concurrent (and slow ones are the
    writes)."""

    def peek(self, namespace: str, name: str) -> Scale | None:
        if name not in self.replicas:
            return None
        return Scale(self.replicas[name], self.replicas[name], str(self.version))

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        raise AssertionError("a cached scaler is read with peek()")

    def synced(self) -> bool:
        return True


SCALER = {"api-reads": FakeScaler, "cache-reads": CachedFakeScaler}
_scaler_kind = ["api-reads"]


@pytest.fixture(autouse=True, params=sorted(SCALER))
def scaler_kind(request: pytest.FixtureRequest) -> str:
    """Every test runs with scale reads through the API (a task per target) and from the
    Deployment cache (inline decisions, tasks only for the writes)."""
    _scaler_kind[0] = request.param
    return str(request.param)


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def record(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))

    def reasons(self, name: str) -> list[str]:
        return [r for n, r, _ in self.events if n == name]


class FakeAnnotator:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def annotate(self, namespace: str, name: str, value: str) -> None:
        self.values[name] = value


class World:
    def __init__(self, *isvcs: dict[str, Any]) -> None:
        self.isvcs = list(isvcs)
        self.pods: list[dict[str, Any]] = []
        self.source, self.scaler = FakeSource(), SCALER[_scaler_kind[0]]()
        self.recorder, self.annotator = FakeRecorder(), FakeAnnotator()
        self.now = 1_800_000_000.0
        self.loop = ScalingLoop(
            isvcs=lambda: self.isvcs,
            pods=lambda: self.pods,
            source=self.source,
            scaler=self.scaler,
            recorder=self.recorder,
            annotator=self.annotator,  # type: ignore[arg-type]
            decider=Decider(),
            telemetry=Telemetry(),
            target_timeout=0.5,
            clock=lambda: self.now,
        )

    def deploy(self, name: str, replicas: int) -> None:
        self.scaler.replicas[f"{name}-predictor"] = replicas
        self.pods = [
            p
            for p in self.pods
            if p["metadata"]["labels"]["serving.kserve.io/inferenceservice"] != name
        ]
        self.pods += [pod(name, i) for i in range(replicas)]

    async def tick(self, seconds: float = 1.0) -> None:
        await self.loop.tick()
        self.now += seconds
        for key, n in list(self.scaler.replicas.items()):  # pods follow the scale at once
            name = key.removesuffix("-predictor")
            if (
                len(
                    [
                        p
                        for p in self.pods
                        if p["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == name
                    ]
                )
                != n
            ):
                self.deploy(name, n)


async def test_scales_up_once_with_one_event_and_the_decision_annotation() -> None:
    w = World(isvc("a"))
    w.deploy("a", 1)
    w.source.queue["a"] = 8
    await w.tick()
    assert w.scaler.writes == [("a-predictor", 2)]
    assert w.recorder.reasons("a") == ["ScaledUp"]
    assert (
        "1 → 2 replicas (scale-up): kv_cache_usage 0.1/0.8 → 1; queue_depth 8/5 → 2"
        in w.recorder.events[0][2]
    )
    assert w.annotator.values["a"] == "scale-up: 2 replicas"
    w.source.queue["a"] = 5
    for _ in range(5):
        await w.tick()
    assert len(w.scaler.writes) == 1  # nothing changed: nothing written
    history = w.loop.history(TargetKey("ns", "a"))
    assert [r.rule for r in history] == ["scale-up", "steady"]  # 5 steady ticks, one record
    assert history[-1].to_json()["rule"] == "steady"
    assert DECISION_ANNOTATION.startswith("status.")


async def test_invalid_spec_is_reported_once_and_replicas_left_alone() -> None:
    w = World(isvc("bad", **{"llm-autoscaler.io/target-queue-depth": "lots"}), isvc("good"))
    w.deploy("bad", 2)
    w.deploy("good", 1)
    w.source.queue.update(bad=50, good=12)
    for _ in range(3):
        await w.tick()
    assert w.scaler.replicas["bad-predictor"] == 2
    assert w.recorder.reasons("bad") == ["InvalidScalingSpec"]
    assert "not a number" in w.recorder.events[0][2]
    assert w.annotator.values["bad"].startswith("invalid-spec:")
    assert w.scaler.replicas["good-predictor"] > 1  # the other ISVC is unaffected


async def test_unavailable_metrics_never_scale() -> None:
    w = World(isvc("a"))
    w.deploy("a", 4)
    w.source.available = False
    for _ in range(10):
        await w.tick(30)
    assert w.scaler.writes == []
    assert w.loop.history(TargetKey("ns", "a"))[-1].rule == "frozen-no-data"


async def test_foreign_change_is_adopted_and_a_persistent_one_is_not_fought() -> None:
    w = World(isvc("a"))
    w.deploy("a", 1)
    w.source.queue["a"] = 12
    await w.tick()
    assert w.scaler.replicas["a-predictor"] == 3
    for n in (7, 2, 8):  # somebody else keeps writing
        w.deploy("a", n)
        await w.tick()
    reasons = w.recorder.reasons("a")
    assert "ScaledExternally" in reasons
    assert reasons.count("ScalerConflict") == 1
    writes = len(w.scaler.writes)
    for _ in range(5):
        await w.tick()
    assert len(w.scaler.writes) == writes  # holding while the other writer is active


async def test_scale_conflict_is_retried_next_tick() -> None:
    w = World(isvc("a"))
    w.deploy("a", 1)
    w.source.queue["a"] = 12
    w.scaler.conflict_once = True
    await w.tick()
    assert w.scaler.writes == []
    await w.tick()
    assert w.scaler.writes == [("a-predictor", 3)]


async def test_a_slow_target_does_not_delay_the_others() -> None:
    w = World(isvc("slow"), isvc("fast"))
    w.deploy("slow", 1)
    w.deploy("fast", 1)
    w.scaler.slow.add("slow")
    w.source.queue.update(slow=12, fast=12)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await w.tick()
    assert loop.time() - t0 < 2.0
    assert w.scaler.replicas == {"slow-predictor": 1, "fast-predictor": 3}


async def test_targets_without_a_predictor_yet_are_skipped_and_gone_ones_forgotten() -> None:
    w = World(isvc("new"))
    await w.tick()
    assert w.scaler.writes == []
    w.deploy("new", 1)
    await w.tick()
    assert TargetKey("ns", "new") in w.loop.state
    w.isvcs = []
    await w.tick()
    assert w.loop.state == {}


@pytest.mark.parametrize("cls", ["hpa", "none", "keda"])
async def test_other_autoscaler_classes_are_not_scaled(cls: str) -> None:
    obj = isvc("a")
    obj["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = cls
    w = World(obj)
    w.deploy("a", 1)
    w.source.queue["a"] = 50
    await w.tick()
    assert w.scaler.writes == []


def test_scaling_annotations_never_reach_the_pod_template() -> None:
    """The decision annotation changes at run time: copied to pods it would roll them all."""
    from autoscaler.reconciler import Settings as ReconcilerSettings
    from autoscaler.reconciler import plan

    obj = isvc(
        "a",
        **{
            DECISION_ANNOTATION: "panic: 3 replicas",
            "llm-autoscaler.io/target-queue-depth": "4",
            "team": "search",
        },
    )
    obj["spec"]["predictor"]["model"] = {"modelFormat": {"name": "vLLM"}, "storageUri": "hf://x/y"}
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": "vllm"},
        "spec": {
            "supportedModelFormats": [{"name": "vLLM", "autoSelect": True}],
            "containers": [{"name": "kserve-container", "image": "vllm/vllm-openai"}],
        },
    }
    p = plan(obj, [], [runtime], ReconcilerSettings())
    assert p.failure is None, p.failure
    deployment = next(o for o in p.objects if o["kind"] == "Deployment")
    pod_ann = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert pod_ann.get("team") == "search"
    assert not [k for k in pod_ann if "llm-autoscaler.io/" in k]
