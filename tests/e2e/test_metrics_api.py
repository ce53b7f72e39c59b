"""The external metrics API through the real aggregator, read by the real HPA controller.

The API runs as its own process (``python -m autoscaler.metrics_api``) reading the stack's
Prometheus, registered as ``v1beta1.external.metrics.k8s.io`` behind an ``ExternalName``
Service (``localhost``: the stack has no kube-proxy, and the aggregator resolves an
ExternalName Service to its name), with its self-signed certificate as the ``caBundle``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from kubernetes_asyncio import client

from autoscaler.metrics_api.tls import ServingCert, self_signed
from autoscaler.stack import process
from autoscaler.stack.stack import StackState, free_port
from tests.e2e.conftest import deployment, eventually

pytestmark = pytest.mark.e2e

SVC_NS, SVC = "llm-autoscaler", "llm-autoscaler-metrics"
APISERVICE = "v1beta1.external.metrics.k8s.io"
BASE = "/apis/external.metrics.k8s.io/v1beta1"
ISVC_LABEL = "serving.kserve.io/inferenceservice"


@dataclass
class MetricsApi:
    url: str
    cert: ServingCert
    proc: process.Proc


def admin_ssl(stack: StackState) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(stack.pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(stack.pki_dir / "admin.crt"), str(stack.pki_dir / "admin.key"))
    return ctx


async def kreq(
    stack: StackState,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A raw request to the apiserver as admin (as ``kubectl get --raw`` sends it)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.request(
            method, stack.api_url + path, json=body, ssl=admin_ssl(stack), headers=headers or {}
        ) as r,
    ):
        text = await r.text()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


async def register(stack: StackState, cert: ServingCert, port: int) -> None:
    await kreq(stack, "POST", "/api/v1/namespaces", {"metadata": {"name": SVC_NS}})
    await kreq(
        stack,
        "POST",
        f"/api/v1/namespaces/{SVC_NS}/services",
        {
            "metadata": {"name": SVC},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
    )
    status, body = await kreq(
        stack,
        "POST",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        {
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "service": {"namespace": SVC_NS, "name": SVC, "port": port},
                "caBundle": base64.b64encode(cert.pem()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    )
    assert status == 201, body


@pytest.fixture(scope="module")
def metrics_api(
    stack: StackState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetricsApi]:
    d = tmp_path_factory.mktemp("metrics-api")
    cert = self_signed((f"{SVC}.{SVC_NS}.svc", "localhost", "127.0.0.1"), d)
    port = free_port()
    proc = process.start(
        "metrics-api",
        [
            sys.executable, "-m", "autoscaler.metrics_api",
            f"--kubeconfig={stack.kubeconfig}",
            "--listen=127.0.0.1", f"--port={port}",
            "--source=prometheus", f"--prometheus-url={stack.prometheus_url}",
            "--refresh=0.5", "--max-snapshot-age=5", "--stale-after=10",
            f"--tls-cert-file={cert.cert_file}", f"--tls-key-file={cert.key_file}",
        ],
        Path(stack.state_dir) / "logs",
    )  # fmt: skip
    stack.pids["metrics-api"] = proc.pid  # stopped by the stack's teardown if we crash
    stack.save()
    try:
        asyncio.run(register(stack, cert, port))
        yield MetricsApi(f"https://127.0.0.1:{port}", cert, proc)
    finally:
        asyncio.run(
            kreq(stack, "DELETE", f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}")
        )
        process.stop(proc.pid)
        stack.pids.pop("metrics-api", None)
        stack.save()
        print(f"\nmetrics API log: {proc.log}\n{proc.tail(30)}")


async def apiservice_available(stack: StackState) -> Any:
    _, body = await kreq(stack, "GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}")
    conds = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
    return conds.get("Available", {}).get("status") == "True" and conds["Available"]


async def new_namespace(kube: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.CoreV1Api(kube).create_namespace({"metadata": {"name": name}})
    return name


async def ready_pods(kube: Any, ns: str, app: str) -> list[Any]:
    pods = (await client.CoreV1Api(kube).list_namespaced_pod(ns, label_selector=f"app={app}")).items
    return [
        p
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


async def set_queue(stack: StackState, ns: str, pod: str, extra: int) -> None:
    url = f"{stack.fleet_url}/pods/{ns}/{pod}/queue?extra={extra}"
    async with aiohttp.ClientSession() as s, s.post(url) as r:
        assert r.status == 200, await r.text()


def metric_path(ns: str, isvc: str, metric: str = "llm-queue-depth") -> str:
    return f"{BASE}/namespaces/{ns}/{metric}?labelSelector={quote(f'{ISVC_LABEL}={isvc}')}"


async def test_apiservice_is_available_and_serves_queue_depth_through_the_aggregator(
    stack: StackState, kube: Any, metrics_api: MetricsApi
) -> None:
    await eventually(lambda: apiservice_available(stack), timeout=60, what="APIService Available")
    status, resources = await kreq(stack, "GET", BASE)
    assert status == 200, resources
    assert "llm-queue-depth" in {r["name"] for r in resources["resources"]}

    ns = await new_namespace(kube, "mapi")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("m", replicas=1, isvc="llm")
    )
    (p,) = await eventually(lambda: ready_pods(kube, ns, "isvc.m"), what="a Ready pod")
    await set_queue(stack, ns, p.metadata.name, 7)

    async def value() -> Any:
        status, body = await kreq(stack, "GET", metric_path(ns, "llm"))
        items = body.get("items") if status == 200 else None
        return items if items and items[0]["value"] == "7" else None

    (item,) = await eventually(value, timeout=30, what="queue depth 7 through the aggregator")
    assert item["metricName"] == "llm-queue-depth"
    assert item["metricLabels"] == {ISVC_LABEL: "llm"}
    assert (
        abs(
            time.time()
            - time.mktime(time.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
            + time.timezone
        )
        < 30
    )
    status, body = await kreq(stack, "GET", f"{BASE}/namespaces/{ns}/llm-nope")
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")


async def test_direct_requests_need_credentials_and_rbac(
    stack: StackState, kube: Any, metrics_api: MetricsApi
) -> None:
    ctx = ssl.create_default_context(cafile=str(metrics_api.cert.cert_file))
    path = metric_path("default", "llm")
    async with aiohttp.ClientSession() as s:
        async with s.get(metrics_api.url + path, ssl=ctx) as r:
            assert r.status == 401
            assert (await r.json())["reason"] == "Unauthorized"
        async with s.get(
            metrics_api.url + path,
            ssl=ctx,
            headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"},
        ) as r:
            assert r.status == 401  # identity headers without the front-proxy certificate

    # A service account's token, reviewed by the apiserver (TokenReview), then authorized
    # (SubjectAccessReview): 403 until RBAC allows it, both directly and through the aggregator.
    ns = await new_namespace(kube, "mapi-rbac")
    core = client.CoreV1Api(kube)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    tr = await core.create_namespaced_service_account_token(
        "reader", ns, {"spec": {"expirationSeconds": 3600}}
    )
    bearer = {"Authorization": f"Bearer {tr.status.token}"}
    path = metric_path(ns, "llm")

    async def direct() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(metrics_api.url + path, ssl=ctx, headers=bearer) as r,
        ):
            return r.status, await r.json()

    status, body = await direct()
    assert (status, body["reason"]) == (403, "Forbidden"), body
    assert "system:serviceaccount:" + ns + ":reader" in body["message"]
    rbac = client.RbacAuthorizationV1Api(kube)
    await rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "read-queue"},
            "rules": [
                {
                    "apiGroups": ["external.metrics.k8s.io"],
                    "resources": ["llm-queue-depth"],
                    "verbs": ["get", "list"],
                }
            ],
        },
    )
    await rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "read-queue"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-queue",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )

    async def allowed() -> Any:
        status, body = await direct()
        return status == 200 and body

    body = await eventually(
        allowed, timeout=30, what="RBAC to allow the token (denials cached 10 s)"
    )
    assert body["kind"] == "ExternalMetricValueList"
    as_reader = {"Impersonate-User": f"system:serviceaccount:{ns}:reader"}
    status, body = await kreq(stack, "GET", path, headers=as_reader)
    assert status == 200, body
    status, body = await kreq(
        stack, "GET", metric_path(ns, "llm", "llm-running"), headers=as_reader
    )
    assert status == 403, body


def command_line(pid: int) -> list[str]:
    """The argv a process was started with (to start it again the same way)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")
    return [a.decode() for a in raw.split(b"\0")]


