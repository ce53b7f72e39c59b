"""Writes of the InferenceService reconciler: server-side apply, owned deletes, status patches.

:class:`ObjectWriter` is the seam the controller writes through (three methods; the unit tests
use a fake, the e2e tests count calls on a wrapper). :class:`ApiObjectWriter` implements it with
kubernetes-asyncio's generic ``ApiClient.call_api`` on raw JSON, because the typed clients
cannot send ``application/apply-patch+yaml`` for every kind and would drop fields newer than
the client:

* ``apply``: ``PATCH`` with ``application/apply-patch+yaml`` (JSON is valid YAML),
  ``fieldManager`` and ``force``; creates the object if it is absent;
* ``delete``: with a ``uid`` precondition, so a same-named object created since we looked is
  never deleted; 404 is success;
* ``patch_status``: a JSON merge patch on the ``status`` subresource, carrying the
  ``resourceVersion`` we computed from, so a stale status is a 409 conflict and not a write.

:func:`is_transient` is the one place that decides which API errors are worth a silent retry
(conflicts, throttling, 5xx, lost connections) and which are a user-visible failure.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

JSON = dict[str, Any]

_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "InferenceService": "inferenceservices",
}


class ObjectWriter(Protocol):
    async def apply(self, obj: JSON, *, field_manager: str, force: bool) -> JSON:
        """Server-side apply ``obj``; returns the object as stored."""
        ...

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None
    ) -> None:
        """Delete the object if it still has ``uid`` (404 is not an error)."""
        ...

    async def patch_status(self, obj: JSON, status_patch: JSON, *, field_manager: str) -> JSON:
        """Merge-patch ``status`` of ``obj`` at ``obj``'s resourceVersion; returns the object."""
        ...


def resource_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """``/api/v1/namespaces/ns/services/x`` or ``/apis/apps/v1/namespaces/ns/deployments/x``."""
    plural = _PLURALS.get(kind)
    if plural is None:
        raise ValueError(f"no resource path known for kind {kind!r}")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}/{name}"


class ApiObjectWriter:
    """:class:`ObjectWriter` over a kubernetes-asyncio ``ApiClient``."""

    def __init__(self, api_client: Any, *, timeout: float = 30.0) -> None:
        self.api = api_client
        self.timeout = timeout

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> JSON:
        result = await self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
            _request_timeout=self.timeout,
        )
        return result if isinstance(result, dict) else {}

    async def apply(self, obj: JSON, *, field_manager: str, force: bool) -> JSON:
        md = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], md["namespace"], md["name"])
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        return await self._call(
            "PATCH", path, body=obj, content_type="application/apply-patch+yaml", query=query
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None
    ) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        body["propagationPolicy"] = "Background"
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._call("DELETE", resource_path(api_version, kind, namespace, name), body=body)
        except ApiException as e:
            if e.status != 404:
                raise

    async def patch_status(self, obj: JSON, status_patch: JSON, *, field_manager: str) -> JSON:
        md = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], md["namespace"], md["name"])
        body = {"metadata": {"resourceVersion": md.get("resourceVersion")}, "status": status_patch}
        return await self._call(
            "PATCH",
            f"{path}/status",
            body=body,
            content_type="application/merge-patch+json",
            query=[("fieldManager", field_manager)],
        )


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error, ``None`` for anything else."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def is_transient(exc: BaseException) -> bool:
    """Worth a silent retry with backoff: 409 conflict, 429, 5xx, timeouts, lost connections."""
    status = status_of(exc)
    if status is not None:
        return status in (409, 429) or status >= 500
    import aiohttp

    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


def describe(exc: BaseException) -> str:
    """One line for a condition message or an Event: the API's own message when it has one."""
    import json

    status = status_of(exc)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, str | bytes):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or "")
        elif body:
            message = (body.decode(errors="replace") if isinstance(body, bytes) else body)[:256]
    reason = getattr(exc, "reason", None) or ""
    return f"HTTP {status} {reason}: {message}".strip().rstrip(":")
