"""Direct scrape: GET every ready predictor pod's ``/metrics`` and every dcgm-exporter, per tick.

Seconds fresher than Prometheus and no Prometheus needed. Pods are scraped concurrently
(bounded by a semaphore) with a per-pod timeout; a pod whose scrape failed, timed out, answered
non-200 or sent an unparseable exposition is *missing* (its samples ``None``), never 0, and
never holds up the others. Unready pods are not scraped (they are still in the snapshot, as
capacity on the way). GPU utilization comes from the exporters, attributed by pod labels.

Gauges are read as they are. Rates need two scrapes, as PromQL's ``rate()`` needs two
samples: the source keeps, per pod, the cumulative preemption counter and TTFT buckets of the
scrapes within ``window`` seconds, and reports ``preemption_rate`` and the TTFT quantiles over
the difference to the oldest one (``None`` on a pod's first scrape, after a counter reset, and
for TTFT when no request got its first token in the window). Every sample is stamped ``now``,
the tick's time.

The request asks for text format 0.0.4 before OpenMetrics: prometheus_client's OpenMetrics
writer rewrites the ``:`` of ``vllm:`` sample names to ``_``. Parsing runs on the event loop:
with the family filter a 60 KB vLLM page (two engines) takes about half a millisecond
(``bench/results/exposition.md``).
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from adapters.exposition import ExpositionError, Family, parse
from adapters.extract import (
    DCGM_FAMILIES,
    VLLM_PREFIX,
    Buckets,
    aggregate_vllm,
    extract_gpus,
    gpus_by_pod,
    histogram_quantile,
    vllm_families,
)
from adapters.source import PodKey, PodTarget, assemble
from policies.signals import MetricsSnapshot, Sample, Signal

__all__ = ["DirectScrapeSource", "Point", "ScrapeStats", "windowed"]

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5,*/*;q=0.1"


class _ScrapeError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Point:
    """A pod's cumulative counters at one scrape."""

    at: float
    preemptions: float | None
    ttft: Buckets


@dataclass(frozen=True, slots=True)
class _Mark:
    """A :class:`Point` as the history keeps it: the bucket bounds shared between points (one
    tuple per layout), the counts in a flat float array (~8 bytes each instead of ~100 for a
    ``(bound, count)`` pair of boxed floats)."""

    at: float
    preemptions: float | None
    bounds: tuple[float, ...]
    counts: array[float]


_LAYOUTS: dict[tuple[float, ...], tuple[float, ...]] = {}


def _mark(point: Point) -> _Mark:
    bounds = tuple(b for b, _ in point.ttft)
    shared = _LAYOUTS.get(bounds)
    if shared is None:
        if len(_LAYOUTS) >= 256:  # bounded: layouts are few (one per vLLM version)
            _LAYOUTS.clear()
        shared = _LAYOUTS[bounds] = bounds
    return _Mark(point.at, point.preemptions, shared, array("d", (c for _, c in point.ttft)))


def windowed(
    history: deque[_Mark], point: Point, window: float, spacing: float | None = None
) -> tuple[float | None, Buckets]:
    """Return the preemption rate (per second) and the TTFT bucket deltas of ``point`` against
    the oldest kept point within ``window`` seconds (or the latest before, if none is), and
    keep ``point`` if the newest kept one is at least ``spacing`` (default ``window / 12``)
    older. So a pod holds at most ~13 points whatever the tick, and the base of a rate is
    within ``spacing`` of the window's start (as ``rate()``, which extrapolates from the
    samples it finds). A counter that went down (a restart) clears the history and yields
    ``(None, ())``."""
    gap = window / 12 if spacing is None else spacing
    while len(history) > 1 and point.at - history[0].at > window:
        history.popleft()
    mark = _mark(point)
    base = history[0] if history else None
    if base is None or point.at - history[-1].at >= gap:
        history.append(mark)
    if base is None or point.at <= base.at:
        return None, ()
    rate = None
    if point.preemptions is not None and base.preemptions is not None:
        rate = (point.preemptions - base.preemptions) / (point.at - base.at)
    delta: Buckets = ()
    if mark.counts and mark.bounds == base.bounds:
        delta = tuple(
            zip(
                mark.bounds,
                (c - c0 for c, c0 in zip(mark.counts, base.counts, strict=True)),
                strict=True,
            )
        )
    if (rate is not None and rate < 0) or any(c < 0 for _, c in delta):
        history.clear()
        history.append(mark)
        return None, ()
    return rate, delta


@dataclass(slots=True)
class ScrapeStats:
    """Counts of the last tick and since start (for logs, own metrics and benchmarks)."""

    ticks: int = 0
    scrapes: int = 0
    failures: int = 0
    last_scrapes: int = 0
    last_failures: int = 0

    @property
    def last_requests(self) -> int:
        """Requests made in the last tick (the name every source's stats share)."""
        return self.last_scrapes


