"""The naive Prometheus baseline the scale benchmarks measure us against (not a benchmark).

One PromQL query per signal per InferenceService — the queries of
:class:`adapters.prometheus.PrometheusSource` narrowed to the ISVC's pods, as a per-object KEDA
ScaledObject or prometheus-adapter rule does — decoded and joined to pods exactly as ours, so
only the number of queries differs. Used by ``bench_loop_scale.py`` and ``bench_snapshot.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import aiohttp

from adapters.prometheus import PrometheusError, _vector, join
from adapters.source import PodKey, PodTarget, assemble
from policies.signals import MetricsSnapshot, Sample, Signal


class PerIsvcStats:
    def __init__(self) -> None:
        self.last_queries = 0

    @property
    def last_requests(self) -> int:
        return self.last_queries


class PerIsvcPrometheusSource:
    """A :class:`~adapters.source.MetricsSource` making one query per signal per ISVC."""

    name = "prometheus-per-isvc"

    def __init__(
        self, url: str, queries: Mapping[Signal, str], namespace: str, concurrency: int = 64
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v1/query"
        self.queries = dict(queries)
        self.namespace = namespace
        self.concurrency = concurrency
        self.sem = asyncio.Semaphore(concurrency)
        self.stats = PerIsvcStats()
        self.session: aiohttp.ClientSession | None = None

    def narrow(self, q: str, isvc: str) -> str:
        """``q`` for the pods of ``isvc`` only."""
        pods = f'pod=~"{isvc}-predictor-.*"'
        q = q.replace(f'namespace=~"{self.namespace}"', f'namespace="{self.namespace}",{pods}')
        return q.replace("DCGM_FI_DEV_GPU_UTIL", f"DCGM_FI_DEV_GPU_UTIL{{{pods}}}")

    async def _one(self, query: str) -> list[tuple[dict[str, str], float, float]]:
        assert self.session is not None
        async with self.sem, self.session.post(self.endpoint, data={"query": query}) as resp:
            body = json.loads(await resp.text())
        if body.get("status") != "success":
            raise PrometheusError(str(body)[:200])
        return _vector(body["data"])

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        if self.session is None:
            conn = aiohttp.TCPConnector(limit=self.concurrency)
            self.session = aiohttp.ClientSession(connector=conn)
        isvcs = sorted({t.isvc.name for t in targets})
        jobs = [(s, self.narrow(q, i)) for i in isvcs for s, q in self.queries.items()]
        self.stats.last_queries = len(jobs)
        try:
            results = await asyncio.gather(*(self._one(q) for _, q in jobs))
        except (PrometheusError, aiohttp.ClientError) as e:
            return MetricsSnapshot.unavailable(now, f"prometheus: {e}", source=self.name)
        known = frozenset(t.key for t in targets)
        values: dict[PodKey, dict[Signal, Sample]] = {}
        for (signal, _), series in zip(jobs, results, strict=True):
            for metric, at, value in series:
                key = join(metric, known)
                if key is not None:
                    values.setdefault(key, {}).setdefault(signal, Sample(value, at))
        return assemble(targets, values, now, self.name)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
