"""The InferenceService controller against the real local stack (issue 3, the apply half).

Real kube-apiserver with KServe's CRDs, the real Deployment/ReplicaSet/HPA/GC controllers, kwok
pods made Ready by the fleet simulator. Each test runs its own :class:`Controller` on its own
namespace, writing through a wrapper that records every write it makes, so "no write when
nothing changed" is measured at our own seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from adapters.kube import EventRecorder
from adapters.objects import ApiObjectWriter, resource_path
from autoscaler.demo import crd_files
from autoscaler.reconciler.controller import Controller, kserve_installed
from autoscaler.reconciler.drift import HANDOFF_MANAGER, MANAGER
from tests.e2e.conftest import SHARED, eventually

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
REPO_RUNTIME = crd_files()[0].parents[1] / "runtimes" / "vllm-clusterservingruntime.yaml"
SAMPLES = SHARED / "kserve" / "samples"


@dataclass
class Write:
    verb: str
    kind: str
    name: str
    body: JSON | None = None
    manager: str = ""


@dataclass
class CountingWriter:
    """Records every write before passing it on to the real writer."""

    inner: ApiObjectWriter
    writes: list[Write] = field(default_factory=list)

    async def apply(self, obj: JSON, *, field_manager: str, force: bool) -> JSON:
        self.writes.append(
            Write("apply", obj["kind"], obj["metadata"]["name"], copy.deepcopy(obj), field_manager)
        )
        return await self.inner.apply(obj, field_manager=field_manager, force=force)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None
    ) -> None:
        self.writes.append(Write("delete", kind, name))
        await self.inner.delete(api_version, kind, namespace, name, uid=uid)

    async def patch_status(self, obj: JSON, status_patch: JSON, *, field_manager: str) -> JSON:
        self.writes.append(Write("status", obj["kind"], obj["metadata"]["name"], status_patch))
        return await self.inner.patch_status(obj, status_patch, field_manager=field_manager)


@dataclass
class CountingRecorder:
    inner: EventRecorder
    events: list[tuple[str, str, str]] = field(default_factory=list)

    async def record(self, obj: JSON, *, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))
        await self.inner.record(obj, type_=type_, reason=reason, message=message)


@dataclass
class Harness:
    api: Any
    namespace: str
    controller: Controller
    writer: CountingWriter
    recorder: CountingRecorder

    async def create(self, isvc: JSON) -> JSON:
        body = copy.deepcopy(isvc)
        body["metadata"]["namespace"] = self.namespace
        result: JSON = await client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return result

    async def patch(self, name: str, body: JSON) -> None:
        await client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    async def read(self, api_version: str, kind: str, name: str) -> JSON | None:
        try:
            got = await self.api.call_api(
                resource_path(api_version, kind, self.namespace, name),
                "GET",
                header_params={"Accept": "application/json"},
                response_types_map={200: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(got)

    async def isvc(self, name: str) -> JSON:
        got = await self.read(f"{GROUP}/{VERSION}", "InferenceService", name)
        assert got is not None
        return got

    async def deployment(self, name: str) -> JSON | None:
        return await self.read("apps/v1", "Deployment", f"{name}-predictor")

    async def quiet(self, seconds: float = 2.0, timeout: float = 60.0) -> int:
        """Wait until no write happened for ``seconds``; the number of writes so far."""

        async def still() -> bool:
            before = len(self.writer.writes)
            await asyncio.sleep(seconds)
            return len(self.writer.writes) == before

        await eventually(still, timeout=timeout, interval=0, what="the controller to settle")
        return len(self.writer.writes)


def condition(isvc: JSON, kind: str) -> JSON:
    conditions = (isvc.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def vllm_isvc(name: str, *, cls: str | None = "external", **predictor: Any) -> JSON:
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    if cls is not None:
        annotations["serving.kserve.io/autoscalerClass"] = cls
    model: JSON = {
        "modelFormat": {"name": "vLLM"},
        "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
    }
    model.update(predictor.pop("model", {}))
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"predictor": {"model": model, **predictor}},
    }


async def _create_ignoring_conflict(call: Any) -> None:
    try:
        await call
    except ApiException as e:
        if e.status != 409:
            raise


@pytest.fixture
async def installed(kube: Any) -> None:
    """KServe's CRDs, our vLLM runtime and KServe's huggingface runtime sample (idempotent)."""
    ext = client.ApiextensionsV1Api(kube)
    for path in crd_files():
        await _create_ignoring_conflict(
            ext.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        )

    async def established() -> bool:
        for plural in (PLURAL, "servingruntimes", "clusterservingruntimes"):
            crd = await ext.read_custom_resource_definition(f"{plural}.{GROUP}")
            conditions = crd.status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    await eventually(established, timeout=30, interval=0.2, what="KServe CRDs established")
    custom = client.CustomObjectsApi(kube)
    for path in (REPO_RUNTIME, SAMPLES / "config-runtimes__kserve-huggingfaceserver.yaml"):
        await _create_ignoring_conflict(
            custom.create_cluster_custom_object(
                GROUP, "v1alpha1", "clusterservingruntimes", yaml.safe_load(path.read_text())
            )
        )


@pytest.fixture
async def harness(kube: Any, installed: None) -> AsyncIterator[Harness]:
    namespace = f"rec-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube)
    await core.create_namespace({"metadata": {"name": namespace}})
    writer = CountingWriter(ApiObjectWriter(kube))
    recorder = CountingRecorder(EventRecorder(core, host="e2e"))
    controller = Controller(
        kube,
        namespaces=(namespace,),
        writer=writer,
        recorder=recorder,
        base_delay=0.2,
        max_delay=5.0,
    )
    task = asyncio.get_running_loop().create_task(controller.run())
    await asyncio.wait_for(controller.wait_synced(), 30)
    try:
        yield Harness(kube, namespace, controller, writer, recorder)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await core.delete_namespace(namespace)


async def test_kserve_is_not_detected_on_the_bare_stack(kube: Any) -> None:
    assert await kserve_installed(kube) is False


async def test_external_isvc_becomes_ready_and_keeps_hand_scaled_replicas(
    harness: Harness,
) -> None:
    """External class: KServe names and labels, Ready with URLs; a hand scale survives an args
    change (a rolling update); 100 reconciles of the unchanged ISVC make no write."""
    h, name = harness, "llama"
    await h.create(vllm_isvc(name, minReplicas=2))

    async def ready() -> JSON | None:
        isvc = await h.isvc(name)
        return isvc if condition(isvc, "Ready").get("status") == "True" else None

    isvc = await eventually(ready, timeout=90, what="ISVC Ready=True")
    ns = h.namespace
    status = isvc["status"]
    assert status["url"] == f"http://{name}-{ns}.example.com"
    assert status["address"]["url"] == f"http://{name}-predictor.{ns}.svc.cluster.local"
    assert status["components"]["predictor"]["url"] == f"http://{name}-predictor-{ns}.example.com"
    assert condition(isvc, "PredictorReady")["status"] == "True"
    assert status["clusterServingRuntimeName"] == "kserve-vllmserver"
    assert status["observedGeneration"] >= 1

    dep = await h.deployment(name)
    assert dep is not None
    assert dep["spec"]["selector"] == {"matchLabels": {"app": f"isvc.{name}-predictor"}}
    labels = dep["metadata"]["labels"]
    assert labels["serving.kserve.io/inferenceservice"] == name
    assert labels["component"] == "predictor"
    assert dep["spec"]["replicas"] == 2
    assert dep["status"].get("availableReplicas") == 2
    svc = await h.read("v1", "Service", f"{name}-predictor")
    assert svc is not None
    assert svc["spec"]["selector"] == {"app": f"isvc.{name}-predictor"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 8080)]
    assert await h.read("autoscaling/v2", "HorizontalPodAutoscaler", f"{name}-predictor") is None
    reasons = [r for isvc_name, r, _ in h.recorder.events if isvc_name == name]
    assert {"Created", "InferenceServiceReady"} <= set(reasons)

    # no write when nothing changed: the measure of issue 3
    before = await h.quiet()
    outcomes = [await h.controller.reconcile(f"{ns}/{name}") for _ in range(100)]
    assert sum(o.writes + o.events for o in outcomes) == 0
    assert len(h.writer.writes) == before

    # a human (or llm-autoscaler) scales; an args change rolls the pods but keeps the scale
    await client.AppsV1Api(h.api).patch_namespaced_deployment_scale(
        f"{name}-predictor", ns, {"spec": {"replicas": 3}}
    )
    await h.patch(name, {"spec": {"predictor": {"model": {"args": ["--max-model-len=4096"]}}}})

    async def rolled() -> JSON | None:
        d = await h.deployment(name)
        args = (d or {})["spec"]["template"]["spec"]["containers"][0].get("args") or []
        return d if "--max-model-len=4096" in args else None

    dep = await eventually(rolled, timeout=30, what="the args change applied")
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["generation"] >= 2
    await h.quiet()
    dep = await h.deployment(name)
    assert dep is not None
    assert dep["spec"]["replicas"] == 3
    applies_with_replicas = [
        w
        for w in h.writer.writes
        if w.verb == "apply" and w.kind == "Deployment" and "replicas" in (w.body or {})["spec"]
    ]
    # replicas are written exactly twice: the creating apply and the hand-off co-owner
    assert [w.manager for w in applies_with_replicas] == [MANAGER, HANDOFF_MANAGER]


async def test_hpa_class_creates_an_hpa_and_external_deletes_it(harness: Harness) -> None:
    h, name = harness, "hpa-then-external"
    await h.create(vllm_isvc(name, cls=None, minReplicas=1, maxReplicas=4))

    async def hpa() -> JSON | None:
        return await h.read("autoscaling/v2", "HorizontalPodAutoscaler", f"{name}-predictor")

    found = await eventually(hpa, timeout=30, what="the HPA")
    assert found["spec"]["minReplicas"] == 1
    assert found["spec"]["maxReplicas"] == 4
    assert found["spec"]["scaleTargetRef"]["name"] == f"{name}-predictor"
    assert found["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert found["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    await h.quiet()
    await client.AppsV1Api(h.api).patch_namespaced_deployment_scale(
        f"{name}-predictor", h.namespace, {"spec": {"replicas": 2}}
    )
    await h.patch(
        name, {"metadata": {"annotations": {"serving.kserve.io/autoscalerClass": "external"}}}
    )

    async def hpa_gone() -> bool:
        return await hpa() is None

    await eventually(hpa_gone, timeout=30, what="the HPA deleted")
    await h.quiet()
    dep = await h.deployment(name)
    assert dep is not None
    assert dep["spec"]["replicas"] == 2
    assert dep["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"
    assert ("delete", "HorizontalPodAutoscaler") in {(w.verb, w.kind) for w in h.writer.writes}


async def test_a_bad_isvc_gets_a_condition_and_an_event_and_blocks_nobody(
    harness: Harness,
) -> None:
    h = harness
    bad = vllm_isvc("bad", model={"runtime": "no-such-runtime"})
    await h.create(bad)
    # a real KServe sample, served by KServe's huggingface runtime sample
    sample = yaml.safe_load(
        (SAMPLES / "website-docs-text-generation__qwen-cpu-vllm-env.yaml").read_text()
    )
    sample["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "external"}
    await h.create(sample)

    async def failed() -> JSON | None:
        isvc = await h.isvc("bad")
        return isvc if condition(isvc, "Ready").get("reason") == "RuntimeNotRecognized" else None

    isvc = await eventually(failed, timeout=30, what="bad ISVC Ready=False")
    assert condition(isvc, "Ready")["status"] == "False"
    assert condition(isvc, "PredictorReady")["reason"] == "RuntimeNotRecognized"
    assert await h.deployment("bad") is None

    async def good_deployment() -> JSON | None:
        return await h.deployment("qwen-cpu")

    dep = await eventually(good_deployment, timeout=30, what="the sample's Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "kserve-container"
    assert "--max-model-len=2048" in container["args"]

    async def warned() -> list[Any]:
        events = await client.CoreV1Api(h.api).list_namespaced_event(
            h.namespace, field_selector="involvedObject.name=bad"
        )
        return [e for e in events.items if e.reason == "RuntimeNotRecognized"]

    found = await eventually(warned, timeout=15, what="the RuntimeNotRecognized Event")
    assert found[0].type == "Warning"

    # fixing the ISVC recovers it without a restart
    await h.patch("bad", {"spec": {"predictor": {"model": {"runtime": "kserve-vllmserver"}}}})

    async def fixed() -> JSON | None:
        return await h.deployment("bad")

    await eventually(fixed, timeout=30, what="the fixed ISVC's Deployment")


async def test_deleting_the_isvc_garbage_collects_its_children(harness: Harness) -> None:
    h, name = harness, "short-lived"
    await h.create(vllm_isvc(name))

    async def created() -> JSON | None:
        return await h.deployment(name)

    await eventually(created, timeout=30, what="the Deployment")
    await client.CustomObjectsApi(h.api).delete_namespaced_custom_object(
        GROUP, VERSION, h.namespace, PLURAL, name
    )

    async def collected() -> bool:
        return (
            await h.deployment(name) is None
            and await h.read("v1", "Service", f"{name}-predictor") is None
        )

    await eventually(collected, timeout=60, what="garbage collection of the children")
