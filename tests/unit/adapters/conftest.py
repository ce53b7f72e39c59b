"""Real local HTTP servers for the adapters' network tests (pytest-aiohttp is not used)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(app, ssl_context=None)`` starts ``app`` on 127.0.0.1, a free port, and
    returns its base URL; every server is cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"{'https' if ssl_context else 'http'}://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
