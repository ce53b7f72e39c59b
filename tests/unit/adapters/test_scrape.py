"""The direct-scrape source against real local HTTP servers: ready pods scraped concurrently
within a bound, failures and timeouts missing (never 0), DCGM attribution, rates over two
scrapes, counter resets, and the pure window arithmetic."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from adapters.scrape import DirectScrapeSource, Point, windowed
from adapters.source import PodTarget
from policies.signals import PodSignals, Sample, TargetKey
from tests.unit.adapters import samples
from tests.unit.adapters.conftest import Serve

ISVC = TargetKey("llm", "chat")
GPU_POD = samples.DCGM_POD[1]
NOW = 1_763_880_000.0
INF = float("inf")


@dataclass
class Fleet:
    """Pods' ``/metrics`` on one server, at ``/<pod>/metrics``, each with its behaviour."""

    bodies: dict[str, str | bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    content_type: dict[str, str] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        pod = request.match_info["pod"]
        self.hits[pod] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay.get(pod, 0.0))
            body = self.bodies.get(pod, "")
            return web.Response(
                body=body.encode() if isinstance(body, str) else body,
                status=self.status.get(pod, 200),
                content_type=self.content_type.get(pod, "text/plain"),
            )
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{pod}/metrics", self.handle)
        return app


def pod(name: str, base: str | None, *, ready: bool = True, created: float = 1.0) -> PodTarget:
    url = None if base is None else f"{base}/{name}/metrics"
    return PodTarget(ISVC, "llm", name, ready=ready, created_at=created, url=url)


def signals(name: str, *, ready: bool = True, created: float = 1.0, **values: float) -> PodSignals:
    samples_ = {k: Sample(v, NOW) for k, v in values.items()}
    return PodSignals("llm", name, ready=ready, created_at=created, **samples_)  # type: ignore[arg-type]


async def test_ready_pods_scraped_failures_missing_gpus_attributed(serve: Serve) -> None:
    fleet = Fleet(
        bodies={GPU_POD: samples.VLLM_V1, "garbage": "<html>oops</html>", "dcgm": samples.DCGM},
        status={"err": 500},
        delay={"slow": 1.0},
    )
    base = await serve(fleet.app())
    targets = [
        pod(GPU_POD, base),
        pod("err", base),
        pod("slow", base),
        pod("garbage", base),
        pod("unready", base, ready=False),
        pod("no-address", None),
    ]
    async with DirectScrapeSource(dcgm_urls=[f"{base}/dcgm/metrics"], timeout=0.3) as src:
        snap = await src.snapshot(targets, NOW)
    assert (snap.available, snap.source, snap.taken_at, list(snap.targets)) == (
        True,
        "direct",
        NOW,
        [ISVC],
    )
    assert snap.targets[ISVC].pods == (
        signals(GPU_POD, queue_depth=5.0, running=14.0, kv_cache_usage=0.375, gpu_utilization=80.0),
        signals("err"),
        signals("slow"),
        signals("garbage"),
        signals("unready", ready=False),
        signals("no-address"),
    )
    assert fleet.hits["unready"] == 0
    assert (src.stats.last_scrapes, src.stats.last_failures) == (5, 3)


async def test_concurrency_is_bounded(serve: Serve) -> None:
    fleet = Fleet(delay={f"p{i}": 0.05 for i in range(8)})
    base = await serve(fleet.app())
    async with DirectScrapeSource(concurrency=3) as src:
        await src.snapshot([pod(f"p{i}", base) for i in range(8)], NOW)
    assert sum(fleet.hits.values()) == 8
    assert fleet.max_in_flight == 3


def exposition(preemptions: float, ttft: list[tuple[str, float]], waiting: float = 1.0) -> str:
    lines = [
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}',
        "# TYPE vllm:num_preemptions_total counter",
        f'vllm:num_preemptions_total{{engine="0",model_name="m"}} {preemptions}',
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    lines += [
        f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{le}",model_name="m"}} {c}'
        for le, c in ttft
    ]
    return "\n".join(lines) + "\n"


async def test_rates_and_ttft_over_the_window(serve: Serve) -> None:
    """Scrape 1: cumulative TTFT 0.1 -> 10, 1 -> 10, +Inf -> 10, 5 preemptions. Scrape 2, ten
    seconds later: 0.1 -> 14, 1 -> 20, +Inf -> 20, 9 preemptions. The window saw 10 requests:
    4 under 0.1 s, 6 in (0.1, 1]; p50 rank 5 -> 0.1 + 0.9 * (5 - 4) / 6 = 0.25; p95 rank 9.5 ->
    0.1 + 0.9 * 5.5 / 6 = 0.925; preemptions (9 - 5) / 10 s = 0.4/s. Scrape 3: a restart
    (counter down): rates missing, not negative."""
    fleet = Fleet(bodies={"p": exposition(5, [("0.1", 10), ("1.0", 10), ("+Inf", 10)])})
    base = await serve(fleet.app())
    targets = [pod("p", base)]
    async with DirectScrapeSource() as src:
        first = (await src.snapshot(targets, NOW)).targets[ISVC].pods[0]
        fleet.bodies["p"] = exposition(9, [("0.1", 14), ("1.0", 20), ("+Inf", 20)])
        second = (await src.snapshot(targets, NOW + 10)).targets[ISVC].pods[0]
        fleet.bodies["p"] = exposition(1, [("0.1", 1), ("1.0", 1), ("+Inf", 1)])
        third = (await src.snapshot(targets, NOW + 20)).targets[ISVC].pods[0]
    assert (first.preemption_rate, first.ttft_p50_seconds, first.ttft_p95_seconds) == (None,) * 3
    assert first.queue_depth == Sample(1.0, NOW)
    assert second.preemption_rate == Sample(pytest.approx(0.4), NOW + 10)  # type: ignore[arg-type]
    assert second.ttft_p50_seconds == Sample(pytest.approx(0.25), NOW + 10)  # type: ignore[arg-type]
    assert second.ttft_p95_seconds == Sample(pytest.approx(0.925), NOW + 10)  # type: ignore[arg-type]
    assert (third.preemption_rate, third.ttft_p95_seconds) == (None, None)
    assert third.queue_depth == Sample(1.0, NOW + 20)


