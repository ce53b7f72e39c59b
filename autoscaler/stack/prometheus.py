"""Prometheus configuration for the local stack.

Debian's ``prometheus`` package is built without Kubernetes service discovery, so the stack
uses file-based discovery kept in sync from the apiserver: the fleet simulator watches pods and
writes ``<sd_dir>/vllm.json`` and ``<sd_dir>/dcgm.json`` with the target labels a
``kubernetes_sd_configs`` + relabelling setup would produce in a real cluster
(see :func:`pod_target`). Jobs:

* ``vllm``: pods annotated ``prometheus.kserve.io/port`` (KServe's vLLM runtimes set it),
  address ``podIP:<port>``, path from ``prometheus.kserve.io/path``; labels ``namespace``,
  ``pod``, ``node`` and ``isvc``.
* ``dcgm``: dcgm-exporter DaemonSet pods (``app=nvidia-dcgm-exporter``) on port 9400. As with a
  ServiceMonitor with ``honorLabels: false``, the exporter's own ``namespace``/``pod`` labels
  win and the workload's move to ``exported_namespace``/``exported_pod``.
* ``llm-autoscaler``: the service's own metrics, from ``<sd_dir>/llm-autoscaler.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

SD_FILES = ("vllm", "dcgm", "llm-autoscaler")


def render(*, sd_dir: Path, scrape_interval: str) -> str:
    """The prometheus.yml text."""
    jobs = [
        {
            "job_name": job,
            "honor_labels": False,
            "file_sd_configs": [{"files": [str(sd_dir / f"{job}.json")], "refresh_interval": "1s"}],
        }
        for job in SD_FILES
    ]
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
        },
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def pod_target(
    *,
    ip: str,
    port: int,
    namespace: str,
    pod: str,
    node: str,
    path: str = "/metrics",
    isvc: str | None = None,
) -> dict[str, Any]:
    """One file_sd entry for a pod, labelled like Kubernetes SD after the usual relabelling."""
    labels = {"namespace": namespace, "pod": pod, "node": node, "__metrics_path__": path}
    if isvc:
        labels["isvc"] = isvc
    return {"targets": [f"{ip}:{port}"], "labels": labels}


def write_targets(path: Path, targets: list[dict[str, Any]]) -> None:
    """Atomically replace a file_sd file (Prometheus never reads a half-written one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(targets, indent=1, sort_keys=True))
    os.replace(tmp, path)
