"""``make demo``: the whole stack locally, an InferenceService under a replayed trace, live output.

Steps: bring the local stack up; install the KServe CRDs, the vLLM ClusterServingRuntime and a
demo InferenceService (``autoscalerClass: external``); create its predictor Deployment and
Service with the reconciler's pure builders (``autoscaler.reconciler.plan``, applied once:
the watching reconciler and the scaling loop join the demo when they land); replay a slice of a
real trace (Azure LLM inference 2023) against the predictor pods; print one line per tick
(replicas desired/ready, queue depth, running, KV-cache use, GPU utilization, and the last
scaling decision once the loop writes one); at the end write a summary and a PNG plot into the
results folder and tear everything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from autoscaler.scaling import DECISION_ANNOTATION
from autoscaler.sim.loadgen import Arrival, LoadGenerator, summarize
from autoscaler.stack import binaries, process
from autoscaler.stack.kube import api_client
from autoscaler.stack.stack import Stack, StackConfig, StackState, down

REPO = binaries.REPO_ROOT
NAMESPACE = "demo"
ISVC = "llama-8b"


@dataclass
class DemoConfig:
    results: Path
    state_dir: Path
    arrivals: list[Arrival]
    duration: float
    tick: float = 2.0
    keep_stack: bool = False
    cold_start: float = 8.0
    out: Callable[[str], None] = field(default=lambda s: print(s, flush=True))


@dataclass
class Tick:
    t: float
    desired: int | None
    ready: int | None
    queue: float | None
    running: float | None
    kv: float | None
    gpu: float | None
    decision: str = ""


def crd_files() -> list[Path]:
    local = REPO / "deploy" / "crds"
    src = local if local.is_dir() else REPO.parent / "shared" / "kserve" / "crds"
    return sorted(src.glob("serving.kserve.io_*.yaml"))


def demo_isvc() -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": ISVC,
            "namespace": NAMESPACE,
            "annotations": {
                "serving.kserve.io/autoscalerClass": "external",
                "serving.kserve.io/deploymentMode": "RawDeployment",
                # Copied to the pods by the builders; read by the fleet simulator.
                "sim.llm-autoscaler.io/profile": "tiny-test",  # small: scales at laptop rates
                "sim.llm-autoscaler.io/cold-start-seconds": "5",
                # Scaling knobs (see docs/scaling.md); short windows so a 2-minute demo
                # shows both directions.
                "llm-autoscaler.io/target-queue-depth": "3",
                "llm-autoscaler.io/cold-start": "10s",
                "llm-autoscaler.io/scale-down-window": "30s",
                "llm-autoscaler.io/scale-down-period": "10s",
            },
        },
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "maxReplicas": 8,
                "model": {
                    "modelFormat": {"name": "vLLM"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "1"},
                        "requests": {"nvidia.com/gpu": "1"},
                    },
                },
            }
        },
    }


async def install(kubeconfig: str, out: Callable[[str], None]) -> None:
    """Apply the KServe CRDs, the vLLM runtime and the demo ISVC (server-side)."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    async with api_client(kubeconfig) as api:
        ext = client.ApiextensionsV1Api(api)
        for f in crd_files():
            crd = yaml.safe_load(f.read_text())
            with contextlib.suppress(ApiException):
                await ext.create_custom_resource_definition(crd)
        out(f"installed {len(crd_files())} KServe CRDs")
        for _ in range(100):
            crd = await ext.read_custom_resource_definition("inferenceservices.serving.kserve.io")
            if any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            ):
                break
            await asyncio.sleep(0.1)
        custom = client.CustomObjectsApi(api)
        runtime = yaml.safe_load(
            (REPO / "deploy" / "runtimes" / "vllm-clusterservingruntime.yaml").read_text()
        )
        with contextlib.suppress(ApiException):
            await custom.create_cluster_custom_object(
                "serving.kserve.io", "v1alpha1", "clusterservingruntimes", runtime
            )
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        isvc = await custom.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", NAMESPACE, "inferenceservices", demo_isvc()
        )
        out(f"created InferenceService {NAMESPACE}/{ISVC} (autoscalerClass: external)")
        del isvc


