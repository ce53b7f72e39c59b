"""Smoke tests proving each real component of the local stack works (issue #2)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.sim.loadgen import LoadGenerator, poisson_arrivals, summarize
from autoscaler.stack.stack import StackState
from tests.e2e.conftest import SHARED, deployment, eventually, prom_query

pytestmark = pytest.mark.e2e


async def new_namespace(api: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


async def create_or_exists(call: Any) -> None:
    """Await a create call; AlreadyExists (another test installed it) is fine."""
    try:
        await call
    except ApiException as e:
        if e.status != 409:
            raise


async def ready_pods(api: Any, ns: str, selector: str) -> list[Any]:
    pods = (await client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=selector)).items
    return [
        p
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


async def test_apiserver_accepts_the_kserve_crds_and_an_inferenceservice(kube: Any) -> None:
    ext = client.ApiextensionsV1Api(kube)
    names = []
    for kind in ("inferenceservices", "servingruntimes", "clusterservingruntimes"):
        crd = yaml.safe_load(
            (SHARED / "kserve" / "crds" / f"serving.kserve.io_{kind}.yaml").read_text()
        )
        names.append(crd["metadata"]["name"])
        await create_or_exists(ext.create_custom_resource_definition(crd))

    async def established() -> bool:
        for n in names:
            crd = await ext.read_custom_resource_definition(n)
            if not any(
                c.type == "Established" and c.status == "True"
                for c in (crd.status.conditions or [])
            ):
                return False
        return True

    await eventually(established, what="KServe CRDs Established")
    ns = await new_namespace(kube, "crd")
    custom = client.CustomObjectsApi(kube)
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "llama",
            "annotations": {"serving.kserve.io/autoscalerClass": "external"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 4,
                "model": {
                    "modelFormat": {"name": "vLLM"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                },
            }
        },
    }
    await custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", ns, "inferenceservices", isvc
    )
    got = await custom.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", ns, "inferenceservices", "llama"
    )
    assert got["spec"]["predictor"]["model"]["modelFormat"]["name"] == "vLLM"
    assert got["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"
    # The full schema is enforced: an unknown-typed field is rejected by the real apiserver.
    bad = {**isvc, "metadata": {"name": "bad"}, "spec": {"predictor": {"minReplicas": "many"}}}
    with pytest.raises(ApiException) as err:
        await custom.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", ns, "inferenceservices", bad
        )
    assert err.value.status == 422


async def test_deployment_pods_are_scheduled_on_kwok_gpu_nodes_and_become_ready(kube: Any) -> None:
    ns = await new_namespace(kube, "ready")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=3, isvc="m")
    )
    pods = await eventually(lambda: _n_ready(kube, ns, "app=isvc.m", 3), what="3 Ready pods")
    for p in pods:
        assert p.spec.node_name.startswith("kwok-gpu-")
        assert p.status.pod_ip.startswith("127.")
        assert p.status.phase == "Running"
    dep = await client.AppsV1Api(kube).read_namespaced_deployment("m", ns)
    assert dep.status.ready_replicas == 3


async def _n_ready(api: Any, ns: str, selector: str, n: int) -> list[Any] | None:
    pods = await ready_pods(api, ns, selector)
    return pods if len(pods) == n else None


async def test_prometheus_scrapes_vllm_and_dcgm_series_of_the_pods(
    kube: Any, stack: StackState
) -> None:
    ns = await new_namespace(kube, "prom")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=2, isvc="llm")
    )
    pods = await eventually(lambda: _n_ready(kube, ns, "app=isvc.m", 2), what="2 Ready pods")
    names = {p.metadata.name for p in pods}

    async def vllm_series() -> list[dict[str, Any]] | None:
        res = await prom_query(stack, f'vllm:num_requests_waiting{{namespace="{ns}"}}')
        return res if {r["metric"]["pod"] for r in res} == names else None

    async def dcgm_series() -> list[dict[str, Any]] | None:
        res = await prom_query(stack, f'DCGM_FI_DEV_GPU_UTIL{{exported_namespace="{ns}"}}')
        return res if {r["metric"]["exported_pod"] for r in res} == names else None

    # A few scrape intervals (1 s here) after the pods are Ready.
    vllm = await eventually(vllm_series, timeout=15, what="vllm:num_requests_waiting for both pods")
    assert {r["metric"]["model_name"] for r in vllm} == {"llm"}
    assert {r["metric"]["isvc"] for r in vllm} == {"llm"}
    dcgm = await eventually(
        dcgm_series, timeout=15, what="DCGM_FI_DEV_GPU_UTIL attributed to both pods"
    )
    for r in dcgm:
        assert r["metric"]["job"] == "dcgm"
        assert (
            r["metric"]["namespace"] == "gpu-operator"
        )  # the exporter's own, as with honorLabels: false
        assert r["metric"]["Hostname"].startswith("kwok-gpu-")


async def test_simulated_vllm_serves_requests_and_its_metrics_count_them(
    kube: Any, stack: StackState
) -> None:
    ns = await new_namespace(kube, "serve")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=2, isvc="llm")
    )
    await eventually(lambda: _n_ready(kube, ns, "app=isvc.m", 2), what="2 Ready pods")
    gen = LoadGenerator(stack.kubeconfig, ns, "llm")
    results = await gen.run(
        poisson_arrivals(rate=4, duration=3, prompt_tokens=200, output_tokens=8, seed=3)
    )
    summary = summarize(results)
    assert summary["sent"] >= 5
    assert summary["failed"] == 0, summary
    assert summary["pods_used"] == 2
    assert 0 < summary["ttft_p50_s"] < 5

    async def counted() -> float | None:
        res = await prom_query(stack, f'sum(vllm:request_success_total{{namespace="{ns}"}})')
        return (
            float(res[0]["value"][1])
            if res and float(res[0]["value"][1]) == summary["sent"]
            else None
        )

    await eventually(counted, timeout=15, what="Prometheus to count every finished request")


async def test_real_hpa_controller_processes_a_standard_hpa(kube: Any) -> None:
    ns = await new_namespace(kube, "hpa")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=1, isvc="m")
    )
    await client.AutoscalingV2Api(kube).create_namespaced_horizontal_pod_autoscaler(
        ns,
        {
            "metadata": {"name": "m"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m"},
                "minReplicas": 3,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )

    # First sync: 1 replica is below minReplicas, so the controller scales to 3.
    dep = await eventually(
        lambda: _scaled_to(kube, ns, 3), timeout=30, what="the Deployment scaled to minReplicas 3"
    )
    assert dep.spec.replicas == 3

    async def evaluated() -> Any:
        hpa = await client.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler("m", ns)
        conds = {c.type: c for c in (hpa.status.conditions or [])}
        return hpa if "ScalingActive" in conds and hpa.status.desired_replicas == 3 else None

    # Next syncs: it evaluates the CPU metric; there is no resource metrics API in this
    # stack, and the controller says so in its condition, which proves it evaluated the HPA.
    hpa = await eventually(evaluated, timeout=30, what="the HPA controller to evaluate the metric")
    conds = {c.type: c for c in hpa.status.conditions}
    assert conds["AbleToScale"].status == "True"
    assert conds["ScalingActive"].status == "False"
    assert conds["ScalingActive"].reason == "FailedGetResourceMetric"


async def _scaled_to(api: Any, ns: str, n: int) -> Any:
    dep = await client.AppsV1Api(api).read_namespaced_deployment("m", ns)
    return dep if dep.spec.replicas == n else None


async def test_deleting_the_deployment_stops_its_simulated_servers(kube: Any) -> None:
    ns = await new_namespace(kube, "del")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=2, isvc="m")
    )
    pods = await eventually(lambda: _n_ready(kube, ns, "app=isvc.m", 2), what="2 Ready pods")
    urls = [f"http://{p.status.pod_ip}:8080/health" for p in pods]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        for u in urls:
            async with s.get(u) as r:
                assert r.status == 200
        await client.AppsV1Api(kube).delete_namespaced_deployment(
            "m", ns, propagation_policy="Foreground"
        )

        async def all_refused() -> bool:
            for u in urls:
                try:
                    async with s.get(u):
                        return False
                except aiohttp.ClientConnectorError:
                    continue
            return True

        await eventually(all_refused, timeout=30, what="the pods' servers to stop")
    assert await ready_pods(kube, ns, "app=isvc.m") == []
    await asyncio.sleep(0)
