"""Benchmark: the external metrics API served from the snapshot cache, against a baseline that
runs one PromQL query per request (what prometheus-adapter does), measured in the same run.

Setup, all on loopback: an exposition endpoint serving ``vllm:num_requests_waiting`` for
``--isvcs`` InferenceServices × 4 pods; Debian's Prometheus scraping it every second; one
server process pinned to one CPU serving two routes of the same aiohttp app:

* ``cached`` — our app (:func:`autoscaler.metrics_api.build_app`) over a snapshot of the same
  pods, with the real TokenReview authenticator and SubjectAccessReview authorizer (their
  review clients answer in memory; after the first request both are cache hits, as in
  production, where the HPA asks the same question every 15 s);
* ``per-request PromQL`` — the same auth, then ``sum(vllm:num_requests_waiting{...})`` for the
  selected InferenceService against Prometheus, rendered as an ``ExternalMetricValueList``.

A client on the other CPU sends requests for random InferenceServices with ``--concurrency``
in flight for ``--duration`` seconds per mode; the table gives requests/s and latency
percentiles. Plain HTTP for both (TLS costs the same on both sides). Prometheus' own CPU is
not on the server's core: the baseline's figure is the best it can do.

Run: ``python bench/bench_metrics_api.py [--isvcs N] [--duration S] [--concurrency N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autoscaler.metrics_api import SnapshotCache, build_app  # noqa: E402
from autoscaler.metrics_api.auth import (  # noqa: E402
    SubjectAccessReviewAuthorizer,
    TokenReviewAuthenticator,
)
from autoscaler.metrics_api.catalog import lookup  # noqa: E402
from autoscaler.metrics_api.values import Item, value_list  # noqa: E402
from policies.signals import (  # noqa: E402
    MetricsSnapshot,
    PodSignals,
    Sample,
    TargetKey,
    TargetSignals,
)

NS = "bench"
PODS_PER_ISVC = 4
TOKEN = {"Authorization": "Bearer hpa"}
ISVC_LABEL = "serving.kserve.io/inferenceservice"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def depth(i: int, j: int) -> int:
    return (i * 7 + j) % 13


# ---------------------------------------------------------------------------- server process
class Reviews:
    """In-memory TokenReview / SubjectAccessReview answers (every review allowed)."""

    async def token_review(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"authenticated": True, "user": {"username": "hpa", "groups": []}}}

    async def subject_access_review(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"allowed": True}}


def fleet(isvcs: int, now: float) -> MetricsSnapshot:
    targets = {}
    for i in range(isvcs):
        key = TargetKey(NS, f"isvc-{i}")
        pods = tuple(
            PodSignals(NS, f"isvc-{i}-{j}", True, queue_depth=Sample(depth(i, j), now))
            for j in range(PODS_PER_ISVC)
        )
        targets[key] = TargetSignals(key, pods)
    return MetricsSnapshot(taken_at=now, source="bench", targets=targets)


def serve(port: int, prometheus: str, isvcs: int) -> None:
    """The server process: our app plus the per-request-PromQL route, on one CPU."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {0})
    cache = SnapshotCache()
    reviews = Reviews()
    app = build_app(
        cache,
        authenticator=TokenReviewAuthenticator(reviews),
        authorizer=SubjectAccessReviewAuthorizer(reviews),
        max_snapshot_age=1e9,
    )
    cache.publish(fleet(isvcs, time.time()))
    spec = lookup("llm-queue-depth")
    assert spec is not None
    session: dict[str, aiohttp.ClientSession] = {}

    async def baseline(request: web.Request) -> web.Response:
        # The same authn/authz as ours (cached), then one PromQL query per request.
        from autoscaler.metrics_api.app import _attributes
        from autoscaler.metrics_api.auth import Credentials

        user = await app_authn.authenticate(Credentials(request.headers))
        assert user is not None
        await app_authz.authorize(_attributes(request, user))
        isvc = request.query["labelSelector"].split("=", 1)[1]
        query = f'sum(vllm:num_requests_waiting{{namespace="{NS}",isvc="{isvc}"}})'
        if "s" not in session:
            session["s"] = aiohttp.ClientSession()
        async with session["s"].post(f"{prometheus}/api/v1/query", data={"query": query}) as r:
            body = await r.json()
        items = [
            Item({ISVC_LABEL: isvc}, float(res["value"][1]), float(res["value"][0]))
            for res in body["data"]["result"]
        ]
        return web.Response(
            text=json.dumps(value_list(spec, items)), content_type="application/json"
        )

    app_authn = TokenReviewAuthenticator(reviews)
    app_authz = SubjectAccessReviewAuthorizer(reviews)
    app.router.add_get("/baseline/namespaces/{namespace}/{metric}", baseline)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------------------- client side
