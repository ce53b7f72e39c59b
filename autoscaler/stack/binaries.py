"""Where the stack's binaries are: Go-built ones in the versioned cache, Prometheus from Debian.

Versions come from ``tools/versions.env`` (the single place they are pinned); the binaries are
built by ``tools/build.sh`` into ``~/.cache/llm-autoscaler/bin/<component>-<version>/``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"


class MissingBinaryError(RuntimeError):
    """A binary the stack needs is not there; the message says how to get it."""


def cache_dir() -> Path:
    return Path(os.environ.get("LLM_AUTOSCALER_CACHE", Path.home() / ".cache" / "llm-autoscaler"))


def versions() -> dict[str, str]:
    """``K8S_VERSION`` etc. from tools/versions.env."""
    out: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    prometheus: Path
    versions: dict[str, str]


def _go_built(component: str, version: str, binary: str) -> Path:
    path = cache_dir() / "bin" / f"{component}-{version}" / binary
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(
            f"{binary} {version} is not built ({path} missing): run 'tools/build.sh {component}' "
            "(needs Go >= 1.26 and the Go module proxy; 20-30 min cold on 2 cores)"
        )
    return path


def inference_sim() -> Path:
    """The third-party llm-d-inference-sim (a vLLM emulator), built by tools/build.sh."""
    return _go_built("inference-sim", versions()["INFERENCE_SIM_VERSION"], "llm-d-inference-sim")


def find() -> Binaries:
    """Locate every binary or raise :class:`MissingBinaryError` naming the fix."""
    v = versions()
    prom = shutil.which("prometheus")
    if prom is None:
        raise MissingBinaryError(
            "prometheus not found on PATH: install Debian's package ('apt-get install prometheus')"
        )
    k8s = v["K8S_VERSION"]
    return Binaries(
        etcd=_go_built("etcd", v["ETCD_VERSION"], "etcd"),
        kube_apiserver=_go_built("k8s", k8s, "kube-apiserver"),
        kube_controller_manager=_go_built("k8s", k8s, "kube-controller-manager"),
        kube_scheduler=_go_built("k8s", k8s, "kube-scheduler"),
        kwok=_go_built("kwok", v["KWOK_VERSION"], "kwok"),
        prometheus=Path(prom),
        versions=v,
    )
