"""The scale read from a Deployment cache, written through the API: a fake API server whose
cache lags behind on demand (``Cluster.sync``), and the scaling loop on top of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.informer import Informer
from adapters.kube import CachedScaler, Scale, ScaleConflictError, deployment_scale, slim_deployment
from autoscaler.decisions import Decider
from autoscaler.scaling import ScalingLoop
from autoscaler.telemetry import Telemetry
from tests.unit.test_scaling_loop import FakeAnnotator, FakeRecorder, FakeSource, isvc, pod

JSON = dict[str, Any]


def deployment(name: str, replicas: int | None, rv: int, ns: str = "ns") -> JSON:
    spec: JSON = {"template": {"spec": {"containers": [{"name": "kserve-container"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": str(rv),
            "labels": {"serving.kserve.io/inferenceservice": name.removesuffix("-predictor")},
            "managedFields": [{"manager": "kube-controller-manager"}],
        },
        "spec": spec,
        "status": {"replicas": replicas or 0, "readyReplicas": replicas or 0},
    }


class Cluster:
    """The API server (``server``, versioned, 409 on a stale write) and an informer cache of it
    that only catches up on ``sync()``."""

    def __init__(self) -> None:
        self.rv = 100
        self.server: dict[tuple[str, str], JSON] = {}
        self.cache: dict[tuple[str, str], JSON] = {}
        self.gets = 0
        self.writes: list[tuple[str, int, str]] = []

    def put(self, name: str, replicas: int, ns: str = "ns") -> None:
        """Somebody (us through the writer, or anyone else) changes ``spec.replicas``."""
        self.rv += 1
        self.server[(ns, name)] = deployment(name, replicas, self.rv, ns)

    def sync(self) -> None:
        self.cache = copy.deepcopy(self.server)

    def lookup(self, ns: str, name: str) -> JSON | None:
        return self.cache.get((ns, name))

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        self.gets += 1
        obj = self.server.get((namespace, name))
        return None if obj is None else deployment_scale(obj)

    async def set_replicas(self, namespace: str, name: str, replicas: int, expect: Scale) -> Scale:
        current = self.server[(namespace, name)]
        if current["metadata"]["resourceVersion"] != expect.resource_version:
            raise ScaleConflictError(name)
        self.put(name, replicas, namespace)
        self.writes.append((name, replicas, expect.resource_version))
        return deployment_scale(self.server[(namespace, name)])


def cached(cluster: Cluster, synced: bool = True) -> CachedScaler:
    return CachedScaler(cluster.lookup, cluster, synced=lambda: synced)


# ---------------------------------------------------------------- Scale of a Deployment


def test_scale_of_a_deployment_and_its_defaults() -> None:
    assert deployment_scale(deployment("a", 3, 7)) == Scale(3, 3, "7")
    assert deployment_scale(deployment("a", 0, 7)) == Scale(0, 0, "7")
    # spec.replicas absent: the API server's default of 1; status absent: none running yet
    assert deployment_scale({"metadata": {"resourceVersion": "9"}, "spec": {}}) == Scale(1, 0, "9")


def test_slim_deployment_keeps_what_the_scale_and_the_cache_key_need() -> None:
    full = deployment("a-predictor", 4, 12)
    slim = slim_deployment(full)
    assert deployment_scale(slim) == deployment_scale(full)
    assert slim["metadata"] == {
        "name": "a-predictor",
        "namespace": "ns",
        "uid": "uid-a-predictor",
        "resourceVersion": "12",
    }
    assert "template" not in slim["spec"]
    absent = slim_deployment(deployment("a-predictor", None, 13))
    assert deployment_scale(absent) == Scale(1, 0, "13")


def test_informer_transform_applies_to_lists_and_watch_events() -> None:
    async def no_api(*_: Any, **__: Any) -> Any:
        raise AssertionError("not called")

    seen: list[JSON] = []
    inf = Informer(
        no_api, name="d", transform=slim_deployment, on_event=lambda _k, o: seen.append(o)
    )
    inf._apply({"type": "ADDED", "object": deployment("a-predictor", 2, 5)})
    stored = inf.get("ns/a-predictor")
    assert stored is not None
    assert "template" not in stored["spec"]
    assert seen == [stored]
    assert inf.resource_version == "5"
    inf._apply({"type": "DELETED", "object": deployment("a-predictor", 2, 6)})
    assert inf.get("ns/a-predictor") is None


# ---------------------------------------------------------------- reads


async def test_reads_come_from_the_cache_and_a_missing_deployment_is_none() -> None:
    c = Cluster()
    c.put("a-predictor", 2)
    c.sync()
    s = cached(c)
    for _ in range(3):
        assert await s.get_scale("ns", "a-predictor") == Scale(2, 2, "101")
    assert await s.get_scale("ns", "b-predictor") is None
    assert c.gets == 0  # not one API request


async def test_before_the_cache_has_synced_reads_go_to_the_api() -> None:
    c = Cluster()
    c.put("a-predictor", 2)
    s = cached(c, synced=False)
    assert await s.get_scale("ns", "a-predictor") == Scale(2, 2, "101")
    assert c.gets == 1


# ---------------------------------------------------------------- our own writes vs. the cache


async def test_until_the_cache_shows_our_write_reads_give_what_the_write_returned() -> None:
    c = Cluster()
    c.put("a-predictor", 1)
    c.sync()
    s = cached(c)
    before = await s.get_scale("ns", "a-predictor")
    assert before == Scale(1, 1, "101")
    written = await s.set_replicas("ns", "a-predictor", 3, before)
    assert written == Scale(3, 3, "102")
    # the cache still holds version 101: the pre-write scale is not the truth any more
    assert c.cache[("ns", "a-predictor")]["metadata"]["resourceVersion"] == "101"
    assert await s.get_scale("ns", "a-predictor") == written
    assert await s.get_scale("ns", "a-predictor") == written
    c.sync()  # the cache catches up: it is the answer again
    assert await s.get_scale("ns", "a-predictor") == Scale(3, 3, "102")
    c.put("a-predictor", 5)  # a later change by anybody: seen as soon as the cache has it
    c.sync()
    assert await s.get_scale("ns", "a-predictor") == Scale(5, 5, "103")


async def test_a_foreign_change_after_our_write_is_seen_even_if_our_version_never_shows() -> None:
    c = Cluster()
    c.put("a-predictor", 1)
    c.sync()
    s = cached(c)
    await s.set_replicas("ns", "a-predictor", 3, await s.get_scale("ns", "a-predictor"))
    c.put("a-predictor", 7)  # someone else, before the cache delivered our write
    c.sync()  # the cache jumps from 101 straight to 103
    assert await s.get_scale("ns", "a-predictor") == Scale(7, 7, "103")


async def test_writes_on_top_of_a_write_the_cache_has_not_shown_yet() -> None:
    c = Cluster()
    c.put("a-predictor", 1)
    c.sync()
    s = cached(c)
    await s.set_replicas("ns", "a-predictor", 3, await s.get_scale("ns", "a-predictor"))
    second = await s.get_scale("ns", "a-predictor")
    assert second == Scale(3, 3, "102")
    assert await s.set_replicas("ns", "a-predictor", 5, second) == Scale(5, 5, "103")
    assert c.writes == [("a-predictor", 3, "101"), ("a-predictor", 5, "102")]
    # the cache may deliver the versions one by one: neither 101 nor 102 is the truth
    assert await s.get_scale("ns", "a-predictor") == Scale(5, 5, "103")
    c.cache[("ns", "a-predictor")] = deployment("a-predictor", 3, 102)
    assert await s.get_scale("ns", "a-predictor") == Scale(5, 5, "103")
    c.sync()
    assert await s.get_scale("ns", "a-predictor") == Scale(5, 5, "103")


async def test_a_stale_cache_under_a_foreign_change_is_a_conflict() -> None:
    c = Cluster()
    c.put("a-predictor", 1)
    c.sync()
    s = cached(c)
    c.put("a-predictor", 4)  # not in the cache yet
    with pytest.raises(ScaleConflictError):
        await s.set_replicas("ns", "a-predictor", 3, await s.get_scale("ns", "a-predictor"))
    c.sync()
    assert await s.get_scale("ns", "a-predictor") == Scale(4, 4, "102")


async def test_a_deleted_and_recreated_deployment_forgets_our_write() -> None:
    c = Cluster()
    c.put("a-predictor", 1)
    c.sync()
    s = cached(c)
    await s.set_replicas("ns", "a-predictor", 3, await s.get_scale("ns", "a-predictor"))
    del c.server[("ns", "a-predictor")]
    c.sync()
    assert await s.get_scale("ns", "a-predictor") is None
    c.put("a-predictor", 1)
    c.sync()
    assert await s.get_scale("ns", "a-predictor") == Scale(1, 1, "103")


# ---------------------------------------------------------------- the scaling loop on top


class LoopWorld:
    """The scaling loop over a :class:`CachedScaler` whose cache lags by ``lag`` ticks."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.source, self.recorder = FakeSource(), FakeRecorder()
        self.pods: list[JSON] = []
        self.now = 1_800_000_000.0
        self.loop = ScalingLoop(
            isvcs=lambda: [isvc("a")],
            pods=lambda: self.pods,
            source=self.source,
            scaler=cached(self.cluster),
            recorder=self.recorder,
            annotator=FakeAnnotator(),  # type: ignore[arg-type]
            decider=Decider(),
            telemetry=Telemetry(),
            clock=lambda: self.now,
        )

    def replicas(self) -> int:
        return int(self.cluster.server[("ns", "a-predictor")]["spec"]["replicas"])

    async def tick(self, *, sync: bool) -> None:
        await self.loop.tick()
        self.now += 1.0
        self.pods = [pod("a", i) for i in range(self.replicas())]
        if sync:
            self.cluster.sync()


