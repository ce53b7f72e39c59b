"""The live fleet simulator: makes kwok's fake pods real HTTP servers.

It watches every pod through the apiserver and, for each pod kwok has put in ``Running``
with an IP (127.1.N.M, from the node's loopback pod CIDR):

* **predictor pods** (label ``serving.kserve.io/inferenceservice`` or annotation
  ``prometheus.kserve.io/port``): after the pod's cold start it serves a simulated vLLM
  replica on ``podIP:<port>`` (annotation ``prometheus.kserve.io/port``, else the first
  container port, else 8080), then annotates ``sim.llm-autoscaler.io/ready=true`` so kwok marks
  the pod Ready. The pod holds GPUs of its node (``nvidia.com/gpu`` limit, else the profile's);
* **dcgm-exporter pods** (label ``app=nvidia-dcgm-exporter``): serve the node's simulated
  dcgm-exporter on ``podIP:9400``;
* **any other pod** is marked ready at once.

A pod being deleted stops its server (connections are then refused) and frees its GPUs.
Per-pod knobs (annotations): ``sim.llm-autoscaler.io/profile``,
``sim.llm-autoscaler.io/cold-start-seconds``, ``sim.llm-autoscaler.io/vllm-metrics`` (v0|v1).
``GET /healthz`` and ``GET /pods`` on the control address report the fleet's state;
``POST /pods/{ns}/{pod}/queue?extra=N`` adds N phantom waiting requests (a queue step for
reaction-time measurements).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from autoscaler.sim import dcgm
from autoscaler.sim.profiles import get_profile
from autoscaler.sim.vllm_server import SimulatedVllm
from autoscaler.stack import prometheus as prom_config
from autoscaler.stack.kube import api_client

log = logging.getLogger("fleet")
READY_ANNOTATION = "sim.llm-autoscaler.io/ready"
ISVC_LABEL = "serving.kserve.io/inferenceservice"


@dataclass
class SimPod:
    namespace: str
    name: str
    uid: str
    ip: str
    port: int
    kind: str  # "vllm" | "dcgm"
    node: str
    sim: SimulatedVllm | None = None
    runner: web.AppRunner | None = None
    gpus: list[int] = field(default_factory=list)
    state: str = "starting"  # starting | serving | stopped | failed
    error: str = ""
    task: asyncio.Task[None] | None = None
    path: str = "/metrics"
    isvc: str | None = None


class Fleet:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        default_profile: str,
        cold_start: float | None,
        gpus_per_node: int,
        seed: int,
        sd_dir: Path | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.sd_dir = sd_dir
        self.default_profile = default_profile
        self.cold_start = cold_start
        self.gpus_per_node = gpus_per_node
        self.rng = random.Random(seed)
        self.pods: dict[str, SimPod] = {}  # by uid
        self.gpu_owner: dict[tuple[str, int], str] = {}  # (node, gpu) -> pod uid
        self.core: Any = None

    # ---------------------------------------------------------------- watch loop
    async def run(self) -> None:
        from kubernetes_asyncio import client, watch
        from kubernetes_asyncio.client.exceptions import ApiException

        async with api_client(self.kubeconfig) as api:
            self.core = client.CoreV1Api(api)
            while True:
                try:
                    pods = await self.core.list_pod_for_all_namespaces()
                    seen = set()
                    for p in pods.items:
                        seen.add(p.metadata.uid)
                        await self.on_pod(p)
                    for uid in list(self.pods):
                        if uid not in seen:
                            await self.remove(uid)
                    rv = pods.metadata.resource_version
                    w = watch.Watch()
                    async with w.stream(
                        self.core.list_pod_for_all_namespaces,
                        resource_version=rv,
                        timeout_seconds=300,
                    ) as stream:
                        async for ev in stream:
                            obj = ev["object"]
                            if ev["type"] == "DELETED":
                                await self.remove(obj.metadata.uid)
                            else:
                                await self.on_pod(obj)
                except ApiException as e:
                    if e.status != 410:
                        log.warning("pod watch failed (%s); relisting in 1s", e.reason)
                        await asyncio.sleep(1)
                except (TimeoutError, OSError) as e:
                    log.warning("apiserver unreachable (%s); retrying in 1s", e)
                    await asyncio.sleep(1)

    async def on_pod(self, pod: Any) -> None:
        md, spec, st = pod.metadata, pod.spec, pod.status
        uid = md.uid
        if md.deletion_timestamp is not None:
            await self.remove(uid)
            return
        if uid in self.pods or st is None or st.phase != "Running" or not st.pod_ip:
            return
        labels, ann = md.labels or {}, md.annotations or {}
        if labels.get("app") == "nvidia-dcgm-exporter":
            kind, port = "dcgm", 9400
        elif ISVC_LABEL in labels or "prometheus.kserve.io/port" in ann:
            kind, port = "vllm", _serving_port(spec, ann)
        else:
            if ann.get(READY_ANNOTATION) != "true":
                await self._mark_ready(md.namespace, md.name)
            return
        sp = SimPod(
            md.namespace,
            md.name,
            uid,
            st.pod_ip,
            port,
            kind,
            spec.node_name or "",
            path=ann.get("prometheus.kserve.io/path", "/metrics"),
            isvc=labels.get(ISVC_LABEL),
        )
        self.pods[uid] = sp
        self._write_sd()
        sp.task = asyncio.get_running_loop().create_task(
            self._bring_up(sp, pod), name=f"pod {md.namespace}/{md.name}"
        )

    async def _bring_up(self, sp: SimPod, pod: Any) -> None:
        ann = pod.metadata.annotations or {}
        try:
            if sp.kind == "vllm":
                profile = get_profile(
                    ann.get("sim.llm-autoscaler.io/profile", self.default_profile)
                )
                sp.gpus = self._allocate_gpus(sp, _gpu_request(pod.spec) or profile.gpus)
                if "sim.llm-autoscaler.io/cold-start-seconds" in ann:
                    delay = float(ann["sim.llm-autoscaler.io/cold-start-seconds"])
                else:
                    delay = (
                        self.cold_start
                        if self.cold_start is not None
                        else profile.cold_start_s(self.rng)
                    )
                log.info(
                    "%s/%s: cold start %.1fs (profile %s, GPUs %s on %s)",
                    sp.namespace,
                    sp.name,
                    delay,
                    profile.name,
                    sp.gpus,
                    sp.node,
                )
                await asyncio.sleep(delay)
                sp.sim = SimulatedVllm(
                    profile,
                    _model_name(pod),
                    metrics_style=ann.get("sim.llm-autoscaler.io/vllm-metrics", "v1"),
                )
                sp.sim.start()
                app = sp.sim.app()
            else:
                node = sp.node
                app = dcgm.app(
                    node, self.gpus_per_node, "NVIDIA H100 80GB HBM3", lambda: self._holders(node)
                )
            sp.runner = web.AppRunner(app, access_log=None)
            await sp.runner.setup()
            await web.TCPSite(sp.runner, sp.ip, sp.port, reuse_address=True).start()
            sp.state = "serving"
            log.info("%s/%s: serving %s on %s:%d", sp.namespace, sp.name, sp.kind, sp.ip, sp.port)
            await self._mark_ready(sp.namespace, sp.name)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one pod's failure must not stop the fleet
            sp.state, sp.error = "failed", f"{type(e).__name__}: {e}"
            log.error(
                "%s/%s: cannot serve on %s:%d: %s", sp.namespace, sp.name, sp.ip, sp.port, sp.error
            )

    async def _mark_ready(self, namespace: str, name: str) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        with contextlib.suppress(ApiException):
            await self.core.patch_namespaced_pod(
                name, namespace, {"metadata": {"annotations": {READY_ANNOTATION: "true"}}}
            )

    async def remove(self, uid: str) -> None:
        sp = self.pods.pop(uid, None)
        if sp is None:
            return
        if sp.task and not sp.task.done():
            sp.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sp.task
        if sp.sim:
            await sp.sim.stop()
        if sp.runner:
            await sp.runner.cleanup()
        for g in sp.gpus:
            self.gpu_owner.pop((sp.node, g), None)
        sp.state = "stopped"
        self._write_sd()
        log.info("%s/%s: stopped", sp.namespace, sp.name)

    def _write_sd(self) -> None:
        """Keep Prometheus' file_sd lists in sync with the pods (autoscaler.stack.prometheus)."""
        if self.sd_dir is None:
            return
        for kind in ("vllm", "dcgm"):
            targets = [
                prom_config.pod_target(
                    ip=p.ip,
                    port=p.port,
                    namespace=p.namespace,
                    pod=p.name,
                    node=p.node,
                    path=p.path,
                    isvc=p.isvc,
                )
                for p in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))
                if p.kind == kind
            ]
            prom_config.write_targets(self.sd_dir / f"{kind}.json", targets)

    # ---------------------------------------------------------------- GPUs
    def _allocate_gpus(self, sp: SimPod, count: int) -> list[int]:
        free = [g for g in range(self.gpus_per_node) if (sp.node, g) not in self.gpu_owner]
        got = free[:count]
        for g in got:
            self.gpu_owner[(sp.node, g)] = sp.uid
        return got

    def _holders(self, node: str) -> dict[int, dcgm.GpuHolder]:
        out: dict[int, dcgm.GpuHolder] = {}
        for (n, g), uid in self.gpu_owner.items():
            sp = self.pods.get(uid)
            if n != node or sp is None:
                continue
            # A pod still cold-starting holds its GPUs (memory loading) at 0 % utilization.
            util = sp.sim.gpu_utilization if sp.sim else (lambda: 0.0)
            out[g] = dcgm.GpuHolder(sp.namespace, sp.name, "kserve-container", util)
        return out

    # ---------------------------------------------------------------- control API
    def control_app(self) -> web.Application:
        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def pods(_: web.Request) -> web.Response:
            return web.json_response(
                [
                    {
                        "namespace": p.namespace,
                        "pod": p.name,
                        "kind": p.kind,
                        "ip": p.ip,
                        "port": p.port,
                        "node": p.node,
                        "gpus": p.gpus,
                        "state": p.state,
                        "error": p.error,
                        "waiting": p.sim.replica.num_waiting if p.sim else None,
                        "running": p.sim.replica.num_running if p.sim else None,
                    }
                    for p in self.pods.values()
                ]
            )

        async def queue(req: web.Request) -> web.Response:
            ns, name = req.match_info["ns"], req.match_info["pod"]
            for p in self.pods.values():
                if p.namespace == ns and p.name == name and p.sim:
                    p.sim.extra_waiting = int(req.query.get("extra", "0"))
                    return web.json_response({"extra_waiting": p.sim.extra_waiting})
            return web.json_response({"error": f"no serving vLLM pod {ns}/{name}"}, status=404)

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/pods", pods)
        app.router.add_post("/pods/{ns}/{pod}/queue", queue)
        return app


