"""Benchmark: the external metrics API served from the snapshot cache, against per-request
PromQL (a Python handler, and prometheus-adapter itself), measured in the same run.

Setup, all on loopback: an exposition endpoint serving ``vllm:num_requests_waiting`` for
``--isvcs`` InferenceServices × 4 pods; Debian's Prometheus scraping it every second; the
server under test pinned to CPU 0. Modes, one after the other, every server up for all of them:

* ``cached (ours)`` — our app (:func:`autoscaler.metrics_api.build_app`) over a snapshot of
  the same pods, with the real TokenReview authenticator and SubjectAccessReview authorizer
  (their 10 s caches as in production; the review client answers in memory, so after the
  first request every request is a cache hit of both, as in production where the HPA asks
  the same question every 15 s), over plain HTTP;
* ``per-request PromQL (Python)`` — the same process and auth, then
  ``sum(vllm:num_requests_waiting{namespace=…,isvc=…})`` for the selected InferenceService
  against Prometheus, rendered as an ``ExternalMetricValueList``;
* ``cached (ours), HTTPS`` — the first mode over TLS, with the production TLS context
  (:func:`autoscaler.metrics_api.tls.server_context`), because prometheus-adapter serves
  HTTPS only;
* ``prometheus-adapter`` — kubernetes-sigs/prometheus-adapter
  (``PROMETHEUS_ADAPTER_VERSION`` in tools/versions.env, built from Go modules by
  ``tools/build.sh prometheus-adapter``, which this script runs when the binary is not
  cached), ``GOMAXPROCS`` 1 by the same CPU pinning, against the same Prometheus, with one
  ``externalRules`` entry: ``sum(vllm:num_requests_waiting{<selector>,namespace=…}) by
  (isvc)`` named ``llm-queue-depth`` (one PromQL query per request, as the Python handler;
  its label selector names Prometheus labels, so the client selects ``isvc=…`` where ours
  take ``serving.kserve.io/inferenceservice=…``).
  It is a Kubernetes generic API server and needs a real one for discovery and for delegated
  auth, so this mode starts etcd + kube-apiserver (the stack's cached binaries, on the
  client's CPU, idle during the load) and sends a ServiceAccount token allowed by RBAC:
  authentication by TokenReview and authorization by SubjectAccessReview against that
  kube-apiserver, with Go's 10 s caches (``--authentication-token-webhook-cache-ttl``,
  ``--authorization-webhook-cache-authorized-ttl``: the same TTLs as ours), so, as ours,
  every request is a cache hit of both except one TokenReview and one SAR every 10 s. Served
  over HTTPS with the same certificate as ours; HTTP/1.1 keep-alive from the client.

A client on the other CPU sends requests for random InferenceServices with ``--concurrency``
in flight for ``--duration`` seconds per mode (after a 1 s warm-up); the table gives
requests/s, latency percentiles and the CPU time the server, Prometheus and the client used
(100 % = one core: a client near 100 % means that row is the client's limit). Prometheus
(and the kube-apiserver) are not on the server's core: the per-request modes' figures are
the best they can do.

Run: ``python bench/bench_metrics_api.py [--isvcs N] [--duration S] [--concurrency N]
[--no-adapter]``.
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
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
from autoscaler.metrics_api.tls import ServingCert, self_signed, server_context  # noqa: E402
from autoscaler.metrics_api.values import Item, value_list  # noqa: E402
from autoscaler.stack import binaries, pki, process  # noqa: E402
from autoscaler.stack.kube import api_client, write_kubeconfig  # noqa: E402
from policies.signals import (  # noqa: E402
    MetricsSnapshot,
    PodSignals,
    Sample,
    TargetKey,
    TargetSignals,
)

NS = "bench"
METRIC = "llm-queue-depth"
PODS_PER_ISVC = 4
TOKEN = {"Authorization": "Bearer hpa"}
ISVC_LABEL = "serving.kserve.io/inferenceservice"
PROM_ISVC_LABEL = "isvc"  # the label in the exposition; prometheus-adapter selects on it
SERVER_CPU, CLIENT_CPU = 0, 1
OURS_AUTH = "TokenReview + SAR, 10 s caches, reviews answered in memory¹"
ADAPTER_AUTH = "TokenReview + SAR against kube-apiserver, 10 s caches²"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def depth(i: int, j: int) -> int:
    return (i * 7 + j) % 13


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


def serve(args: argparse.Namespace) -> None:
    """The server process: our app plus the per-request-PromQL route, on one CPU; plain HTTP
    on ``--serve``, HTTPS on ``--tls-port``."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {SERVER_CPU})
    prometheus = args.prometheus
    cache = SnapshotCache()
    reviews = Reviews()
    app = build_app(
        cache,
        authenticator=TokenReviewAuthenticator(reviews),
        authorizer=SubjectAccessReviewAuthorizer(reviews),
        max_snapshot_age=1e9,
    )
    cache.publish(fleet(args.isvcs, time.time()))
    spec = lookup(METRIC)
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

    client_ca = Path(args.client_ca).read_text()  # as in production: the front-proxy CA

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.serve).start()
        cert = ServingCert(Path(args.tls_cert), Path(args.tls_key))
        ctx = server_context(cert, client_ca)
        await web.TCPSite(runner, "127.0.0.1", args.tls_port, ssl_context=ctx).start()
        await asyncio.Event().wait()

    asyncio.run(run())


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


