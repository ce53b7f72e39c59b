"""The snapshot cache, its refresher, and the standalone runner's pure parts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.source import PodTarget, StaticSource
from autoscaler.metrics_api.__main__ import parse_args
from autoscaler.metrics_api.cache import Refresher, SnapshotCache
from autoscaler.metrics_api.runner import labels_of, predictor_pods
from policies.signals import MetricsSnapshot, Signal, TargetKey

KEY = TargetKey("ns", "llama")
PODS = [PodTarget(KEY, "ns", "p-1")]


async def test_refresher_publishes_each_tick() -> None:
    cache = SnapshotCache()
    source = StaticSource({("ns", "p-1"): {Signal.QUEUE_DEPTH: 4.0}})
    r = Refresher(
        source, lambda: PODS, cache, clock=lambda: 100.0, labels=lambda: {KEY: {"a": "b"}}
    )
    assert cache.latest() is None
    snap = await r.tick()
    assert cache.latest() is snap
    assert snap.targets[KEY].pods[0].queue_depth is not None
    assert cache.labels() == {KEY: {"a": "b"}}
    assert source.calls == [(tuple(PODS), 100.0)]


class Broken:
    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        if self.hang:
            await asyncio.sleep(10)
        raise RuntimeError("bug in a source")


@pytest.mark.parametrize("hang", [False, True], ids=["raises", "hangs"])
async def test_a_failing_source_publishes_unavailable_not_old_values(hang: bool) -> None:
    cache = SnapshotCache()
    await Refresher(
        StaticSource({("ns", "p-1"): {Signal.QUEUE_DEPTH: 4.0}}), lambda: PODS, cache
    ).tick()
    snap = await Refresher(
        Broken(hang), lambda: PODS, cache, timeout=0.05, clock=lambda: 5.0
    ).tick()
    assert cache.latest() is snap
    assert not snap.available
    assert snap.targets == {}
    assert snap.error


async def test_run_ticks_until_cancelled() -> None:
    source = StaticSource()
    task = asyncio.get_running_loop().create_task(
        Refresher(source, lambda: PODS, SnapshotCache(), interval=0.01).run()
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(source.calls) >= 3


def raw_pod(
    name: str,
    ns: str = "ns",
    isvc: str | None = "llama",
    phase: str = "Running",
    deleting: bool = False,
) -> dict[str, object]:
    md: dict[str, object] = {
        "name": name,
        "namespace": ns,
        "labels": {"serving.kserve.io/inferenceservice": isvc} if isvc else {},
    }
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": md,
        "status": {
            "phase": phase,
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_predictor_pods_are_grouped_by_their_label() -> None:
    pods = [
        raw_pod("a"),
        raw_pod("b", ns="other", isvc="qwen"),
        raw_pod("c", isvc=None),
        raw_pod("d", phase="Succeeded"),
        raw_pod("e", deleting=True),
    ]
    got = predictor_pods(pods)
    assert [(t.isvc, t.pod, t.ready, t.metrics_url()) for t in got] == [
        (KEY, "a", True, "http://10.0.0.1:8080/metrics"),
        (TargetKey("other", "qwen"), "b", True, "http://10.0.0.1:8080/metrics"),
    ]
    assert [t.pod for t in predictor_pods(pods, namespaces=("other",))] == ["b"]


def test_labels_of_inferenceservices() -> None:
    isvc = {"metadata": {"name": "llama", "namespace": "ns", "labels": {"team": "a"}}}
    assert labels_of([isvc]) == {KEY: {"team": "a"}}


def test_command_line() -> None:
    opts = parse_args(
        ["--source=direct", "--port=7443", "--self-signed-host=x.svc", "--namespace=a"]
    )
    assert (opts.source, opts.port, opts.self_signed_hosts, opts.namespaces) == (
        "direct",
        7443,
        ("x.svc",),
        ("a",),
    )
    with pytest.raises(SystemExit):
        parse_args(["--source=prometheus"])
    with pytest.raises(SystemExit):
        parse_args(["--source=direct", "--tls-cert-file=a"])
