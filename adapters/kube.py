"""Kubernetes reads and writes of the scaling loop, behind small Protocols: the scale
subresource, Events and the decision annotation on the InferenceService.

* :class:`Scaler` reads and sets ``deployments/{name}/scale``. A write carries the
  ``resourceVersion`` it read, so a concurrent change (another scaler, a human with
  ``kubectl scale``) is a conflict we re-read and report, never a silent overwrite; only
  ``spec.replicas`` of the scale subresource is touched, no other field of the Deployment.
* :class:`CachedScaler` is what the service's loop uses: it reads the scale from a Deployment
  informer cache (no API request per target per tick: 10k InferenceServices would be 10k GETs a
  second) and writes through a :class:`Scaler`. The scale subresource shares the Deployment's
  ``resourceVersion``, so a write against a cached version that is already stale is the same
  409 conflict as above. Right after our own write the cache may still show the Deployment as
  it was; until the cache moves past that version it answers with the Scale the write
  returned, so the loop never takes its own write for someone else's.
* :class:`EventRecorder` records ``core/v1`` Events on an object and, like client-go's
  recorder, folds repeats of the same (object, reason, message) into one Event with a count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

COMPONENT = "llm-autoscaler"


@dataclass(frozen=True, slots=True)
class Scale:
    """The scale subresource: desired replicas, the replicas the controller sees, and the
    version to write against."""

    replicas: int
    status_replicas: int
    resource_version: str


class ScaleConflictError(Exception):
    """The scale changed between our read and our write."""


class ScaleClient(Protocol):
    async def get_scale(self, namespace: str, name: str) -> Scale | None: ...

    async def set_replicas(
        self, namespace: str, name: str, replicas: int, expect: Scale
    ) -> Scale: ...


class EventSink(Protocol):
    async def record(
        self, obj: dict[str, Any], *, type_: str, reason: str, message: str
    ) -> None: ...


class Scaler:
    """``deployments/scale`` through kubernetes-asyncio's ``AppsV1Api``."""

    def __init__(self, apps_api: Any) -> None:
        self.apps = apps_api

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            resp = await self.apps.read_namespaced_deployment_scale(
                name, namespace, _preload_content=False
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        body = json.loads(await resp.read())
        # Without preloading, some client versions hand back an error Status instead of
        # raising: read it as what it is.
        if resp.status == 404 or body.get("kind") == "Status":
            if resp.status == 404 or body.get("code") == 404:
                return None
            raise RuntimeError(f"reading {namespace}/{name}/scale: {body.get('message', body)}")
        return _scale(body)

    async def set_replicas(self, namespace: str, name: str, replicas: int, expect: Scale) -> Scale:
        """Set ``spec.replicas`` if the scale is still at ``expect.resource_version``."""
        from kubernetes_asyncio.client.exceptions import ApiException

        body = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": expect.resource_version,
            },
            "spec": {"replicas": replicas},
        }
        try:
            resp = await self.apps.replace_namespaced_deployment_scale(
                name, namespace, body, _preload_content=False
            )
        except ApiException as e:
            if e.status == 409:
                raise ScaleConflictError(
                    f"{namespace}/{name}: scale changed since it was read"
                ) from e
            raise
        body = json.loads(await resp.read())
        if body.get("kind") == "Status":
            if body.get("code") == 409:
                raise ScaleConflictError(f"{namespace}/{name}: scale changed since it was read")
            raise RuntimeError(f"writing {namespace}/{name}/scale: {body.get('message', body)}")
        return _scale(body)


def deployment_scale(deployment: dict[str, Any]) -> Scale:
    """The scale subresource of a Deployment, read from the Deployment itself.

    ``spec.replicas`` defaults to 1 (as the API server defaults it), ``status.replicas`` to 0;
    the scale shares the Deployment's ``resourceVersion``.
    """
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    replicas = spec.get("replicas")
    return Scale(
        replicas=1 if replicas is None else int(replicas),
        status_replicas=int(status.get("replicas") or 0),
        resource_version=str((deployment.get("metadata") or {}).get("resourceVersion", "")),
    )


def slim_deployment(deployment: dict[str, Any]) -> dict[str, Any]:
    """What :func:`deployment_scale` reads, and the keys of the object: an informer
    ``transform``, so a cache of thousands of Deployments does not hold their pod templates."""
    md = deployment.get("metadata") or {}
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    slim: dict[str, Any] = {
        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in md},
        "spec": {"replicas": spec["replicas"]} if "replicas" in spec else {},
        "status": {"replicas": status["replicas"]} if "replicas" in status else {},
    }
    return slim


DeploymentLookup = Callable[[str, str], dict[str, Any] | None]
"""(namespace, name) → the cached Deployment, or ``None`` when the cache has none."""