async def wait_http(
    url: str,
    timeout: float = 30.0,
    check: Any = None,
    *,
    headers: dict[str, str] | None = None,
    ssl_ctx: ssl.SSLContext | None = None,
    proc: process.Proc | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited during start-up; last log lines ({proc.log}):\n"
                    + proc.tail()
                )
            try:
                async with s.get(url, headers=headers or TOKEN, ssl=ssl_ctx or True) as r:
                    text = await r.text()
                    last = f"HTTP {r.status}: {text[:300]}"
                    if r.status == 200 and (check is None or check(json.loads(text))):
                        return
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                last = repr(e)
            await asyncio.sleep(0.2)
    tail = f"; last log lines ({proc.log}):\n{proc.tail()}" if proc is not None else ""
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s (last answer: {last}){tail}")


@dataclass
class Mode:
    name: str
    url: str
    transport: str
    auth: str
    selector_key: str = ISVC_LABEL
    headers: dict[str, str] = field(default_factory=lambda: dict(TOKEN))
    ssl_ctx: ssl.SSLContext | None = None
    skipped: str = ""
    pid: int = 0
    """The server process, whose CPU time is measured during the load."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def closed_connections(port: int) -> int:
    """Loopback TCP connections to or from ``port`` in TIME_WAIT (closed in the last 60 s)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                if state == "06" and port in (int(local[-4:], 16), int(remote[-4:], 16)):
                    n += 1
    return n


async def load(
    mode: Mode,
    isvcs: int,
    duration: float,
    concurrency: int,
    prom_pid: int = 0,
    prom_port: int = 0,
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    rng = random.Random(1)
    stop = time.perf_counter() + duration

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            sel = quote(f"{mode.selector_key}=isvc-{rng.randrange(isvcs)}")
            t0 = time.perf_counter()
            async with s.get(f"{mode.url}?labelSelector={sel}", headers=mode.headers) as r:
                body = await r.read()
                # Python's json.dumps and Go's encoding/json space the list differently.
                ok = r.status == 200 and (b'"items": [{' in body or b'"items":[{' in body)
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    conn = aiohttp.TCPConnector(limit=concurrency, ssl=mode.ssl_ctx or True)
    async with aiohttp.ClientSession(connector=conn) as s:
        server0, client0 = cpu_seconds(mode.pid), time.process_time()
        prom0, closed0 = cpu_seconds(prom_pid), closed_connections(prom_port)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        server_cpu = (cpu_seconds(mode.pid) - server0) / elapsed * 100
        client_cpu = (time.process_time() - client0) / elapsed * 100
        prom_cpu = (cpu_seconds(prom_pid) - prom0) / elapsed * 100
        prom_closed = closed_connections(prom_port) - closed0
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "errors": errors,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "prom_cpu": prom_cpu,
        "prom_closed": prom_closed,
    }


