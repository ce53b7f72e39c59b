"""Watch-backed caches of Kubernetes objects (an informer, in client-go's words).

An :class:`Informer` lists a resource, keeps every object as raw JSON (``dict``) keyed by
``namespace/name``, then watches from the list's ``resourceVersion``:

* ``410 Gone`` (the version is too old) → relist, and report the differences as events, so a
  consumer never misses a deletion that happened while the watch was down;
* a dropped connection or an apiserver restart → back off, then resume the watch from the last
  seen ``resourceVersion`` (or relist when that is gone);
* bookmarks advance the version without touching the store.

Raw JSON rather than generated models: no per-object deserialisation cost, and every field the
apiserver sends (including those newer than the client) is kept, unless a ``transform`` keeps
less (client-go's ``SetTransform``: a cache of thousands of Deployments that only needs their
replicas should not hold their pod templates). Consumers get a callback per change and read the
store; the store is only written by the informer's own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Handler = Callable[[str, JSON], None]
"""Called with the event type (ADDED, MODIFIED, DELETED) and the object."""


class ListFunction(Protocol):
    """A kubernetes-asyncio list call (e.g. ``CoreV1Api.list_pod_for_all_namespaces``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


class WatchExpiredError(Exception):
    """The watch's resourceVersion is gone (HTTP 410): relist."""


def key_of(obj: JSON) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    events: int = 0
    errors: int = 0


class Informer:
    """List + watch one resource; see the module docstring for the recovery rules."""

    def __init__(
        self,
        list_fn: ListFunction,
        *,
        name: str,
        args: tuple[Any, ...] = (),
        label_selector: str | None = None,
        on_event: Handler | None = None,
        transform: Callable[[JSON], JSON] | None = None,
        watch_timeout: int = 300,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.list_fn = list_fn
        self.name = name
        self.args = args
        self.label_selector = label_selector
        self.handlers: list[Handler] = [on_event] if on_event else []
        self.transform = transform
        """Applied to every object before it is stored (and handed to the handlers); it must
        keep ``metadata.name``, ``namespace`` and ``resourceVersion``."""
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.store: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self.resource_version: str | None = None
        self.stats = InformerStats()

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def get(self, key: str) -> JSON | None:
        return self.store.get(key)

    def list(self) -> list[JSON]:
        return list(self.store.values())

    def _emit(self, kind: str, obj: JSON) -> None:
        self.stats.events += 1
        for h in self.handlers:
            try:
                h(kind, obj)
            except Exception:  # a consumer's bug must not kill the cache
                log.exception("%s: event handler failed", self.name)

    def _kwargs(self, **extra: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {"_preload_content": False, **extra}
        if self.label_selector:
            kw["label_selector"] = self.label_selector
        return kw

    async def relist(self) -> None:
        """Replace the store with a fresh list and emit the differences."""
        resp = await self.list_fn(*self.args, **self._kwargs())
        body = json.loads(await resp.read())
        self.stats.lists += 1
        items = body.get("items") or []
        if self.transform is not None:
            items = [self.transform(o) for o in items]
        fresh = {key_of(o): o for o in items}
        old = self.store
        self.store = fresh
        self.resource_version = (body.get("metadata") or {}).get("resourceVersion")
        for k, o in old.items():
            if k not in fresh:
                self._emit("DELETED", o)
        for k, o in fresh.items():
            prev = old.get(k)
            if prev is None:
                self._emit("ADDED", o)
            elif _rv(prev) != _rv(o):
                self._emit("MODIFIED", o)
        self.synced.set()

    async def watch_once(self) -> None:
        """Stream one watch from ``resource_version`` until the server closes it."""
        resp = await self.list_fn(
            *self.args,
            **self._kwargs(
                watch=True,
                resource_version=self.resource_version,
                timeout_seconds=self.watch_timeout,
                allow_watch_bookmarks=True,
            ),
        )
        self.stats.watches += 1
        try:
            async for line in resp.content:
                if line.strip():
                    self._apply(json.loads(line))
        finally:
            resp.release()

    def _apply(self, ev: JSON) -> None:
        kind, obj = ev.get("type"), ev.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpiredError(obj.get("message", "resourceVersion too old"))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        rv = _rv(obj)
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        if self.transform is not None:
            obj = self.transform(obj)
        k = key_of(obj)
        if kind == "DELETED":
            self.store.pop(k, None)
        elif kind in ("ADDED", "MODIFIED"):
            self.store[k] = obj
        else:
            return
        self._emit(str(kind), obj)

    async def run(self) -> None:
        """Keep the cache in sync forever (cancel to stop)."""
        delay = self.backoff
        need_list = True
        while True:
            try:
                if need_list:
                    await self.relist()
                    need_list = False
                await self.watch_once()
                delay = self.backoff
            except asyncio.CancelledError:
                raise
            except WatchExpiredError:
                log.info("%s: watch expired, relisting", self.name)
                need_list = True
            except Exception as e:
                self.stats.errors += 1
                status = getattr(e, "status", None)
                if status == 410:
                    need_list = True
                    continue
                log.warning(
                    "%s: list/watch failed (%s); retrying in %.1fs", self.name, _describe(e), delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)


def _rv(obj: JSON) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv is not None else None


def _describe(e: BaseException) -> str:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(e).__name__}: {e}"


async def run_all(informers: list[Informer]) -> None:
    """Run several informers until cancelled (one's failure never stops the others)."""
    tasks = [
        asyncio.get_running_loop().create_task(i.run(), name=f"informer {i.name}")
        for i in informers
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