async def wait_for_predictor(state: StackState, out: Callable[[str], None]) -> None:
    """Wait for the service's reconciler to create the predictor Deployment (60 s at most)."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    async with api_client(state.kubeconfig) as api:
        for _ in range(600):
            with contextlib.suppress(ApiException):
                await client.AppsV1Api(api).read_namespaced_deployment(
                    f"{ISVC}-predictor", NAMESPACE
                )
                out(f"the reconciler created Deployment {NAMESPACE}/{ISVC}-predictor")
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"no Deployment {NAMESPACE}/{ISVC}-predictor after 60 s; see the "
        f"llm-autoscaler log in {state.state_dir}/logs"
    )


async def prom_scalar(session: aiohttp.ClientSession, prom: str, query: str) -> float | None:
    url = f"{prom}/api/v1/query?query={urllib.parse.quote(query)}"
    with contextlib.suppress(
        aiohttp.ClientError, asyncio.TimeoutError, KeyError, IndexError, ValueError
    ):
        async with session.get(url) as r:
            body = await r.json()
        res = body["data"]["result"]
        return float(res[0]["value"][1]) if res else None
    return None


async def observe(state: StackState, t0: float) -> Tick:
    """One tick's view, read the way an operator would: apiserver and Prometheus."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    sel = f'namespace="{NAMESPACE}",isvc="{ISVC}"'
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        queue = await prom_scalar(
            s, state.prometheus_url, f"sum(vllm:num_requests_waiting{{{sel}}})"
        )
        running = await prom_scalar(
            s, state.prometheus_url, f"sum(vllm:num_requests_running{{{sel}}})"
        )
        kv = await prom_scalar(s, state.prometheus_url, f"avg(vllm:kv_cache_usage_perc{{{sel}}})")
        gpu = await prom_scalar(
            s,
            state.prometheus_url,
            f'avg(DCGM_FI_DEV_GPU_UTIL{{exported_namespace="{NAMESPACE}",exported_pod=~"{ISVC}-predictor-.*"}})',
        )
    desired = ready = None
    decision = ""
    async with api_client(state.kubeconfig) as api:
        with contextlib.suppress(ApiException):
            dep = await client.AppsV1Api(api).read_namespaced_deployment(
                f"{ISVC}-predictor", NAMESPACE
            )
            desired, ready = dep.spec.replicas, dep.status.ready_replicas or 0
        with contextlib.suppress(ApiException):
            isvc = await client.CustomObjectsApi(api).get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", NAMESPACE, "inferenceservices", ISVC
            )
            decision = (isvc["metadata"].get("annotations") or {}).get(DECISION_ANNOTATION, "")
    return Tick(time.monotonic() - t0, desired, ready, queue, running, kv, gpu, decision)


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


_COLUMNS = (
    ("t", 5),
    ("desired", 7),
    ("ready", 5),
    ("queue", 6),
    ("running", 7),
    ("kv", 5),
    ("gpu%", 5),
)
HEADER = " ".join(f"{name:>{width}}" for name, width in _COLUMNS) + "  decision"


def line(t: Tick) -> str:
    return (
        f"{t.t:5.0f} {fmt(t.desired, 'd'):>7} {fmt(t.ready, 'd'):>5} {fmt(t.queue, '.0f'):>6} "
        f"{fmt(t.running, '.0f'):>7} {fmt(t.kv, '.2f'):>5} {fmt(t.gpu, '.0f'):>5}  {t.decision}"
    )


def start_service(state: StackState) -> list[process.Proc]:
    """``llm-autoscaler run`` against the stack: Prometheus source, 1 s ticks, one replica."""
    from autoscaler.stack.stack import free_port

    argv = [
        sys.executable,
        "-m",
        "autoscaler.cli",
        "run",
        f"--kubeconfig={state.kubeconfig}",
        "--identity=demo",
        "--metrics-source=prometheus",
        f"--prometheus-url={state.prometheus_url}",
        "--tick-seconds=1",
        "--stale-after-seconds=10",
        "--listen-address=127.0.0.1",
        f"--http-port={free_port()}",
        "--metrics-api-enabled=false",
        "--lease-namespace=default",
    ]
    return [process.start("llm-autoscaler", argv, Path(state.state_dir) / "logs")]