def start_processes(
    prom_bin: str,
    work: Path,
    ports: dict[str, int],
    prom_url: str,
    isvcs: int,
    cert: ServingCert,
    client_ca: Path,
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Prometheus and the server process (started before any load, so blocking is fine)."""
    prom = subprocess.Popen(
        [
            prom_bin,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    argv = [sys.executable, __file__, "--serve", str(ports["api"]), "--prometheus", prom_url]
    argv += ["--tls-port", str(ports["api_tls"]), "--tls-cert", str(cert.cert_file)]
    argv += ["--tls-key", str(cert.key_file), "--client-ca", str(client_ca)]
    server = subprocess.Popen([*argv, "--isvcs", str(isvcs)])
    return prom, server


# ---------------------------------------------------------------------------- prometheus-adapter
def adapter_version() -> str:
    return binaries.versions()["PROMETHEUS_ADAPTER_VERSION"]


def adapter_binary() -> tuple[Path | None, str]:
    """The cached prometheus-adapter binary, built by ``tools/build.sh prometheus-adapter`` if
    missing; ``(None, why)`` if it cannot be built."""
    version = adapter_version()
    path = binaries.cache_dir() / "bin" / f"prometheus-adapter-{version}" / "adapter"
    if os.access(path, os.X_OK):
        return path, ""
    cmd = [str(REPO / "tools" / "build.sh"), "prometheus-adapter"]
    log(
        f"prometheus-adapter {version} is not built: building it now with "
        f"'tools/build.sh prometheus-adapter' (Go modules; a few minutes cold on 2 cores, "
        f"cached afterwards in {path.parent})"
    )
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        why = f"'tools/build.sh prometheus-adapter' could not start: {e}"
        log(why)
        return None, why
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        lines.append(line.rstrip())
    rc = proc.wait()
    if rc != 0 or not os.access(path, os.X_OK):
        errors = [ln for ln in lines if ln.strip()][-6:]
        why = f"'tools/build.sh prometheus-adapter' failed (exit {rc}): " + " / ".join(errors)
        log(why)
        return None, why
    log(f"prometheus-adapter {version} built in {time.monotonic() - t0:.0f}s: {path}")
    return path, ""


def adapter_config(path: Path) -> None:
    """One external rule: the queue depth summed per InferenceService, per request."""
    rule = {
        "seriesQuery": 'vllm:num_requests_waiting{namespace!="",isvc!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
        "name": {"matches": "^vllm:num_requests_waiting$", "as": METRIC},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (isvc)",
    }
    path.write_text(json.dumps({"externalRules": [rule]}, indent=2))  # JSON is YAML


async def control_plane(work: Path, procs: list[process.Proc]) -> tuple[Path, str]:
    """etcd + kube-apiserver (the stack's cached binaries and PKI), a ServiceAccount allowed
    to read external metrics by RBAC; returns the admin kubeconfig and the account's token."""
    bins = binaries.find()  # MissingBinaryError says which 'tools/build.sh' to run
    keys = pki.generate(work / "pki")
    logs = work / "logs"
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd = process.start(
        "etcd",
        [
            str(bins.etcd),
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        logs,
    )
    procs.append(etcd)
    await wait_http(f"http://127.0.0.1:{etcd_port}/health", 60, proc=etcd)
    api_url = f"https://127.0.0.1:{api_port}"
    api = process.start(
        "kube-apiserver",
        [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={keys.apiserver_crt}",
            f"--tls-private-key-file={keys.apiserver_key}",
            f"--client-ca-file={keys.ca_crt}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={api_url}/",
            f"--service-account-key-file={keys.sa_pub}",
            f"--service-account-signing-key-file={keys.sa_key}",
            "--profiling=false",
        ],
        logs,
    )
    procs.append(api)
    kubeconfig = work / "admin.kubeconfig"
    write_kubeconfig(
        kubeconfig,
        server=api_url,
        ca=keys.ca_crt,
        cert=keys.admin_crt,
        key=keys.admin_key,
        user="admin",
    )
    admin = ssl.create_default_context(cafile=str(keys.ca_crt))
    admin.load_cert_chain(str(keys.admin_crt), str(keys.admin_key))
    await wait_http(f"{api_url}/readyz", 120, ssl_ctx=admin, proc=api)

    from kubernetes_asyncio import client

    async with api_client(kubeconfig) as kube:
        core = client.CoreV1Api(kube)
        rbac = client.RbacAuthorizationV1Api(kube)
        await core.create_namespace({"metadata": {"name": NS}})
        await core.create_namespaced_service_account(NS, {"metadata": {"name": "hpa"}})
        name = "bench-external-metrics-reader"
        await rbac.create_cluster_role(
            {
                "metadata": {"name": name},
                "rules": [
                    {
                        "apiGroups": ["external.metrics.k8s.io"],
                        "resources": ["*"],
                        "verbs": ["get", "list"],
                    }
                ],
            }
        )
        await rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "hpa", "namespace": NS}],
            }
        )
        tr = await core.create_namespaced_service_account_token(
            "hpa", NS, {"spec": {"expirationSeconds": 3600}}
        )
    return kubeconfig, str(tr.status.token)


