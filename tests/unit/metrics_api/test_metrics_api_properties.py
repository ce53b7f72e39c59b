"""Property tests (hypothesis): no input to the selector parser or to the API's path and query
parsing crashes it, and no request is answered with a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.metrics_api import build_app
from autoscaler.metrics_api.auth import UserInfo
from autoscaler.metrics_api.catalog import METRICS
from autoscaler.metrics_api.selectors import Requirement, SelectorError, parse
from tests.unit.metrics_api.fakes import NOW, AllowList, FakeView, TokenAuthenticator, pod, snapshot

BASE = "/apis/external.metrics.k8s.io/v1beta1"
SELECTOR_ALPHABET = "ab=!<>(), \t-_./0123456789inotéZ"


@given(st.text() | st.text(alphabet=SELECTOR_ALPHABET, max_size=40))
def test_parse_fails_only_with_selector_error(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse(text).matches({"a": "b", "b": "1", "in": ""})


NAMES = st.from_regex(r"[a-z0-9]([a-z0-9.\-_]{0,8}[a-z0-9])?", fullmatch=True)
VALUES = st.one_of(st.just(""), NAMES)


@st.composite
def requirements(draw: st.DrawFn) -> tuple[str, Requirement]:
    key = draw(NAMES)
    op = draw(st.sampled_from(["exists", "!", "=", "==", "!=", "in", "notin", ">", "<"]))
    if op == "exists":
        return key, Requirement(key, "exists")
    if op == "!":
        return f"!{key}", Requirement(key, "!")
    if op in ("in", "notin"):
        values = draw(st.lists(NAMES, min_size=1, max_size=3))
        return f"{key} {op} ({', '.join(values)})", Requirement(key, op, frozenset(values))
    if op in (">", "<"):
        n = draw(st.integers(0, 999))  # label values cannot start with "-"
        return f"{key}{op}{n}", Requirement(key, op, frozenset({str(n)}))
    value = draw(VALUES)
    kind = "notin" if op == "!=" else "in"
    return f"{key}{op}{value}", Requirement(key, kind, frozenset({value}))


@given(st.lists(requirements(), min_size=1, max_size=4), st.dictionaries(NAMES, VALUES))
def test_valid_selectors_parse_to_what_they_say(
    reqs: list[tuple[str, Requirement]], labels: dict[str, str]
) -> None:
    selector = parse(",".join(text for text, _ in reqs))
    assert selector.requirements == tuple(r for _, r in reqs)
    assert selector.matches(labels) == all(r.matches(labels) for _, r in reqs)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient[Any, Any]]]:
    """One server for every example: requests run on a private loop, one at a time."""
    loop = asyncio.new_event_loop()
    view = FakeView(snapshot(("m", [pod("p", queue_depth=1, running=2)])))
    app = build_app(
        view,
        authenticator=TokenAuthenticator({"admin": UserInfo("admin")}),
        authorizer=AllowList("admin"),
        clock=lambda: NOW,
    )

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        return client

    client = loop.run_until_complete(start())
    try:
        yield loop, client
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def request(
    served: tuple[asyncio.AbstractEventLoop, TestClient[Any, Any]], url: str
) -> tuple[int, Any]:
    loop, client = served

    async def go() -> tuple[int, Any]:
        async with client.get(url, headers={"Authorization": "Bearer admin"}) as r:
            return r.status, json.loads(await r.read())

    return loop.run_until_complete(go())


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    ns=st.text(max_size=70) | NAMES,
    metric=st.text(max_size=40) | st.sampled_from(list(METRICS)),
    selector=st.text(max_size=60)
    | st.text(alphabet=SELECTOR_ALPHABET, max_size=40)
    | st.lists(requirements(), max_size=3).map(lambda rs: ",".join(t for t, _ in rs)),
)
def test_any_metric_request_is_answered_without_500(
    served: tuple[asyncio.AbstractEventLoop, TestClient[Any, Any]],
    ns: str,
    metric: str,
    selector: str,
) -> None:
    ns, metric, selector = (quote(x, safe="") for x in (ns, metric, selector))
    url = f"{BASE}/namespaces/{ns}/{metric}?labelSelector={selector}"
    status, body = request(served, url)
    assert status in (200, 400, 404), body
    if status == 200:
        assert body["kind"] == "ExternalMetricValueList"
    else:
        assert (body["kind"], body["code"]) == ("Status", status)


@FUZZ
@given(tail=st.text(max_size=80), query=st.text(max_size=40))
def test_any_path_is_answered_without_500(
    served: tuple[asyncio.AbstractEventLoop, TestClient[Any, Any]], tail: str, query: str
) -> None:
    status, body = request(served, f"/apis/{quote(tail, safe='/')}?{quote(query, safe='=&')}")
    assert status in (200, 400, 404), body
    assert body.get("kind") in (
        "Status",
        "APIGroup",
        "APIGroupList",
        "APIResourceList",
        "ExternalMetricValueList",
    )
