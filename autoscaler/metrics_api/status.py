"""Errors as Kubernetes ``Status`` objects, the only error body an API client understands.

Handlers raise :class:`ApiError`; the app's error middleware turns it (and anything else) into
a ``Status`` response. Messages say what the *client* can do; internal detail (an exception,
a Prometheus URL) goes to the log, never into a response.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "status_body", "status_response"]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error the API answers with: HTTP ``code``, a message, and optional ``details``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        return _REASONS.get(self.code, "Unknown")


def status_body(error: ApiError) -> dict[str, Any]:
    """The ``v1.Status`` object of ``error``."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    details = dict(error.details or {})
    if error.retry_after is not None:
        details["retryAfterSeconds"] = error.retry_after
    if details:
        body["details"] = details
    return body


def status_response(error: ApiError) -> web.Response:
    """``error`` as an HTTP response (``Retry-After`` and ``WWW-Authenticate`` when due)."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="llm-autoscaler"'
    return web.Response(
        status=error.code,
        text=json.dumps(status_body(error)),
        content_type="application/json",
        headers=headers,
    )
