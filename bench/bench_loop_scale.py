"""Benchmark: the scaling loop at scale, in-process, with fakes at our own seams.

The real :class:`autoscaler.scaling.ScalingLoop` (real targets, real
:class:`autoscaler.decisions.Decider` with the default policy, real :class:`Telemetry`) over
1k, 5k and 10k InferenceServices × 4 pods. The Kubernetes side is faked at our seams (the
ISVC/pod lists and the slimmed predictor Deployments the informer caches would hold, read
through the service's :class:`adapters.kube.CachedScaler`; the API server's scale writes, an
event sink, an annotator: all in memory, as in ``tests/unit/test_scaling_loop.py``). Metrics
come from the real :class:`adapters.prometheus.PrometheusSource` over HTTP against a tiny fake
Prometheus (aiohttp, its own process) that answers every instant query with a synthetic vector
for all pods, stamped with the current time, and counts the queries it receives.

Baseline, measured in the same run against the same fake Prometheus: a naive per-ISVC source —
one query per signal per InferenceService (``…{namespace="bench",pod=~"<isvc>-predictor-.*"}``),
as a per-object KEDA ScaledObject / prometheus-adapter setup does — feeding the same loop, 64
queries in flight. Only the metrics source differs.

Each configuration runs in a fresh child process (so RSS is that configuration's): one warm-up
tick, then ``--ticks`` timed ticks. RSS is the child's peak (``ru_maxrss``) and, when psutil is
installed, the current RSS after the last tick. Queries per tick are counted by the server.

Run: ``python bench/bench_loop_scale.py [--sizes 1000,5000,10000] [--ticks 10]
[--baseline-max 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from naive import PerIsvcPrometheusSource  # noqa: E402

from adapters.kube import CachedScaler, Scale, deployment_scale, slim_deployment  # noqa: E402
from adapters.prometheus import PrometheusSource, build_queries  # noqa: E402
from autoscaler.commands.run import GC_THRESHOLDS, tune_gc  # noqa: E402
from autoscaler.decisions import Decider  # noqa: E402
from autoscaler.scaling import ScalingLoop  # noqa: E402
from autoscaler.telemetry import Telemetry  # noqa: E402

NS = "bench"
PODS = 4
ISVC_LABEL = "serving.kserve.io/inferenceservice"
GOAL_TICK_S = 1.0
GOAL_RSS_MB = 300.0
VALUES = (  # (substring of the query, synthetic value): steady at 4 replicas, no writes
    ("num_requests_waiting", "4"),
    ("num_requests_running", "8"),
    ("cache_usage_perc", "0.5"),
    ("histogram_quantile(0.5,", "0.3"),
    ("histogram_quantile(0.95,", "0.8"),
    ("num_preemptions_total", "0"),
    ("DCGM_FI_DEV_GPU_UTIL", "60"),
)
POD_RE = re.compile(r'pod=~"([a-z0-9-]+)-predictor-\.\*"')


def pod_name(i: int, j: int) -> str:
    return f"isvc-{i}-predictor-{j}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------ fake Prometheus
def serve_prometheus(port: int, isvcs: int) -> None:
    """Answers ``/api/v1/query`` with a vector over every pod (or one ISVC's pods when the query
    selects ``pod=~"<isvc>-predictor-.*"``); ``/stats`` gives the number of queries so far."""

    def series(names: Sequence[str], value: str) -> bytes:
        items = ",".join(
            f'{{"metric":{{"namespace":"{NS}","pod":"{n}"}},"value":[@TS@,"{value}"]}}'
            for n in names
        )
        body = f'{{"status":"success","data":{{"resultType":"vector","result":[{items}]}}}}'
        return body.encode()

    everyone = [pod_name(i, j) for i in range(isvcs) for j in range(PODS)]
    full = {key: series(everyone, v) for key, v in VALUES}
    count = {"queries": 0}

    async def query(request: web.Request) -> web.Response:
        count["queries"] += 1
        form = await request.post() if request.method == "POST" else request.query
        q = str(form.get("query", ""))
        value = next((v for key, v in VALUES if key in q), "1")
        key = next((key for key, _ in VALUES if key in q), VALUES[0][0])
        ts = f"{time.time():.3f}".encode()
        m = POD_RE.search(q)
        if m:  # the baseline's per-ISVC query: that ISVC's pods only
            isvc = m.group(1)
            body = series([f"{isvc}-predictor-{j}" for j in range(PODS)], value)
        else:
            body = full[key]
        return web.Response(body=body.replace(b"@TS@", ts), content_type="application/json")

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(count)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ------------------------------------------------------------------------ fakes at our seams
class FakeApi:
    """The API server's side of the scale subresource, in memory: a write bumps the
    Deployment's resourceVersion in the informer cache at once (a watch event with no lag)."""

    def __init__(self, cache: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.cache = cache
        self.writes = 0

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        d = self.cache.get((namespace, name))
        return None if d is None else deployment_scale(d)

    async def set_replicas(self, namespace: str, name: str, replicas: int, expect: Scale) -> Scale:
        self.writes += 1
        rv = str(int(expect.resource_version) + 1)
        self.cache[(namespace, name)] = slim_deployment(
            {
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
                "spec": {"replicas": replicas},
                "status": {"replicas": replicas},
            }
        )
        return Scale(replicas, replicas, rv)


def deployments(isvcs: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The predictor Deployments as the service's informer keeps them (slimmed)."""
    return {
        (NS, f"isvc-{i}-predictor"): slim_deployment(
            {
                "metadata": {
                    "name": f"isvc-{i}-predictor",
                    "namespace": NS,
                    "resourceVersion": "1",
                },
                "spec": {"replicas": PODS},
                "status": {"replicas": PODS},
            }
        )
        for i in range(isvcs)
    }


class FakeRecorder:
    def __init__(self) -> None:
        self.events = 0

    async def record(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events += 1


class FakeAnnotator:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def annotate(self, namespace: str, name: str, value: str) -> None:
        self.values[name] = value


def world(isvcs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ISVC and pod objects the informer caches would hold (trimmed to what we read)."""
    objs, pods = [], []
    for i in range(isvcs):
        name = f"isvc-{i}"
        objs.append(
            {
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "generation": 1,
                    "annotations": {"serving.kserve.io/autoscalerClass": "external"},
                },
                "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 16}},
            }
        )
        for j in range(PODS):
            pods.append(
                {
                    "metadata": {
                        "name": pod_name(i, j),
                        "namespace": NS,
                        "labels": {ISVC_LABEL: name},
                        "annotations": {"prometheus.kserve.io/port": "8080"},
                        "creationTimestamp": "2026-01-01T00:00:00Z",
                    },
                    "status": {
                        "phase": "Running",
                        "podIP": f"10.{i // 250 % 256}.{i % 250}.{j + 1}",
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
    return objs, pods


# ------------------------------------------------------------------------ baseline source
# ------------------------------------------------------------------------ one configuration
def rss_now_mb() -> float | None:
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    return float(psutil.Process().memory_info().rss) / 2**20


async def run_one(mode: str, isvcs: int, prom_url: str, ticks: int) -> dict[str, Any]:
    tune_gc()  # the service's GC settings, applied at its start-up (autoscaler.commands.run)
    objs, pods = world(isvcs)
    source: Any
    if mode == "ours":
        source = PrometheusSource(prom_url, namespaces=(NS,), timeout=60)
    else:
        source = PerIsvcPrometheusSource(prom_url, build_queries(namespaces=(NS,)), NS)
    cache = deployments(isvcs)
    api, recorder = FakeApi(cache), FakeRecorder()
    # the service's read path: the Deployment cache, the API only for writes
    scaler = CachedScaler(lambda ns, name: cache.get((ns, name)), api)
    loop = ScalingLoop(
        isvcs=lambda: objs,
        pods=lambda: pods,
        source=source,
        scaler=scaler,
        recorder=recorder,
        annotator=FakeAnnotator(),  # type: ignore[arg-type]
        decider=Decider(),
        telemetry=Telemetry(),
        target_timeout=60.0,
    )

    async def served() -> int:
        async with aiohttp.ClientSession() as s, s.get(f"{prom_url}/stats") as r:
            return int((await r.json())["queries"])

    times, per_tick, complete = [], [], True
    for n in range(ticks + 1):  # the first tick is a warm-up (connections, spec cache)
        before = await served()
        t0 = time.perf_counter()
        snap = await loop.tick()
        elapsed = time.perf_counter() - t0
        after = await served()
        # one target at a time, as the loop reads them (not all held at once, which would
        # add to the RSS measured); and not held through the next tick, as the loop does not
        complete &= snap.available and all(
            p.queue_depth is not None for k in snap.targets for p in snap.targets[k].pods
        )
        del snap
        if n:
            times.append(elapsed)
            per_tick.append(after - before)
    await source.close()
    times.sort()
    return {
        "mode": mode,
        "isvcs": isvcs,
        "ticks": ticks,
        "p50_s": statistics.median(times),
        "p99_s": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "queries_per_tick": sorted(set(per_tick)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mb": rss_now_mb(),
        "writes": api.writes,
        "complete": complete,
    }


# ------------------------------------------------------------------------ driver
def child(mode: str, isvcs: int, prom_url: str, ticks: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            mode,
            "--isvcs",
            str(isvcs),
            "--prom",
            prom_url,
            "--ticks",
            str(ticks),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"fake Prometheus did not listen on {port}")


def fmt_q(r: dict[str, Any]) -> str:
    return "/".join(str(q) for q in r["queries_per_tick"])


def table(args: argparse.Namespace, results: list[dict[str, Any]], cmd: str) -> str:
    ours = {r["isvcs"]: r for r in results if r["mode"] == "ours"}
    base = {r["isvcs"]: r for r in results if r["mode"] == "per-isvc"}
    psutil_ok = any(r["rss_mb"] is not None for r in results)
    rows = [
        "# Scaling loop at scale: one query per signal vs one query per signal per ISVC",
        "",
        f"- command: `{cmd}`",
        f"- machine: {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, "
        f"{platform.machine()} {platform.system()} {platform.release()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- {PODS} pods per InferenceService; real ScalingLoop + Decider (default policy) + "
        "PrometheusSource over HTTP to a fake Prometheus in its own process (pre-rendered "
        "vectors for every pod, current timestamp); Kubernetes faked at our seams (in memory)",
        f"- {args.ticks} timed ticks per configuration after one warm-up, each configuration in a "
        "fresh process; queries per tick counted by the fake Prometheus",
        f"- baseline: one query per signal per ISVC, 64 in flight, same loop; run up to "
        f"{args.baseline_max} ISVCs"
        + (" (larger sizes skipped: see below)" if args.baseline_max < max(args.sizes) else ""),
        "- garbage collector as the service sets it at start-up (`autoscaler.commands.run."
        "tune_gc`: start-up objects frozen, thresholds "
        + "/".join(str(x) for x in GC_THRESHOLDS)
        + ")",
        "",
        "| ISVCs | pods | source | PromQL queries/tick | tick p50 s | tick p99 s | "
        "peak RSS MB | RSS MB (psutil) | complete |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for n in args.sizes:
        for r, label in ((ours.get(n), "ours (per signal)"), (base.get(n), "per-ISVC baseline")):
            if r is None:
                rows.append(
                    f"| {n} | {n * PODS} | {label} | {n * 7} (not run) | – | – | – | – | – |"
                )
                continue
            rss = f"{r['rss_mb']:.0f}" if r["rss_mb"] is not None else "n/a"
            rows.append(
                f"| {n} | {n * PODS} | {label} | {fmt_q(r)} | {r['p50_s']:.3f} | "
                f"{r['p99_s']:.3f} | {r['peak_rss_mb']:.0f} | {rss} | "
                f"{'yes' if r['complete'] else 'NO'} |"
            )
    rows += ["", "Ratios (baseline ÷ ours, same size, same run):", ""]
    for n in args.sizes:
        if n in ours and n in base:
            o, b = ours[n], base[n]
            rows.append(
                f"- {n} ISVCs: {max(b['queries_per_tick']) / max(o['queries_per_tick']):.0f}× "
                f"the queries, tick p50 {b['p50_s'] / o['p50_s']:.1f}× longer"
            )
    big = ours.get(max(args.sizes))
    if big:
        rss = big["rss_mb"] if big["rss_mb"] is not None else big["peak_rss_mb"]
        rows += [
            "",
            f"Goals at {big['isvcs']} ISVCs: tick ≤ {GOAL_TICK_S:.0f} s → "
            f"p50 {big['p50_s']:.3f} s, p99 {big['p99_s']:.3f} s "
            f"({'met' if big['p99_s'] <= GOAL_TICK_S else 'NOT met'}); RSS ≤ {GOAL_RSS_MB:.0f} MB "
            f"→ {rss:.0f} MB ({'met' if rss <= GOAL_RSS_MB else 'NOT met'}).",
        ]
    rows += [
        "",
        "`complete` = every pod got a queue-depth sample in every tick (no silent gaps). "
        "Tick time includes parsing every Prometheus answer, the join to the pod cache, every "
        "decision, the per-ISVC telemetry and the scale reads, which are, as in the service, "
        "lookups in the slimmed predictor Deployment cache (`adapters.kube.CachedScaler`, "
        "included in the RSS): a tick sends the API server only writes (here in memory; the "
        "live path is `bench_reaction.py`). RSS includes the fake ISVC/pod caches, which are "
        "smaller than real informer objects. The timed ticks run back to back, so the policy's "
        "300 s window holds only their proposals; in steady state it keeps one entry per run "
        "of equal proposals (`policies.default._recommend`), a handful per ISVC, and the "
        "default policy keeps no signal history."
        + ("" if psutil_ok else " psutil is not installed: RSS is the peak (ru_maxrss)."),
    ]
    return "\n".join(rows) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--baseline-max", type=int, default=5000)
    p.add_argument("--baseline-ticks", type=int, default=3)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--isvcs", type=int, help=argparse.SUPPRESS)
    p.add_argument("--prom", help=argparse.SUPPRESS)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "loop_scale.md")
    args = p.parse_args()
    if args.serve:
        serve_prometheus(args.serve, args.isvcs)
        return 0
    if args.one:
        print(json.dumps(asyncio.run(run_one(args.one, args.isvcs, args.prom, args.ticks))))
        return 0
    args.sizes = [int(s) for s in args.sizes.split(",")]
    cmd = " ".join(["python", os.path.relpath(__file__, REPO), *sys.argv[1:]])
    results = []
    for n in args.sizes:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--isvcs", str(n)]
        )
        try:
            wait_port(port)
            url = f"http://127.0.0.1:{port}"
            results.append(child("ours", n, url, args.ticks))
            print(json.dumps(results[-1]), flush=True)
            if n <= args.baseline_max:
                results.append(child("per-isvc", n, url, args.baseline_ticks))
                print(json.dumps(results[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(10)
    text = table(args, results, cmd)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
