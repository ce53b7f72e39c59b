"""The InferenceService controller: watches, a work queue, and the apply half of the reconciler.

This is the I/O layer around the pure :func:`~autoscaler.reconciler.plan.plan` and
:func:`~autoscaler.reconciler.status.compute_status`. :class:`Controller` reads informer
caches (:mod:`.caches`), queues ``namespace/name`` keys (:mod:`.workqueue`) and writes through
an :class:`adapters.objects.ObjectWriter`. One reconcile of an InferenceService is a fixed list
of steps:

1. **plan** from the cached ISVC and runtimes. A failure (bad spec, unknown runtime, a mode we
   leave alone) touches nothing but the status: ``Ready=False`` with the failure's reason, and
   a Warning Event with the same reason when the condition changes.
2. **ensure** each planned object (Deployment, Service, HPA): refuse one controlled by someone
   else; skip it when the cached live copy already matches (:mod:`.drift`: hash annotation and
   containment), else server-side apply it with field manager ``llm-autoscaler`` and
   ``force`` (we are its controller, as KServe is). When the autoscaler class gives
   ``replicas`` to a scaler (``hpa``, ``external``), ``spec.replicas`` is only in the creating
   apply; a second manager then co-owns it so later applies, which leave it out, never reset it.
3. **delete** each planned deletion (our HPA when the class is not ``hpa``; everything on stop)
   if it exists *and* its controller reference is this InferenceService.
4. **status**: compute it from the Deployment as applied or cached, and merge-patch the status
   subresource only when it differs; Events on Ready transitions.

Conflicts, throttling, 5xx and lost connections raise out of :meth:`Controller.reconcile` and
the key is retried with per-key exponential backoff; other API errors (a 422, a foreign
object in the way) become ``ReconcileFailed`` in the status plus a Warning Event, and are
retried with backoff as well. A change to a ServingRuntime or ClusterServingRuntime re-queues
every InferenceService that may use it; a change to an owned child re-queues its owner.

:func:`kserve_installed` tells whether KServe's own controller runs in the cluster, for the
service's ``reconcile_isvc: auto`` setting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.informer import key_of
from adapters.kube import EventSink
from adapters.objects import ApiObjectWriter, ObjectWriter, describe, is_transient, status_of
from autoscaler.reconciler import names
from autoscaler.reconciler.caches import Caches
from autoscaler.reconciler.drift import (
    HANDOFF_MANAGER,
    MANAGER,
    REPLICAS,
    merge_patch,
    owns_field,
    replicas_handoff,
    stamp,
    up_to_date,
    without_replicas,
)
from autoscaler.reconciler.failures import Failure, Reason
from autoscaler.reconciler.plan import Deletion, Plan, plan
from autoscaler.reconciler.settings import Settings
from autoscaler.reconciler.status import PREDICTOR_READY, READY, compute_status
from autoscaler.reconciler.workqueue import WorkQueue

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Event reasons (Normal unless noted); plan failures use the failure's own Reason (Warning).
CREATED, UPDATED, DELETED = "Created", "Updated", "Deleted"
RECONCILE_FAILED = Reason.RECONCILE_FAILED.value  # Warning
ISVC_READY, ISVC_NOT_READY = "InferenceServiceReady", "InferenceServiceNotReady"


@dataclass(frozen=True)
class Outcome:
    """What one :meth:`Controller.reconcile` did."""

    key: str
    writes: int = 0
    """API writes: applies (including the replicas hand-off), deletes and the status patch."""
    events: int = 0
    failure: Failure | None = None
    gone: bool = False
    """The InferenceService is not in the cache (deleted) or is being deleted."""
    retry: bool = False
    """Retry with backoff even though nothing raised (a non-transient apply error)."""


class NotOwnedError(Exception):
    """A child object with our name exists but another controller (or nobody) owns it."""


@dataclass
class _Run:
    """The bookkeeping of one reconcile."""

    isvc: JSON
    writes: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)


class _NoEvents:
    async def record(self, obj: JSON, *, type_: str, reason: str, message: str) -> None:
        log.info("event %s %s on %s: %s", type_, reason, key_of(obj), message)


class Controller:
    """Reconcile InferenceServices into KServe RawDeployment objects until cancelled."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespaces: Sequence[str] = (),
        recorder: EventSink | None = None,
        settings: Settings | None = None,
        writer: ObjectWriter | None = None,
        caches: Caches | None = None,
        workers: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        reconcile_timeout: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.observe = observe or (lambda _result: None)
        """Called once per reconcile with its result: ``ok``, ``failed`` or ``error``."""
        self.namespaces = tuple(namespaces)
        self.caches = caches if caches is not None else Caches.from_api(api_client, namespaces)
        self.writer: ObjectWriter = writer if writer is not None else ApiObjectWriter(api_client)
        if recorder is None and api_client is not None:
            from kubernetes_asyncio import client

            from adapters.kube import EventRecorder

            recorder = EventRecorder(client.CoreV1Api(api_client))
        self.recorder: EventSink = recorder if recorder is not None else _NoEvents()
        self.workers = workers
        self.reconcile_timeout = reconcile_timeout
        self.clock = clock
        self.queue = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        self._written: dict[tuple[str, str], JSON] = {}
        self.caches.isvcs.add_handler(self._on_isvc)
        self.caches.runtimes.add_handler(self._on_runtime)
        self.caches.cluster_runtimes.add_handler(self._on_runtime)
        for cache in (self.caches.deployments, self.caches.services, self.caches.hpas):
            cache.add_handler(self._on_child)

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Start the informers, wait for their first lists, then reconcile until cancelled."""
        try:
            async with asyncio.TaskGroup() as tasks:
                for informer in self.caches:
                    tasks.create_task(informer.run(), name=f"informer {informer.name}")
                await self.wait_synced()
                log.info("reconciler: caches synced; %d workers", self.workers)
                for i in range(self.workers):
                    tasks.create_task(self._worker(), name=f"reconcile worker {i}")
        finally:
            self.queue.close()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in self.caches))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                async with asyncio.timeout(self.reconcile_timeout):
                    outcome = await self.reconcile(key)
            except Exception as exc:
                self.observe("error")
                delay = self.queue.retry(key)
                level = logging.INFO if is_transient(exc) else logging.WARNING
                log.log(level, "reconcile %s: %s; retry in %.1fs", key, describe(exc), delay)
            else:
                self.observe("failed" if outcome.failure is not None else "ok")
                if outcome.retry:
                    self.queue.retry(key)
                else:
                    self.queue.forget(key)
            finally:
                self.queue.done(key)

    # ------------------------------------------------------------------ event handlers
    def _on_isvc(self, kind: str, obj: JSON) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            self._forget_written(obj)
        self.queue.add(key)

    def _on_child(self, kind: str, obj: JSON) -> None:
        md = obj.get("metadata") or {}
        if kind == "DELETED":
            self._forget_written(obj)
        for ref in md.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == names.ISVC_KIND:
                self.queue.add(f"{md.get('namespace')}/{ref.get('name')}")

    def _on_runtime(self, _: str, obj: JSON) -> None:
        md = obj.get("metadata") or {}
        namespace = md.get("namespace")  # None for a ClusterServingRuntime
        for isvc in self.caches.isvcs.list(namespace):
            if may_use_runtime(isvc, str(md.get("name"))):
                self.queue.add(key_of(isvc))

    # ------------------------------------------------------------------ one reconcile
    async def reconcile(self, key: str) -> Outcome:
        """Make the cluster match the InferenceService ``key`` (``namespace/name``) once.

        Raises on transient API errors (the caller retries with backoff).
        """
        isvc = self._newest(("InferenceService", key), self.caches.isvcs.get(key))
        if isvc is None or (isvc.get("metadata") or {}).get("deletionTimestamp"):
            return Outcome(key, gone=True)
        namespace = str(isvc["metadata"].get("namespace"))
        p = plan(
            isvc,
            self.caches.runtimes.list(namespace),
            self.caches.cluster_runtimes.list(),
            self.settings,
        )
        run = _Run(isvc)
        component = _component_key(isvc, p)
        deployment = self._live("Deployment", component) if component else None
        failure = p.failure
        if failure is None:
            try:
                for desired in p.objects:
                    stored = await self._ensure(run, p, desired)
                    if desired["kind"] == "Deployment":
                        deployment = stored
                for deletion in p.deletes:
                    await self._delete_owned(run, deletion)
            except Exception as exc:
                if not _user_visible(exc):
                    raise
                failure = Failure(Reason.RECONCILE_FAILED, _message(exc))
        gone = not await self._write_status(run, p, deployment, failure)
        for type_, reason, message in run.events:
            await self.recorder.record(isvc, type_=type_, reason=reason, message=message)
        return Outcome(
            key,
            writes=run.writes,
            events=len(run.events),
            failure=failure,
            gone=gone,
            retry=failure is not None and failure.reason == Reason.RECONCILE_FAILED and not gone,
        )

    async def _ensure(self, run: _Run, p: Plan, desired: JSON) -> JSON:
        kind, md = desired["kind"], desired["metadata"]
        key = f"{md['namespace']}/{md['name']}"
        live = self._live(kind, key)
        if live is not None:
            _check_controller(run.isvc, live)
        scaler_owns = kind == "Deployment" and p.replicas_owned_by_scaler
        stamped = stamp(without_replicas(desired) if scaler_owns else desired)
        if live is not None and scaler_owns and _needs_handoff(live):
            await self._apply(run, replicas_handoff(live), HANDOFF_MANAGER, force=False)
        if live is not None and up_to_date(stamped, live):
            return live
        body = stamped
        if live is None and scaler_owns:  # the creating apply sets the initial replicas
            body = {**stamped, "spec": {**stamped["spec"], "replicas": desired["spec"]["replicas"]}}
        stored = await self._apply(run, body, MANAGER, force=True)
        verb = CREATED if live is None else UPDATED
        run.events.append(("Normal", verb, f"{verb} {kind} {md['name']}"))
        if live is None and scaler_owns:
            await self._apply(run, replicas_handoff(stored), HANDOFF_MANAGER, force=False)
        return stored

    async def _apply(self, run: _Run, body: JSON, manager: str, *, force: bool) -> JSON:
        stored = await self.writer.apply(body, field_manager=manager, force=force)
        run.writes += 1
        if stored:
            self._written[(body["kind"], key_of(stored))] = stored
        return stored

    async def _delete_owned(self, run: _Run, deletion: Deletion) -> None:
        key = f"{deletion.namespace}/{deletion.name}"
        live = self._live(deletion.kind, key)
        if live is None or not _controlled_by(live, run.isvc):
            return
        uid = (live.get("metadata") or {}).get("uid")
        await self.writer.delete(
            deletion.api_version, deletion.kind, deletion.namespace, deletion.name, uid=uid
        )
        run.writes += 1
        self._written.pop((deletion.kind, key), None)
        run.events.append(("Normal", DELETED, f"Deleted {deletion.kind} {deletion.name}"))

    async def _write_status(
        self, run: _Run, p: Plan, deployment: JSON | None, failure: Failure | None
    ) -> bool:
        """Patch the status if it changed and queue the transition Events; False if gone."""
        isvc = run.isvc
        before: JSON = isvc.get("status") or {}
        after = compute_status(
            isvc, deployment, failure, self.settings, now=self.clock(), runtime=p.runtime
        )
        if after == before:
            return True
        try:
            stored = await self.writer.patch_status(
                isvc, merge_patch(before, after), field_manager=MANAGER
            )
        except Exception as exc:
            if status_of(exc) == 404:
                return False
            raise
        run.writes += 1
        if stored:
            self._written[("InferenceService", key_of(stored))] = stored
        run.events[:0] = _transition_events(before, after, failure)
        return True

    # ------------------------------------------------------------------ cache reads
    def _live(self, kind: str, key: str) -> JSON | None:
        return self._newest((kind, key), self.caches.for_kind(kind).get(key))

    def _newest(self, ref: tuple[str, str], cached: JSON | None) -> JSON | None:
        """The cached object, or our own last write of it when the cache has not caught up."""
        written = self._written.get(ref)
        if written is None:
            return cached
        if cached is not None and _version(cached) >= _version(written):
            del self._written[ref]
            return cached
        if cached is None and ref[0] == "InferenceService":
            return None  # deleted since we wrote its status
        return written

    def _forget_written(self, obj: JSON) -> None:
        key = key_of(obj)
        for ref in [r for r in self._written if r[1] == key]:
            del self._written[ref]


def may_use_runtime(isvc: JSON, runtime: str) -> bool:
    """Whether ``isvc`` may be served by the runtime named ``runtime``: it names it, or it
    names none (auto-selection may pick it, or stop picking it)."""
    predictor = ((isvc.get("spec") or {}).get("predictor")) or {}
    model = predictor.get("model") if isinstance(predictor, dict) else None
    explicit = model.get("runtime") if isinstance(model, dict) else None
    if isinstance(explicit, str) and explicit:
        return explicit == runtime
    return True


def _component_key(isvc: JSON, p: Plan) -> str | None:
    deployment = p.get("Deployment")
    md = isvc.get("metadata") or {}
    if deployment is not None:
        dmd = deployment["metadata"]
        return f"{dmd['namespace']}/{dmd['name']}"
    if not md.get("name"):
        return None
    return f"{md.get('namespace')}/{names.predictor_name(str(md['name']))}"


def _controlled_by(obj: JSON, isvc: JSON) -> bool:
    uid = (isvc.get("metadata") or {}).get("uid")
    return any(
        ref.get("controller") and ref.get("kind") == names.ISVC_KIND and ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _check_controller(isvc: JSON, live: JSON) -> None:
    if not _controlled_by(live, isvc):
        md = live.get("metadata") or {}
        raise NotOwnedError(
            f"{live.get('kind') or 'object'} {md.get('name')} exists and is not controlled by "
            f"this InferenceService; delete it or rename the InferenceService"
        )


def _needs_handoff(live: JSON) -> bool:
    """Our applies own ``spec.replicas`` alone: leaving it out would reset it to 1."""
    return owns_field(live, MANAGER, REPLICAS) and not owns_field(live, HANDOFF_MANAGER, REPLICAS)


def _user_visible(exc: Exception) -> bool:
    """A failure for the status and an Event (a 422, a foreign object), not a silent retry."""
    if isinstance(exc, NotOwnedError):
        return True
    return status_of(exc) is not None and not is_transient(exc)


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, NotOwnedError) else describe(exc)


def _version(obj: JSON) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _condition(status: JSON, kind: str) -> JSON:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _transition_events(
    before: JSON, after: JSON, failure: Failure | None
) -> list[tuple[str, str, str]]:
    """Warning for a new failure; ``InferenceServiceReady``/``NotReady`` when Ready flips."""
    events: list[tuple[str, str, str]] = []
    old_pred, new_pred = _condition(before, PREDICTOR_READY), _condition(after, PREDICTOR_READY)
    if failure is not None and (
        old_pred.get("reason"),
        old_pred.get("message"),
    ) != (new_pred.get("reason"), new_pred.get("message")):
        events.append(("Warning", failure.reason.value, failure.message))
    old_ready = _condition(before, READY).get("status")
    new_ready = _condition(after, READY).get("status")
    if new_ready == "True" and old_ready != "True":
        events.append(("Normal", ISVC_READY, "InferenceService is ready"))
    elif old_ready == "True" and new_ready != "True":
        message = _condition(after, READY).get("message") or "InferenceService is not ready"
        events.append(("Warning", ISVC_NOT_READY, str(message)))
    return events


async def kserve_installed(api_client: Any) -> bool:
    """Whether KServe's own controller is installed: its ISVC mutating webhook configuration
    (``inferenceservice.serving.kserve.io``) or its ``kserve-controller-manager`` Deployment in
    the ``kserve`` namespace exists. The ``inferenceservice-config`` ConfigMap alone does not
    count: it can outlive an uninstalled KServe. A probe we may not read (403) counts as absent.
    """
    from kubernetes_asyncio import client

    webhooks = client.AdmissionregistrationV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    return await _exists(
        webhooks.read_mutating_webhook_configuration("inferenceservice.serving.kserve.io")
    ) or await _exists(apps.read_namespaced_deployment("kserve-controller-manager", "kserve"))


async def _exists(read: Awaitable[Any]) -> bool:
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        await read
    except ApiException as e:
        if e.status in (403, 404):
            return False
        raise
    return True
