"""``llm-autoscaler inspect-metrics``: what the autoscaler would read from an exposition.

Reads a vLLM ``/metrics`` page, a dcgm-exporter's, or both concatenated (a file, an http(s)
URL, or ``-`` for stdin) and prints one JSON object: ``{"pods": [...], "unattributed_gpus":
[...]}``. A vLLM exposition scraped from the pod itself does not name the pod: ``--pod`` does;
without it its entry has ``"pod": null``. GPUs are attributed by dcgm-exporter's pod labels;
when ``--pod`` names a pod that also holds GPUs, both make one entry. A signal the text does
not carry is ``null``, never 0. TTFT p95 is over the cumulative histogram (since the server
started), not a recent window.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.request
from typing import Any

from adapters.exposition import ExpositionError, parse
from adapters.extract import VLLM_PREFIX, PodKey, extract_gpus, extract_vllm, gpus_by_pod

HELP = "print the per-pod signals found in a vLLM or dcgm-exporter exposition, as JSON"


def _pod(value: str) -> PodKey:
    ns, sep, pod = value.partition("/")
    if not (sep and ns and pod) or "/" in pod:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/POD, got {value!r}")
    return ns, pod


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="a file, an http(s) URL, or - for stdin")
    p.add_argument(
        "--pod",
        type=_pod,
        default=None,
        metavar="NAMESPACE/POD",
        help="the pod a vLLM exposition was scraped from",
    )
    p.add_argument(
        "--prefix", default=VLLM_PREFIX, help="vLLM metric prefix (kserve_vllm: in some builds)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds, for a URL")


def read_source(source: str, timeout: float) -> bytes:
    """The bytes of a file, a URL or stdin; ``OSError`` when unreadable."""
    if source == "-":
        return sys.stdin.buffer.read()
    if source.startswith(("http://", "https://")):
        req = urllib.request.Request(source, headers={"Accept": "text/plain;version=0.0.4"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data: bytes = resp.read()
            return data
    with open(source, "rb") as f:
        return f.read()


def _entry(ns: str | None, pod: str | None) -> dict[str, Any]:
    return {
        "namespace": ns,
        "pod": pod,
        "model": None,
        "queue_depth": None,
        "running": None,
        "kv_cache_usage": None,
        "gpu_utilization": None,
        "gpus": [],
        "ttft_p95_seconds": None,
    }


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def report(text: bytes | str, prefix: str, pod: PodKey | None) -> dict[str, Any]:
    """The JSON-ready report; raises :class:`ExpositionError` on an invalid exposition."""
    families = parse(text)
    entries: dict[tuple[str | None, str | None, str | None], dict[str, Any]] = {}
    for vs in extract_vllm(families, prefix, pod):
        e = entries[(vs.namespace, vs.pod, vs.model)] = _entry(vs.namespace, vs.pod)
        e.update(
            model=vs.model,
            queue_depth=_num(vs.queue_depth),
            running=_num(vs.running),
            kv_cache_usage=_num(vs.kv_cache_usage),
            ttft_p95_seconds=_num(vs.ttft_p95_seconds),
        )
    by_pod = {(ns, name): e for (ns, name, _), e in entries.items() if name is not None}
    per_pod, loose = gpus_by_pod(extract_gpus(families))
    for (ns, name), pg in per_pod.items():
        found = by_pod.get((ns, name))
        if found is None:
            found = entries[(ns, name, None)] = _entry(ns, name)
        found.update(gpu_utilization=_num(pg.utilization), gpus=pg.indices)
    pods = sorted(
        entries.values(), key=lambda e: (e["namespace"] or "", e["pod"] or "", e["model"] or "")
    )
    unattributed = [
        {
            "hostname": g.hostname,
            "gpu": g.gpu,
            "uuid": g.uuid,
            "gpu_utilization": _num(g.utilization),
        }
        for g in loose
    ]
    return {"pods": pods, "unattributed_gpus": unattributed}


def run(args: argparse.Namespace) -> int:
    name = "llm-autoscaler inspect-metrics"
    try:
        text = read_source(args.source, args.timeout)
    except (OSError, ValueError) as e:  # URLError is an OSError; a bad URL a ValueError
        reason: object = e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        elif isinstance(e, urllib.error.URLError):
            reason = e.reason
        print(f"{name}: cannot read {args.source}: {reason}", file=sys.stderr)
        return 1
    try:
        out = report(text, args.prefix, args.pod)
    except ExpositionError as e:
        print(f"{name}: {args.source}: not a valid exposition: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0
