"""The aiohttp application of the external metrics API: a thin adapter over the snapshot cache.

Routes (every one but the probes needs an authenticated and authorized user):

* ``GET /apis``, ``/apis/external.metrics.k8s.io``, ``/apis/external.metrics.k8s.io/v1beta1``
  — discovery; ``/openapi/v2``, ``/openapi/v3``, ``/openapi/v3/apis/…`` — OpenAPI;
* ``GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}
  ?labelSelector=…`` — an ``ExternalMetricValueList`` (:mod:`~autoscaler.metrics_api.values`);
* ``GET /healthz``, ``/livez`` (the process serves), ``/readyz`` (a snapshot exists).

Every answer comes from memory: :class:`SnapshotView` hands over the latest snapshot, built by
the scaling loop (or the standalone runner) once per tick; no request ever reaches Prometheus
or a pod. A snapshot that is missing, ``unavailable`` or older than ``max_snapshot_age`` is a
503 ``Status`` — never stale numbers, never 0. Responses are memoised per snapshot, so the
HPA's polling costs one dictionary lookup once a value has been asked for.

Errors are ``Status`` objects (:mod:`~autoscaler.metrics_api.status`): 400 bad selector or
namespace, 401 no valid credentials, 403 not allowed, 404 unknown path or metric, 405 not GET.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from autoscaler.metrics_api import discovery
from autoscaler.metrics_api.auth import (
    Attributes,
    AuthenticationError,
    Authenticator,
    Authorizer,
    Credentials,
)
from autoscaler.metrics_api.catalog import BASE_NAMES, METRICS, MetricSpec, lookup
from autoscaler.metrics_api.selectors import SelectorError, parse
from autoscaler.metrics_api.status import ApiError, status_response
from autoscaler.metrics_api.values import GROUP, VERSION, fold, rfc3339, select_items, value_list
from policies.signals import MetricsSnapshot, TargetKey

__all__ = ["PUBLIC_PATHS", "SnapshotView", "build_app"]

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
"""The only paths served without authentication."""
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PREFIX = f"/apis/{GROUP}/{VERSION}"
KEDA_ROUTE = "/apis/llm-autoscaler/v1/namespaces/{namespace}/inferenceservices/{isvc}/metrics"
"""Plain JSON per InferenceService, the shape KEDA's Metrics API scaler reads."""


class SnapshotView(Protocol):
    """What the API reads: the latest snapshot and the InferenceServices' labels.

    Both are called on every request and must be cheap (return what is already in memory).
    """

    def latest(self) -> MetricsSnapshot | None:
        """The most recent snapshot, ``None`` before the first one."""
        ...

    def labels(self) -> Mapping[TargetKey, Mapping[str, str]]:
        """The known InferenceServices and their labels (matched by ``labelSelector``)."""
        ...


