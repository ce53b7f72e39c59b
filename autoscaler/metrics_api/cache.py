"""The snapshot cache the API reads, and a refresher that fills it from a metrics source.

In the service, the scaling loop publishes the snapshot it just took (one source read per
tick serves both the loop and the API). The standalone runner (:mod:`.runner`) uses
:class:`Refresher` instead, which reads the source on its own timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from adapters.source import MetricsSource, PodTarget
from policies.signals import MetricsSnapshot, TargetKey

__all__ = ["Refresher", "SnapshotCache"]

log = logging.getLogger(__name__)


class SnapshotCache:
    """A :class:`~autoscaler.metrics_api.app.SnapshotView` its producer publishes into."""

    def __init__(self) -> None:
        self._snapshot: MetricsSnapshot | None = None
        self._labels: Mapping[TargetKey, Mapping[str, str]] = {}

    def latest(self) -> MetricsSnapshot | None:
        return self._snapshot

    def labels(self) -> Mapping[TargetKey, Mapping[str, str]]:
        return self._labels

    def publish(
        self,
        snapshot: MetricsSnapshot,
        labels: Mapping[TargetKey, Mapping[str, str]] | None = None,
    ) -> None:
        """Replace the snapshot (and the InferenceServices' labels, when given)."""
        self._snapshot = snapshot
        if labels is not None:
            self._labels = labels


class Refresher:
    """Read ``source`` every ``interval`` seconds for the pods ``pods()`` returns; publish.

    A source that raises or takes longer than ``timeout`` yields an *unavailable* snapshot
    (the API answers 503), never the previous values.
    """

    def __init__(
        self,
        source: MetricsSource,
        pods: Callable[[], Sequence[PodTarget]],
        cache: SnapshotCache,
        *,
        interval: float = 1.0,
        timeout: float = 10.0,
        labels: Callable[[], Mapping[TargetKey, Mapping[str, str]]] | None = None,
        prepare: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.pods = pods
        self.cache = cache
        self.interval = interval
        self.timeout = timeout
        self.labels = labels
        self.prepare = prepare
        self.clock = clock

    async def tick(self) -> MetricsSnapshot:
        """Read the source once and publish the result."""
        if self.prepare is not None:
            self.prepare()
        now = self.clock()
        try:
            snapshot = await asyncio.wait_for(
                self.source.snapshot(self.pods(), now), timeout=self.timeout
            )
        except Exception as e:  # a source bug or a hang must read as "no data", not as values
            log.warning("metrics source failed: %s: %s", type(e).__name__, e)
            snapshot = MetricsSnapshot.unavailable(now, f"{type(e).__name__}: {e}")
        self.cache.publish(snapshot, self.labels() if self.labels else None)
        return snapshot

    async def run(self) -> None:
        """Tick forever (cancel to stop); ticks start ``interval`` seconds apart."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.tick()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
