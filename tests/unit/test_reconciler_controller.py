"""The controller's queue, no-write rule and apply steps, with fakes at our own seams.

:class:`FakeServer` plays the API server behind :class:`adapters.objects.ObjectWriter`: it
stores what is applied into the in-memory informer caches (as a watch would deliver it), adds
server defaults and ``managedFields``, and keeps the replicas a scaler owns, so the controller
sees what it would see on a cluster. The real server-side apply semantics are exercised by
``tests/e2e/test_reconciler.py``.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoscaler.reconciler import drift
from autoscaler.reconciler.caches import Caches
from autoscaler.reconciler.controller import Controller, may_use_runtime
from autoscaler.reconciler.drift import HANDOFF_MANAGER, MANAGER
from autoscaler.reconciler.manifests import bundled_runtimes
from autoscaler.reconciler.workqueue import WorkQueue
from tests.unit.reconciler.helpers import vllm_isvc

JSON = dict[str, Any]
KEY = "llm/llama"


class ApiError(Exception):
    """Shaped like kubernetes-asyncio's ApiException: ``status`` and a JSON ``body``."""

    def __init__(self, status: int, message: str = "boom") -> None:
        super().__init__(message)
        self.status = status
        self.body = f'{{"message": "{message}"}}'
        self.reason = "Error"


def fields_of(obj: object) -> object:
    """A ``fieldsV1``-like set: maps become ``f:`` keys, lists are leaves."""
    if isinstance(obj, dict):
        return {f"f:{k}": fields_of(v) for k, v in obj.items()}
    return {}