_VIEW = web.AppKey("view", SnapshotView)
_AUTHN = web.AppKey("authenticator", Authenticator)
_AUTHZ = web.AppKey("authorizer", Authorizer)
_CONFIG = web.AppKey("config", dict[str, Any])
_MEMO = web.AppKey("memo", dict[str, Any])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- middlewares
@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a ``Status``; unexpected ones are logged, not leaked."""
    try:
        return await handler(request)
    except ApiError as e:
        return status_response(e)
    except web.HTTPMethodNotAllowed:
        return status_response(ApiError(405, f"the server does not allow {request.method} here"))
    except web.HTTPNotFound:
        return status_response(ApiError(404, "the server could not find the requested resource"))
    except web.HTTPException as e:
        return status_response(ApiError(e.status, e.reason))
    except Exception:
        log.exception("metrics API: %s %s failed", request.method, request.path)
        return status_response(ApiError(500, "internal error"))


def _attributes(request: web.Request, user: Any) -> Attributes:
    path = request.path
    ns = request.match_info.get("namespace")
    if ns is not None and "isvc" in request.match_info:
        # the KEDA-shaped route reads one InferenceService's load: may the caller get it?
        return Attributes(
            user, "get", path, ns, "inferenceservices", "serving.kserve.io", "v1beta1"
        )
    metric = request.match_info.get("metric")
    if ns is not None and metric is not None:
        # kube-apiserver's RequestInfo: a GET of a collection (no name) is "list".
        return Attributes(user, "list", path, ns, metric, GROUP, VERSION)
    return Attributes(user, "get", path)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate (401), then authorize (403); probes are public."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    creds = Credentials(request.headers, peer or None)
    try:
        user = await request.app[_AUTHN].authenticate(creds)
    except AuthenticationError as e:
        raise ApiError(401, f"Unauthorized: {e}") from None
    if user is None:
        raise ApiError(401, "Unauthorized")
    attrs = _attributes(request, user)
    try:
        decision = await request.app[_AUTHZ].authorize(attrs)
    except Exception as e:
        log.warning("authorization of %s %s failed: %s", user.name, request.path, e)
        raise ApiError(500, "authorization check failed") from None
    if not decision.allowed:
        what = (
            f'"{attrs.verb}" on resource "{attrs.resource}" in API group "{GROUP}" '
            f'in the namespace "{attrs.namespace}"'
            if attrs.resource
            else f'"{attrs.verb}" on path "{attrs.path}"'
        )
        raise ApiError(
            403,
            f'{attrs.resource or "path"} is forbidden: User "{user.name}" cannot {what}',
            details={"name": attrs.resource or "", "group": GROUP, "kind": attrs.resource or ""},
        )
    return await handler(request)


# --------------------------------------------------------------------------- handlers
async def _metric(request: web.Request) -> web.Response:
    ns, name = request.match_info["namespace"], request.match_info["metric"]
    if len(ns) > 63 or not _NAMESPACE.fullmatch(ns):
        raise ApiError(400, f"invalid namespace {ns!r}: a DNS label")
    spec = lookup(name)
    if spec is None:
        raise ApiError(
            404,
            f'the server could not find the metric "{name}": '
            f"see /apis/{GROUP}/{VERSION} for the metrics served",
            details={"name": name, "group": GROUP, "kind": name},
        )
    raw_selector = request.query.get("labelSelector", "")
    snapshot = _fresh_snapshot(request.app)
    memo = request.app[_MEMO]
    if memo.get("snapshot") is not snapshot:
        memo.clear()
        memo["snapshot"] = snapshot
    key = f"{ns}\0{name}\0{raw_selector}"
    body = memo.get(key)
    if body is None:
        body = _render(request.app, snapshot, ns, spec, raw_selector)
        if len(memo) < request.app[_CONFIG]["memo_size"]:
            memo[key] = body
    return web.Response(body=body, content_type="application/json")


async def _keda(request: web.Request) -> web.Response:
    """One InferenceService's signals as plain JSON, for KEDA's Metrics API scaler.

    ``{"namespace", "inferenceservice", "time", "metrics": {"llm-queue-depth": 12.0, ...}}``:
    every base metric with its default fold (sum, avg or max over Ready pods with fresh
    samples); a signal no pod reports is ``null``, never 0. KEDA reads one value with
    ``valueLocation: metrics.llm-queue-depth`` (see docs/metrics-api.md).
    """
    ns, isvc = request.match_info["namespace"], request.match_info["isvc"]
    if len(ns) > 63 or not _NAMESPACE.fullmatch(ns):
        raise ApiError(400, f"invalid namespace {ns!r}: a DNS label")
    snapshot = _fresh_snapshot(request.app)
    target = snapshot.targets.get(TargetKey(ns, isvc))
    if target is None:
        raise ApiError(
            404,
            f'no metrics for InferenceService "{ns}/{isvc}": no predictor pod of it is known',
            details={"name": isvc, "group": "serving.kserve.io", "kind": "inferenceservices"},
        )
    cfg = request.app[_CONFIG]
    now = cfg["clock"]()
    metrics: dict[str, float | None] = {}
    for spec in METRICS.values():
        if spec.name in BASE_NAMES:
            items = fold(target, spec, now, cfg["max_sample_age"])
            metrics[spec.name] = items[0].value if items else None
    return web.json_response(
        {
            "namespace": ns,
            "inferenceservice": isvc,
            "time": rfc3339(snapshot.taken_at),
            "metrics": metrics,
        }
    )


def _render(
    app: web.Application, snapshot: MetricsSnapshot, ns: str, spec: MetricSpec, raw: str
) -> bytes:
    try:
        selector = parse(raw)
    except SelectorError as e:
        raise ApiError(400, f"invalid labelSelector: {e}") from None
    cfg = app[_CONFIG]
    items = select_items(
        snapshot,
        app[_VIEW].labels(),
        ns,
        spec,
        selector,
        cfg["clock"](),
        cfg["max_sample_age"],
    )
    return json.dumps(value_list(spec, items)).encode()


def _fresh_snapshot(app: web.Application) -> MetricsSnapshot:
    """The latest snapshot, or the 503 that says why there is none worth serving."""
    cfg = app[_CONFIG]
    snapshot = app[_VIEW].latest()
    if snapshot is None:
        raise ApiError(
            503, "no metrics snapshot yet: the metrics source has not been read", retry_after=1
        )
    if not snapshot.available:
        log.info("serving 503: snapshot unavailable: %s", snapshot.error)
        raise ApiError(
            503,
            f"metrics unavailable: the {snapshot.source or 'metrics'} source could not be read",
            retry_after=1,
        )
    age = cfg["clock"]() - snapshot.taken_at
    if age > cfg["max_snapshot_age"]:
        raise ApiError(
            503, f"metrics unavailable: the latest snapshot is {age:.0f}s old", retry_after=1
        )
    return snapshot


def _static(body: Mapping[str, Any]) -> Handler:
    text = json.dumps(body)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    return handler


def _etagged(doc: dict[str, Any]) -> Handler:
    text, tag = json.dumps(doc), discovery.etag(doc)

    async def handler(request: web.Request) -> web.Response:
        headers = {"ETag": tag, "Cache-Control": "no-cache, private"}
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers=headers)
        return web.Response(text=text, content_type="application/json", headers=headers)

    return handler


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _ready(request: web.Request) -> web.Response:
    if request.app[_VIEW].latest() is None:
        return web.Response(status=503, text="no metrics snapshot yet")
    return web.Response(text="ok")


# --------------------------------------------------------------------------- factory
def build_app(
    view: SnapshotView,
    *,
    authenticator: Authenticator,
    authorizer: Authorizer,
    max_snapshot_age: float = 30.0,
    max_sample_age: float | None = None,
    clock: Callable[[], float] = time.time,
    memo_size: int = 4096,
) -> web.Application:
    """The external metrics API over ``view``.

    Args:
        view: the snapshot cache (see :class:`SnapshotView`).
        authenticator: who is asking (front proxy, token review; see :mod:`.auth`).
        authorizer: may they (SubjectAccessReview).
        max_snapshot_age: seconds after ``taken_at`` beyond which the snapshot is stale (503):
            the producer has stopped producing.
        max_sample_age: seconds after which one pod's sample is missing; ``None`` trusts the
            source's own staleness rules.
        clock: wall-clock seconds (the snapshot's time base), injected for tests.
        memo_size: responses remembered per snapshot.
    """
    app = web.Application(middlewares=[_errors, _auth])
    app[_VIEW] = view
    app[_AUTHN] = authenticator
    app[_AUTHZ] = authorizer
    app[_CONFIG] = {
        "max_snapshot_age": max_snapshot_age,
        "max_sample_age": max_sample_age,
        "clock": clock,
        "memo_size": memo_size,
    }
    app[_MEMO] = {}
    v3 = discovery.openapi_v3()
    r = app.router
    r.add_get("/healthz", _ok)
    r.add_get("/livez", _ok)
    r.add_get("/readyz", _ready)
    r.add_get("/apis", _static(discovery.api_group_list()))
    r.add_get(f"/apis/{GROUP}", _static(discovery.api_group()))
    r.add_get(_PREFIX, _static(discovery.api_resource_list(METRICS.values())))
    r.add_get(f"{_PREFIX}/namespaces/{{namespace}}/{{metric}}", _metric)
    r.add_get(KEDA_ROUTE, _keda)
    r.add_get("/openapi/v2", _etagged(discovery.openapi_v2()))
    r.add_get("/openapi/v3", _static(discovery.openapi_v3_index(discovery.etag(v3))))
    r.add_get(f"/openapi/v3/apis/{GROUP}/{VERSION}", _etagged(v3))
    return app
