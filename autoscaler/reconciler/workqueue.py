"""A per-object work queue with dedup and per-key backoff (client-go's ``workqueue``, in asyncio).

Keys are ``namespace/name`` strings. The rules:

* **dedup**: a key waiting in the queue is queued once, however many events name it;
* **one worker per key**: a key being processed is not handed to a second worker; if it is
  added meanwhile, it is queued again when the first worker calls :meth:`WorkQueue.done`, so
  the change that arrived during processing is never lost;
* **per-key backoff**: :meth:`WorkQueue.retry` re-adds a failed key after
  ``base_delay * 2**(failures-1)`` seconds (capped at ``max_delay``); :meth:`WorkQueue.forget`
  resets the count after a success. A failing key waits in a timer, not in a worker, so one bad
  object never blocks the others.

No Kubernetes here; the event loop's clock is the only clock.
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    """Keys to reconcile; see the module docstring for the rules."""

    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        """Queue ``key`` now (no-op if it is already waiting)."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (an earlier pending timer for it wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: str) -> float:
        """Re-queue a failed ``key`` after its backoff; returns the delay chosen."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self.base_delay * 2.0 ** (failures - 1), self.max_delay)
        self.add_after(key, delay)
        return delay

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """``key`` succeeded: its next failure starts from ``base_delay`` again."""
        self._failures.pop(key, None)

    async def get(self) -> str:
        """The next key to process; the caller must call :meth:`done` with it."""
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        if self._queue:
            self._wakeup.set()
        return key

    def done(self, key: str) -> None:
        """Processing of ``key`` ended; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def close(self) -> None:
        """Cancel pending backoff timers (the queue is not used afterwards)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
