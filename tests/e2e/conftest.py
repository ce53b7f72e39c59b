"""The e2e fixture: one real local stack per test session (see ``autoscaler.stack``).

Every test in ``tests/e2e`` talks to real components over real sockets: kube-apiserver with
the real controllers and kwok, Debian's Prometheus, and the fleet simulator. Nothing is
skipped: a missing binary fails the session with the one-line fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autoscaler.stack.kube import api_client
from autoscaler.stack.stack import Stack, StackConfig, StackState, down

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackState]:
    state_dir = tmp_path_factory.mktemp("stack")
    # Two test sessions on one machine (say a developer's and CI's) need distinct pod networks.
    pod_net = int(os.environ.get("LLM_AUTOSCALER_TEST_POD_NET", "3"))
    cfg = StackConfig(
        state_dir=state_dir,
        nodes=4,  # 32 fake GPUs: every e2e module leaves some pods while it runs
        gpus_per_node=8,
        pod_net=pod_net,
        scrape_interval="1s",
        fleet_args=["--profile=tiny-test", "--cold-start=1"],
    )
    state = asyncio.run(Stack(cfg).up())
    try:
        yield state
    finally:
        logs = state_dir / "logs"
        down(state_dir, keep_dir=True)
        print(f"\nstack logs kept in {logs}")


@pytest.fixture
async def kube(stack: StackState) -> AsyncIterator[Any]:
    async with api_client(stack.kubeconfig) as api:
        yield api


async def prom_query(stack: StackState, query: str) -> list[dict[str, Any]]:
    url = f"{stack.prometheus_url}/api/v1/query?query={urllib.parse.quote(query)}"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        body = json.loads(await r.text())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def eventually(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 30.0,
    interval: float = 0.5,
    what: str = "",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or check}; last value: {last!r}")


def deployment(
    name: str,
    *,
    replicas: int,
    isvc: str | None = None,
    gpus: int = 1,
    extra_pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A predictor-like Deployment (labels and annotations as KServe's vLLM runtime sets them)."""
    labels = {"app": f"isvc.{name}"}
    ann = {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
        **(extra_pod_annotations or {}),
    }
    if isvc:
        labels["serving.kserve.io/inferenceservice"] = isvc
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": f"isvc.{name}"}},
            "template": {
                "metadata": {"labels": labels, "annotations": ann},
                "spec": {
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "args": [f"--served-model-name={isvc or name}", "--port=8080"],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {
                                "limits": {"nvidia.com/gpu": str(gpus)},
                                "requests": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ]
                },
            },
        },
    }


SHARED = Path(__file__).resolve().parents[2].parent / "shared"
