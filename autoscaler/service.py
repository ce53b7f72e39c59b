"""The service: wiring of the caches, the leader-only workers and the servers.

Both replicas run the informers (InferenceServices, predictor pods, predictor Deployments,
dcgm-exporter pods), the HTTP server (own metrics, probes) and the external metrics API. The
scaling loop reads everything from these caches, the current replicas included (the predictor
Deployments' cache, through :class:`~adapters.kube.CachedScaler`), and talks to the API server
only to write: a scale, an Event, the decision annotation. Only the Lease holder runs the
scaling loop and the InferenceService reconciler; losing the Lease cancels them before another
replica may take over (see :mod:`adapters.lease`). Everything long-running is started through
one :class:`~autoscaler.supervisor.Supervisor` and stopped in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.informer import Informer
from adapters.kube import CachedScaler, EventRecorder, Scaler, slim_deployment
from adapters.lease import LeaderElector
from adapters.prometheus import PrometheusSource
from adapters.scrape import DirectScrapeSource
from adapters.source import MetricsSource
from autoscaler import decisions
from autoscaler.scaling import IsvcAnnotator, ScalingLoop
from autoscaler.settings import Settings
from autoscaler.supervisor import Supervisor
from autoscaler.targets import ISVC_LABEL, dcgm_urls
from autoscaler.telemetry import Telemetry
from policies.signals import TargetKey

log = logging.getLogger(__name__)


async def kube_client(settings: Settings) -> Any:
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    if settings.kubeconfig:
        await config.load_kube_config(
            config_file=str(settings.kubeconfig), client_configuration=cfg
        )
    else:
        config.load_incluster_config(client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


def make_source(settings: Settings) -> MetricsSource:
    if settings.metrics_source == "prometheus":
        assert settings.prometheus_url
        return PrometheusSource(
            settings.prometheus_url,
            prefix=settings.metric_prefix,
            namespaces=settings.namespaces,
            max_age=settings.stale_after_seconds,
            bearer_token_file=settings.prometheus_bearer_token_file,
            ca_file=settings.prometheus_ca_file,
            insecure_skip_verify=settings.prometheus_insecure_skip_verify,
        )
    return DirectScrapeSource(
        prefix=settings.metric_prefix,
        concurrency=settings.scrape_concurrency,
        timeout=settings.scrape_timeout_seconds,
    )


class Service:
    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.sup = Supervisor()
        self.api: Any = None
        self.loop: ScalingLoop | None = None
        self.elector: LeaderElector | None = None
        self.informers: dict[str, Informer] = {}
        self.source: MetricsSource | None = None
        self.runners: list[web.AppRunner] = []
        self.stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._closers: list[MetricsSource] = []

    # ------------------------------------------------------------------ start/stop
    async def start(self) -> None:
        from kubernetes_asyncio import client

        s = self.settings
        self.api = await kube_client(s)
        custom, core = client.CustomObjectsApi(self.api), client.CoreV1Api(self.api)
        apps = client.AppsV1Api(self.api)
        self.informers = {
            "isvcs": Informer(
                custom.list_cluster_custom_object,
                name="inferenceservices",
                args=("serving.kserve.io", "v1beta1", "inferenceservices"),
            ),
            "pods": Informer(
                core.list_pod_for_all_namespaces, name="predictor-pods", label_selector=ISVC_LABEL
            ),
            # The loop's current replicas: KServe and our reconciler label every predictor
            # Deployment with the ISVC label. Only replicas and versions are kept.
            "deployments": Informer(
                apps.list_deployment_for_all_namespaces,
                name="predictor-deployments",
                label_selector=ISVC_LABEL,
                transform=slim_deployment,
            ),
        }
        if s.metrics_source == "direct":
            self.informers["dcgm"] = Informer(
                core.list_namespaced_pod,
                name="dcgm-exporters",
                args=(s.dcgm_namespace,),
                label_selector=s.dcgm_selector,
            )
        for name, inf in self.informers.items():
            self.sup.start(f"informer/{name}", inf.run)
        self.source = make_source(s)
        recorder = EventRecorder(core, host=s.identity)
        deployments = self.informers["deployments"]
        scaler = CachedScaler(
            lambda ns, name: deployments.get(f"{ns}/{name}"),
            Scaler(apps),
            synced=deployments.synced.is_set,
        )
        self.loop = ScalingLoop(
            isvcs=self.informers["isvcs"].list,
            pods=self.informers["pods"].list,
            source=self.source,
            scaler=scaler,
            recorder=recorder,
            annotator=IsvcAnnotator(custom),
            decider=decisions.Decider(),
            telemetry=self.telemetry,
            tick_seconds=s.tick_seconds,
            target_timeout=s.target_timeout_seconds,
            namespaces=s.namespaces,
            prepare=lambda: self._refresh_dcgm(self.source),
        )
        await self._start_http()
        if s.metrics_api_enabled:
            await self._start_metrics_api()
        if s.leader_elect:
            self.elector = LeaderElector(
                client.CoordinationV1Api(self.api),
                namespace=s.lease_namespace,
                name=s.lease_name,
                identity=s.identity,
                lease_duration=s.lease_duration_seconds,
                renew_deadline=s.renew_deadline_seconds,
                retry_period=s.retry_period_seconds,
                on_change=self._leadership,
            )
            self.sup.start("leader-election", self.elector.run)
        else:
            self._leadership(True)

    async def _start_metrics_api(self) -> None:
        """``external.metrics.k8s.io`` on every replica, served from a snapshot cache.

        The cache is refreshed on its own cadence for every predictor pod (any autoscaler
        class: an ``hpa``-class ISVC may scale on our metrics), independently of the leader's
        scaling loop, so a follower answers as well as the leader.
        """
        import tempfile

        from autoscaler.metrics_api.cache import Refresher, SnapshotCache
        from autoscaler.metrics_api.runner import delegated_app, labels_of, predictor_pods
        from autoscaler.metrics_api.tls import ServingCert, self_signed

        s = self.settings
        cache = SnapshotCache()
        if s.tls_cert_file and s.tls_key_file:
            cert = ServingCert(s.tls_cert_file, s.tls_key_file)
        else:
            hosts = ("localhost", "127.0.0.1", s.identity)
            cert = self_signed(hosts, Path(tempfile.mkdtemp(prefix="llm-autoscaler-tls-")))
            log.info("metrics API: self-signed serving certificate for %s", ", ".join(hosts))
        app, ctx = await delegated_app(self.api, cache, cert, max_sample_age=s.stale_after_seconds)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, s.listen_address, s.metrics_api_port, ssl_context=ctx).start()
        self.runners.append(runner)
        source = make_source(s)  # its own client: never waits behind the scaling loop
        pods = self.informers["pods"]
        isvcs = self.informers["isvcs"]
        refresher = Refresher(
            source,
            lambda: predictor_pods(pods.list(), s.namespaces),
            cache,
            interval=s.tick_seconds,
            labels=lambda: labels_of(isvcs.list()),
            prepare=lambda: self._refresh_dcgm(source),
        )
        self._closers.append(source)

        async def refresh() -> None:
            await pods.synced.wait()
            await refresher.run()

        self.sup.start("metrics-api-refresher", refresh)
        log.info("external metrics API on https://%s:%d", s.listen_address, s.metrics_api_port)

    def _refresh_dcgm(self, source: MetricsSource | None = None) -> None:
        """Direct scraping reads every Ready dcgm-exporter pod (one per GPU node)."""
        source = source or self.source
        if isinstance(source, DirectScrapeSource) and "dcgm" in self.informers:
            source.dcgm_urls = dcgm_urls(self.informers["dcgm"].list(), self.settings.dcgm_port)

    def _leadership(self, leader: bool) -> None:
        self.telemetry.leader.set(1 if leader else 0)
        if leader:
            self.sup.start("scaling-loop", self._run_loop)
            self.sup.start("reconciler", self._run_reconciler)
        else:
            # Stop acting at once: both workers are cancelled well within the renew deadline,
            # before the lease can expire and another replica take over.
            loop = asyncio.get_running_loop()
            for name in ("scaling-loop", "reconciler"):
                task = loop.create_task(self.sup.cancel(name))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _run_reconciler(self) -> None:
        """The InferenceService reconciler, when this cluster needs it (``reconcile_isvc``).

        ``auto`` stands down when KServe's own controller is installed: two controllers
        writing the same predictor Deployment would fight.
        """
        from kubernetes_asyncio import client

        from autoscaler.reconciler import Settings as ReconcilerSettings
        from autoscaler.reconciler.controller import Controller, kserve_installed

        s = self.settings
        if s.reconcile_isvc == "off":
            log.info("reconciler off (reconcile_isvc=off)")
            return
        if s.reconcile_isvc == "auto" and await kserve_installed(self.api):
            log.info(
                "reconciler standing down: KServe's controller is installed "
                "(reconcile_isvc=auto); set it to on to override"
            )
            return
        controller = Controller(
            self.api,
            namespaces=s.namespaces,
            recorder=EventRecorder(client.CoreV1Api(self.api), host=s.identity),
            settings=ReconcilerSettings(cluster_domain=s.cluster_domain),
            observe=lambda result: self.telemetry.reconciles.labels(result).inc(),
        )
        log.info("leading: InferenceService reconciler started")
        await controller.run()

    async def _run_loop(self) -> None:
        assert self.loop is not None
        for inf in self.informers.values():
            await inf.synced.wait()
        log.info(
            "leading: scaling loop started (tick %.1fs, source %s)",
            self.settings.tick_seconds,
            self.settings.metrics_source,
        )
        await self.loop.run()

    async def stop(self) -> None:
        if self.elector is not None:
            await self.sup.cancel("leader-election")
            await self.elector.release()
        await self.sup.stop()
        for r in reversed(self.runners):
            await r.cleanup()
        for src in (self.source, *self._closers):
            close = getattr(src, "close", None)
            if close is not None:
                await close()
        if self.api is not None:
            await self.api.close()

    # ------------------------------------------------------------------ HTTP
    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/debug/decisions/{namespace}/{name}", self._decisions)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.listen_address, self.settings.http_port).start()
        self.runners.append(runner)
        log.info(
            "HTTP (own metrics, probes) on %s:%d",
            self.settings.listen_address,
            self.settings.http_port,
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.telemetry.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def _decisions(self, request: web.Request) -> web.Response:
        """The last decisions of one InferenceService, for ``llm-autoscaler explain``.

        Needs a bearer token whose user may ``get`` that InferenceService (TokenReview, then
        SubjectAccessReview), like the metrics API: the decisions show load and model names.
        """
        ns, name = request.match_info["namespace"], request.match_info["name"]
        if self.settings.debug_auth:
            denied = await self._authorize(request, ns, name)
            if denied is not None:
                return denied
        if self.elector is not None and not self.elector.is_leader:
            lease = f"{self.settings.lease_namespace}/{self.settings.lease_name}"
            return web.json_response(
                {
                    "error": f"{self.settings.identity} is not the leader; the Lease {lease} "
                    "names the replica that decides"
                },
                status=409,
            )
        records = self.loop.history(TargetKey(ns, name)) if self.loop else []
        try:
            limit = max(1, int(request.query.get("limit", "20")))
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        return web.json_response(
            {
                "isvc": f"{ns}/{name}",
                "identity": self.settings.identity,
                "decisions": [r.to_json() for r in records[-limit:]],
            }
        )

    async def _authorize(self, request: web.Request, ns: str, name: str) -> web.Response | None:
        from kubernetes_asyncio import client

        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.json_response({"error": "bearer token required"}, status=401)
        review = await client.AuthenticationV1Api(self.api).create_token_review(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": header.removeprefix("Bearer ").strip()},
            }
        )
        status = review.status
        if not status or not status.authenticated:
            return web.json_response({"error": "token not authenticated"}, status=401)
        user = status.user
        sar = await client.AuthorizationV1Api(self.api).create_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.username,
                    "groups": user.groups or [],
                    "uid": user.uid,
                    "resourceAttributes": {
                        "namespace": ns,
                        "verb": "get",
                        "group": "serving.kserve.io",
                        "resource": "inferenceservices",
                        "name": name,
                    },
                },
            }
        )
        if not sar.status or not sar.status.allowed:
            return web.json_response(
                {"error": f"{user.username} may not get inferenceservices {ns}/{name}"}, status=403
            )
        return None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        waiting = [n for n, i in self.informers.items() if not i.synced.is_set()]
        if waiting:
            return web.Response(status=503, text=f"caches not synced: {', '.join(waiting)}")
        return web.Response(text="ok")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; then stop cleanly (release the Lease first)."""
    svc = Service(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, svc.stopping.set)
    await svc.start()
    try:
        await svc.stopping.wait()
    finally:
        log.info("shutting down")
        await svc.stop()