async def hpa_state(kube: Any, ns: str, name: str) -> tuple[int, dict[str, Any]]:
    dep = await client.AppsV1Api(kube).read_namespaced_deployment(name, ns)
    hpa = await client.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler(name, ns)
    conds = {c.type: c for c in (hpa.status.conditions or [])}
    return dep.spec.replicas, conds


async def test_real_hpa_scales_on_queue_depth_and_holds_while_prometheus_is_down(
    stack: StackState, kube: Any, metrics_api: MetricsApi
) -> None:
    ns = await new_namespace(kube, "mapi-hpa")
    await client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("w", replicas=1, isvc="wq")
    )
    (first,) = await eventually(lambda: ready_pods(kube, ns, "isvc.w"), what="a Ready pod")
    await client.AutoscalingV2Api(kube).create_namespaced_horizontal_pod_autoscaler(
        ns,
        {
            "metadata": {"name": "w"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {
                                "name": "llm-queue-depth",
                                "selector": {"matchLabels": {ISVC_LABEL: "wq"}},
                            },
                            "target": {"type": "AverageValue", "averageValue": "5"},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            },
        },
    )

    async def active() -> bool:
        _, conds = await hpa_state(kube, ns, "w")
        return "ScalingActive" in conds and conds["ScalingActive"].status == "True"

    await eventually(active, timeout=60, what="the HPA to read llm-queue-depth")

    # Load: 18 waiting requests → ceil(18 / 5) = 4 replicas.
    await set_queue(stack, ns, first.metadata.name, 18)

    async def scaled(n: int) -> bool:
        replicas, _ = await hpa_state(kube, ns, "w")
        return replicas == n

    await eventually(lambda: scaled(4), timeout=60, what="the HPA to scale up to 4")
    await eventually(lambda: _n_ready(kube, ns, 4), timeout=60, what="4 Ready pods")

    # Prometheus dies, and the load goes away while it is down: the API says 503 (not stale
    # numbers, not 0) and the HPA, unable to read the metric, keeps 4 replicas.
    prom_pid = stack.pids["prometheus"]
    argv = command_line(prom_pid)
    process.stop(prom_pid)
    await set_queue(stack, ns, first.metadata.name, 0)
    try:

        async def unavailable() -> Any:
            status, body = await kreq(stack, "GET", metric_path(ns, "wq"))
            return status == 503 and body

        body = await eventually(unavailable, timeout=30, what="503 from the API")
        assert (body["kind"], body["reason"]) == ("Status", "ServiceUnavailable")

        async def failing() -> bool:
            _, conds = await hpa_state(kube, ns, "w")
            c = conds.get("ScalingActive")
            return c is not None and c.status == "False" and c.reason == "FailedGetExternalMetric"

        await eventually(failing, timeout=30, what="the HPA to report FailedGetExternalMetric")
        for _ in range(10):  # five HPA syncs (2 s each): no scale-down on missing data
            replicas, _ = await hpa_state(kube, ns, "w")
            assert replicas == 4
            await asyncio.sleep(1)
    finally:
        new = process.start("prometheus", argv, Path(stack.state_dir) / "logs")
        stack.pids["prometheus"] = new.pid
        stack.save()

    # Prometheus is back: the API recovers by itself, reads 0, and the HPA scales down.
    async def recovered() -> Any:
        status, body = await kreq(stack, "GET", metric_path(ns, "wq"))
        return status == 200 and body["items"] and body["items"][0]["value"] == "0"

    await eventually(recovered, timeout=60, what="the API to serve values again")
    await eventually(lambda: scaled(1), timeout=60, what="the HPA to scale back down to 1")


async def _n_ready(kube: Any, ns: str, n: int) -> bool:
    return len(await ready_pods(kube, ns, "isvc.w")) == n