async def test_the_loop_does_not_take_its_own_writes_for_foreign_changes() -> None:
    w = LoopWorld()
    w.cluster.put("a-predictor", 1)
    w.cluster.sync()
    w.pods = [pod("a", 0)]
    w.source.queue["a"] = 12
    for _ in range(5):  # the informer is slow: five ticks before it shows any of our writes
        await w.tick(sync=False)
    # each write went against the version the previous one returned: no 409, no re-read
    assert w.cluster.writes == [
        ("a-predictor", 3, "101"),
        ("a-predictor", 8, "102"),
        ("a-predictor", 10, "103"),
    ]
    # the cache then delivers our versions one by one
    w.cluster.cache[("ns", "a-predictor")] = deployment("a-predictor", 3, 102)
    await w.tick(sync=False)
    w.cluster.cache[("ns", "a-predictor")] = deployment("a-predictor", 8, 103)
    await w.tick(sync=False)
    for _ in range(3):
        await w.tick(sync=True)
    reasons = w.recorder.reasons("a")
    assert "ScaledExternally" not in reasons
    assert "ScalerConflict" not in reasons
    assert reasons.count("ScaledUp") == 3
    assert len(w.cluster.writes) == 3
    assert w.cluster.gets == 0
    # a real foreign change is still detected, from the cache alone
    w.cluster.put("a-predictor", 7)
    w.cluster.sync()
    await w.tick(sync=True)
    assert "ScaledExternally" in w.recorder.reasons("a")
