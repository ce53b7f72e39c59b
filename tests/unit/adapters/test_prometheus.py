"""The Prometheus source against a local HTTP server replaying answers recorded from a real
Prometheus (``data/record_prometheus.py``): one query per signal per tick whatever the number
of targets, the join to known pods (exported_* from a dcgm ServiceMonitor, old label names),
missing vs zero, every failure mode -> unavailable, auth and TLS options."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adapters.prometheus import PrometheusSource, build_queries, join
from adapters.source import PodTarget
from autoscaler.stack.pki import generate
from policies.signals import PodSignals, Sample, Signal, TargetKey
from tests.unit.adapters.conftest import Serve

RECORDED = Path(__file__).parent / "data" / "prometheus"
ISVC = TargetKey("llm", "chat")
NOW = 1_795_413_050.0


def recorded() -> dict[str, dict[str, Any]]:
    """query text -> recorded answer (status, body)."""
    records = [json.loads(p.read_text()) for p in sorted(RECORDED.glob("*.json"))]
    return {r["query"]: r for r in records}


class FakePrometheus:
    """``POST /api/v1/query``: the recorded answer to the query, or a configured failure."""

    def __init__(self, answers: dict[str, dict[str, Any]] | None = None) -> None:
        self.answers = recorded() if answers is None else answers
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.fail: tuple[int, str, str] | None = None  # status, body, content type

    async def query(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.queries.append(str(form["query"]))
        self.headers.append(dict(request.headers))
        if self.fail is not None:
            status, text, ctype = self.fail
            return web.Response(status=status, text=text, content_type=ctype)
        record = self.answers.get(str(form["query"]))
        if record is None:
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
            return web.json_response(body)
        return web.json_response(record["body"], status=record["status"])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/query", self.query)
        return app


def targets(*names: str) -> list[PodTarget]:
    return [PodTarget(ISVC, "llm", n, created_at=1.0) for n in names]


def recorded_sample(signal: Signal, pod: str) -> Sample | None:
    """What the recording says for ``pod`` (workload labels, plain or exported_*)."""
    answer = recorded()[build_queries()[signal]]["body"]["data"]["result"]
    for series in answer:
        m = series["metric"]
        if pod in (m.get("pod"), m.get("exported_pod")) and "llm" in m.values():
            ts, value = series["value"]
            return Sample(float(value), ts) if value != "NaN" else None
    return None


def recorded_pod(pod: str) -> PodSignals:
    values = {s.value: recorded_sample(s, pod) for s in Signal}
    return PodSignals("llm", pod, ready=True, created_at=1.0, **values)  # type: ignore[arg-type]


async def test_one_query_per_signal_joined_to_known_pods(serve: Serve) -> None:
    prom = FakePrometheus()
    base = await serve(prom.app())
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(targets("chat-a", "chat-b", "chat-c"), NOW)
    assert (snap.available, snap.source, snap.taken_at) == (True, "prometheus", NOW)
    a, b, c = snap.targets[ISVC].pods
    assert (a, b) == (recorded_pod("chat-a"), recorded_pod("chat-b"))
    assert c == PodSignals("llm", "chat-c", ready=True, created_at=1.0)  # known, no series
    # what the recorded values mean
    assert [a.get(s).value for s in (Signal.QUEUE_DEPTH, Signal.RUNNING)] == [5.0, 14.0]  # type: ignore[union-attr]
    assert a.kv_cache_usage is not None
    assert a.kv_cache_usage.value == 0.375
    assert a.ttft_p95_seconds is not None
    assert a.ttft_p95_seconds.value == pytest.approx(0.875)
    assert a.gpu_utilization is not None
    assert a.gpu_utilization.value == 80.0
    assert a.preemption_rate is not None
    assert a.preemption_rate.value > 0
    assert a.queue_depth is not None
    assert a.queue_depth.at not in (NOW, 0)  # Prometheus' time
    assert b.kv_cache_usage is not None
    assert b.kv_cache_usage.value == 0.0125
    assert b.preemption_rate == Sample(0.0, b.preemption_rate.at)  # type: ignore[union-attr]
    assert (b.ttft_p50_seconds, b.ttft_p95_seconds, b.gpu_utilization) == (None, None, None)
    assert sorted(prom.queries) == sorted(build_queries().values())
    assert (src.stats.last_queries, src.stats.queries, src.stats.ticks) == (7, 7, 1)


async def test_queries_per_tick_do_not_grow_with_targets(serve: Serve) -> None:
    prom = FakePrometheus()
    base = await serve(prom.app())
    many = [
        PodTarget(TargetKey("llm", f"isvc-{i}"), "llm", f"isvc-{i}-pod-{j}")
        for i in range(250)
        for j in range(4)
    ]
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(many, NOW)
        await src.snapshot(many, NOW + 1)
    assert len(snap.targets) == 250
    assert len(prom.queries) == 14
    assert (src.stats.last_queries, src.stats.queries) == (7, 14)


def test_series_of_unknown_pods_and_the_exporter_itself_are_dropped() -> None:
    known = frozenset({("llm", "chat-a")})
    exporter = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p"}
    assert join({**exporter, "exported_namespace": "llm", "exported_pod": "chat-a"}, known) == (
        "llm",
        "chat-a",
    )
    assert join(exporter, known) is None  # an idle GPU: the exporter's own labels only
    assert join({"namespace": "llm", "pod": "gone-0"}, known) is None
    assert join({"pod_namespace": "llm", "pod_name": "chat-a"}, known) == ("llm", "chat-a")


async def test_old_dcgm_label_names(serve: Serve) -> None:
    q = build_queries()[Signal.GPU_UTILIZATION]
    series = [{"metric": {"pod_namespace": "llm", "pod_name": "chat-a"}, "value": [NOW, "42"]}]
    body = {"status": "success", "data": {"resultType": "vector", "result": series}}
    prom = FakePrometheus({q: {"status": 200, "body": body}})
    base = await serve(prom.app())
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(targets("chat-a"), NOW)
    pod = snap.targets[ISVC].pods[0]
    assert (pod.gpu_utilization, pod.queue_depth) == (Sample(42.0, NOW), None)


@pytest.mark.parametrize(
    ("fail", "fragment"),
    [
        pytest.param(
            (
                503,
                '{"status":"error","errorType":"timeout","error":"query timed out"}',
                "application/json",
            ),
            "HTTP 503 timeout: query timed out",
            id="503-json",
        ),
        pytest.param(
            (502, "<html>Bad Gateway</html>", "text/html"),
            "HTTP 502: <html>Bad Gateway</html> (query of ",
            id="proxy-502",
        ),
        pytest.param(
            (
                200,
                '{"status":"success","data":{"resultType":"matrix","result":[]}}',
                "application/json",
            ),
            "malformed result of queue_depth: TypeError(\"expected a vector, got 'matrix'\")",
            id="matrix",
        ),
        pytest.param(
            (
                200,
                '{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
                "application/json",
            ),
            "malformed result",
            id="malformed",
        ),
        pytest.param(
            (200, '{"status":"success","data":[1]}', "application/json"),
            "malformed result of queue_depth: AttributeError",
            id="data-not-an-object",
        ),
        pytest.param(
            (
                200,
                '{"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"2"]}]}}',
                "application/json",
            ),
            "labels are not an object",
            id="labels-not-an-object",
        ),
    ],
)
async def test_failures_make_the_snapshot_unavailable(
    serve: Serve, fail: tuple[int, str, str], fragment: str
) -> None:
    prom = FakePrometheus()
    prom.fail = fail
    base = await serve(prom.app())
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(targets("chat-a"), NOW)
    assert (snap.available, snap.targets, snap.taken_at) == (False, {}, NOW)
    assert snap.error is not None
    assert fragment in snap.error
    assert src.stats.failures == 1


async def test_recorded_query_error_is_unavailable(serve: Serve) -> None:
    """Prometheus' real answer to a broken query (400 bad_data)."""
    error = next(r for r in recorded().values() if r["status"] == 400)
    prom = FakePrometheus(dict.fromkeys(build_queries().values(), error))
    base = await serve(prom.app())
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(targets("chat-a"), NOW)
    assert not snap.available
    assert "HTTP 400 bad_data: invalid parameter" in (snap.error or "")


