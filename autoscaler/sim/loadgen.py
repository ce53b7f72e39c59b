"""Load generator: sends OpenAI-style requests to an InferenceService's pods, at a rate or as a
replayed trace, balancing like a Service in front of them (least-loaded or round-robin).

Backends are the ISVC's Ready predictor pods, re-listed from the apiserver every second, so
pods that scale in or out are picked up as a Service's endpoints would be. Prompts are sent as
token-id lists so the server sees exactly the trace's prompt length; ``max_tokens`` is the
trace's output length. TTFT is measured client-side from the streamed first chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from autoscaler.stack.kube import api_client

log = logging.getLogger(__name__)
ISVC_LABEL = "serving.kserve.io/inferenceservice"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request to send: at ``t`` seconds from the start, with its token counts."""

    t: float
    prompt_tokens: int
    output_tokens: int


@dataclass(slots=True)
class Result:
    sent_at: float
    pod: str | None
    ttft: float | None = None
    latency: float | None = None
    error: str | None = None


def poisson_arrivals(
    rate: float, duration: float, prompt_tokens: int, output_tokens: int, seed: int = 1
) -> list[Arrival]:
    """Poisson arrivals at ``rate`` req/s for ``duration`` seconds with fixed token counts."""
    rng = random.Random(seed)
    out: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return out
        out.append(Arrival(t, prompt_tokens, output_tokens))


def azure_arrivals(
    path: Path, *, start: float = 0.0, duration: float | None = None, speedup: float = 1.0
) -> list[Arrival]:
    """Arrivals from an Azure LLM inference trace CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``,
    optionally gzipped): the slice ``[start, start + duration)`` seconds of trace time, replayed
    ``speedup`` times faster, times relative to the slice start.

    Timestamps have 7 fractional digits, which ``datetime`` does not take: the 7th is cut.
    """
    import csv
    import datetime as dt
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    out: list[Arrival] = []
    t0: float | None = None
    with opener(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {
            "TIMESTAMP",
            "ContextTokens",
            "GeneratedTokens",
        } <= set(reader.fieldnames):
            raise ValueError(
                f"{path}: not an Azure trace (need TIMESTAMP,ContextTokens,GeneratedTokens)"
            )
        for row in reader:
            stamp = row["TIMESTAMP"].strip()
            head, _, frac = stamp.partition(".")
            t = dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").timestamp()
            t0 = t if t0 is None else t0
            rel = t - t0 - start
            if rel < 0:
                continue
            if duration is not None and rel >= duration:
                break
            out.append(
                Arrival(rel / speedup, int(row["ContextTokens"]), int(row["GeneratedTokens"]))
            )
    return out


@dataclass
class Backend:
    name: str
    url: str
    inflight: int = 0


@dataclass
class LoadGenerator:
    kubeconfig: Path
    namespace: str
    isvc: str
    policy: str = "least-loaded"  # or "round-robin"
    backend_wait: float = 60.0
    request_timeout: float = 600.0
    results: list[Result] = field(default_factory=list)
    backends: dict[str, Backend] = field(default_factory=dict)
    _rr: itertools.count[int] = field(default_factory=itertools.count)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _refresh(self) -> None:
        from kubernetes_asyncio import client

        async with api_client(self.kubeconfig) as api:
            core = client.CoreV1Api(api)
            while True:
                with contextlib.suppress(Exception):
                    pods = (
                        await core.list_namespaced_pod(
                            self.namespace, label_selector=f"{ISVC_LABEL}={self.isvc}"
                        )
                    ).items
                    ready = {}
                    for p in pods:
                        conds = p.status.conditions or []
                        if p.metadata.deletion_timestamp or not p.status.pod_ip:
                            continue
                        if not any(c.type == "Ready" and c.status == "True" for c in conds):
                            continue
                        port = (p.metadata.annotations or {}).get(
                            "prometheus.kserve.io/port", "8080"
                        )
                        ready[p.metadata.name] = f"http://{p.status.pod_ip}:{port}"
                    for name in list(self.backends):
                        if name not in ready:
                            del self.backends[name]
                    for name, url in ready.items():
                        self.backends.setdefault(name, Backend(name, url))
                    if self.backends:
                        self._changed.set()
                await asyncio.sleep(1.0)

    async def _pick(self) -> Backend | None:
        deadline = time.monotonic() + self.backend_wait
        while not self.backends:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=left)
        pool = list(self.backends.values())
        if self.policy == "round-robin":
            return pool[next(self._rr) % len(pool)]
        return min(pool, key=lambda b: (b.inflight, b.name))

    async def _send(self, session: aiohttp.ClientSession, a: Arrival, t0: float) -> None:
        sent = time.monotonic()
        res = Result(sent_at=sent - t0, pod=None)
        self.results.append(res)
        backend = await self._pick()
        if backend is None:
            res.error = "no ready backend"
            return
        res.pod = backend.name
        body = {
            "model": self.isvc,
            "prompt": [0] * a.prompt_tokens,
            "max_tokens": a.output_tokens,
            "stream": True,
        }
        backend.inflight += 1
        try:
            async with session.post(f"{backend.url}/v1/completions", json=body) as r:
                if r.status != 200:
                    res.error = f"HTTP {r.status}"
                    return
                async for _line in r.content:
                    if res.ttft is None:
                        res.ttft = time.monotonic() - sent
                res.latency = time.monotonic() - sent
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            res.error = type(e).__name__
        finally:
            backend.inflight -= 1

    async def run(
        self, arrivals: Iterable[Arrival], progress: Callable[[float], None] | None = None
    ) -> list[Result]:
        """Send every arrival at its time; returns when all have been answered or failed."""
        refresher = asyncio.get_running_loop().create_task(self._refresh(), name="loadgen backends")
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        conn = aiohttp.TCPConnector(limit=0)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=conn) as session:
                t0 = time.monotonic()
                for a in arrivals:
                    delay = a.t - (time.monotonic() - t0)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    task = asyncio.get_running_loop().create_task(self._send(session, a, t0))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if progress:
                        progress(time.monotonic() - t0)
                if tasks:
                    await asyncio.gather(*tasks)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        return self.results


def summarize(results: list[Result], slo_ttft: float | None = None) -> dict[str, Any]:
    """Counts and TTFT percentiles (seconds) of a run."""
    ok = [r for r in results if r.error is None and r.ttft is not None]
    ttft = np.array([r.ttft for r in ok], dtype=float)
    out: dict[str, Any] = {
        "sent": len(results),
        "ok": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if r.error}),
        "ttft_p50_s": float(np.percentile(ttft, 50)) if len(ttft) else None,
        "ttft_p95_s": float(np.percentile(ttft, 95)) if len(ttft) else None,
        "ttft_p99_s": float(np.percentile(ttft, 99)) if len(ttft) else None,
        "pods_used": len({r.pod for r in ok}),
    }
    if slo_ttft is not None:
        out["slo_attainment"] = (
            float(np.mean(ttft <= slo_ttft)) * len(ok) / len(results) if results else None
        )
    return out