async def start_adapter(
    binary: Path,
    work: Path,
    prom_url: str,
    cert: ServingCert,
    procs: list[process.Proc],
) -> Mode:
    """kube-apiserver, then the adapter on :data:`SERVER_CPU`; its mode once it answers."""
    log("starting etcd + kube-apiserver for prometheus-adapter's discovery and delegated auth")
    kubeconfig, token = await control_plane(work, procs)
    adapter_config(work / "adapter.yaml")
    port = free_port()
    kc = str(kubeconfig)
    argv = [
        str(binary),
        f"--prometheus-url={prom_url}",
        f"--config={work / 'adapter.yaml'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={cert.cert_file}",
        f"--tls-private-key-file={cert.key_file}",
        f"--lister-kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        # Go's defaults, spelt out: the same TTLs as our TokenReview/SAR caches.
        "--authentication-token-webhook-cache-ttl=10s",
        "--authorization-webhook-cache-authorized-ttl=10s",
    ]
    taskset = shutil.which("taskset")
    if taskset:  # the client process is pinned to CLIENT_CPU, and children inherit that
        argv = [taskset, "-c", str(SERVER_CPU), *argv]
    log(f"starting prometheus-adapter {adapter_version()} on 127.0.0.1:{port}")
    adapter = process.start("prometheus-adapter", argv, work / "logs")
    procs.append(adapter)
    ctx = ssl.create_default_context(cafile=str(cert.cert_file))
    url = f"https://127.0.0.1:{port}/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/{METRIC}"
    bearer = {"Authorization": f"Bearer {token}"}
    await wait_http(
        f"{url}?labelSelector={quote(f'{PROM_ISVC_LABEL}=isvc-0')}",
        90,
        lambda b: bool(b.get("items")),
        headers=bearer,
        ssl_ctx=ctx,
        proc=adapter,
    )
    return Mode(
        f"prometheus-adapter {adapter_version()}",
        url,
        "HTTPS",
        ADAPTER_AUTH,
        selector_key=PROM_ISVC_LABEL,
        headers=bearer,
        ssl_ctx=ctx,
        pid=adapter.pid,
    )


# ---------------------------------------------------------------------------- main
def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


