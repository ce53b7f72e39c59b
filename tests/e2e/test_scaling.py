"""The scaling loop end to end (issue #5): two real ``llm-autoscaler run`` processes against the
real control plane, Prometheus and the simulated fleet.

The service reads Prometheus through a TCP relay owned by the test, so "Prometheus is down"
is a real refused connection for the service while the rest of the session keeps its
Prometheus. Queue depth is driven through the fleet simulator's control API, which adds
waiting requests to a pod's ``vllm:num_requests_waiting``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.demo import crd_files
from autoscaler.stack.kube import api_client
from autoscaler.stack.stack import StackState, free_port
from tests.e2e.conftest import eventually, prom_query

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TICK = 1.0
LEASE = "scaling-e2e"
LEASE_DURATION = 6.0


class Relay:
    """A TCP relay 127.0.0.1:<port> → target; ``stop()`` refuses connections until ``start()``."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()
        self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                a, _ = srv.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self._conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@dataclass
class Replica:
    identity: str
    proc: subprocess.Popen[bytes]
    http: str
    log: Path


def start_replica(stack: StackState, identity: str, prom_url: str, logs: Path) -> Replica:
    port = free_port()
    log = logs / f"llm-autoscaler-{identity}.log"
    args = [
        sys.executable,
        "-m",
        "autoscaler.cli",
        "run",
        f"--kubeconfig={stack.kubeconfig}",
        f"--identity={identity}",
        "--metrics-source=prometheus",
        f"--prometheus-url={prom_url}",
        f"--tick-seconds={TICK}",
        "--stale-after-seconds=10",
        "--listen-address=127.0.0.1",
        f"--http-port={port}",
        "--metrics-api-enabled=false",
        "--lease-namespace=default",
        f"--lease-name={LEASE}",
        f"--lease-duration-seconds={LEASE_DURATION}",
        "--renew-deadline-seconds=4",
        "--retry-period-seconds=1",
    ]
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Replica(identity, proc, f"http://127.0.0.1:{port}", log)


@dataclass
class Env:
    stack: StackState
    relay: Relay
    replicas: dict[str, Replica]


@pytest.fixture(scope="module")
def env(stack: StackState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    asyncio.run(install_crds(stack.kubeconfig))
    prom_port = int(stack.prometheus_url.rsplit(":", 1)[1])
    relay = Relay(prom_port)
    relay.start()
    logs = tmp_path_factory.mktemp("service-logs")
    url = f"http://127.0.0.1:{relay.port}"
    e = Env(stack, relay, {i: start_replica(stack, i, url, logs) for i in ("alpha", "beta")})
    try:
        yield e
    finally:
        relay.stop()
        for r in e.replicas.values():
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
                try:
                    r.proc.wait(10)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
            print(
                f"\n--- {r.log} (last lines)\n"
                + "\n".join(r.log.read_text(errors="replace").splitlines()[-40:])
            )


async def install_crds(kubeconfig: str) -> None:
    async with api_client(kubeconfig) as api:
        ext = client.ApiextensionsV1Api(api)
        for f in crd_files():
            with contextlib.suppress(ApiException):
                await ext.create_custom_resource_definition(yaml.safe_load(f.read_text()))
        for name in ("inferenceservices", "servingruntimes", "clusterservingruntimes"):
            for _ in range(100):
                crd = await ext.read_custom_resource_definition(f"{name}.serving.kserve.io")
                if any(
                    c.type == "Established" and c.status == "True"
                    for c in crd.status.conditions or []
                ):
                    break
                await asyncio.sleep(0.1)
        try:
            await client.CustomObjectsApi(api).create_cluster_custom_object(
                "serving.kserve.io", "v1alpha1", "clusterservingruntimes", RUNTIME
            )
        except ApiException as e:
            if e.status != 409:  # installed by another test module: fine
                raise


RUNTIME = yaml.safe_load((REPO / "deploy/runtimes/vllm-clusterservingruntime.yaml").read_text())


CREATED: list[str] = []
"""Namespaces made by :func:`make_isvc`; deleted after each test (their pods hold GPUs)."""


@pytest.fixture(autouse=True)
async def _cleanup(kube: Any) -> AsyncIterator[None]:
    yield
    while CREATED:
        with contextlib.suppress(ApiException):
            await client.CoreV1Api(kube).delete_namespace(CREATED.pop())


async def make_isvc(api: Any, prefix: str, **annotations: str) -> tuple[str, str]:
    """A namespace with one ``external`` ISVC, once the service's reconciler made its predictor.

    The namespace is deleted after the test (see ``_cleanup``): its pods hold fake GPUs.
    """
    ns = f"{prefix}-{uuid.uuid4().hex[:5]}"
    await client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    CREATED.append(ns)
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "llm",
            "namespace": ns,
            "annotations": {
                "serving.kserve.io/autoscalerClass": "external",
                "sim.llm-autoscaler.io/profile": "tiny-test",
                "sim.llm-autoscaler.io/cold-start-seconds": "8",
                "llm-autoscaler.io/target-queue-depth": "5",
                "llm-autoscaler.io/scale-down-window": "15s",
                "llm-autoscaler.io/scale-down-max-percent": "100",
                "llm-autoscaler.io/scale-down-period": "2s",
                "llm-autoscaler.io/cold-start": "10s",
                **annotations,
            },
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 8,
                "model": {
                    "modelFormat": {"name": "vLLM"},
                    "storageUri": "hf://org/tiny",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                },
            }
        },
    }
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", ns, "inferenceservices", isvc
    )

    async def created() -> bool:
        try:
            await client.AppsV1Api(api).read_namespaced_deployment("llm-predictor", ns)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    # the service's reconciler (leader only) creates the predictor, as in a cluster
    await eventually(created, 60, what="the reconciler to create the predictor Deployment")
    return ns, "llm-predictor"


