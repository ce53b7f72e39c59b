"""Bring the local stack up and down: one object used by the CLI, ``make demo`` and the tests.

``Stack(config).up()`` starts, in order: etcd, kube-apiserver (TLS, RBAC, aggregation layer),
kube-controller-manager (deployment, replicaset, daemonset, HPA, GC, namespace, disruption,
serviceaccount controllers), kube-scheduler, kwok with fake GPU nodes, Prometheus and the
fleet simulator; it waits for each to be healthy and records pids, ports and paths in
``<state_dir>/state.json``. ``down(state_dir)`` stops every process and removes the directory.

Failures are one line that says what to do (port taken, binary missing, stale data dir,
already running); the failing component's log tail follows on the next lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from autoscaler.stack import binaries, pki, process
from autoscaler.stack import prometheus as prom_config
from autoscaler.stack.kube import api_client, write_kubeconfig

DATA = Path(__file__).parent / "data"
STATE_FILE = "state.json"
CONTROLLERS = (
    "deployment-controller,replicaset-controller,daemonset-controller,"
    "horizontal-pod-autoscaler-controller,garbage-collector-controller,namespace-controller,"
    "pod-garbage-collector-controller,disruption-controller,serviceaccount-controller"
)
GPU_NODE_LABEL = "type=kwok"
DCGM_NAMESPACE = "gpu-operator"
DCGM_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-ubuntu22.04"  # never pulled: kwok


class StackError(RuntimeError):
    """A stack failure with a one-line, actionable message."""


def default_state_dir() -> Path:
    return binaries.cache_dir() / "stack"


@dataclass
class StackConfig:
    state_dir: Path = field(default_factory=default_state_dir)
    nodes: int = 2
    gpus_per_node: int = 8
    pod_net: int = 1
    """Node i gets pod CIDR 127.<pod_net>.<i+1>.0/24: two stacks on one machine need two values."""
    scrape_interval: str = "2s"
    hpa_sync_period: str = "2s"
    fleet: bool = True
    fleet_args: list[str] = field(default_factory=list)
    timeout: float = 90.0
    log: Any = None  # callable(str) for progress lines; default prints to stderr


@dataclass
class StackState:
    state_dir: str
    kubeconfig: str
    api_url: str
    prometheus_url: str
    fleet_url: str
    ports: dict[str, int]
    pids: dict[str, int]
    versions: dict[str, str]
    started_at: float

    @property
    def pki_dir(self) -> Path:
        return Path(self.state_dir) / "pki"

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        path = state_dir / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_free(port: int, what: str) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port 127.0.0.1:{port} for {what} is taken: stop what uses it"
            ) from None


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.state_dir
        self.procs: dict[str, process.Proc] = {}
        self._log = config.log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    # ---------------------------------------------------------------- preflight
    def _preflight(self) -> binaries.Binaries:
        existing = StackState.load(self.dir)
        if existing is not None:
            alive = [n for n, pid in existing.pids.items() if process.pid_alive(pid)]
            if alive:
                raise StackError(
                    f"a stack is already running from {self.dir} ({', '.join(alive)}): "
                    "use it, or run 'llm-autoscaler stack down' first"
                )
        if (self.dir / "etcd").exists():
            raise StackError(
                f"stale etcd data dir {self.dir / 'etcd'} from an earlier run: "
                "run 'llm-autoscaler stack down' to remove it"
            )
        try:
            return binaries.find()
        except binaries.MissingBinaryError as e:
            raise StackError(str(e)) from None

    # ---------------------------------------------------------------- up
    async def up(self) -> StackState:
        t0 = time.monotonic()
        bins = self._preflight()
        self.dir.mkdir(parents=True, exist_ok=True)
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        keys = pki.generate(self.dir / "pki")
        ports = {
            n: free_port()
            for n in (
                "etcd",
                "etcd_peer",
                "apiserver",
                "kcm",
                "scheduler",
                "kwok",
                "prometheus",
                "fleet",
            )
        }
        for name, port in ports.items():
            _require_free(port, name)
        api_url = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfig = self.dir / "admin.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            server=api_url,
            ca=keys.ca_crt,
            cert=keys.admin_crt,
            key=keys.admin_key,
            user="admin",
        )
        state = StackState(
            state_dir=str(self.dir),
            kubeconfig=str(kubeconfig),
            api_url=api_url,
            prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
            fleet_url=f"http://127.0.0.1:{ports['fleet']}",
            ports=ports,
            pids={},
            versions=bins.versions,
            started_at=time.time(),
        )
        try:
            await self._start_all(bins, keys, ports, state, kubeconfig, logs)
        except BaseException:
            state.pids = {n: p.pid for n, p in self.procs.items()}
            state.save()
            down(self.dir, keep_dir=True)
            raise
        state.pids = {n: p.pid for n, p in self.procs.items()}
        state.save()
        self._log(
            f"stack up in {time.monotonic() - t0:.1f}s: "
            f"kubeconfig {kubeconfig}, Prometheus {state.prometheus_url}"
        )
        return state

    def _start(self, name: str, argv: list[str], logs: Path) -> process.Proc:
        p = process.start(name, argv, logs)
        self.procs[name] = p
        return p

    async def _start_all(
        self,
        bins: binaries.Binaries,
        keys: pki.Pki,
        ports: dict[str, int],
        state: StackState,
        kubeconfig: Path,
        logs: Path,
    ) -> None:
        d, c = self.dir, self.config
        self._log(f"starting etcd {bins.versions['ETCD_VERSION']}")
        etcd = self._start(
            "etcd",
            [
                str(bins.etcd),
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
                f"--initial-cluster=default=http://127.0.0.1:{ports['etcd_peer']}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            logs,
        )
        await self._wait_http(etcd, f"http://127.0.0.1:{ports['etcd']}/health")

        self._log(f"starting kube-apiserver {bins.versions['K8S_VERSION']}")
        api = self._start(
            "kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={keys.apiserver_crt}",
                f"--tls-private-key-file={keys.apiserver_key}",
                f"--client-ca-file={keys.ca_crt}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                f"--service-account-issuer=https://127.0.0.1:{ports['apiserver']}/",
                f"--service-account-key-file={keys.sa_pub}",
                f"--service-account-signing-key-file={keys.sa_key}",
                f"--requestheader-client-ca-file={keys.front_proxy_ca_crt}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={keys.front_proxy_client_crt}",
                f"--proxy-client-key-file={keys.front_proxy_client_key}",
                "--profiling=false",
                "--event-ttl=1h",
            ],
            logs,
        )
        await self._wait_http(api, f"{state.api_url}/readyz", keys=keys)

        kc = str(kubeconfig)
        common = [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        self._log("starting kube-controller-manager, kube-scheduler, kwok")
        kcm = self._start(
            "kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                *common,
                f"--secure-port={ports['kcm']}",
                f"--controllers={CONTROLLERS}",
                "--use-service-account-credentials=false",
                f"--horizontal-pod-autoscaler-sync-period={c.hpa_sync_period}",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
            ],
            logs,
        )
        sched = self._start(
            "kube-scheduler",
            [str(bins.kube_scheduler), *common, f"--secure-port={ports['scheduler']}"],
            logs,
        )
        kwok = self._start(
            "kwok",
            [
                str(bins.kwok),
                f"--kubeconfig={kc}",
                f"--config={DATA / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={GPU_NODE_LABEL}",
                f"--server-address=127.0.0.1:{ports['kwok']}",
            ],
            logs,
        )
        await asyncio.gather(
            self._wait_http(kcm, f"https://127.0.0.1:{ports['kcm']}/healthz", insecure=True),
            self._wait_http(
                sched, f"https://127.0.0.1:{ports['scheduler']}/healthz", insecure=True
            ),
            self._wait_http(kwok, f"http://127.0.0.1:{ports['kwok']}/healthz"),
        )

        self._log(f"starting Prometheus (scrape every {c.scrape_interval})")
        prom_dir = d / "prometheus"
        prom_dir.mkdir(exist_ok=True)
        sd_dir = prom_dir / "sd"
        sd_dir.mkdir(exist_ok=True)
        for job in prom_config.SD_FILES:
            prom_config.write_targets(sd_dir / f"{job}.json", [])
        (prom_dir / "prometheus.yml").write_text(
            prom_config.render(sd_dir=sd_dir, scrape_interval=c.scrape_interval)
        )
        prom = self._start(
            "prometheus",
            [
                str(bins.prometheus),
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
            ],
            logs,
        )
        if c.fleet:
            self._log("starting the fleet simulator")
            fleet = self._start(
                "fleet",
                [
                    sys.executable,
                    "-m",
                    "autoscaler.sim.fleet",
                    f"--kubeconfig={kc}",
                    f"--listen=127.0.0.1:{ports['fleet']}",
                    f"--gpus-per-node={c.gpus_per_node}",
                    f"--prometheus-sd-dir={sd_dir}",
                    *c.fleet_args,
                ],
                logs,
            )
            await self._wait_http(fleet, f"{state.fleet_url}/healthz")
        await self._wait_http(prom, f"{state.prometheus_url}/-/ready")
        await self._create_nodes(kubeconfig)

    # ---------------------------------------------------------------- cluster objects
    async def _create_nodes(self, kubeconfig: Path) -> None:
        from kubernetes_asyncio import client

        c = self.config
        self._log(
            f"creating {c.nodes} kwok GPU nodes with {c.gpus_per_node} GPUs each "
            "and the dcgm-exporter DaemonSet"
        )
        async with api_client(kubeconfig) as api:
            core = client.CoreV1Api(api)
            for i in range(c.nodes):
                resources = {
                    "cpu": "64",
                    "memory": "512Gi",
                    "pods": "110",
                    "nvidia.com/gpu": str(c.gpus_per_node),
                }
                await core.create_node(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": f"kwok-gpu-{i}",
                            "labels": {
                                "type": "kwok",
                                "kubernetes.io/hostname": f"kwok-gpu-{i}",
                                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                                "nvidia.com/gpu.count": str(c.gpus_per_node),
                            },
                            "annotations": {"kwok.x-k8s.io/node": "fake"},
                        },
                        "spec": {
                            "podCIDR": f"127.{c.pod_net}.{i + 1}.0/24",
                            "podCIDRs": [f"127.{c.pod_net}.{i + 1}.0/24"],
                        },
                        "status": {"capacity": resources, "allocatable": resources},
                    }
                )
            await core.create_namespace({"metadata": {"name": DCGM_NAMESPACE}})
            await client.AppsV1Api(api).create_namespaced_daemon_set(
                DCGM_NAMESPACE,
                {
                    "metadata": {
                        "name": "nvidia-dcgm-exporter",
                        "labels": {"app": "nvidia-dcgm-exporter"},
                    },
                    "spec": {
                        "selector": {"matchLabels": {"app": "nvidia-dcgm-exporter"}},
                        "template": {
                            "metadata": {"labels": {"app": "nvidia-dcgm-exporter"}},
                            "spec": {
                                "nodeSelector": {"type": "kwok"},
                                "containers": [
                                    {
                                        "name": "nvidia-dcgm-exporter",
                                        "image": DCGM_IMAGE,
                                        "ports": [{"name": "metrics", "containerPort": 9400}],
                                    }
                                ],
                            },
                        },
                    },
                },
            )
            await self._wait_for(
                lambda: self._nodes_and_dcgm_ready(core),
                "kwok nodes Ready and dcgm-exporter pods Ready",
            )

    async def _nodes_and_dcgm_ready(self, core: Any) -> bool:
        nodes = (await core.list_node(label_selector=GPU_NODE_LABEL)).items
        ready = [
            n
            for n in nodes
            if any(cd.type == "Ready" and cd.status == "True" for cd in (n.status.conditions or []))
        ]
        if len(ready) < self.config.nodes:
            return False
        if not self.config.fleet:
            return True
        pods = (await core.list_namespaced_pod(DCGM_NAMESPACE)).items
        ok = [
            p
            for p in pods
            if any(cd.type == "Ready" and cd.status == "True" for cd in (p.status.conditions or []))
        ]
        return len(ok) >= self.config.nodes

    # ---------------------------------------------------------------- waiting
    async def _wait_for(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + self.config.timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if await check():
                    return
            await asyncio.sleep(0.25)
        raise StackError(
            f"timed out after {self.config.timeout:.0f}s waiting for {what}; "
            f"logs in {self.dir / 'logs'}"
        )

    async def _wait_http(
        self, proc: process.Proc, url: str, *, keys: pki.Pki | None = None, insecure: bool = False
    ) -> None:
        ctx: ssl.SSLContext | bool = True
        if keys is not None:
            sctx = ssl.create_default_context(cafile=str(keys.ca_crt))
            sctx.load_cert_chain(str(keys.admin_crt), str(keys.admin_key))
            ctx = sctx
        elif insecure:
            ctx = False
        deadline = time.monotonic() + self.config.timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise StackError(
                        f"{proc.name} exited during start-up; "
                        f"last log lines ({proc.log}):\n{proc.tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    async with s.get(url, ssl=ctx) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise StackError(
            f"{proc.name} not healthy at {url} after {self.config.timeout:.0f}s; "
            f"last log lines ({proc.log}):\n{proc.tail()}"
        )


def down(state_dir: Path, *, keep_dir: bool = False, log: Any = None) -> list[str]:
    """Stop every process of the stack in ``state_dir`` (newest first) and remove the directory.

    Returns the names of the processes that were stopped. Idempotent.
    """
    state = StackState.load(state_dir)
    stopped: list[str] = []
    if state is not None:
        for name, pid in reversed(list(state.pids.items())):
            if process.pid_alive(pid):
                process.stop(pid)
                stopped.append(name)
    if not keep_dir and state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)
    if log:
        log(f"stack down: stopped {', '.join(stopped) or 'nothing'}; removed {state_dir}")
    return stopped
