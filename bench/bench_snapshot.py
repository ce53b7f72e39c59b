"""Benchmark: building one metrics snapshot for 10k pods, from Prometheus and by direct scrape,
each against a naive baseline measured in the same run.

Fleet: ``--pods`` (default 1k, 5k and 10k) vLLM V1 pods, 4 per InferenceService, one GPU each,
8 GPUs per node. A fleet server process (pinned to CPU 0; a bare asyncio HTTP/1.1 server with
keep-alive, so that serving costs less than reading) answers on every loopback address:

* ``127.10.x.y:PORT/metrics`` — pod *k*'s own ``/metrics``, as a pod's IP:port would be: the
  full ~38 KB page vLLM 0.11 exposes with one engine (every family, rendered by
  ``prometheus_client`` as vLLM does: ``bench_exposition.vllm_pod``), the families the
  autoscaler reads (the three gauges, ``vllm:num_preemptions``, the TTFT histogram with vLLM
  V1's 22 buckets) rendered per request so that counters grow by 20 requests a scrape;
* ``127.200.x.y:PORT/metrics`` — node *m*'s dcgm-exporter (``autoscaler.sim.dcgm.render``:
  6 families × 8 GPUs, each GPU labelled with the pod that holds it);
* ``127.3.0.s:PORT/fleet/<pods>`` — shard *s* (500 pods): the families the autoscaler's PromQL
  reads, for those pods, labelled ``namespace``/``pod`` (what a federation or a
  pushgateway-style setup exposes), plus their nodes' dcgm-exporter pages.

**Prometheus path.** Debian's Prometheus (own temp data dir, loopback port, both CPUs: in
production it has cores of its own) scrapes the shards every 5 s with ``honor_labels: true``;
the bench waits until every TTFT bucket series has a ``rate()`` (two scrapes or more) and every
GPU is there.
Timed: the real :class:`adapters.prometheus.PrometheusSource`, configured as the service
configures it (``namespaces``, ``max_age`` 15 s), building full snapshots — its 7 queries
concurrently, JSON decode, join to the pods, assembly — in a child process pinned to CPU 1;
queries per snapshot are counted by Prometheus itself (``prometheus_http_requests_total``).
Baseline: one query per InferenceService per signal (the same PromQL with the ISVC's pods
selected, ``pod=~"<isvc>-predictor-.*"``: what a KEDA ScaledObject or prometheus-adapter rule per
InferenceService runs), 64 in flight, on the first ``--baseline-isvcs`` ISVCs against the same
full-size Prometheus, and extrapolated linearly to every ISVC (its cost is per query).

**Direct path.** Prometheus stopped. Timed: the real :class:`adapters.scrape.DirectScrapeSource`
as the service configures it (64 concurrent scrapes, 2 s per-pod timeout) scraping every pod
at its own address plus every node's dcgm-exporter, in a child process pinned to CPU 1; one
untimed snapshot first (the source needs a previous scrape for rates, and it opens the
keep-alive connections a running autoscaler holds). The parse share is the time spent in
:func:`adapters.exposition.parse`, the GC share the cyclic collector's pauses (``gc.callbacks``).
A last child drives the source with snapshots stamped 1 s apart (the service's tick) to size its
per-pod rate history at steady state (60 s window). Baseline: the same source with
``prometheus_client.parser.text_string_to_metric_families`` in place of our parser (everything
else identical), on the first ``--baseline-pods`` pods, and extrapolated linearly.

Every configuration runs in a fresh child process: RSS is that process's peak (``ru_maxrss``)
and current (``VmRSS``) after the last snapshot. ``complete`` = every pod had every signal
(queue depth, running, KV cache, GPU utilization, TTFT p50/p95, preemption rate) in every
timed snapshot.

Run: ``python bench/bench_snapshot.py [--pods 1000,5000,10000] [--reps 5] [--direct-reps 5]
[--baseline-isvcs 200] [--baseline-pods 1000] [--profile]`` (about 4-5 minutes on 2 CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_exposition import vllm_pod  # noqa: E402
from naive import PerIsvcPrometheusSource  # noqa: E402

import adapters.scrape  # noqa: E402
from adapters.exposition import Family, Sample, parse  # noqa: E402
from adapters.extract import vllm_families  # noqa: E402
from adapters.prometheus import PrometheusSource  # noqa: E402
from adapters.scrape import DirectScrapeSource  # noqa: E402
from adapters.source import PodTarget  # noqa: E402
from autoscaler.commands.run import tune_gc  # noqa: E402
from autoscaler.sim import dcgm  # noqa: E402
from autoscaler.sim.vllm_server import TTFT_BUCKETS  # noqa: E402
from policies.signals import MetricsSnapshot, TargetKey  # noqa: E402

NS = "bench"
PODS_PER_ISVC = 4
GPUS_PER_NODE = 8
SHARD = 500  # pods per Prometheus scrape target
SCRAPE_INTERVAL = 5
MAX_AGE = 15.0  # the service's default stale_after_seconds
OBS_PER_SCRAPE = 20
HISTORY_TICKS = 62  # a 60 s window at a 1 s tick holds 61 points
TTFT_SUM = 6  # seconds of TTFT per scrape (20 requests, 0.3 s mean)
CREATED = 1.7e9
GPU_MODEL = "NVIDIA H100 80GB HBM3"
LE = [repr(float(b)) for b in TTFT_BUCKETS] + ["+Inf"]
SIGNALS = (
    "queue_depth",
    "running",
    "kv_cache_usage",
    "gpu_utilization",
    "ttft_p50_seconds",
    "ttft_p95_seconds",
    "preemption_rate",
)
GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
)
PREEMPT_HELP = "Cumulative number of preemption from the engine."
TTFT_HELP = "Histogram of time to first token in seconds."


# ----------------------------------------------------------------------------- the fleet
def isvc_name(i: int) -> str:
    return f"isvc-{i}"


def pod_name(k: int) -> str:
    return f"isvc-{k // PODS_PER_ISVC}-predictor-{k % PODS_PER_ISVC}"


def pod_ip(k: int) -> str:
    return f"127.{10 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}"


def node_ip(m: int) -> str:
    return f"127.200.{m // 250}.{m % 250 + 1}"


def shard_ip(s: int) -> str:
    return f"127.3.{s // 250}.{s % 250 + 1}"


def nodes_for(pods: int) -> int:
    return -(-pods // GPUS_PER_NODE)


def gauge_values(k: int) -> tuple[float, float, float]:
    """(running, waiting, kv cache usage) of pod k."""
    return float(8 + k % 5), float((k * 7) % 13), 0.3 + (k % 7) / 20


def ttft_step(k: int) -> list[int]:
    """Cumulative TTFT bucket counts added by one scrape's worth of requests on pod k."""
    centre = 7 + k % 4  # 0.1 s .. 0.75 s
    per = [0] * len(LE)
    for offset, n in ((-2, 2), (-1, 4), (0, 8), (1, 4), (2, 2)):
        per[centre + offset] += n
    out, acc = [], 0
    for n in per:
        acc += n
        out.append(acc)
    return out