async def run_demo(
    cfg: DemoConfig, start: Callable[[StackState], list[process.Proc]] = start_service
) -> dict[str, Any]:
    out = cfg.out
    cfg.results.mkdir(parents=True, exist_ok=True)
    stack_cfg = StackConfig(
        state_dir=cfg.state_dir,
        nodes=2,
        gpus_per_node=8,
        pod_net=2,
        scrape_interval="2s",
        fleet_args=["--profile=tiny-test", f"--cold-start={cfg.cold_start}"],
        log=out,
    )
    state = await Stack(stack_cfg).up()
    procs: list[process.Proc] = []
    ticks: list[Tick] = []
    try:
        await install(state.kubeconfig, out)
        procs = start(state)
        out("started llm-autoscaler run (reconciler, scaling loop, Prometheus source, 1 s tick)")
        await wait_for_predictor(state, out)
        gen = LoadGenerator(Path(state.kubeconfig), NAMESPACE, ISVC, backend_wait=120)
        n, d = len(cfg.arrivals), cfg.duration
        out(f"replaying {n} requests over {d:.0f}s; one line every {cfg.tick:.0f}s")
        out(HEADER)
        t0 = time.monotonic()
        load = asyncio.get_running_loop().create_task(gen.run(cfg.arrivals))
        while not load.done() or time.monotonic() - t0 < cfg.duration:
            tick = await observe(state, t0)
            ticks.append(tick)
            out(line(tick))
            if time.monotonic() - t0 > cfg.duration * 3 + 120:
                out("load did not finish in time; stopping")
                load.cancel()
                break
            await asyncio.sleep(cfg.tick)
        results = await load if not load.cancelled() else []
        summary = {
            "requests": summarize(results, slo_ttft=2.0),
            "ticks": len(ticks),
            "max_replicas": max((t.desired or 0) for t in ticks) if ticks else 0,
            "scale_changes": sum(1 for a, b in itertools.pairwise(ticks) if a.desired != b.desired),
        }
        (cfg.results / "summary.json").write_text(json.dumps(summary, indent=2))
        (cfg.results / "ticks.json").write_text(json.dumps([t.__dict__ for t in ticks], indent=1))
        plot(cfg.results / "demo.png", ticks, results)
        out(f"summary: {json.dumps(summary['requests'])}")
        out(f"results in {cfg.results}")
        return summary
    finally:
        for p in procs:
            process.stop(p.pid)
        if cfg.keep_stack:
            out(f"stack left running: llm-autoscaler stack status --state-dir {cfg.state_dir}")
        else:
            down(cfg.state_dir, log=out)


def plot(path: Path, ticks: list[Tick], results: list[Any]) -> None:
    """Replicas, queue depth and TTFT over time, if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    t = [x.t for x in ticks]
    axes[0].step(t, [x.desired or 0 for x in ticks], where="post", label="desired")
    axes[0].step(t, [x.ready or 0 for x in ticks], where="post", label="ready")
    axes[0].set_ylabel("replicas")
    axes[0].legend()
    axes[1].plot(t, [x.queue or 0 for x in ticks], label="queue depth (sum)")
    axes[1].plot(t, [x.running or 0 for x in ticks], label="running (sum)")
    axes[1].set_ylabel("requests")
    axes[1].legend()
    ok = [r for r in results if r.ttft is not None]
    axes[2].scatter([r.sent_at for r in ok], [r.ttft for r in ok], s=4)
    axes[2].axhline(2.0, color="red", linestyle="--", label="SLO 2 s")
    axes[2].set_ylabel("TTFT (s)")
    axes[2].set_xlabel("seconds")
    axes[2].legend()
    fig.suptitle("llm-autoscaler demo")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