@dataclass
class FakeServer:
    caches: Caches
    calls: list[tuple[str, str, str, JSON | None]] = field(default_factory=list)
    fail: dict[tuple[str, str], Exception] = field(default_factory=dict)
    rv: int = 100

    def store(self, kind: str) -> dict[str, JSON]:
        if kind == "InferenceService":
            return self.caches.isvcs.informers[0].store
        return self.caches.for_kind(kind).informers[0].store

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    async def apply(self, obj: JSON, *, field_manager: str, force: bool) -> JSON:
        kind, md = obj["kind"], obj["metadata"]
        self.calls.append(("apply", kind, field_manager, copy.deepcopy(obj)))
        if ("apply", kind) in self.fail:
            raise self.fail[("apply", kind)]
        key = f"{md['namespace']}/{md['name']}"
        live = self.store(kind).get(key)
        entries = list(((live or {}).get("metadata") or {}).get("managedFields") or [])
        if field_manager == HANDOFF_MANAGER:
            assert live is not None
            new = copy.deepcopy(live)
            new["spec"]["replicas"] = obj["spec"]["replicas"]
        else:
            new = copy.deepcopy(obj)
            if kind == "Deployment" and "replicas" not in new["spec"]:
                kept = (live or {}).get("spec", {}).get("replicas")
                owners = {e["manager"] for e in entries if "f:replicas" in str(e)}
                new["spec"]["replicas"] = kept if owners - {MANAGER} else 1
            if kind == "Deployment":  # server defaults the controller must tolerate
                for c in new["spec"]["template"]["spec"]["containers"]:
                    c.setdefault("terminationMessagePath", "/dev/termination-log")
                new["status"] = (live or {}).get("status", {"observedGeneration": 1})
            if kind == "Service":
                new["spec"]["clusterIP"] = "10.0.0.7"
            new["metadata"]["uid"] = (live or {}).get("metadata", {}).get("uid", f"uid-{key}")
        entries = [e for e in entries if e["manager"] != field_manager]
        entries.append({"manager": field_manager, "operation": "Apply", "fieldsV1": fields_of(obj)})
        new["metadata"]["managedFields"] = entries
        new["metadata"]["resourceVersion"] = self._next()
        self.store(kind)[key] = new
        return copy.deepcopy(new)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None
    ) -> None:
        self.calls.append(("delete", kind, name, None))
        self.store(kind).pop(f"{namespace}/{name}", None)

    async def patch_status(self, obj: JSON, status_patch: JSON, *, field_manager: str) -> JSON:
        self.calls.append(("status", obj["kind"], field_manager, copy.deepcopy(status_patch)))
        if ("status", obj["kind"]) in self.fail:
            raise self.fail[("status", obj["kind"])]
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        live = self.store("InferenceService")[key]
        assert obj["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        new = copy.deepcopy(live)
        new["status"] = _merge(new.get("status") or {}, status_patch)
        new["metadata"]["resourceVersion"] = self._next()
        self.store("InferenceService")[key] = new
        return copy.deepcopy(new)

    def writes(self) -> int:
        return len(self.calls)


def _merge(target: JSON, patch: JSON) -> JSON:
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class Events:
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def record(self, obj: JSON, *, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.seen]


@dataclass
class World:
    caches: Caches
    server: FakeServer
    events: Events
    controller: Controller

    def put_isvc(self, isvc: JSON) -> None:
        isvc = copy.deepcopy(isvc)
        isvc["metadata"]["resourceVersion"] = self.server._next()
        self.caches.isvcs.informers[0].store[KEY] = isvc

    def isvc(self) -> JSON:
        return self.caches.isvcs.informers[0].store[KEY]

    def edit(self, change: Any) -> None:
        isvc = copy.deepcopy(self.isvc())
        change(isvc)
        self.put_isvc(isvc)

    def live(self, kind: str, name: str = "llama-predictor") -> JSON | None:
        return self.server.store(kind).get(f"llm/{name}")

    def must(self, kind: str) -> JSON:
        found = self.live(kind)
        assert found is not None, f"no {kind}"
        return found


@pytest.fixture
def world() -> World:
    caches = Caches.in_memory()
    for runtime in bundled_runtimes():
        caches.cluster_runtimes.informers[0].store[runtime["metadata"]["name"]] = runtime
    server, events = FakeServer(caches), Events()
    controller = Controller(None, caches=caches, writer=server, recorder=events)
    return World(caches, server, events, controller)


def external(**predictor: Any) -> JSON:
    isvc = vllm_isvc(**predictor)
    isvc["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "external"}
    return isvc


def condition(isvc: JSON, kind: str) -> JSON:
    return next(c for c in isvc["status"]["conditions"] if c["type"] == kind)


# ---------------------------------------------------------------- the no-write rule


async def test_an_unchanged_isvc_reconciled_100_times_makes_no_write(world: World) -> None:
    world.put_isvc(external(minReplicas=2))
    first = await world.controller.reconcile(KEY)
    assert first.writes == 4  # Deployment, its replicas hand-off, Service, status
    assert world.live("Deployment") is not None
    assert world.live("Service") is not None
    before = world.server.writes()
    outcomes = [await world.controller.reconcile(KEY) for _ in range(100)]
    assert [o.writes for o in outcomes] == [0] * 100
    assert world.server.writes() == before
    assert world.events.reasons().count("Created") == 2


async def test_a_changed_isvc_is_applied_once_then_quiet(world: World) -> None:
    world.put_isvc(external())
    await world.controller.reconcile(KEY)
    world.edit(lambda i: i["spec"]["predictor"]["model"].update(args=["--max-model-len=4096"]))
    changed = await world.controller.reconcile(KEY)
    assert [(verb, kind) for verb, kind, _, _ in world.server.calls[-changed.writes :]] == [
        ("apply", "Deployment")
    ]
    assert "Updated" in world.events.reasons()
    assert (await world.controller.reconcile(KEY)).writes == 0


async def test_removing_a_label_is_applied_although_the_live_object_contains_the_rest(
    world: World,
) -> None:
    """Containment alone cannot see a field we stop setting; the hash annotation does."""
    isvc = external()
    isvc["metadata"]["labels"] = {"team": "a"}
    world.put_isvc(isvc)
    await world.controller.reconcile(KEY)
    world.edit(lambda i: i["metadata"].pop("labels"))
    assert (await world.controller.reconcile(KEY)).writes == 2  # Deployment and Service


async def test_drift_in_a_managed_field_is_reverted(world: World) -> None:
    world.put_isvc(external())
    await world.controller.reconcile(KEY)
    live = world.live("Deployment")
    assert live is not None
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:1"
    outcome = await world.controller.reconcile(KEY)
    assert outcome.writes == 1
    image = world.must("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "vllm/vllm-openai-cpu:latest"  # no GPU requested: the CPU build


# ---------------------------------------------------------------- replicas and classes


async def test_external_never_applies_replicas_after_creation(world: World) -> None:
    world.put_isvc(external(minReplicas=2))
    await world.controller.reconcile(KEY)
    world.must("Deployment")["spec"]["replicas"] = 5  # the scaler
    world.edit(lambda i: i["spec"]["predictor"].update(minReplicas=3))
    world.edit(lambda i: i["spec"]["predictor"]["model"].update(args=["--x"]))
    await world.controller.reconcile(KEY)
    deployment_applies = [
        (manager, body) for verb, kind, manager, body in world.server.calls if kind == "Deployment"
    ]
    with_replicas = [
        (m, b["spec"]["replicas"]) for m, b in deployment_applies if b and "replicas" in b["spec"]
    ]
    assert with_replicas == [(MANAGER, 2), (HANDOFF_MANAGER, 2)]
    assert world.must("Deployment")["spec"]["replicas"] == 5


async def test_class_none_pins_replicas_to_min_replicas(world: World) -> None:
    isvc = vllm_isvc(minReplicas=2)
    isvc["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "none"}
    world.put_isvc(isvc)
    await world.controller.reconcile(KEY)
    world.must("Deployment")["spec"]["replicas"] = 7
    assert (await world.controller.reconcile(KEY)).writes == 1
    assert world.must("Deployment")["spec"]["replicas"] == 2


async def test_switching_hpa_to_external_deletes_our_hpa_but_not_a_foreign_one(
    world: World,
) -> None:
    world.put_isvc(vllm_isvc(minReplicas=1, maxReplicas=3))
    await world.controller.reconcile(KEY)
    assert world.live("HorizontalPodAutoscaler") is not None
    world.edit(
        lambda i: i["metadata"].update(
            annotations={"serving.kserve.io/autoscalerClass": "external"}
        )
    )
    await world.controller.reconcile(KEY)
    assert world.live("HorizontalPodAutoscaler") is None
    assert "Deleted" in world.events.reasons()

    foreign = {"metadata": {"name": "llama-predictor", "namespace": "llm", "uid": "x"}}
    world.server.store("HorizontalPodAutoscaler")["llm/llama-predictor"] = foreign
    assert (await world.controller.reconcile(KEY)).writes == 0
    assert world.live("HorizontalPodAutoscaler") is foreign


async def test_a_child_controlled_by_someone_else_is_refused(world: World) -> None:
    foreign = {"kind": "Service", "metadata": {"name": "llama-predictor", "namespace": "llm"}}
    world.server.store("Service")["llm/llama-predictor"] = foreign
    world.put_isvc(external())
    outcome = await world.controller.reconcile(KEY)
    assert outcome.failure is not None
    assert outcome.failure.reason == "ReconcileFailed"
    assert "not controlled by this InferenceService" in outcome.failure.message
    assert outcome.retry
    assert world.live("Service") is foreign
    assert condition(world.isvc(), "Ready")["reason"] == "ReconcileFailed"


# ---------------------------------------------------------------- failures, status, events


async def test_an_invalid_isvc_gets_a_condition_and_one_event_and_nothing_else(
    world: World,
) -> None:
    world.put_isvc(external(model={"runtime": "nope"}))
    outcome = await world.controller.reconcile(KEY)
    assert outcome.failure is not None
    assert outcome.failure.reason == "RuntimeNotRecognized"
    assert not outcome.retry
    assert [verb for verb, *_ in world.server.calls] == ["status"]
    assert condition(world.isvc(), "Ready")["reason"] == "RuntimeNotRecognized"
    assert world.events.seen[0][:2] == ("Warning", "RuntimeNotRecognized")
    for _ in range(5):
        assert (await world.controller.reconcile(KEY)).writes == 0
    assert len(world.events.seen) == 1

    world.edit(lambda i: i["spec"]["predictor"]["model"].update(runtime="kserve-vllmserver"))
    fixed = await world.controller.reconcile(KEY)
    assert fixed.failure is None
    assert world.live("Deployment") is not None


async def test_status_follows_the_deployment_and_emits_ready_once(world: World) -> None:
    world.put_isvc(external())
    await world.controller.reconcile(KEY)
    assert condition(world.isvc(), "PredictorReady")["status"] == "False"
    live = world.live("Deployment")
    assert live is not None
    live["status"] = {
        "observedGeneration": 1,
        "readyReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
        ],
    }
    assert (await world.controller.reconcile(KEY)).writes == 1
    isvc = world.isvc()
    assert condition(isvc, "Ready")["status"] == "True"
    assert isvc["status"]["url"] == "http://llama-llm.example.com"
    assert isvc["status"]["components"]["predictor"]["url"] == (
        "http://llama-predictor-llm.example.com"
    )
    assert world.events.reasons().count("InferenceServiceReady") == 1
    assert (await world.controller.reconcile(KEY)).writes == 0


async def test_transient_errors_raise_for_a_retry_and_permanent_ones_become_status(
    world: World,
) -> None:
    world.put_isvc(external())
    world.server.fail[("apply", "Deployment")] = ApiError(409, "conflict")
    with pytest.raises(ApiError):
        await world.controller.reconcile(KEY)
    world.server.fail[("apply", "Deployment")] = ApiError(503)
    with pytest.raises(ApiError):
        await world.controller.reconcile(KEY)
    world.server.fail[("apply", "Deployment")] = ApiError(422, "spec.template: Invalid value")
    outcome = await world.controller.reconcile(KEY)
    assert outcome.retry
    ready = condition(world.isvc(), "Ready")
    assert (ready["reason"], ready["message"]) == (
        "ReconcileFailed",
        "HTTP 422 Error: spec.template: Invalid value",
    )
    assert ("Warning", "ReconcileFailed") in [(t, r) for t, r, _ in world.events.seen]


async def test_an_isvc_gone_from_the_cache_or_during_the_status_write_is_done(
    world: World,
) -> None:
    assert (await world.controller.reconcile(KEY)).gone
    world.put_isvc(external())
    world.server.fail[("status", "InferenceService")] = ApiError(404)
    outcome = await world.controller.reconcile(KEY)
    assert outcome.gone
    assert not outcome.retry


# ---------------------------------------------------------------- what gets queued


async def test_events_queue_the_right_keys(world: World) -> None:
    world.put_isvc(external())
    other = vllm_isvc("pinned", model={"runtime": "another"})
    world.caches.isvcs.informers[0].store["llm/pinned"] = other
    queue = world.controller.queue
    runtime = bundled_runtimes()[0]
    for handler in world.caches.cluster_runtimes.informers[0].handlers:
        handler("MODIFIED", runtime)
    assert len(queue) == 1
    assert await queue.get() == KEY
    queue.done(KEY)
    child = {
        "metadata": {
            "name": "llama-predictor",
            "namespace": "llm",
            "ownerReferences": [{"kind": "InferenceService", "name": "llama", "controller": True}],
        }
    }
    for handler in world.caches.services.informers[0].handlers:
        handler("DELETED", child)
    assert await queue.get() == KEY


def test_may_use_runtime() -> None:
    assert may_use_runtime(vllm_isvc(), "anything")  # auto-selection may pick it
    assert may_use_runtime(vllm_isvc(model={"runtime": "a"}), "a")
    assert not may_use_runtime(vllm_isvc(model={"runtime": "a"}), "b")


async def test_one_failing_isvc_does_not_block_the_others(world: World) -> None:
    """A key whose reconcile keeps failing waits in its backoff timer, not in a worker."""
    world.put_isvc(external())
    reconciled: list[str] = []
    real = world.controller.reconcile

    async def reconcile(key: str) -> Any:
        reconciled.append(key)
        if key == "llm/bad":
            raise ApiError(500)
        return await real(key)

    world.controller.reconcile = reconcile  # type: ignore[method-assign]
    world.controller.workers = 1
    world.controller.queue.base_delay = 0.01
    world.controller.queue.add("llm/bad")
    world.controller.queue.add(KEY)
    task = asyncio.get_running_loop().create_task(world.controller.run())
    try:
        for _ in range(200):
            if world.live("Deployment") is not None and reconciled.count("llm/bad") >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert world.live("Deployment") is not None
    assert reconciled.count("llm/bad") >= 3
    assert world.controller.queue.failures("llm/bad") >= 3


# ---------------------------------------------------------------- the work queue


async def test_queue_dedups_and_requeues_a_key_added_while_processing() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    q.add("a")  # changed while being processed: not handed to a second worker
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")
    assert await q.get() == "a"


async def test_queue_backoff_doubles_per_key_caps_and_resets() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert [q.retry("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    assert q.retry("b") == 0.01
    q.forget("a")
    assert q.retry("a") == 0.01
    got = await asyncio.wait_for(q.get(), 1)
    assert got in ("a", "b")
    q.close()


# ---------------------------------------------------------------- drift (pure)


def test_contains_ignores_server_defaults_zero_values_and_quantity_spelling() -> None:
    desired = {
        "spec": {
            "hostIPC": False,
            "securityContext": {},
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1000m", "gpu": 1}}}],
        }
    }
    live = {
        "spec": {
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "containers": [
                {
                    "name": "c",
                    "terminationMessagePath": "/dev/termination-log",
                    "resources": {"limits": {"cpu": "1", "gpu": "1"}},
                }
            ],
        }
    }
    assert drift.contains(live, desired)


@pytest.mark.parametrize(
    ("live", "desired"),
    [
        pytest.param({"a": 1}, {"a": 2}, id="value"),
        pytest.param({}, {"a": "x"}, id="missing"),
        pytest.param({"l": [1, 2]}, {"l": [1]}, id="list-length"),
        pytest.param({"l": [{"n": "a"}]}, {"l": [{"n": "b"}]}, id="list-element"),
        pytest.param({"q": "1Gi"}, {"q": "1G"}, id="quantity"),
        pytest.param({"b": True}, {"b": 1}, id="bool-is-not-a-quantity"),
    ],
)
def test_contains_sees_a_difference(live: JSON, desired: JSON) -> None:
    assert not drift.contains(live, desired)


def test_up_to_date_needs_the_same_hash() -> None:
    stamped = drift.stamp({"metadata": {"name": "x", "labels": {"a": "1"}}})
    assert drift.up_to_date(stamped, copy.deepcopy(stamped))
    smaller: JSON = {"metadata": {"name": "x"}}
    assert drift.contains(stamped, smaller)  # containment alone would skip the apply
    assert not drift.up_to_date(drift.stamp(smaller), stamped)


def test_owns_field_reads_managed_fields() -> None:
    obj = {
        "metadata": {
            "managedFields": [
                {
                    "manager": MANAGER,
                    "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}},
            ]
        }
    }
    assert drift.owns_field(obj, MANAGER, drift.REPLICAS)
    assert not drift.owns_field(obj, HANDOFF_MANAGER, drift.REPLICAS)
    assert not drift.owns_field(obj, "kubectl", drift.REPLICAS, "Update")


def test_merge_patch_sets_changes_and_deletes_removed_keys() -> None:
    old = {"url": "a", "clusterServingRuntimeName": "r", "address": {"url": "x"}, "same": 1}
    new = {"url": "b", "servingRuntimeName": "r", "address": {"url": "x"}, "same": 1}
    assert drift.merge_patch(old, new) == {
        "url": "b",
        "clusterServingRuntimeName": None,
        "servingRuntimeName": "r",
    }
    assert drift.merge_patch(new, new) == {}