def exposition(isvcs: int) -> bytes:
    lines = ["# TYPE vllm:num_requests_waiting gauge"]
    for i in range(isvcs):
        for j in range(PODS_PER_ISVC):
            lines.append(
                f'vllm:num_requests_waiting{{namespace="{NS}",pod="isvc-{i}-{j}",'
                f'isvc="isvc-{i}",model_name="m"}} {depth(i, j)}'
            )
    return ("\n".join(lines) + "\n").encode()


async def exporter(isvcs: int, port: int) -> web.AppRunner:
    body = exposition(isvcs)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def wait_http(url: str, timeout: float = 30.0, check: Any = None) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with s.get(url, headers=TOKEN) as r:
                    if r.status == 200 and (check is None or check(await r.json())):
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


async def load(base: str, isvcs: int, duration: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    rng = random.Random(1)
    stop = time.perf_counter() + duration

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            sel = quote(f"{ISVC_LABEL}=isvc-{rng.randrange(isvcs)}")
            t0 = time.perf_counter()
            async with s.get(f"{base}?labelSelector={sel}", headers=TOKEN) as r:
                body = await r.read()
                ok = r.status == 200 and b'"items": [{' in body
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


def start_processes(
    prom_bin: str, work: Path, prom_port: int, api_port: int, prom_url: str, isvcs: int
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Prometheus and the server process (started before any load, so blocking is fine)."""
    prom = subprocess.Popen(
        [
            prom_bin,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    argv = [sys.executable, __file__, "--serve", str(api_port), "--prometheus", prom_url]
    server = subprocess.Popen([*argv, "--isvcs", str(isvcs)])
    return prom, server


async def main_async(args: argparse.Namespace) -> str:
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        raise SystemExit("prometheus not found on PATH (apt-get install prometheus)")
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {1} if (os.cpu_count() or 1) > 1 else {0})
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-api-"))
    exp_port, prom_port, api_port = free_port(), free_port(), free_port()
    target = f"static_configs: [{{targets: ['127.0.0.1:{exp_port}']}}]"
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n"
        f"- job_name: vllm\n  honor_labels: true\n  {target}\n"
    )
    exp = await exporter(args.isvcs, exp_port)
    prom_url = f"http://127.0.0.1:{prom_port}"
    prom, server = start_processes(prom_bin, work, prom_port, api_port, prom_url, args.isvcs)
    try:
        q = quote(f'count(vllm:num_requests_waiting{{namespace="{NS}"}})')
        await wait_http(
            f"{prom_url}/api/v1/query?query={q}",
            60,
            lambda b: (
                b["data"]["result"]
                and int(b["data"]["result"][0]["value"][1]) == args.isvcs * PODS_PER_ISVC
            ),
        )
        await wait_http(f"http://127.0.0.1:{api_port}/healthz")
        api = f"http://127.0.0.1:{api_port}"
        ours = f"{api}/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/llm-queue-depth"
        modes = {
            "cached (ours)": ours,
            "per-request PromQL (baseline)": f"{api}/baseline/namespaces/{NS}/llm-queue-depth",
        }
        results = {}
        for name, url in modes.items():
            await load(url, args.isvcs, 1.0, args.concurrency)  # warm-up: caches, connections
            results[name] = await load(url, args.isvcs, args.duration, args.concurrency)
    finally:
        server.terminate()
        prom.terminate()
        server.wait(10)
        prom.wait(10)
        await exp.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    ours, base = results["cached (ours)"], results["per-request PromQL (baseline)"]
    rows = [
        f"# External metrics API: cached vs per-request PromQL ({dt.date.today()})",
        "",
        f"{args.isvcs} InferenceServices × {PODS_PER_ISVC} pods; server on 1 CPU; "
        f"{args.concurrency} requests in flight; {args.duration:.0f} s per mode; "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
        "| mode | requests/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        figures = f"{r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']:.0f}"
        rows.append(f"| {name} | {figures} |")
    rows += [
        "",
        f"**Ratio: {ours['rps'] / base['rps']:.1f}× the requests/s, "
        f"p99 {base['p99_ms'] / ours['p99_ms']:.1f}× lower.**",
    ]
    return "\n".join(rows) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isvcs", type=int, default=1000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--prometheus", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "metrics_api.md")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.prometheus, args.isvcs)
        return 0
    table = asyncio.run(main_async(args))
    print(table)
    args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