def _serving_port(spec: Any, ann: dict[str, str]) -> int:
    if ann.get("prometheus.kserve.io/port", "").isdigit():
        return int(ann["prometheus.kserve.io/port"])
    for c in spec.containers or []:
        for p in c.ports or []:
            return int(p.container_port)
    return 8080


def _gpu_request(spec: Any) -> int:
    total = 0
    for c in spec.containers or []:
        res = c.resources
        for src in (res.limits if res else None, res.requests if res else None):
            if src and "nvidia.com/gpu" in src:
                total += int(src["nvidia.com/gpu"])
                break
    return total


def _model_name(pod: Any) -> str:
    """``--served-model-name``/``--model_name`` from the container args (KServe fills
    ``{{.Name}}`` with the ISVC name), else the ISVC label, else the pod name."""
    for c in pod.spec.containers or []:
        args = [*(c.command or []), *(c.args or [])]
        for i, a in enumerate(args):
            for flag in ("--served-model-name", "--model_name", "--model-name"):
                if a.startswith(flag + "="):
                    return str(a.split("=", 1)[1])
                if a == flag and i + 1 < len(args):
                    return str(args[i + 1])
    return str((pod.metadata.labels or {}).get(ISVC_LABEL, pod.metadata.name))


async def _main(args: argparse.Namespace) -> None:
    fleet = Fleet(
        Path(args.kubeconfig),
        default_profile=args.profile,
        cold_start=args.cold_start,
        gpus_per_node=args.gpus_per_node,
        seed=args.seed,
        sd_dir=Path(args.prometheus_sd_dir) if args.prometheus_sd_dir else None,
    )
    host, _, port = args.listen.rpartition(":")
    runner = web.AppRunner(fleet.control_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, int(port)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(fleet.run(), name="pod watch")
    await stop.wait()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    for uid in list(fleet.pods):
        await fleet.remove(uid)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m autoscaler.sim.fleet", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--listen", default="127.0.0.1:18080", help="control address (healthz, pods)")
    p.add_argument("--profile", default="tiny-test", help="default replica profile")
    p.add_argument(
        "--cold-start",
        type=float,
        default=None,
        help="cold start seconds (default: drawn from the profile)",
    )
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--prometheus-sd-dir", default=None, help="write Prometheus file_sd target lists here"
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
