"""The external metrics API on its own: ``python -m autoscaler.metrics_api``.

For end-to-end tests and for clusters that want the API without the scaler. It keeps a
watch-backed cache of predictor pods (label ``serving.kserve.io/inferenceservice``), reads a
metrics source (Prometheus or direct scrape) every ``refresh`` seconds into a
:class:`~.cache.SnapshotCache`, and serves it over HTTPS with delegated auth: front-proxy
settings from ``kube-system/extension-apiserver-authentication``, TokenReview and
SubjectAccessReview through the same kubeconfig (or in-cluster credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.informer import Informer
from adapters.prometheus import PrometheusSource
from adapters.scrape import DirectScrapeSource
from adapters.source import MetricsSource, PodTarget
from autoscaler.metrics_api.app import build_app
from autoscaler.metrics_api.auth import (
    RequestHeaderAuthenticator,
    SubjectAccessReviewAuthorizer,
    TokenReviewAuthenticator,
    UnionAuthenticator,
)
from autoscaler.metrics_api.cache import Refresher, SnapshotCache
from autoscaler.metrics_api.delegation import KubeReviewClient, load_requestheader_config
from autoscaler.metrics_api.tls import ServingCert, self_signed, server_context
from autoscaler.targets import ISVC_LABEL, dcgm_urls, pod_target
from policies.signals import TargetKey

__all__ = ["RunnerOptions", "predictor_pods", "serve"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass
class RunnerOptions:
    kubeconfig: Path | None = None
    """kubeconfig; in-cluster credentials when unset."""
    listen: str = "0.0.0.0"
    port: int = 6443
    source: str = "prometheus"
    """``prometheus`` or ``direct``."""
    prometheus_url: str | None = None
    metric_prefix: str = "vllm:"
    refresh: float = 1.0
    """Seconds between source reads."""
    max_snapshot_age: float = 10.0
    """A snapshot older than this is served as 503."""
    stale_after: float = 15.0
    """A sample older than this is missing."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    self_signed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    cert_dir: Path | None = None
    """Where a self-signed certificate is written."""
    dcgm_namespace: str = "gpu-operator"
    dcgm_selector: str = "app=nvidia-dcgm-exporter"
    dcgm_port: int = 9400
    namespaces: tuple[str, ...] = field(default_factory=tuple)


def predictor_pods(pods: Iterable[JSON], namespaces: tuple[str, ...] = ()) -> list[PodTarget]:
    """Every live predictor pod, its InferenceService taken from its label. Pure."""
    out = []
    for p in pods:
        md = p.get("metadata") or {}
        isvc = (md.get("labels") or {}).get(ISVC_LABEL)
        ns = md.get("namespace", "")
        if not isvc or (namespaces and ns not in namespaces):
            continue
        if md.get("deletionTimestamp") or (p.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            continue
        out.append(pod_target(p, TargetKey(ns, isvc)))
    return out


def make_source(opts: RunnerOptions) -> MetricsSource:
    if opts.source == "prometheus":
        if not opts.prometheus_url:
            raise SystemExit("--source=prometheus needs --prometheus-url")
        return PrometheusSource(
            opts.prometheus_url,
            prefix=opts.metric_prefix,
            namespaces=opts.namespaces,
            max_age=opts.stale_after,
        )
    return DirectScrapeSource(prefix=opts.metric_prefix)


def serving_cert(opts: RunnerOptions) -> ServingCert:
    if opts.tls_cert_file and opts.tls_key_file:
        return ServingCert(opts.tls_cert_file, opts.tls_key_file)
    cert = self_signed(opts.self_signed_hosts, opts.cert_dir)
    log.info("serving a self-signed certificate for %s: %s", opts.self_signed_hosts, cert.cert_file)
    return cert


async def delegated_app(
    api: Any, view: SnapshotCache, cert: ServingCert, **options: Any
) -> tuple[web.Application, ssl.SSLContext]:
    """The API app with delegated auth, and its TLS context: what every server of it needs.

    Front-proxy client certificates (CA and names from ``extension-apiserver-authentication``)
    or bearer tokens (TokenReview), then a SubjectAccessReview; ``options`` go to
    :func:`~autoscaler.metrics_api.app.build_app`.
    """
    requestheader = await load_requestheader_config(api)
    reviews = KubeReviewClient(api)
    app = build_app(
        view,
        authenticator=UnionAuthenticator(
            RequestHeaderAuthenticator(requestheader), TokenReviewAuthenticator(reviews)
        ),
        authorizer=SubjectAccessReviewAuthorizer(reviews),
        **options,
    )
    return app, server_context(cert, requestheader.client_ca)


async def serve(opts: RunnerOptions, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is not given)."""
    from kubernetes_asyncio import client, config

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    cfg = client.Configuration()
    if opts.kubeconfig:
        await config.load_kube_config(config_file=str(opts.kubeconfig), client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    source = make_source(opts)
    tasks: list[asyncio.Task[None]] = []
    runner: web.AppRunner | None = None
    try:
        core = client.CoreV1Api(api)
        pods = Informer(core.list_pod_for_all_namespaces, name="pods", label_selector=ISVC_LABEL)
        informers = [pods]
        prepare = None
        if isinstance(source, DirectScrapeSource):
            dcgm = Informer(
                core.list_namespaced_pod,
                name="dcgm",
                args=(opts.dcgm_namespace,),
                label_selector=opts.dcgm_selector,
            )
            informers.append(dcgm)

            def prepare() -> None:
                source.dcgm_urls = dcgm_urls(dcgm.list(), opts.dcgm_port)

        loop = asyncio.get_running_loop()
        tasks += [loop.create_task(i.run(), name=f"informer/{i.name}") for i in informers]
        cache = SnapshotCache()
        app, ctx = await delegated_app(
            api,
            cache,
            serving_cert(opts),
            max_snapshot_age=opts.max_snapshot_age,
            max_sample_age=opts.stale_after,
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, opts.listen, opts.port, ssl_context=ctx).start()
        log.info(
            "external metrics API on https://%s:%d (source %s)", opts.listen, opts.port, opts.source
        )
        for i in informers:
            await i.synced.wait()
        refresher = Refresher(
            source,
            lambda: predictor_pods(pods.list(), opts.namespaces),
            cache,
            interval=opts.refresh,
            prepare=prepare,
        )
        tasks.append(loop.create_task(refresher.run(), name="refresher"))
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if runner is not None:
            await runner.cleanup()
        close = getattr(source, "close", None)
        if close is not None:
            await close()
        await api.close()


def labels_of(isvcs: Iterable[JSON]) -> Mapping[TargetKey, Mapping[str, str]]:
    """InferenceService labels by key (for a :class:`SnapshotCache`). Pure."""
    out: dict[TargetKey, Mapping[str, str]] = {}
    for obj in isvcs:
        md = obj.get("metadata") or {}
        out[TargetKey(md.get("namespace", ""), md.get("name", ""))] = dict(md.get("labels") or {})
    return out