@dataclass(frozen=True, slots=True)
class _OwnWrite:
    """Our last write to one scale, while the cache may not have seen it yet."""

    before: frozenset[str]
    """The versions our writes replaced (one, or several when we wrote again on top of a
    write the cache had not shown yet)."""
    scale: Scale
    """What the last write returned."""


class CachedScaler:
    """:class:`ScaleClient` reading from a Deployment cache and writing through ``writer``.

    ``get_scale`` is a dictionary lookup: ``deployment(namespace, name)`` (``None`` → the
    Deployment does not exist, as a 404 would say). While ``synced()`` is false the cache may
    be incomplete, so reads go to ``writer.get_scale`` instead (the service waits for the sync
    anyway before it starts the loop).

    Informer lag after our own write is handled exactly: ``set_replicas`` remembers the
    ``resourceVersion`` it wrote against and the Scale the API returned. While the cache still
    shows a version our write replaced, ``get_scale`` answers with that returned Scale (and so
    a further write goes against the current version, not a stale one). Once the cache shows
    any other version, ours or a later one by anybody, the cache is the answer again.
    """

    def __init__(
        self,
        deployment: DeploymentLookup,
        writer: ScaleClient,
        *,
        synced: Callable[[], bool] = lambda: True,
    ) -> None:
        self.deployment = deployment
        self.writer = writer
        self.synced = synced
        self._own: dict[tuple[str, str], _OwnWrite] = {}

    async def get_scale(self, namespace: str, name: str) -> Scale | None:
        if not self.synced():
            return await self.writer.get_scale(namespace, name)
        return self.peek(namespace, name)

    def peek(self, namespace: str, name: str) -> Scale | None:
        """:meth:`get_scale` without awaiting: the cached answer. Only valid once ``synced()``
        (the scaling loop decides a target inline, without a task of its own, when it can
        read its scale this way)."""
        key = (namespace, name)
        obj = self.deployment(namespace, name)
        if obj is None:
            self._own.pop(key, None)
            return None
        cached = deployment_scale(obj)
        own = self._own.get(key)
        if own is not None:
            if cached.resource_version in own.before:
                return own.scale  # the cache has not caught up with our write yet
            del self._own[key]
        return cached

    async def set_replicas(self, namespace: str, name: str, replicas: int, expect: Scale) -> Scale:
        key = (namespace, name)
        written = await self.writer.set_replicas(namespace, name, replicas, expect)
        own = self._own.get(key)
        before = frozenset({expect.resource_version})
        if own is not None and own.scale.resource_version == expect.resource_version:
            before |= own.before  # written on top of a write the cache has not shown yet
        self._own[key] = _OwnWrite(before, written)
        return written


def _api_message(e: Any) -> str:
    """The ``message`` of the Status body of an ApiException (or its reason)."""
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(e, "reason", "") or e)


def _scale(body: dict[str, Any]) -> Scale:
    return Scale(
        replicas=int((body.get("spec") or {}).get("replicas") or 0),
        status_replicas=int((body.get("status") or {}).get("replicas") or 0),
        resource_version=str((body.get("metadata") or {}).get("resourceVersion", "")),
    )


class EventRecorder:
    """Record Events on objects; repeats within the API's TTL increase ``count``."""

    def __init__(self, core_api: Any, *, host: str = "") -> None:
        self.core = core_api
        self.host = host
        self._seen: dict[str, int] = {}

    async def record(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        md = obj.get("metadata") or {}
        ns = md.get("namespace") or "default"
        digest = hashlib.sha256(f"{md.get('uid')}/{reason}/{message}".encode()).hexdigest()[:16]
        name = f"{md.get('name')}.{digest}"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            if name in self._seen:
                try:
                    await self._bump(name, ns, self._seen[name] + 1, now)
                    return
                except ApiException as e:
                    if e.status != 404:  # 404: the Event expired; create it anew
                        raise
            try:
                await self.core.create_namespaced_event(
                    ns, _event(obj, name, ns, type_, reason, message, now, self.host)
                )
                self._seen[name] = 1
            except ApiException as e:
                if e.status != 409:
                    raise
                # Recorded by an earlier process (or the other replica): continue its count.
                existing = await self.core.read_namespaced_event(name, ns)
                await self._bump(name, ns, int(existing.count or 1) + 1, now)
        except ApiException as e:
            log.warning(
                "cannot record event %s on %s/%s: HTTP %s: %s",
                reason,
                ns,
                md.get("name"),
                e.status,
                _api_message(e),
            )

    async def _bump(self, name: str, ns: str, count: int, now: str) -> None:
        await self.core.patch_namespaced_event(name, ns, {"count": count, "lastTimestamp": now})
        self._seen[name] = count


def _event(
    obj: dict[str, Any],
    name: str,
    ns: str,
    type_: str,
    reason: str,
    message: str,
    now: str,
    host: str,
) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT, "host": host},
        "reportingComponent": COMPONENT,
        "reportingInstance": host or COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