async def test_a_pod_that_left_starts_over(serve: Serve) -> None:
    fleet = Fleet(bodies={"p": exposition(5, [("1.0", 1), ("+Inf", 1)])})
    base = await serve(fleet.app())
    async with DirectScrapeSource() as src:
        await src.snapshot([pod("p", base)], NOW)
        await src.snapshot([], NOW + 5)
        back = await src.snapshot([pod("p", base)], NOW + 10)
        renamed = await src.snapshot([pod("p", base, created=2.0)], NOW + 15)
    assert back.targets[ISVC].pods[0].preemption_rate is None
    assert renamed.targets[ISVC].pods[0].preemption_rate is None  # a new pod, same name


async def test_oversized_body_is_missing(serve: Serve) -> None:
    fleet = Fleet(bodies={"big": samples.VLLM_V1})
    base = await serve(fleet.app())
    async with DirectScrapeSource(max_bytes=1000) as src:
        snap = await src.snapshot([pod("big", base)], NOW)
    assert snap.targets[ISVC].pods[0] == signals("big")


async def test_kserve_prefix_and_openmetrics(serve: Serve) -> None:
    """An OpenMetrics answer (``# EOF``, counter family without ``_total``, a timestamp in
    seconds). The source asks for text 0.0.4 first: prometheus_client's OpenMetrics writer
    rewrites ``:`` in sample names to ``_``."""
    body = (
        "# TYPE kserve_vllm:num_requests_waiting gauge\n"
        'kserve_vllm:num_requests_waiting{model_name="m"} 7.0\n'
        "# TYPE kserve_vllm:num_preemptions counter\n"
        'kserve_vllm:num_preemptions_total{model_name="m"} 3.0 1763879990.5\n'
        'kserve_vllm:num_preemptions_created{model_name="m"} 1.0\n'
        "# EOF\n"
    )
    fleet = Fleet(bodies={"om": body}, content_type={"om": "application/openmetrics-text"})
    base = await serve(fleet.app())
    async with DirectScrapeSource(prefix="kserve_vllm:") as src:
        snap = await src.snapshot([pod("om", base)], NOW)
    assert snap.targets[ISVC].pods[0] == signals("om", queue_depth=7.0)


@pytest.mark.parametrize(
    ("points", "window", "want"),
    [
        pytest.param([Point(0, 1, ())], 60, (None, ()), id="first-point"),
        pytest.param([Point(0, 1, ()), Point(10, 3, ())], 60, (0.2, ()), id="two-points"),
        pytest.param(
            [Point(0, 0, ()), Point(10, 10, ()), Point(20, 30, ()), Point(100, 30, ())],
            60,
            (0.0, ()),
            id="old-points-leave-the-window",
        ),
        pytest.param(
            [Point(0, 0, ()), Point(100, 50, ())], 60, (0.5, ()), id="beyond-window-uses-last"
        ),
        pytest.param([Point(0, 5, ()), Point(10, 2, ())], 60, (None, ()), id="counter-reset"),
        pytest.param([Point(0, None, ()), Point(10, 2, ())], 60, (None, ()), id="no-counter"),
        pytest.param(
            [Point(0, 0, ((1.0, 2), (INF, 3))), Point(10, 0, ((1.0, 5), (INF, 9)))],
            60,
            (0.0, ((1.0, 3), (INF, 6))),
            id="bucket-deltas",
        ),
        pytest.param(
            [Point(0, 0, ((1.0, 2), (INF, 3))), Point(10, 0, ((2.0, 5), (INF, 9)))],
            60,
            (0.0, ()),
            id="bucket-layout-changed",
        ),
    ],
)
def test_windowed(
    points: list[Point], window: float, want: tuple[float | None, tuple[tuple[float, float], ...]]
) -> None:
    history: deque[Any] = deque()
    got: tuple[float | None, tuple[tuple[float, float], ...]] = (None, ())
    for p in points:
        got = windowed(history, p, window)
    assert got == want


def test_windowed_keeps_about_a_dozen_points_whatever_the_tick() -> None:
    """A 1 s tick over a 60 s window keeps one point per 5 s (13), not 61: at 10k pods with
    23 TTFT buckets that is the difference between ~1.6 GB and tens of MB of history. The rate
    is then taken from a base within 5 s of the window's start."""
    history: deque[Any] = deque()
    bounds = [0.1 * i for i in range(1, 23)] + [INF]
    got: tuple[float | None, tuple[tuple[float, float], ...]] = (None, ())
    for t in range(0, 301):
        got = windowed(history, Point(t, 2.0 * t, tuple((b, float(t)) for b in bounds)), 60)
    assert len(history) <= 13
    rate, delta = got
    assert rate == pytest.approx(2.0)  # counters grow 2/s: the rate is exact whatever the base
    assert 60 - 5 <= delta[-1][1] <= 60  # the base is 55-60 s back
    # shared bound tuples: every kept point refers to the same layout object
    assert len({id(m.bounds) for m in history}) == 1