async def test_server_without_the_api_is_unavailable(serve: Serve) -> None:
    base = await serve(web.Application())
    async with PrometheusSource(base) as src:
        snap = await src.snapshot(targets("chat-a"), NOW)
    assert not snap.available
    assert (snap.error or "").startswith("prometheus: HTTP 404")


async def test_down_server_is_unavailable() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with PrometheusSource(f"http://127.0.0.1:{port}", timeout=2.0) as src:
        snap = await src.snapshot(targets("chat-a"), NOW)
    assert (snap.available, snap.source, snap.targets) == (False, "prometheus", {})
    assert (snap.error or "").startswith("prometheus: unreachable: ClientConnectorError")


async def test_bearer_token_file_is_reread_and_basic_auth(serve: Serve, tmp_path: Path) -> None:
    prom = FakePrometheus()
    base = await serve(prom.app())
    token = tmp_path / "token"
    token.write_text("first\n")
    async with PrometheusSource(base, bearer_token_file=token) as src:
        await src.snapshot(targets("chat-a"), NOW)
        token.write_text("second")
        await src.snapshot(targets("chat-a"), NOW + 1)
        token.unlink()
        gone = await src.snapshot(targets("chat-a"), NOW + 2)
    auth = [h["Authorization"] for h in prom.headers]
    assert auth == ["Bearer first"] * 7 + ["Bearer second"] * 7
    assert not gone.available
    assert "bearer token file" in (gone.error or "")
    prom.headers.clear()
    async with PrometheusSource(base, basic_auth=("user", "pw")) as src:
        await src.snapshot(targets("chat-a"), NOW)
    assert {h["Authorization"] for h in prom.headers} == {"Basic dXNlcjpwdw=="}