async def main_async(args: argparse.Namespace, adapter_bin: Path | None, adapter_why: str) -> str:
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        raise SystemExit("prometheus not found on PATH (apt-get install prometheus)")
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {CLIENT_CPU} if (os.cpu_count() or 1) > 1 else {SERVER_CPU})
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-api-"))
    (work / "logs").mkdir()
    ports = {n: free_port() for n in ("exporter", "prometheus", "api", "api_tls")}
    target = f"static_configs: [{{targets: ['127.0.0.1:{ports['exporter']}']}}]"
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n"
        f"- job_name: vllm\n  honor_labels: true\n  {target}\n"
    )
    # One serving certificate for both HTTPS servers; ours also asks for the front proxy's.
    cert = self_signed(("127.0.0.1", "localhost"), work / "tls")
    front_proxy = work / "front-proxy-ca.crt"
    front_proxy.write_bytes(self_signed(("front-proxy-ca",), work / "fp").pem())
    exp = await exporter(args.isvcs, ports["exporter"])
    prom_url = f"http://127.0.0.1:{ports['prometheus']}"
    prom, server = start_processes(prom_bin, work, ports, prom_url, args.isvcs, cert, front_proxy)
    procs: list[process.Proc] = []
    results: dict[str, dict[str, float]] = {}
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
        api = f"http://127.0.0.1:{ports['api']}"
        await wait_http(f"{api}/healthz")
        path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/{METRIC}"
        tls = ssl.create_default_context(cafile=str(cert.cert_file))
        modes = [
            Mode("cached (ours)", api + path, "HTTP", OURS_AUTH, pid=server.pid),
            Mode(
                "per-request PromQL (Python)",
                f"{api}/baseline/namespaces/{NS}/{METRIC}",
                "HTTP",
                OURS_AUTH,
                pid=server.pid,
            ),
            Mode(
                "cached (ours), HTTPS",
                f"https://127.0.0.1:{ports['api_tls']}{path}",
                "HTTPS",
                OURS_AUTH,
                ssl_ctx=tls,
                pid=server.pid,
            ),
        ]
        adapter_name = f"prometheus-adapter {adapter_version()}"
        if adapter_bin is None:
            modes.append(Mode(adapter_name, "", "HTTPS", ADAPTER_AUTH, skipped=adapter_why))
        else:
            try:
                modes.append(await start_adapter(adapter_bin, work, prom_url, cert, procs))
            except (RuntimeError, OSError, binaries.MissingBinaryError) as e:
                why = f"prometheus-adapter did not start: {e}"
                log(why)
                modes.append(Mode(adapter_name, "", "HTTPS", ADAPTER_AUTH, skipped=why))
            except Exception as e:  # the kube client's ApiException and the like
                why = f"prometheus-adapter set-up failed: {type(e).__name__}: {e}"
                log(why)
                modes.append(Mode(adapter_name, "", "HTTPS", ADAPTER_AUTH, skipped=why))
        for mode in modes:
            if mode.skipped:
                continue
            log(f"measuring {mode.name}")
            await load(mode, args.isvcs, 1.0, args.concurrency)  # warm-up: caches, connections
            results[mode.name] = await load(
                mode, args.isvcs, args.duration, args.concurrency, prom.pid, ports["prometheus"]
            )
    finally:
        for p in reversed(procs):
            process.stop(p.pid)
        server.terminate()
        prom.terminate()
        server.wait(10)
        prom.wait(10)
        await exp.cleanup()
        if args.keep_work:
            log(f"work dir (logs) kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return table(args, modes, results)


def table(args: argparse.Namespace, modes: list[Mode], results: dict[str, Any]) -> str:
    prom_version = subprocess.run(
        ["prometheus", "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    rows = [
        f"# External metrics API: cached vs per-request PromQL ({dt.date.today()})",
        "",
        f"- command: `python bench/bench_metrics_api.py --isvcs {args.isvcs} "
        f"--duration {args.duration:g} --concurrency {args.concurrency}`",
        f"- {args.isvcs} InferenceServices × {PODS_PER_ISVC} pods; every server pinned to the "
        f"same 1 CPU, client on the other; {args.concurrency} requests in flight "
        f"(HTTP/1.1 keep-alive); {args.duration:g} s per mode after a 1 s warm-up; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}; "
        f"{prom_version.strip()} scraping every 1 s.",
        "- The machine may be shared with other work: compare modes within one run.",
        "",
        "| mode | transport | auth | requests/s | p50 ms | p99 ms | errors "
        "| server CPU % | Prometheus CPU % | client CPU % | Prometheus conns closed³ |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in modes:
        r = results.get(m.name)
        if r is None:
            dashes = " | ".join(["—"] * 4)
            rows.append(f"| {m.name} | {m.transport} | {m.auth} | — | — | — | not run | {dashes} |")
            continue
        figures = f"{r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']:.0f}"
        figures += f" | {r['server_cpu']:.0f} | {r['prom_cpu']:.0f} | {r['client_cpu']:.0f}"
        figures += f" | {r['prom_closed']:.0f}"
        rows.append(f"| {m.name} | {m.transport} | {m.auth} | {figures} |")
    rows.append("")
    for m in modes:
        if m.skipped:
            rows.append(f"**{m.name}: not run.** {cell(m.skipped)}")
            rows.append("")

    def ratio(a: str, b: str) -> None:
        if a in results and b in results:
            x, y = results[a], results[b]
            rows.append(
                f"- **{a} vs {b}: {x['rps'] / y['rps']:.1f}× the requests/s, "
                f"p99 {y['p99_ms'] / x['p99_ms']:.1f}× lower.**"
            )

    ratio("cached (ours)", "per-request PromQL (Python)")
    adapter = next((m.name for m in modes if m.name.startswith("prometheus-adapter")), "")
    ratio("cached (ours), HTTPS", adapter)
    rows += [
        "",
        "¹ Ours (both routes of the Python server): the production TokenReview authenticator "
        "and SubjectAccessReview authorizer with their caches (10 s TTL each); the review client "
        "answers in memory, so after the first request every request hits both caches, as an "
        "HPA asking every 15 s does. The bearer token is a fixed string.",
        "",
        "² prometheus-adapter: a real etcd + kube-apiserver (on the client's CPU) for discovery "
        "and delegated auth; the client sends a ServiceAccount token (TokenRequest) allowed "
        "by an RBAC ClusterRole; the adapter's delegating authenticator (TokenReview) and "
        "authorizer (SubjectAccessReview) cache 10 s each "
        "(`--authentication-token-webhook-cache-ttl=10s`, "
        "`--authorization-webhook-cache-authorized-ttl=10s`), so every request is a cache hit "
        "but one TokenReview and one SAR round trip to the kube-apiserver every 10 s. One PromQL "
        "query per request to the same Prometheus "
        "(`sum(vllm:num_requests_waiting{isvc=…,namespace=…}) by (isvc)`), "
        "through Go's default HTTP client; GOMAXPROCS 1 (pinned to one CPU).",
        "",
        "³ TCP connections to Prometheus closed during the measured seconds (TIME_WAIT "
        "sockets): the Python handler reuses a pool of keep-alive connections; "
        "prometheus-adapter talks to a Prometheus without auth options through Go's "
        "`http.DefaultClient`, which keeps 2 idle connections per host, so with 16 queries in "
        "flight most of its queries open a new connection.",
        "",
        "CPU % = CPU time of that process over the measured wall time (100 = one core); a "
        "client near 100 means the row shows the client's limit rather than the server's.",
    ]
    return "\n".join(rows) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isvcs", type=int, default=1000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--no-adapter", action="store_true", help="skip prometheus-adapter (and its build)"
    )
    p.add_argument("--keep-work", action="store_true", help="keep the work dir and its logs")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--prometheus", help=argparse.SUPPRESS)
    p.add_argument("--tls-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--tls-cert", help=argparse.SUPPRESS)
    p.add_argument("--tls-key", help=argparse.SUPPRESS)
    p.add_argument("--client-ca", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "metrics_api.md")
    args = p.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.no_adapter:
        adapter_bin, why = None, "--no-adapter given"
    else:
        adapter_bin, why = adapter_binary()  # before pinning: the build gets both CPUs
    table = asyncio.run(main_async(args, adapter_bin, why))
    print(table)
    args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
