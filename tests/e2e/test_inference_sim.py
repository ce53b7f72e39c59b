"""Our metric adapters against a third-party vLLM emulator: llm-d-inference-sim, built from Go
modules, serving real OpenAI requests and vLLM's metric names on loopback."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.scrape import DirectScrapeSource
from adapters.source import PodTarget
from autoscaler.stack import binaries
from autoscaler.stack.stack import free_port
from policies.signals import TargetKey
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    log = (tmp_path / "sim.log").open("wb")
    # --force-dummy-tokenizer: never look the model up on a hub (no network here).
    proc = await asyncio.create_subprocess_exec(
        *[
            str(binaries.inference_sim()),
            "--model",
            "demo",
            "--force-dummy-tokenizer",
            "--port",
            str(port),
            "--max-num-seqs",
            "2",
            "--time-to-first-token",
            "300ms",
            "--inter-token-latency",
            "100ms",
            "--mode",
            "random",
        ],
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:

            async def up() -> bool:
                try:
                    async with s.get(f"{base}/health") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, timeout=30, what="llm-d-inference-sim to listen")
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)
        log.close()


async def test_direct_scrape_reads_queue_and_running_from_llm_d_inference_sim(sim: str) -> None:
    body = {"model": "demo", "prompt": "hello there", "max_tokens": 30}
    async with aiohttp.ClientSession() as s:

        async def complete() -> int:
            async with s.post(f"{sim}/v1/completions", json=body) as r:
                return r.status

        requests = [asyncio.ensure_future(complete()) for _ in range(6)]
        await asyncio.sleep(1.0)  # 2 running (max-num-seqs), 4 waiting for ~3 s
        target = PodTarget(
            isvc=TargetKey("ns", "demo"), namespace="ns", pod="sim-0", url=f"{sim}/metrics"
        )
        async with DirectScrapeSource() as source:
            snap = await source.snapshot([target], now=1.0)
        pod = snap.targets[TargetKey("ns", "demo")].pods[0]
        assert snap.available
        assert pod.running is not None
        assert pod.running.value == 2
        assert pod.queue_depth is not None
        assert pod.queue_depth.value >= 1
        assert pod.kv_cache_usage is not None
        assert 0 <= pod.kv_cache_usage.value <= 1
        assert pod.gpu_utilization is None  # no DCGM here: missing, never 0
        assert await asyncio.gather(*requests) == [200] * 6


async def test_inspect_metrics_cli_reads_llm_d_inference_sim(sim: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoscaler.cli",
        "inspect-metrics",
        f"{sim}/metrics",
        "--pod",
        "ns/sim-0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    (pod,) = doc["pods"]
    assert (pod["namespace"], pod["pod"], pod["model"]) == ("ns", "sim-0", "demo")
    assert pod["queue_depth"] == 0
    assert pod["running"] == 0
    assert pod["gpu_utilization"] is None