def targets(pods: int, port: int) -> list[PodTarget]:
    return [
        PodTarget(
            isvc=TargetKey(NS, isvc_name(k // PODS_PER_ISVC)),
            namespace=NS,
            pod=pod_name(k),
            created_at=CREATED,
            ip=pod_ip(k),
            port=port,
        )
        for k in range(pods)
    ]


def dcgm_urls(pods: int, port: int) -> list[str]:
    return [f"http://{node_ip(m)}:{port}/metrics" for m in range(nodes_for(pods))]


class Template:
    """Text with counter values marked ``\\0c\\0``: each renders as ``c × scrape count``."""

    def __init__(self, text: str) -> None:
        self.parts = text.split("\0")
        self.keys = sorted(set(self.parts[1::2]))

    def render(self, n: int) -> bytes:
        vals = {k: repr(float(int(k) * n)) for k in self.keys}
        out = self.parts.copy()
        out[1::2] = [vals[k] for k in self.parts[1::2]]
        return "".join(out).encode()


def c(mult: int) -> str:
    """A counter value in a template: ``mult`` per scrape."""
    return f"\0{mult}\0"


class Fleet:
    """Renders every page; counters grow with each page's own scrape count (20 requests a
    scrape per pod, a third of the pods preempting)."""

    def __init__(self, pods: int) -> None:
        self.pods = pods
        self.steps = [ttft_step(k) for k in range(pods)]
        static = vllm_pod("@MODEL@", 1, random.Random(1)).decode()
        read = {"vllm:num_preemptions", *vllm_families()}
        blocks = static.split("# HELP ")
        kept = [
            b
            for b in blocks[1:]
            if b.split(" ", 1)[0].removesuffix("_created").removesuffix("_total") not in read
        ]
        self.static = ("# HELP " + "# HELP ".join(kept)).encode()
        self.dcgm = [self._node(m).encode() for m in range(nodes_for(pods))]
        self.dcgm_samples: list[dict[str, str]] = []  # per node: family -> sample lines
        for page in self.dcgm:
            fams: dict[str, list[str]] = {}
            for line in page.decode().splitlines(keepends=True):
                if not line.startswith("#"):
                    fams.setdefault(line.split("{", 1)[0], []).append(line)
            self.dcgm_samples.append({f: "".join(lines) for f, lines in fams.items()})
        self.scrapes: dict[str, int] = {}
        self.templates: dict[tuple[int, int], Template] = {}
        self.routes: dict[str, Callable[[str, int], bytes | None]] = {}
        for k in range(pods):
            self.routes[pod_ip(k)] = lambda path, n, k=k: self.pod_page(k, n)
        for m in range(nodes_for(pods)):
            self.routes[node_ip(m)] = lambda path, n, m=m: self.dcgm[m]
        for s in range(-(-pods // SHARD)):
            self.routes[shard_ip(s)] = lambda path, n, s=s: self.shard_page(s, path, n)

    def _node(self, m: int) -> str:
        holders = {}
        for g in range(GPUS_PER_NODE):
            k = m * GPUS_PER_NODE + g
            if k < self.pods:
                util = 40.0 + k % 50
                holders[g] = dcgm.GpuHolder(NS, pod_name(k), "kserve-container", lambda u=util: u)
        return dcgm.render(f"gpu-node-{m}", GPUS_PER_NODE, GPU_MODEL, holders)

    def page(self, ip: str, path: str) -> bytes | None:
        route = self.routes.get(ip)
        if route is None:
            return None
        n = self.scrapes[ip] = self.scrapes.get(ip, 0) + 1
        return route(path, n)

    def pod_page(self, k: int, n: int) -> bytes:
        """Pod k's own /metrics: labels engine and model_name only, as vLLM exposes them."""
        tpl = self.templates.get((-1, k))
        if tpl is None:
            tpl = self.templates[(-1, k)] = Template(self._pod_text(k))
        model = isvc_name(k // PODS_PER_ISVC).encode()
        return tpl.render(n) + self.static.replace(b"@MODEL@", model)

    def _pod_text(self, k: int) -> str:
        lab = f'engine="0",model_name="{isvc_name(k // PODS_PER_ISVC)}"'
        out = []
        for (name, doc), v in zip(GAUGES, gauge_values(k), strict=True):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n{name}{{{lab}}} {v!r}\n")
        p = "vllm:num_preemptions"
        out.append(
            f"# HELP {p}_total {PREEMPT_HELP}\n# TYPE {p}_total counter\n"
            f"{p}_total{{{lab}}} {c(k % 3)}\n"
            f"# HELP {p}_created {PREEMPT_HELP}\n# TYPE {p}_created gauge\n"
            f"{p}_created{{{lab}}} {CREATED!r}\n"
        )
        t = "vllm:time_to_first_token_seconds"
        out.append(f"# HELP {t} {TTFT_HELP}\n# TYPE {t} histogram\n")
        model = f'model_name="{isvc_name(k // PODS_PER_ISVC)}"'
        for le, count in zip(LE, self.steps[k], strict=True):
            out.append(f'{t}_bucket{{engine="0",le="{le}",{model}}} {c(count)}\n')
        out.append(
            f"{t}_count{{{lab}}} {c(OBS_PER_SCRAPE)}\n{t}_sum{{{lab}}} {c(TTFT_SUM)}\n"
            f"# HELP {t}_created {TTFT_HELP}\n# TYPE {t}_created gauge\n"
            f"{t}_created{{{lab}}} {CREATED!r}\n"
        )
        return "".join(out)

    def shard_page(self, s: int, path: str, n: int) -> bytes | None:
        """A federation-style page: the read families of shard s's pods, with namespace/pod,
        and the dcgm-exporter pages of the nodes whose first GPU is in the shard."""
        try:
            pods = min(self.pods, int(path.rsplit("/", 1)[1]))
        except ValueError:
            return None
        tpl = self.templates.get((s, pods))
        if tpl is None:
            tpl = self.templates[(s, pods)] = Template(self._shard_text(s, pods))
        return tpl.render(n)

    def _shard_text(self, s: int, pods: int) -> str:
        ks = range(s * SHARD, min(pods, (s + 1) * SHARD))
        labs = [
            f'engine="0",model_name="{isvc_name(k // PODS_PER_ISVC)}",namespace="{NS}",'
            f'pod="{pod_name(k)}"'
            for k in ks
        ]
        pairs = list(zip(ks, labs, strict=True))
        out = []
        for g, (name, _) in enumerate(GAUGES):
            out.append(f"# TYPE {name} gauge\n")
            out += [f"{name}{{{lab}}} {gauge_values(k)[g]!r}\n" for k, lab in pairs]
        out.append("# TYPE vllm:num_preemptions_total counter\n")
        out += [f"vllm:num_preemptions_total{{{lab}}} {c(k % 3)}\n" for k, lab in pairs]
        t = "vllm:time_to_first_token_seconds"
        out.append(f"# TYPE {t} histogram\n")
        for k, lab in pairs:
            out += [
                f'{t}_bucket{{{lab},le="{le}"}} {c(count)}\n'
                for le, count in zip(LE, self.steps[k], strict=True)
            ]
            out.append(f"{t}_count{{{lab}}} {c(OBS_PER_SCRAPE)}\n{t}_sum{{{lab}}} {c(TTFT_SUM)}\n")
        nodes = self.dcgm_samples[nodes_for(ks.start) : nodes_for(ks.stop)]
        for name, kind, _ in dcgm._FAMILIES:
            out.append(f"# TYPE {name} {kind}\n")
            out += [node[name] for node in nodes]
        return "".join(out)


class Http(asyncio.Protocol):
    """HTTP/1.1 GET with keep-alive; the page depends on the local address dialled."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.buf = b""
        self.ip = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if not peer or not str(peer[0]).startswith("127."):
            transport.close()  # loopback only, whatever the bind address
            return
        self.ip = transport.get_extra_info("sockname")[0]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            parts = head.split(b" ", 2)
            path = parts[1].decode() if len(parts) > 1 else "/"
            body = self.fleet.page(self.ip, path)
            if body is None:
                status, body = b"404 Not Found", b"not found\n"
            else:
                status = b"200 OK"
            self.transport.write(
                b"HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n" % (status, len(body))
            )
            self.transport.write(body)


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(cpu: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def serve_fleet(port: int, pods: int) -> None:
    pin(0)
    raise_nofile()
    fleet = Fleet(pods)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Http(fleet), "0.0.0.0", port, backlog=4096)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


# ----------------------------------------------------------------------------- measurements
def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def vm_rss_mb() -> float:
    return process_rss_mb(os.getpid())


def pct(times: list[float], q: float) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def complete(snap: MetricsSnapshot, pods: int) -> bool:
    got = [p for t in snap.targets.values() for p in t.pods]
    return (
        snap.available
        and len(got) == pods
        and all(getattr(p, s) is not None for p in got for s in SIGNALS)
    )


def prom_queries_served(url: str) -> int:
    """Instant queries Prometheus has answered, from its own /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        fams = parse(r.read(), {"prometheus_http_requests"})
    fam = fams.get("prometheus_http_requests")
    samples = fam.samples if fam else []
    return int(sum(s.value for s in samples if s.labels.get("handler") == "/api/v1/query"))


def prometheus_client_parse(
    text: str | bytes, names: Collection[str] | None = None, *, openmetrics: bool | None = None
) -> dict[str, Family]:
    """The baseline parser: prometheus_client's, converted to our families (same keys)."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for f in text_string_to_metric_families(text):
        if names is None or f.name in names:
            samples = [Sample(s.name, s.labels, s.value, s.timestamp) for s in f.samples]
            out[f.name] = Family(f.name, f.type, f.documentation, f.unit, samples)
    return out


class Clock:
    """Time spent in the exposition parser and in the cyclic garbage collector (``gc``
    callbacks), the collector's pauses inside the parser counted as GC, not as parsing."""

    def __init__(self) -> None:
        self.parse = self.gc = self.gc_in_parse = 0.0
        self._gc_start = 0.0
        self._parsing = False
        gc.callbacks.append(self._on_gc)

    def reset(self) -> None:
        self.parse = self.gc = self.gc_in_parse = 0.0

    def _on_gc(self, phase: str, _: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_start
        self.gc += pause
        if self._parsing:
            self.gc_in_parse += pause

    def wrap(self, fn: Callable[..., dict[str, Family]]) -> Callable[..., dict[str, Family]]:
        def timed(*a: Any, **kw: Any) -> dict[str, Family]:
            t0 = time.perf_counter()
            self._parsing = True
            try:
                return fn(*a, **kw)
            finally:
                self._parsing = False
                self.parse += time.perf_counter() - t0

        return timed


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this (child) process, with the service's GC settings."""
    pin(1)
    raise_nofile()
    tune_gc()
    pods = args.pods_one
    tg = targets(pods, args.port)
    clock = Clock()
    if args.one == "history":
        return await history(tg, pods, args.port)
    source: Any
    if args.one in ("prom", "prom-naive"):
        prom = PrometheusSource(args.prom, namespaces=(NS,), max_age=MAX_AGE, timeout=120)
        source = (
            prom if args.one == "prom" else PerIsvcPrometheusSource(args.prom, prom.queries, NS)
        )
    else:
        inner = parse if args.one == "direct" else prometheus_client_parse
        adapters.scrape.parse = clock.wrap(inner)  # type: ignore[attr-defined]
        source = DirectScrapeSource(dcgm_urls=dcgm_urls(pods, args.port))
    if args.profile:
        import cProfile
        import pstats

        await source.snapshot(tg, time.time())
        prof = cProfile.Profile()
        prof.enable()
        await source.snapshot(tg, time.time())
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    times, cpu, parse_s, gc_s, queries, failures, ok = [], [], [], [], [], 0, True
    for n in range(args.reps + 1):  # the first is a warm-up
        before = prom_queries_served(args.prom) if args.prom else 0
        clock.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        snap = await source.snapshot(tg, time.time())
        # The Prometheus source builds each target's pods on first read: time that too, so
        # the figure is a snapshot every target can be decided from.
        for _ in snap.targets.values():
            pass
        elapsed, used = time.perf_counter() - t0, time.process_time() - c0
        if n:
            times.append(elapsed)
            cpu.append(used)
            parse_s.append(clock.parse - clock.gc_in_parse)
            gc_s.append(clock.gc)
            ok &= complete(snap, pods)
            if args.prom:
                queries.append(prom_queries_served(args.prom) - before)
            else:
                failures += source.stats.last_failures
                queries.append(source.stats.last_requests)
    await source.close()
    return {
        "mode": args.one,
        "pods": pods,
        "reps": args.reps,
        "p50_s": statistics.median(times),
        "p99_s": pct(times, 0.99),
        "cpu_s": statistics.median(cpu),
        "parse_s": statistics.median(parse_s),
        "gc_s": statistics.median(gc_s),
        "requests": sorted(set(queries)),
        "failures": failures,
        "complete": ok,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mb": vm_rss_mb(),
    }


def deep_size(root: object) -> int:
    """Bytes of ``root`` and every object it references (types and strings excluded)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, type | str):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


async def history(tg: list[PodTarget], pods: int, port: int) -> dict[str, Any]:
    """The direct source's per-pod rate history at steady state with the service's 1 s tick:
    snapshots stamped 1 s apart (the source windows by the ``now`` it is given)."""
    source = DirectScrapeSource(dcgm_urls=dcgm_urls(pods, port))
    start = time.time()
    for i in range(HISTORY_TICKS):
        await source.snapshot(tg, start + i)
    kept = source._history.values()
    size = sum(deep_size(d) for d in kept)
    await source.close()
    return {
        "mode": "history",
        "pods": pods,
        "points": max(len(d) for d in kept),
        "bytes_per_pod": size / pods,
    }


# ----------------------------------------------------------------------------- driver
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child(
    mode: str, pods: int, reps: int, port: int, prom: str = "", profile: bool = False
) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--one", mode, "--pods-one", str(pods)]
    argv += ["--reps", str(reps), "--port", str(port)]
    if prom:
        argv += ["--prom", prom]
    if profile:
        argv.append("--profile")
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps(result), flush=True)
    return result


def query(url: str, promql: str) -> float:
    q = urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def start_prometheus(work: Path, port: int, fleet_port: int, pods: int) -> subprocess.Popen[bytes]:
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        raise SystemExit("prometheus not found on PATH (apt-get install prometheus)")
    shards = ", ".join(f"'{shard_ip(s)}:{fleet_port}'" for s in range(-(-pods // SHARD)))
    (work / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {SCRAPE_INTERVAL}s, scrape_timeout: {SCRAPE_INTERVAL}s}}\n"
        "scrape_configs:\n"
        f"- job_name: fleet\n  honor_labels: true\n  metrics_path: /fleet/{pods}\n"
        f"  static_configs: [{{targets: [{shards}]}}]\n"
    )
    return subprocess.Popen(
        [
            prom_bin,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_prometheus(url: str, pods: int, timeout: float = 120.0) -> float:
    """Seconds until every TTFT bucket has a rate (>= 2 scrapes) and every GPU is there."""
    t0 = time.monotonic()
    want = (pods * len(LE), pods)
    rate = f'count(rate(vllm:time_to_first_token_seconds_bucket{{namespace="{NS}"}}[1m]))'
    gpus = 'count(DCGM_FI_DEV_GPU_UTIL{pod!=""})'
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if (query(url, rate), query(url, gpus)) == want:
                return time.monotonic() - t0
        time.sleep(1.0)
    raise RuntimeError(f"Prometheus did not get every series of {pods} pods in {timeout:.0f}s")


def run_all(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[int, dict[str, float]]]:
    fleet_port = free_port()
    top = max(args.pods)
    fleet = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(fleet_port), "--pods-one", str(top)],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: list[dict[str, Any]] = []
    proms: dict[int, dict[str, float]] = {}
    try:
        assert fleet.stdout is not None
        if fleet.stdout.readline().strip() != "ready":
            raise RuntimeError("fleet server did not start")
        for pods in args.pods:
            work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
            prom_port = free_port()
            prom = start_prometheus(work, prom_port, fleet_port, pods)
            url = f"http://127.0.0.1:{prom_port}"
            try:
                ready = wait_prometheus(url, pods)
                results.append(child("prom", pods, args.reps, fleet_port, url, args.profile))
                if pods == top:
                    sub = min(pods, args.baseline_isvcs * PODS_PER_ISVC)
                    results.append(child("prom-naive", sub, args.baseline_reps, fleet_port, url))
                proms[pods] = {"ready_s": ready, "rss_mb": process_rss_mb(prom.pid)}
            finally:
                prom.terminate()
                prom.wait(30)
                shutil.rmtree(work, ignore_errors=True)
        sub = min(top, args.baseline_pods)
        for pods in sorted({*args.pods, sub}):  # ours at the baseline's size too
            results.append(
                child("direct", pods, args.direct_reps, fleet_port, profile=args.profile)
            )
        results.append(child("direct-pc", sub, args.baseline_reps, fleet_port))
        results.append(child("history", min(top, 100), 0, fleet_port))
    finally:
        fleet.terminate()
        fleet.wait(10)
    return results, proms


def render(
    args: argparse.Namespace, results: list[dict[str, Any]], proms: dict[int, dict[str, float]]
) -> str:
    cmd = " ".join(["python", os.path.relpath(__file__, REPO), *sys.argv[1:]])
    top = max(args.pods)
    isvcs = top // PODS_PER_ISVC
    by = {(r["mode"], r["pods"]): r for r in results}
    one = {r["mode"]: r for r in results}

    def rss(r: dict[str, Any]) -> str:
        return f"{r['peak_rss_mb']:.0f} / {r['rss_mb']:.0f}"

    def req(r: dict[str, Any]) -> str:
        return "/".join(str(q) for q in r["requests"])

    def yes(r: dict[str, Any]) -> str:
        return "yes" if r["complete"] and not r["failures"] else "NO"

    def share(part: float, r: dict[str, Any]) -> str:
        return f"{part:.3f} ({part / r['p50_s']:.0%})"

    rows = [
        "# Snapshot build time: Prometheus and direct scrape, up to 10k pods",
        "",
        f"- command: `{cmd}`",
        f"- machine: {os.cpu_count()} CPUs (nproc), shared with other engineers' workloads "
        f"during the run; Python {platform.python_version()}, {platform.machine()} "
        f"{platform.system()} {platform.release()}; Prometheus {prometheus_version()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- code measured: {args.code}",
        f"- fleet: {PODS_PER_ISVC} vLLM V1 pods (1 engine, 1 GPU) per InferenceService, "
        f"{GPUS_PER_NODE} GPUs per node, served by one process on CPU 0; the measured source "
        "in a fresh process on CPU 1 per configuration, one untimed snapshot first; "
        f"{args.reps} timed snapshots per size (Prometheus), {args.direct_reps} (direct), "
        f"{args.baseline_reps} (baselines): p99 of so few is their maximum",
        "",
        "## Prometheus: `PrometheusSource` (one query per signal, for all pods)",
        "",
        f"Debian's Prometheus (both CPUs) scrapes every {SCRAPE_INTERVAL} s, {SHARD} pods per "
        "target, `honor_labels: true`: per pod 31 vLLM series (3 gauges, the preemption "
        "counter, 25 TTFT histogram series) and 6 dcgm-exporter series. Timing starts once "
        "every TTFT bucket has a `rate()` over 1m (≥ 2 scrapes). Queries are counted by "
        "Prometheus. `client CPU` = the source's own CPU per snapshot (HTTP, JSON decode, join, "
        "assembly; `GC` = the cyclic collector's pauses within it); the rest of the wall time "
        "is Prometheus evaluating.",
        "",
        "| pods | ISVCs | source | queries/snapshot | snapshot p50 s | p99 s | client CPU s | "
        "GC s | client RSS MB peak / now | Prometheus RSS MB | complete |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for pods in args.pods:
        r = by.get(("prom", pods))
        if r:
            prss = proms.get(pods, {}).get("rss_mb", float("nan"))
            rows.append(
                f"| {pods} | {pods // PODS_PER_ISVC} | ours | {req(r)} | {r['p50_s']:.3f} | "
                f"{r['p99_s']:.3f} | {r['cpu_s']:.3f} | {r['gc_s']:.3f} | {rss(r)} | "
                f"{prss:.0f} | {yes(r)} |"
            )
    naive, ours = one.get("prom-naive"), by.get(("prom", top))
    if naive and ours:
        n_isvcs = naive["pods"] // PODS_PER_ISVC
        scale = isvcs / n_isvcs
        est = naive["p50_s"] * scale
        rows += [
            f"| {naive['pods']} of {top} | {n_isvcs} | per-ISVC baseline, measured | "
            f"{req(naive)} | {naive['p50_s']:.3f} | {naive['p99_s']:.3f} | "
            f"{naive['cpu_s']:.3f} | {naive['gc_s']:.3f} | {rss(naive)} | – | {yes(naive)} |",
            f"| {top} | {isvcs} | per-ISVC baseline, **extrapolated** ×{scale:g} | "
            f"{isvcs * len(SIGNALS)} | {est:.1f} | {naive['p99_s'] * scale:.1f} | "
            f"{naive['cpu_s'] * scale:.1f} | – | – | – | – |",
            "",
            f"**At {top} pods: ours {ours['p50_s']:.2f} s per snapshot with "
            f"{max(ours['requests'])} queries; one query per ISVC per signal "
            f"{isvcs * len(SIGNALS)} queries and ≈ {est:.1f} s, extrapolated linearly from "
            f"{n_isvcs} ISVCs measured against the same {top}-pod Prometheus: "
            f"{est / ours['p50_s']:.1f}× ours.**",
        ]
    rows += [
        "",
        "## Direct scrape: `DirectScrapeSource` (every pod's `/metrics` and every dcgm-exporter)",
        "",
        "Every pod and node at its own loopback address (distinct hosts: one keep-alive "
        f"connection each, as in a cluster); pod pages {pod_page_kb():.0f} KB (the full vLLM "
        "page), dcgm-exporter pages "
        f"{len(Fleet(GPUS_PER_NODE).dcgm[0]) / 1e3:.0f} KB; 64 scrapes in flight and a 2 s "
        "per-pod timeout (the service's defaults). `parse` = time in the exposition parser, "
        "`GC` = the cyclic collector's pauses (those inside the parser counted here, not "
        "there), shares of the p50 wall time. The source is CPU-bound: its process's CPU "
        "time ≈ wall time.",
        "",
        "| pods | source | GETs/snapshot | snapshot p50 s | p99 s | pods/s | parse s (share) "
        "| GC s (share) | CPU s | RSS MB peak / now | complete |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def direct_row(r: dict[str, Any], label: str) -> str:
        return (
            f"| {r['pods']} | {label} | {req(r)} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | "
            f"{r['pods'] / r['p50_s']:.0f} | {share(r['parse_s'], r)} | {share(r['gc_s'], r)} "
            f"| {r['cpu_s']:.3f} | {rss(r)} | {yes(r)} |"
        )

    for pods in sorted(p for m, p in by if m == "direct"):
        rows.append(direct_row(by[("direct", pods)], "ours (`adapters.exposition.parse`)"))
    base, ours = one.get("direct-pc"), by.get(("direct", top))
    if base:
        rows.append(direct_row(base, "baseline: `prometheus_client` parser, measured"))
        scale = top / base["pods"]
        if scale != 1:
            rows.append(
                f"| {top} | baseline, **extrapolated** ×{scale:g} | – | "
                f"{base['p50_s'] * scale:.1f} | {base['p99_s'] * scale:.1f} | – | "
                f"{base['parse_s'] * scale:.1f} | – | "
                f"{base['cpu_s'] * scale:.1f} | – | – |"
            )
        same = by.get(("direct", base["pods"]))
        if same:
            rows.append(
                f"\n**At {base['pods']} pods, both measured: with prometheus_client's parser in "
                f"place of ours the snapshot takes {base['p50_s'] / same['p50_s']:.1f}× as long "
                f"(parse time {base['parse_s'] / same['parse_s']:.0f}× ours).**"
                + (
                    f" At {top} pods: ours {ours['p50_s']:.2f} s, the baseline ≈ "
                    f"{base['p50_s'] * scale:.1f} s (extrapolated linearly)."
                    if ours and scale != 1
                    else ""
                )
            )
    hist = one.get("history")
    if hist:
        per = hist["bytes_per_pod"]
        rows += [
            "",
            f"Rate history at steady state (service defaults: 1 s tick, 60 s window): "
            f"{hist['points']} points per pod, {per / 1e3:.0f} KB per pod "
            f"(measured on {hist['pods']} pods over {HISTORY_TICKS} ticks stamped 1 s apart) "
            f"→ ≈ {per * top / 2**20:.0f} MB at {top} pods, on top of the RSS above (where "
            f"snapshots are seconds apart, so the window holds only "
            f"{min(args.direct_reps + 1, 61)} points).",
        ]
    rows += [
        "",
        "Notes. RSS: the measuring process's peak (`ru_maxrss`) and current (`VmRSS`) after the "
        "last snapshot (psutil is not installed); it includes the pod list and, for direct "
        "scrape, one idle keep-alive connection per pod and node. The Prometheus TSDB holds "
        "only the families the queries read (plus dcgm's): a full vLLM page per pod (~400 "
        "series) would not fit this machine at 10k pods; query cost depends on the series a "
        "query selects. Prometheus is measured within its first minute, its 1m `rate()` "
        "window not yet full. The per-ISVC baseline is extrapolated linearly: each of its "
        "queries runs against the full-size Prometheus, so its cost per query does not "
        "depend on how many ISVCs are asked. Ratios are within one run; absolute figures "
        "move with the load of the shared machine, Prometheus' most (it runs on both CPUs, "
        "beside the fleet server, the measured source and other workloads).",
    ]
    return "\n".join(rows) + "\n"


def code_version() -> str:
    """HEAD, and the files of the measured packages that differ from it (the working tree)."""

    def git(*argv: str) -> str:
        out = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "adapters", "policies").splitlines()
    changed = ", ".join(f"`{line.split(maxsplit=1)[-1]}`" for line in dirty)
    return f"commit {head}" + (f" plus uncommitted changes to {changed}" if changed else "")


def prometheus_version() -> str:
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        return "?"
    out = subprocess.run([prom_bin, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).split("\n", 1)[0]
    return first.split("version ", 1)[-1].split(" ", 1)[0]


def pod_page_kb() -> float:
    return len(Fleet(1).pod_page(0, 1)) / 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", default="1000,5000,10000", help="fleet sizes, comma-separated")
    p.add_argument("--reps", type=int, default=5, help="timed Prometheus snapshots per size")
    p.add_argument("--direct-reps", type=int, default=5, help="timed direct snapshots per size")
    p.add_argument("--baseline-isvcs", type=int, default=200)
    p.add_argument("--baseline-pods", type=int, default=1000)
    p.add_argument("--baseline-reps", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile one snapshot (stderr)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "snapshot.md")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--pods-one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--prom", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_fleet(args.serve, args.pods_one)
        return 0
    if args.one:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    args.pods = sorted({int(s) for s in args.pods.split(",")})
    if any(n <= 0 or n % PODS_PER_ISVC for n in args.pods):
        p.error(f"--pods: positive multiples of {PODS_PER_ISVC}")
    args.code = code_version()  # at the start: others may be editing the tree meanwhile
    results, proms = run_all(args)
    text = render(args, results, proms)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
