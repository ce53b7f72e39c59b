"""Record the Prometheus HTTP API answers that ``test_prometheus.py`` replays.

Runs a real ``prometheus`` (Debian's, as the local stack does) scraping, every second, two
simulated vLLM pods (``llm/chat-a``: V1, two engines; ``llm/chat-b``: V0, the deprecated KV
name), a pod the tests do not know (``llm/gone-0``) and a dcgm-exporter scraped like a
ServiceMonitor with ``honorLabels: false`` (so the workload's pod labels become
``exported_namespace``/``exported_pod``). After a few scrapes it runs every query of
:func:`adapters.prometheus.build_queries` and a broken one, and writes the answers to
``prometheus/*.json`` next to this file.

Run: ``python tests/unit/adapters/data/record_prometheus.py`` (needs ``prometheus`` on PATH).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from adapters.prometheus import build_queries  # noqa: E402
from tests.unit.adapters import samples  # noqa: E402

OUT = HERE / "prometheus"
ticks = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ttft_v1(n: int) -> str:
    """chat-a at its n-th scrape: TTFT buckets n+1 times the sample's, preemptions +2 each."""
    scaled = [
        tuple(c * (n + 1) for c in counts)
        for counts in (samples.TTFT_ENGINE0, samples.TTFT_ENGINE1)
    ]
    text = samples.VLLM_V1
    for engine, (old, new) in enumerate(
        zip((samples.TTFT_ENGINE0, samples.TTFT_ENGINE1), scaled, strict=True)
    ):
        for bound, a, b in zip(samples.TTFT_BOUNDS, old, new, strict=True):
            le = repr(float(bound))
            text = text.replace(
                f'_bucket{{engine="{engine}",le="{le}",model_name="{samples.MODEL}"}} {float(a)}\n',
                f'_bucket{{engine="{engine}",le="{le}",model_name="{samples.MODEL}"}} {float(b)}\n',
            )
        inf = f'_bucket{{engine="{engine}",le="+Inf",model_name="{samples.MODEL}"}} '
        text = text.replace(f"{inf}20.0\n", f"{inf}{20.0 * (n + 1)}\n")
    preempt = f'num_preemptions_total{{engine="0",model_name="{samples.MODEL}"}} '
    return text.replace(f"{preempt}4.0\n", f"{preempt}{4.0 + 2 * n}\n")


async def _metrics(request: web.Request) -> web.Response:
    pod = request.match_info["pod"]
    n = next(ticks)
    body = {
        "chat-a": _ttft_v1(n),
        "chat-b": samples.VLLM_V0,
        "gone-0": samples.VLLM_V0,
        "dcgm": samples.DCGM.replace(samples.DCGM_POD[1], "chat-a"),
    }[pod]
    return web.Response(text=body, content_type="text/plain")


def _config(app_port: int) -> str:
    def job(name: str, path: str, labels: dict[str, str]) -> dict[str, object]:
        return {
            "job_name": name,
            "honor_labels": False,
            "metrics_path": path,
            "static_configs": [{"targets": [f"127.0.0.1:{app_port}"], "labels": labels}],
        }

    jobs = [
        job(f"vllm-{p}", f"/{p}/metrics", {"namespace": "llm", "pod": p, "isvc": "chat"})
        for p in ("chat-a", "chat-b", "gone-0")
    ]
    exporter = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p"}
    jobs.append(job("dcgm", "/dcgm/metrics", exporter))
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs}
    return yaml.safe_dump(cfg, sort_keys=False)


async def main() -> None:
    app = web.Application()
    app.router.add_get("/{pod}/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    app_port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", app_port).start()
    prom_port = _free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "prometheus.yml").write_text(_config(app_port))
    proc = await asyncio.create_subprocess_exec(
        "prometheus",
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(12)
        OUT.mkdir(exist_ok=True)
        url = f"http://127.0.0.1:{prom_port}/api/v1/query"
        queries = {k.value: q for k, q in build_queries().items()}
        queries["error"] = "sum by (pod) (vllm:num_requests_waiting"  # unbalanced paren
        async with aiohttp.ClientSession() as session:
            for name, q in queries.items():
                async with session.post(url, data={"query": q}) as resp:
                    body = await resp.json()
                    status = resp.status
                record = {"query": q, "status": status, "body": body}
                (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
                print(name, status, len(body.get("data", {}).get("result", [])))
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)
        await runner.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
