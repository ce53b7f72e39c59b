"""Render the Helm chart and the kustomize base with the pinned, Go-built tools.

``helm`` and ``kustomize`` are built from Go modules by ``tools/build.sh helm kustomize``
(versions in ``tools/versions.env``) and cached in ``~/.cache/llm-autoscaler/bin``. A missing
binary is a failure with the command that fixes it, never a skip.

``python -m tests.deploy_render`` rewrites ``deploy/kustomize/base`` from the chart (the
kustomize base is the chart rendered with ``tls.mode=service``; tests/unit/test_deploy_kustomize.py
fails when they differ).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "llm-autoscaler"
KUSTOMIZE = REPO / "deploy" / "kustomize"
RELEASE = "llm-autoscaler"
NAMESPACE = "llm-autoscaler"
# Labels and annotations only Helm adds; dropped before comparing with kustomize.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
HELM_ONLY_ANNOTATIONS = ("checksum/settings",)


def _version(name: str) -> str:
    for line in (REPO / "tools" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


def tool(name: str) -> Path:
    """Path of the cached helm/kustomize binary; fails with the fix when it is not built."""
    version = _version(f"{name.upper()}_VERSION")
    cache = Path(os.environ.get("LLM_AUTOSCALER_CACHE", Path.home() / ".cache" / "llm-autoscaler"))
    path = cache / "bin" / f"{name}-{version}" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} missing: run `tools/build.sh {name}` (or scripts/setup.sh)"
        )
    return path


def parse(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    cmd = [str(tool("helm")), "template", release, str(CHART), "--namespace", namespace, *args]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return p.stdout


def helm(*args: str, **kw: str) -> list[dict[str, Any]]:
    return parse(helm_template(*args, **kw))


def kustomize(path: Path) -> list[dict[str, Any]]:
    cmd = [str(tool("kustomize")), "build", str(path)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return parse(p.stdout)


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    md = obj.get("metadata") or {}
    return (obj["kind"], md.get("namespace", ""), md["name"])


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for o in objs:
        assert key(o) not in out, f"duplicate object {key(o)}"
        out[key(o)] = o
    return out


def normalize(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what only Helm adds (chart label, managed-by, checksum annotations)."""
    obj = yaml.safe_load(yaml.safe_dump(obj))

    def strip(md: dict[str, Any]) -> None:
        for k in HELM_ONLY_LABELS:
            (md.get("labels") or {}).pop(k, None)
        for k in HELM_ONLY_ANNOTATIONS:
            (md.get("annotations") or {}).pop(k, None)
        for k in ("labels", "annotations"):
            if k in md and not md[k]:
                del md[k]

    strip(obj.setdefault("metadata", {}))
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict):
        strip(tpl.setdefault("metadata", {}))
    return obj


BASE_ARGS = ("--set", "tls.mode=service")
BASE_FILES = {
    "ServiceAccount": "serviceaccount.yaml",
    "ClusterRole": "rbac.yaml",
    "ClusterRoleBinding": "rbac.yaml",
    "Role": "rbac.yaml",
    "RoleBinding": "rbac.yaml",
    "Deployment": "deployment.yaml",
    "PodDisruptionBudget": "deployment.yaml",
    "Service": "service.yaml",
    "APIService": "apiservice.yaml",
    "NetworkPolicy": "networkpolicy.yaml",
}
HEADER = (
    "# Generated from the Helm chart (helm template llm-autoscaler deploy/helm/llm-autoscaler\n"
    "# --namespace llm-autoscaler --set tls.mode=service) by `python -m tests.deploy_render`.\n"
    "# Edit the chart, then regenerate; tests/unit/test_deploy_kustomize.py checks they agree.\n"
)


def write_kustomize_base() -> list[Path]:
    files: dict[str, list[dict[str, Any]]] = {}
    for rendered in helm(*BASE_ARGS):
        obj = normalize(rendered)
        obj["metadata"].setdefault("labels", {})["app.kubernetes.io/managed-by"] = "kustomize"
        files.setdefault(BASE_FILES[obj["kind"]], []).append(obj)
    base = KUSTOMIZE / "base"
    written = []
    for name, objs in files.items():
        text = HEADER + "".join(
            "---\n" + yaml.safe_dump(o, sort_keys=False, width=100) for o in objs
        )
        (base / name).write_text(text)
        written.append(base / name)
    return written


if __name__ == "__main__":
    for p in write_kustomize_base():
        print(p.relative_to(REPO))
