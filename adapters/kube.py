"""Kubernetes writes of the scaling loop, behind small Protocols: the scale subresource, Events
and the decision annotation on the InferenceService.

* :class:`Scaler` reads and sets ``deployments/{name}/scale``. A write carries the
  ``resourceVersion`` it read, so a concurrent change (another scaler, a human with
  ``kubectl scale``) is a conflict we re-read and report, never a silent overwrite; only
  ``spec.replicas`` of the scale subresource is touched, no other field of the Deployment.
* :class:`EventRecorder` records ``core/v1`` Events on an object and, like client-go's
  recorder, folds repeats of the same (object, reason, message) into one Event with a count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
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