async def replicas(api: Any, ns: str, name: str) -> int:
    scale = await client.AppsV1Api(api).read_namespaced_deployment_scale(name, ns)
    return int(scale.spec.replicas)


async def pods(api: Any, ns: str) -> list[tuple[str, bool]]:
    items = (await client.CoreV1Api(api).list_namespaced_pod(ns)).items
    return [
        (
            p.metadata.name,
            any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
        )
        for p in items
        if p.metadata.deletion_timestamp is None
    ]


async def set_queue(stack: StackState, ns: str, pod: str, extra: int) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{stack.fleet_url}/pods/{ns}/{pod}/queue?extra={extra}") as r,
    ):
        assert r.status == 200, await r.text()


async def events(api: Any, ns: str) -> list[Any]:
    return sorted(
        (await client.CoreV1Api(api).list_namespaced_event(ns)).items,
        key=lambda e: e.metadata.creation_timestamp,
    )


async def leader(api: Any) -> str | None:
    try:
        lease = await client.CoordinationV1Api(api).read_namespaced_lease(LEASE, "default")
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity) if lease.spec.holder_identity else None


async def queue_in_prometheus(stack: StackState, ns: str) -> float:
    rows = await prom_query(stack, f'sum(vllm:num_requests_waiting{{namespace="{ns}"}})')
    return float(rows[0]["value"][1]) if rows else 0.0


async def test_scales_up_within_two_ticks_holds_during_cold_start_then_down_after_window(
    env: Env,
    kube: Any,
) -> None:
    stack = env.stack
    await eventually(lambda: leader(kube), 30, what="a leader")
    ns, deploy = await make_isvc(kube, "scale")
    first = await eventually(lambda: _ready_names(kube, ns), 60, what="the first pod ready")

    # load step: 12 waiting on the one pod (target 5 per replica → 3 replicas)
    await set_queue(stack, ns, first[0], 12)
    crossed = scaled = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and scaled is None:
        now = time.monotonic()
        if crossed is None and await queue_in_prometheus(stack, ns) > 5:
            crossed = now
        if await replicas(kube, ns, deploy) > 1:
            scaled = now
        await asyncio.sleep(0.1)
    assert crossed is not None, "the queue never showed in Prometheus"
    assert scaled is not None, "no scale-up within 30 s"
    reaction = scaled - crossed
    print(f"\nreaction: queue visible in Prometheus → scale written in {reaction:.2f}s")
    assert reaction <= 2 * TICK + 0.5
    assert await replicas(kube, ns, deploy) == 3, (
        await pods(kube, ns),
        [(e.reason, e.message) for e in await events(kube, ns)],
    )

    # while the two new pods cold-start (8 s), the queue keeps rising: no more pods
    await set_queue(stack, ns, first[0], 28)
    seen = set()
    t_end = time.monotonic() + 6
    while time.monotonic() < t_end:
        seen.add(await replicas(kube, ns, deploy))
        await asyncio.sleep(0.3)
    assert seen == {3}, f"scaled during the cold start: {seen}"
    ev = [e for e in await events(kube, ns) if e.reason == "ScaledUp"]
    assert len(ev) == 1
    assert "replicas" in ev[0].message
    assert ev[0].reporting_instance in ("alpha", "beta")

    # load stops (before the new pods are even ready): held for the 15 s window, then down
    await set_queue(stack, ns, first[0], 0)
    stopped = time.monotonic()
    for _ in range(300):
        if await replicas(kube, ns, deploy) < 3:
            break
        await asyncio.sleep(0.3)
    held = time.monotonic() - stopped
    print(f"scale-down began {held:.1f}s after the load stopped (window 15 s)")
    assert held >= 14
    await eventually(lambda: _replicas_are(kube, ns, deploy, 1), 60, what="back to 1")

    async def scaled_down() -> list[Any]:  # the Event follows the scale write
        return [e for e in await events(kube, ns) if e.reason == "ScaledDown"]

    downs = await eventually(scaled_down, 10, what="the ScaledDown Event")
    assert all(e.reporting_instance == ev[0].reporting_instance for e in downs)

    # the decision shows on the ISVC
    isvc = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", ns, "inferenceservices", "llm"
    )
    assert "status.llm-autoscaler.io/decision" in isvc["metadata"]["annotations"]


