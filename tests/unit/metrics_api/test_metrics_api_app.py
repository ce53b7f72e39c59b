"""The external metrics API's HTTP surface, against fakes: routes, values, errors, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from autoscaler.metrics_api import build_app
from autoscaler.metrics_api.auth import UserInfo
from autoscaler.metrics_api.catalog import METRICS
from policies.signals import MetricsSnapshot, TargetKey
from tests.unit.metrics_api.fakes import NOW, AllowList, FakeView, TokenAuthenticator, pod, snapshot

BASE = "/apis/external.metrics.k8s.io/v1beta1"
RUNNING = f"{BASE}/namespaces/ns/llm-running"
ADMIN = {"Authorization": "Bearer admin"}
USERS = {"admin": UserInfo("admin", ("system:authenticated",)), "nobody": UserInfo("nobody")}

Client = TestClient[Any, Any]


def fleet() -> MetricsSnapshot:
    return snapshot(
        (
            "llama",
            [
                pod("l-1", queue_depth=3, kv_cache_usage=0.5),
                pod("l-2", queue_depth=4.5, kv_cache_usage=0.7),
            ],
        ),
        ("qwen", [pod("q-1", queue_depth=10, kv_cache_usage=0.9)]),
    )


@pytest.fixture
def view() -> FakeView:
    return FakeView(
        fleet(),
        labels={TargetKey("ns", "llama"): {"team": "a"}, TargetKey("ns", "qwen"): {"team": "b"}},
    )


@pytest.fixture
def authz() -> AllowList:
    return AllowList("admin")


@pytest.fixture
def clock() -> list[float]:
    return [NOW + 1]


@pytest.fixture
async def client(view: FakeView, authz: AllowList, clock: list[float]) -> AsyncIterator[Client]:
    app = build_app(
        view,
        authenticator=TokenAuthenticator(USERS),
        authorizer=authz,
        max_snapshot_age=10,
        max_sample_age=5,
        clock=lambda: clock[0],
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def get(client: Client, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with client.get(path, headers=ADMIN if headers is None else headers) as r:
        assert r.content_type == "application/json" or r.status == 200
        return r.status, (
            await r.json() if r.content_type == "application/json" else await r.text()
        )


async def values(
    client: Client, metric: str, selector: str = ""
) -> dict[str, tuple[str, dict[str, str]]]:
    q = f"?labelSelector={selector}" if selector else ""
    status, body = await get(client, f"{BASE}/namespaces/ns/{metric}{q}")
    assert status == 200, body
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    return {
        i["metricLabels"].get("pod", i["metricLabels"]["serving.kserve.io/inferenceservice"]): (
            i["value"],
            i["metricLabels"],
        )
        for i in body["items"]
    }


# ----------------------------------------------------------------------------- discovery
async def test_discovery_lists_the_group_and_every_metric(client: Client) -> None:
    status, groups = await get(client, "/apis")
    assert status == 200
    assert groups["kind"] == "APIGroupList"
    assert [g["name"] for g in groups["groups"]] == ["external.metrics.k8s.io"]
    assert (
        groups["groups"][0]["preferredVersion"]["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    )
    status, group = await get(client, "/apis/external.metrics.k8s.io")
    assert (status, group["kind"], group["name"]) == (200, "APIGroup", "external.metrics.k8s.io")
    status, resources = await get(client, BASE)
    assert resources["kind"] == "APIResourceList"
    assert resources["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    names = [r["name"] for r in resources["resources"]]
    assert names == list(METRICS)
    assert {"llm-queue-depth", "llm-kv-cache-usage", "llm-gpu-utilization", "llm-running",
            "llm-ttft-p95-seconds", "llm-queue-depth-per-pod"} <= set(names)  # fmt: skip
    assert all(r["namespaced"] and r["verbs"] == ["get"] for r in resources["resources"])


async def test_openapi_documents_revalidate_by_etag(client: Client) -> None:
    async with client.get("/openapi/v2", headers=ADMIN) as r:
        assert r.status == 200
        doc, tag = await r.json(), r.headers["ETag"]
    assert doc["swagger"] == "2.0"
    assert any("ExternalMetricValueList" in k for k in doc["definitions"])
    async with client.get("/openapi/v2", headers={**ADMIN, "If-None-Match": tag}) as r:
        assert r.status == 304
    status, index = await get(client, "/openapi/v3")
    url = index["paths"]["apis/external.metrics.k8s.io/v1beta1"]["serverRelativeURL"]
    status, v3 = await get(client, url)
    assert status == 200
    assert v3["openapi"].startswith("3.")
    assert f"{BASE}/namespaces/{{namespace}}/{{metric}}" in v3["paths"]


# ----------------------------------------------------------------------------- values
async def test_default_forms_sum_queue_and_average_kv_per_inferenceservice(client: Client) -> None:
    assert await values(client, "llm-queue-depth") == {
        "llama": ("7500m", {"serving.kserve.io/inferenceservice": "llama"}),
        "qwen": ("10", {"serving.kserve.io/inferenceservice": "qwen"}),
    }
    kv = await values(client, "llm-kv-cache-usage")
    assert {k: v for k, (v, _) in kv.items()} == {"llama": "600m", "qwen": "900m"}


async def test_explicit_forms(client: Client) -> None:
    def only(d: dict[str, tuple[str, dict[str, str]]]) -> dict[str, str]:
        return {k: v for k, (v, _) in d.items()}

    sel = "serving.kserve.io/inferenceservice=llama"
    assert only(await values(client, "llm-queue-depth-max", sel)) == {"llama": "4500m"}
    assert only(await values(client, "llm-queue-depth-avg", sel)) == {"llama": "3750m"}
    assert only(await values(client, "llm-kv-cache-usage-sum", sel)) == {"llama": "1200m"}
    per_pod = await values(client, "llm-queue-depth-per-pod", sel)
    assert per_pod == {
        "l-1": ("3", {"serving.kserve.io/inferenceservice": "llama", "pod": "l-1"}),
        "l-2": ("4500m", {"serving.kserve.io/inferenceservice": "llama", "pod": "l-2"}),
    }


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("", {"llama", "qwen"}, id="empty-selects-all"),
        pytest.param("serving.kserve.io/inferenceservice=qwen", {"qwen"}, id="by-isvc"),
        pytest.param("serving.kserve.io/inferenceservice%3D%3Dqwen", {"qwen"}, id="double-equals"),
        pytest.param("team!=a", {"qwen"}, id="isvc-label-not-equal"),
        pytest.param("team%20in%20(a,b)", {"llama", "qwen"}, id="in"),
        pytest.param("team,!missing", {"llama", "qwen"}, id="exists-and-not"),
        pytest.param("team=c", set(), id="nothing-matches"),
    ],
)
async def test_selector_picks_inferenceservices(
    client: Client, selector: str, expected: set[str]
) -> None:
    assert set(await values(client, "llm-queue-depth", selector)) == expected


async def test_other_namespace_sees_nothing(client: Client) -> None:
    status, body = await get(client, f"{BASE}/namespaces/other/llm-queue-depth")
    assert (status, body["items"]) == (200, [])


async def test_timestamp_is_the_oldest_sample_folded(view: FakeView, client: Client) -> None:
    view.snapshot = snapshot(("m", [pod("a", at=NOW - 3, running=1), pod("b", at=NOW, running=2)]))
    _, body = await get(client, f"{BASE}/namespaces/ns/llm-running")
    assert body["items"][0]["timestamp"] == "2023-11-14T22:13:17Z"  # NOW - 3
    assert body["items"][0]["value"] == "3"


async def test_missing_pods_are_never_zero(view: FakeView, client: Client) -> None:
    """A Ready pod without a fresh sample counts at the mean of the others in a sum; unready
    pods are not counted; an InferenceService with no fresh sample has no item at all."""
    view.snapshot = snapshot(
        (
            "m",
            [
                pod("fresh", queue_depth=6),
                pod("silent"),  # Ready, never reported
                pod("stale", at=NOW - 60, queue_depth=100),  # older than max_sample_age
                pod("starting", ready=False, queue_depth=50),
            ],
        ),
        ("dark", [pod("x"), pod("y", at=NOW - 60, queue_depth=1)]),
    )
    got = await values(client, "llm-queue-depth")
    assert {k: v for k, (v, _) in got.items()} == {"m": "18"}  # 6 × 3 Ready pods
    assert {k: v for k, (v, _) in (await values(client, "llm-queue-depth-avg")).items()} == {
        "m": "6"
    }
    assert set(await values(client, "llm-queue-depth-per-pod")) == {"fresh"}


async def test_a_new_snapshot_is_served_at_once(view: FakeView, client: Client) -> None:
    assert (await values(client, "llm-queue-depth"))["qwen"][0] == "10"
    assert (await values(client, "llm-queue-depth"))["qwen"][0] == "10"
    calls = view.label_calls
    assert calls == 1  # the second answer was remembered
    view.snapshot = snapshot(("qwen", [pod("q-1", queue_depth=0.25)]))
    assert (await values(client, "llm-queue-depth"))["qwen"][0] == "250m"


# ----------------------------------------------------------------------------- errors
def assert_status(body: dict[str, Any], code: int, reason: str) -> None:
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason)
    assert body["message"]


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        pytest.param(f"{BASE}/namespaces/ns/llm-nope", 404, "NotFound", id="unknown-metric"),
        pytest.param(f"{BASE}/namespaces/ns/LLM-QUEUE-DEPTH", 404, "NotFound", id="case-sensitive"),
        pytest.param("/apis/metrics.k8s.io/v1beta1", 404, "NotFound", id="other-group"),
        pytest.param(f"{BASE}/namespaces/ns", 404, "NotFound", id="no-metric"),
        pytest.param(f"{BASE}/namespaces/Not_A_NS/llm-running", 400, "BadRequest", id="bad-ns"),
        pytest.param(f"{RUNNING}?labelSelector=a%3D%3D%3Db", 400, "BadRequest", id="bad-selector"),
        pytest.param(f"{RUNNING}?labelSelector=a%20in%20()", 400, "BadRequest", id="empty-set"),
        pytest.param(f"{RUNNING}?labelSelector=-a=b", 400, "BadRequest", id="bad-key"),
    ],
)
async def test_errors_are_status_objects(client: Client, path: str, code: int, reason: str) -> None:
    status, body = await get(client, path)
    assert status == code
    assert_status(body, code, reason)


async def test_unknown_metric_says_where_to_look(client: Client) -> None:
    _, body = await get(client, f"{BASE}/namespaces/ns/llm-nope")
    assert "llm-nope" in body["message"]
    assert body["details"]["name"] == "llm-nope"


async def test_writes_are_not_allowed(client: Client) -> None:
    async with client.post(f"{BASE}/namespaces/ns/llm-running", headers=ADMIN) as r:
        assert r.status == 405
        assert_status(await r.json(), 405, "MethodNotAllowed")


@pytest.mark.parametrize(
    "snap",
    [
        pytest.param(None, id="no-snapshot-yet"),
        pytest.param(
            MetricsSnapshot.unavailable(NOW, "prometheus: unreachable: http://10.0.0.9:9090"),
            id="source-unavailable",
        ),
        pytest.param(snapshot(("llama", [pod("l", queue_depth=1)]), at=NOW - 30), id="stale"),
    ],
)
async def test_no_data_is_503_never_zero(
    view: FakeView, client: Client, snap: MetricsSnapshot | None
) -> None:
    view.snapshot = snap
    async with client.get(f"{BASE}/namespaces/ns/llm-queue-depth", headers=ADMIN) as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "1"
        body = await r.json()
    assert_status(body, 503, "ServiceUnavailable")
    assert "10.0.0.9" not in body["message"]  # internal detail stays in the log
    # Discovery still answers: the APIService stays Available, the HPA sees the 503.
    assert (await get(client, BASE))[0] == 200


async def test_service_recovers_when_the_source_returns(view: FakeView, client: Client) -> None:
    view.snapshot = MetricsSnapshot.unavailable(NOW, "down")
    assert (await get(client, f"{BASE}/namespaces/ns/llm-queue-depth"))[0] == 503
    view.snapshot = fleet()
    assert (await values(client, "llm-queue-depth"))["qwen"][0] == "10"


async def test_snapshot_ages_into_503(view: FakeView, client: Client, clock: list[float]) -> None:
    assert (await get(client, f"{BASE}/namespaces/ns/llm-queue-depth"))[0] == 200
    clock[0] = NOW + 11  # the producer stopped: max_snapshot_age is 10 s
    status, body = await get(client, f"{BASE}/namespaces/ns/llm-queue-depth")
    assert status == 503
    assert "old" in body["message"]


# ----------------------------------------------------------------------------- auth
@pytest.mark.parametrize(
    "path", [BASE, "/apis", "/openapi/v2", f"{BASE}/namespaces/ns/llm-running", "/nowhere"]
)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="anonymous"),
        pytest.param({"Authorization": "Bearer forged"}, id="bad-token"),
    ],
)
async def test_everything_but_probes_needs_a_user(
    client: Client, path: str, headers: dict[str, str]
) -> None:
    async with client.get(path, headers=headers) as r:
        assert r.status == 401
        assert_status(await r.json(), 401, "Unauthorized")


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
async def test_probes_are_public(client: Client, path: str) -> None:
    async with client.get(path) as r:
        assert (r.status, await r.text()) == (200, "ok")


async def test_readyz_waits_for_the_first_snapshot(view: FakeView, client: Client) -> None:
    view.snapshot = None
    async with client.get("/readyz") as r:
        assert r.status == 503


async def test_forbidden_user_gets_403_for_the_metric_as_a_list(
    client: Client, authz: AllowList
) -> None:
    status, body = await get(
        client, f"{BASE}/namespaces/ns/llm-running", {"Authorization": "Bearer nobody"}
    )
    assert status == 403
    assert_status(body, 403, "Forbidden")
    assert 'User "nobody"' in body["message"]
    asked = authz.asked[-1]
    assert (asked.verb, asked.namespace, asked.resource, asked.group, asked.version) == (
        "list", "ns", "llm-running", "external.metrics.k8s.io", "v1beta1",
    )  # fmt: skip


async def test_discovery_is_authorized_as_a_non_resource_path(
    client: Client, authz: AllowList
) -> None:
    await get(client, "/apis")
    asked = authz.asked[-1]
    assert (asked.verb, asked.path, asked.resource) == ("get", "/apis", None)


async def test_authorizer_failure_is_500_without_detail(client: Client, authz: AllowList) -> None:
    authz.fail = True
    status, body = await get(client, f"{BASE}/namespaces/ns/llm-running")
    assert status == 500
    assert_status(body, 500, "InternalError")
    assert "unreachable" not in body["message"]


async def test_unexpected_failure_is_a_500_status(view: FakeView, client: Client) -> None:
    def boom() -> Any:
        raise RuntimeError("bug")

    view.latest = boom  # type: ignore[method-assign]
    status, body = await get(client, f"{BASE}/namespaces/ns/llm-running")
    assert status == 500
    assert_status(body, 500, "InternalError")
    assert "bug" not in body["message"]


def test_build_app_keeps_its_state_typed() -> None:
    app = build_app(FakeView(), authenticator=TokenAuthenticator({}), authorizer=AllowList())
    paths: set[str] = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert f"{BASE}/namespaces/{{namespace}}/{{metric}}" in paths


KEDA = "/apis/llm-autoscaler/v1/namespaces/ns/inferenceservices/{}/metrics"


async def test_keda_route_serves_one_isvc_as_plain_json(client: Client, authz: AllowList) -> None:
    status, body = await get(client, KEDA.format("llama"))
    assert status == 200, body
    assert body["inferenceservice"] == "llama"
    assert body["metrics"]["llm-queue-depth"] == 7.5
    assert body["metrics"]["llm-kv-cache-usage"] == pytest.approx(0.6)
    assert body["metrics"]["llm-gpu-utilization"] is None  # not reported: null, never 0
    asked = authz.asked[-1]
    assert (asked.verb, asked.resource, asked.namespace) == ("get", "inferenceservices", "ns")


async def test_keda_route_errors(client: Client, view: FakeView) -> None:
    status, body = await get(client, KEDA.format("missing"))
    assert status == 404
    assert "no metrics for InferenceService" in body["message"]
    status, _ = await get(client, KEDA.format("llama"), headers={"Authorization": "Bearer nobody"})
    assert status == 403
    view.snapshot = MetricsSnapshot.unavailable(NOW, "connection refused", "prometheus")
    status, body = await get(client, KEDA.format("llama"))
    assert status == 503
