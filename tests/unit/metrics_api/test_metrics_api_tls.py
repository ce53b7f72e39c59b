"""Over real TLS: the self-signed serving cert verifies for its host names, the aggregator's
front-proxy certificate carries an identity, forged identity headers do not, and a client
certificate from another CA is refused during the handshake."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from autoscaler.metrics_api import build_app
from autoscaler.metrics_api.auth import (
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
    SubjectAccessReviewAuthorizer,
    TokenReviewAuthenticator,
    UnionAuthenticator,
)
from autoscaler.metrics_api.tls import ServingCert, self_signed, server_context
from autoscaler.stack import pki
from tests.unit.metrics_api.fakes import NOW, FakeReviews, FakeView, pod, snapshot

HOST = "llm-autoscaler.llm-autoscaler.svc"
PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/llm-queue-depth"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def keys(tmp_path: Path) -> pki.Pki:
    return pki.generate(tmp_path / "pki")


@pytest.fixture
def cert(tmp_path: Path) -> ServingCert:
    return self_signed((HOST, "127.0.0.1"), tmp_path / "serving")


@pytest.fixture
async def server(keys: pki.Pki, cert: ServingCert) -> AsyncIterator[tuple[str, FakeReviews]]:
    ca = keys.front_proxy_ca_crt.read_text()
    config = RequestHeaderConfig.from_configmap(
        {
            "requestheader-client-ca-file": ca,
            "requestheader-allowed-names": '["front-proxy-client"]',
        }
    )
    reviews = FakeReviews(
        tokens={"hpa-token": {"username": "hpa"}}, allowed={("hpa", "llm-queue-depth")}
    )
    app = build_app(
        FakeView(snapshot(("m", [pod("p", queue_depth=2)]))),
        authenticator=UnionAuthenticator(
            RequestHeaderAuthenticator(config), TokenReviewAuthenticator(reviews)
        ),
        authorizer=SubjectAccessReviewAuthorizer(reviews),
        clock=lambda: NOW,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(cert, ca)).start()
    try:
        yield f"https://127.0.0.1:{port}", reviews
    finally:
        await runner.cleanup()


def client_context(cert: ServingCert, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert.cert_file))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


async def fetch(
    url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url + PATH, ssl=ctx, headers=headers or {}) as r:
        return r.status, await r.json()


async def test_front_proxy_identity_is_authorized(
    server: tuple[str, FakeReviews], keys: pki.Pki, cert: ServingCert
) -> None:
    url, reviews = server
    ctx = client_context(cert, (keys.front_proxy_client_crt, keys.front_proxy_client_key))
    status, body = await fetch(
        url, ctx, {"X-Remote-User": "hpa", "X-Remote-Group": "system:authenticated"}
    )
    assert status == 200, body
    assert body["items"][0]["value"] == "2"
    assert reviews.access_reviews[-1]["spec"]["user"] == "hpa"
    status, body = await fetch(url, ctx, {"X-Remote-User": "eve"})
    assert (status, body["reason"]) == (403, "Forbidden")


async def test_no_certificate_and_no_token_is_401_even_with_identity_headers(
    server: tuple[str, FakeReviews], cert: ServingCert
) -> None:
    url, reviews = server
    forged = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    status, body = await fetch(url, client_context(cert), forged)
    assert (status, body["reason"]) == (401, "Unauthorized")
    assert reviews.access_reviews == []


async def test_bearer_token_without_certificate(
    server: tuple[str, FakeReviews], cert: ServingCert
) -> None:
    url, _ = server
    status, _body = await fetch(url, client_context(cert), {"Authorization": "Bearer hpa-token"})
    assert status == 200


async def test_client_certificate_of_another_ca_is_refused(
    server: tuple[str, FakeReviews], keys: pki.Pki, cert: ServingCert
) -> None:
    url, _ = server
    ctx = client_context(cert, (keys.admin_crt, keys.admin_key))  # signed by the cluster CA
    with pytest.raises(aiohttp.ClientError):
        await fetch(url, ctx, {"X-Remote-User": "admin"})


async def test_serving_certificate_names(
    server: tuple[str, FakeReviews], cert: ServingCert
) -> None:
    url, _ = server
    ctx = client_context(cert)
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/healthz", ssl=ctx, server_hostname=HOST) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with s.get(url + "/healthz", ssl=ctx, server_hostname="other.example"):
                pass
    assert cert.key_file.stat().st_mode & 0o077 == 0


def test_self_signed_needs_a_host() -> None:
    with pytest.raises(ValueError, match="host"):
        self_signed(())