async def test_prometheus_outage_holds_replicas(env: Env, kube: Any) -> None:
    stack = env.stack
    await eventually(lambda: leader(kube), 30, what="a leader")
    ns, deploy = await make_isvc(kube, "outage", **{"llm-autoscaler.io/scale-down-window": "3s"})
    first = await eventually(lambda: _ready_names(kube, ns), 60, what="the first pod ready")
    await set_queue(stack, ns, first[0], 14)
    await eventually(lambda: _replicas_are(kube, ns, deploy, 3), 30, what="3 replicas")
    await eventually(lambda: _ready_count(kube, ns, 3), 60, what="3 ready pods")

    env.relay.stop()
    try:
        await set_queue(stack, ns, first[0], 0)  # would scale down within seconds
        for _ in range(40):  # 20 s: more than 6 windows
            assert await replicas(kube, ns, deploy) == 3
            await asyncio.sleep(0.5)
    finally:
        env.relay.start()
    isvc = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", ns, "inferenceservices", "llm"
    )
    ann = isvc["metadata"]["annotations"]["status.llm-autoscaler.io/decision"]
    assert ann.startswith("frozen-no-data")
    # metrics are back: the idle fleet scales down again
    await eventually(lambda: _replicas_are(kube, ns, deploy, 1), 60, what="down after outage")


async def test_killing_the_leader_hands_over_within_the_lease(env: Env, kube: Any) -> None:
    stack = env.stack
    holder = await eventually(lambda: leader(kube), 30, what="a leader")
    ns, deploy = await make_isvc(kube, "failover")
    first = await eventually(lambda: _ready_names(kube, ns), 60, what="the first pod ready")

    old = env.replicas[holder]
    old.proc.send_signal(signal.SIGKILL)  # no graceful release: the lease must expire
    old.proc.wait(10)
    killed = time.monotonic()
    other = await eventually(
        lambda: _leader_is_not(kube, holder), 3 * LEASE_DURATION, 0.2, what="a new leader"
    )
    handover = time.monotonic() - killed
    print(f"\nhandover {holder} → {other} in {handover:.1f}s (lease {LEASE_DURATION:.0f}s)")
    assert handover <= LEASE_DURATION + 2 * TICK + 1

    await set_queue(stack, ns, first[0], 12)
    await eventually(lambda: _replicas_are(kube, ns, deploy, 3), 30, what="new leader scales")

    async def scaled_up_by() -> list[str]:  # the Event follows the scale write
        return [e.reporting_instance for e in await events(kube, ns) if e.reason == "ScaledUp"]

    assert await eventually(scaled_up_by, 10, what="the ScaledUp Event") == [other]
    await asyncio.sleep(3)
    assert await replicas(kube, ns, deploy) == 3  # no double scaling


async def _ready_names(api: Any, ns: str) -> list[str]:
    return [n for n, ready in await pods(api, ns) if ready]


async def _ready_count(api: Any, ns: str, n: int) -> bool:
    return len(await _ready_names(api, ns)) == n


async def _replicas_are(api: Any, ns: str, name: str, n: int) -> bool:
    return await replicas(api, ns, name) == n


async def _leader_is_not(api: Any, old: str) -> str | None:
    who = await leader(api)
    return who if who and who != old else None