async def test_tls_ca_file_and_insecure(serve: Serve, tmp_path: Path) -> None:
    pki = generate(tmp_path / "pki")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.apiserver_crt, pki.apiserver_key)
    prom = FakePrometheus()
    base = await serve(prom.app(), ssl_context=server_ctx)
    assert base.startswith("https://127.0.0.1:")
    async with PrometheusSource(base, ca_file=pki.ca_crt) as src:
        assert (await src.snapshot(targets("chat-a"), NOW)).available
    async with PrometheusSource(base) as src:  # system CAs do not know ours
        snap = await src.snapshot(targets("chat-a"), NOW)
    assert not snap.available
    assert "unreachable" in (snap.error or "")
    async with PrometheusSource(base, insecure_skip_verify=True) as src:
        assert (await src.snapshot(targets("chat-a"), NOW)).available


def test_queries_with_prefix_namespaces_and_max_age() -> None:
    q = build_queries("kserve_vllm:", ["llm", "team-b"], window="2m", max_age=30)
    by = "exported_namespace, exported_pod, namespace, pod, pod_namespace, pod_name"
    sel = '{namespace=~"llm|team-b"}'
    assert q[Signal.QUEUE_DEPTH] == (
        f"sum by ({by}) (last_over_time(kserve_vllm:num_requests_waiting{sel}[30s]))"
    )
    assert q[Signal.TTFT_P95] == (
        f"histogram_quantile(0.95, sum by ({by}, le) "
        f"(rate(kserve_vllm:time_to_first_token_seconds_bucket{sel}[2m])))"
    )
    assert (
        q[Signal.PREEMPTION_RATE]
        == f"sum by ({by}) (rate(kserve_vllm:num_preemptions_total{sel}[2m]))"
    )
    assert q[Signal.GPU_UTILIZATION] == f"avg by ({by}) (DCGM_FI_DEV_GPU_UTIL <= 100)"
    assert len(q) == len(Signal)


def test_namespace_must_be_a_dns_label() -> None:
    with pytest.raises(ValueError, match="not a namespace"):
        build_queries(namespaces=['x"}) or vector(1'])
