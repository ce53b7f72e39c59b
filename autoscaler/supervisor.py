"""Named, guarded background tasks, started and stopped from one place.

Every long-running task of the service (informers, the leader elector, the scaling loop, the
reconciler, servers) is started through :class:`Supervisor`. A task that crashes is logged
with its name and restarted after a backoff (a crash is a bug, but one bug must not take the
metrics API down with it); a task that returns is logged. ``stop()`` cancels everything and
waits for it, so tests and shutdown leave no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, *, restart_backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.crashes: dict[str, int] = {}
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff

    def start(
        self, name: str, factory: Callable[[], Awaitable[None]], *, restart: bool = True
    ) -> None:
        """Run ``factory()`` as task ``name``; restart it after crashes when ``restart``."""
        if name in self.tasks and not self.tasks[name].done():
            raise RuntimeError(f"task {name!r} is already running")
        self.tasks[name] = asyncio.get_running_loop().create_task(
            self._guard(name, factory, restart), name=name
        )

    async def _guard(
        self, name: str, factory: Callable[[], Awaitable[None]], restart: bool
    ) -> None:
        delay = self.restart_backoff
        while True:
            try:
                await factory()
                log.info("task %s finished", name)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.crashes[name] = self.crashes.get(name, 0) + 1
                log.exception(
                    "task %s crashed (%d times)%s",
                    name,
                    self.crashes[name],
                    "; restarting" if restart else "",
                )
                if not restart:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def cancel(self, name: str) -> None:
        task = self.tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def running(self, name: str) -> bool:
        t = self.tasks.get(name)
        return t is not None and not t.done()

    async def stop(self) -> None:
        for name in reversed(list(self.tasks)):
            await self.cancel(name)