class DirectScrapeSource:
    """A :class:`~adapters.source.MetricsSource` that scrapes pods and dcgm-exporters."""

    name = "direct"

    def __init__(
        self,
        *,
        dcgm_urls: Sequence[str] = (),
        prefix: str = VLLM_PREFIX,
        concurrency: int = 64,
        timeout: float = 2.0,
        window: float = 60.0,
        max_bytes: int = 16 << 20,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.dcgm_urls = list(dcgm_urls)
        """The exporters to read each tick; update it as exporters come and go."""
        self.prefix = prefix
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.window = window
        self.max_bytes = max_bytes
        self.stats = ScrapeStats()
        self._session = session
        self._own_session = session is None
        self._history: dict[tuple[str, str, float | None], deque[_Mark]] = {}

    async def __aenter__(self) -> DirectScrapeSource:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency)
            )
        session, sem = self._session, asyncio.Semaphore(self.concurrency)
        vllm_names, scraped = vllm_families(self.prefix), []
        for t in targets:
            url = t.metrics_url() if t.ready else None
            if url is not None:
                scraped.append((t, url))
        results = await asyncio.gather(
            *(self._fetch(session, sem, url, vllm_names) for _, url in scraped),
            *(self._fetch(session, sem, url, DCGM_FAMILIES) for url in self.dcgm_urls),
        )
        values: dict[PodKey, dict[Signal, Sample]] = {}
        for (t, _), fams in zip(scraped, results, strict=False):
            if fams is not None:
                values[t.key] = self._pod_values(t, fams, now)
        gpus = [
            g for fams in results[len(scraped) :] if fams is not None for g in extract_gpus(fams)
        ]
        for key, pod_gpus in gpus_by_pod(gpus)[0].items():
            util = pod_gpus.utilization
            if util is not None:
                values.setdefault(key, {})[Signal.GPU_UTILIZATION] = Sample(util, now)
        self._forget(targets)
        failed = sum(r is None for r in results)
        self.stats.ticks += 1
        self.stats.last_scrapes, self.stats.last_failures = len(results), failed
        self.stats.scrapes += len(results)
        self.stats.failures += failed
        return assemble(targets, values, now, self.name)

    def _pod_values(
        self, t: PodTarget, fams: Mapping[str, Family], now: float
    ) -> dict[Signal, Sample]:
        out: dict[Signal, Sample] = {}
        vs = aggregate_vllm(fams, self.prefix)
        if vs is None:
            return out
        for signal, value in (
            (Signal.QUEUE_DEPTH, vs.queue_depth),
            (Signal.RUNNING, vs.running),
            (Signal.KV_CACHE_USAGE, vs.kv_cache_usage),
        ):
            if value is not None:
                out[signal] = Sample(value, now)
        history = self._history.setdefault((t.namespace, t.pod, t.created_at), deque())
        rate, delta = windowed(
            history, Point(now, vs.preemptions_total, vs.ttft_buckets), self.window
        )
        if rate is not None:
            out[Signal.PREEMPTION_RATE] = Sample(rate, now)
        for signal, q in ((Signal.TTFT_P50, 0.5), (Signal.TTFT_P95, 0.95)):
            value = histogram_quantile(q, delta)
            if value is not None:
                out[signal] = Sample(value, now)
        return out

    def _forget(self, targets: Sequence[PodTarget]) -> None:
        """Drop the history of pods that are gone."""
        live = {(t.namespace, t.pod, t.created_at) for t in targets}
        for key in [k for k in self._history if k not in live]:
            del self._history[key]

    async def _fetch(
        self,
        session: aiohttp.ClientSession,
        sem: asyncio.Semaphore,
        url: str,
        names: frozenset[str],
    ) -> dict[str, Family] | None:
        """The wanted families at ``url``, or ``None`` when it could not be read or parsed."""
        try:
            async with sem:
                body, openmetrics = await self._get(session, url)
            return parse(body, names, openmetrics=openmetrics)
        except (aiohttp.ClientError, TimeoutError, _ScrapeError, ExpositionError) as e:
            log.debug("scrape %s failed: %s", url, e)
            return None

    async def _get(self, session: aiohttp.ClientSession, url: str) -> tuple[bytes, bool]:
        async with session.get(url, timeout=self.timeout, headers={"Accept": ACCEPT}) as resp:
            if resp.status != 200:
                raise _ScrapeError(f"HTTP {resp.status}")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > self.max_bytes:
                    raise _ScrapeError(f"more than {self.max_bytes} bytes")
                chunks.append(chunk)
            openmetrics = resp.content_type == "application/openmetrics-text"
        return b"".join(chunks), openmetrics
