"""The scaling loop: every tick, snapshot → decide per InferenceService → act on change.

One tick: read the targets and their pods from the caches; take ONE metrics snapshot for all
of them (one PromQL query per signal, or one concurrent round of scrapes); then, for every
target: resolve its spec, read its current scale, ask the policy, and when the decision
differs from the scale, write it (optimistic concurrency), record an Event (``ScaledUp`` /
``ScaledDown`` with the rule and reason) and the decision annotation.

Deciding is CPU only: in the service the scale is a cache lookup
(:class:`~adapters.kube.CachedScaler`, no API request), so every target is decided inline, one
after the other, and only the API calls the decisions lead to run concurrently, each target's
in order and within its own time budget (one slow InferenceService never delays the others).
Where the scale must be read through the API (a scaler without a synced cache), each target's
read and decision get their own task and budget instead.

Rules that keep the loop from doing harm:

* an invalid spec (bad annotation, min > max, unknown policy) → an Event and a status
  annotation, replicas left as they are;
* an unavailable snapshot is passed to the policy, which freezes (never scales down on it);
* a scale changed by someone else (a human, another HPA) is detected, reported once, and
  adopted as the new baseline; if it keeps happening the loop stops writing to that target
  (``ScalerConflict``) instead of fighting in a loop.

A tick over thousands of InferenceServices re-reads only what changed: targets and pods of
objects the caches did not replace are kept (:class:`~autoscaler.targets.TargetIndex`,
:class:`~autoscaler.targets.PodIndex`), each target's metric series stay bound
(:class:`~autoscaler.decisions.TargetMetrics`), decision records are rendered as JSON only
when read, and the previous snapshot is let go before the next one is taken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from adapters.kube import EventSink, ScaleClient, ScaleConflictError
from adapters.source import MetricsSource, PodTarget
from autoscaler import decisions
from autoscaler.targets import PodIndex, Target, TargetIndex
from autoscaler.telemetry import Telemetry
from policies.signals import MetricsSnapshot, TargetKey, TargetSignals

log = logging.getLogger(__name__)

FOREIGN_WINDOW_S = 300.0
FOREIGN_LIMIT = 3
FOREIGN_KEPT = 10
HISTORY = 100
DECISION_ANNOTATION = "status.llm-autoscaler.io/decision"
"""Where the current decision (or the spec error) shows on the InferenceService."""


@dataclass(slots=True)
class TargetState:
    """What the loop remembers about one InferenceService between ticks (thousands of them:
    small containers, nothing allocated before it is needed)."""

    policy_state: Any = None
    last_written: int | None = None
    history: list[decisions.Record] = field(default_factory=list)
    """The last :data:`HISTORY` different decisions, oldest first."""
    spec_errors: tuple[str, ...] = ()
    foreign_changes: tuple[float, ...] = ()
    """When the last :data:`FOREIGN_KEPT` foreign scale changes were seen."""
    holding_for_conflict: bool = False
    annotation: str = ""
    metrics: decisions.TargetMetrics | None = None
    """Its own series' label children, bound on first use."""


class IsvcAnnotator:
    """Writes the decision annotation on an InferenceService (merge patch)."""

    def __init__(self, custom_api: Any) -> None:
        self.api = custom_api

    async def annotate(self, namespace: str, name: str, value: str) -> None:
        await self.api.patch_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            namespace,
            "inferenceservices",
            name,
            {"metadata": {"annotations": {DECISION_ANNOTATION: value}}},
            _content_type="application/merge-patch+json",
        )


class ScalingLoop:
    """Ticks over every ``external`` InferenceService; see the module docstring."""

    def __init__(
        self,
        *,
        isvcs: Callable[[], list[dict[str, Any]]],
        pods: Callable[[], list[dict[str, Any]]],
        source: MetricsSource,
        scaler: ScaleClient,
        recorder: EventSink,
        annotator: IsvcAnnotator | None,
        decider: decisions.Decider,
        telemetry: Telemetry,
        tick_seconds: float = 1.0,
        target_timeout: float = 5.0,
        namespaces: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        source_name: str = "",
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.isvcs, self.pods = isvcs, pods
        self.source, self.scaler, self.recorder, self.annotator = (
            source,
            scaler,
            recorder,
            annotator,
        )
        self.decider = decider
        self.telemetry = telemetry
        self.tick_seconds, self.target_timeout = tick_seconds, target_timeout
        self.namespaces = namespaces
        self.clock = clock
        self.source_name = source_name or getattr(source, "name", "source")
        self.prepare = prepare
        """Called at the start of every tick (e.g. to refresh the dcgm-exporter list)."""
        self.state: dict[TargetKey, TargetState] = {}
        self.snapshot: MetricsSnapshot | None = None
        self.pod_index: list[PodTarget] = []
        self._targets = TargetIndex(namespaces)
        self._pods = PodIndex()
        self._pods_by_target: dict[TargetKey, list[PodTarget]] | None = None
        self._actions: dict[TargetKey, list[Coroutine[Any, Any, None]]] = {}
        """API calls the decisions of this tick lead to, per target, run in order."""

    async def run(self) -> None:
        """Tick forever at ``tick_seconds`` (measured from tick start); cancel to stop."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.tick()
            except Exception:
                self.telemetry.errors.labels("tick").inc()
                log.exception("scaling tick failed")
            await asyncio.sleep(max(0.0, self.tick_seconds - (loop.time() - started)))

    async def tick(self) -> MetricsSnapshot:
        t0 = time.perf_counter()
        now = self.clock()
        if self.prepare is not None:
            self.prepare()
        wanted = self._targets.update(self.isvcs())
        self.pod_index = self._pods.update(self.pods(), wanted)
        self._pods_by_target = None
        self.snapshot = None  # the last one is not needed while the next one is built
        snapshot = await self.source.snapshot(self.pod_index, now)
        self.snapshot = snapshot
        made = getattr(getattr(self.source, "stats", None), "last_requests", 0)
        if made:
            self.telemetry.queries.labels(self.source_name).inc(made)
        self.telemetry.snapshot_available.labels(self.source_name).set(
            1 if snapshot.available else 0
        )
        self.telemetry.snapshot_age.labels(self.source_name).set(
            max(0.0, self.clock() - snapshot.taken_at)
        )
        self.telemetry.targets.set(len(wanted))
        if not snapshot.available:
            self.telemetry.errors.labels("snapshot-unavailable").inc()
        self._actions = {}
        peek: Callable[[str, str], Any] | None = getattr(self.scaler, "peek", None)
        synced: Callable[[], bool] = getattr(self.scaler, "synced", lambda: peek is not None)
        awaited: list[Target] = []
        if peek is not None and synced():
            # Deciding is CPU only once the scale is a cache lookup: done inline, no task per
            # target; only the API calls a decision leads to get a task (below).
            for t in wanted:
                try:
                    self._decide(t, snapshot, now, peek(t.key.namespace, t.predictor))
                except Exception:
                    self.telemetry.errors.labels("target").inc()
                    log.exception("%s: scaling failed", t.key)
        else:
            awaited = wanted
        await asyncio.gather(*(self._guarded(t, snapshot, now) for t in awaited))
        actions, self._actions = self._actions, {}
        await asyncio.gather(*(self._act(key, steps) for key, steps in actions.items()))
        for gone in set(self.state) - {t.key for t in wanted}:
            del self.state[gone]
            self.telemetry.forget(gone.namespace, gone.name)
        self.telemetry.tick.observe(time.perf_counter() - t0)
        return snapshot

    def _signals(self, key: TargetKey, snapshot: MetricsSnapshot) -> TargetSignals:
        """The target's signals; its pods without samples when the snapshot has none."""
        signals = snapshot.targets.get(key)
        if signals:
            return signals
        if self._pods_by_target is None:  # grouped once per tick, only when needed
            self._pods_by_target = {}
            for p in self.pod_index:
                self._pods_by_target.setdefault(p.isvc, []).append(p)
        return decisions.signals_without_samples(key, self._pods_by_target.get(key, []))

    async def _guarded(self, t: Target, snapshot: MetricsSnapshot, now: float) -> None:
        """Read the scale through the API (no cache) and decide, within the target's budget."""
        try:
            async with asyncio.timeout(self.target_timeout):
                scale = await self.scaler.get_scale(t.key.namespace, t.predictor)
            self._decide(t, snapshot, now, scale)
        except TimeoutError:
            self.telemetry.errors.labels("target-timeout").inc()
            log.warning(
                "%s: reading the scale exceeded %.1fs; skipped this tick",
                t.key,
                self.target_timeout,
            )
        except Exception:
            self.telemetry.errors.labels("target").inc()
            log.exception("%s: scaling failed", t.key)

    def _later(self, key: TargetKey, step: Coroutine[Any, Any, None]) -> None:
        """Queue an API call of this tick for ``key`` (after its earlier ones)."""
        self._actions.setdefault(key, []).append(step)

    async def _act(self, key: TargetKey, steps: list[Coroutine[Any, Any, None]]) -> None:
        """Run one target's API calls in order, within its own budget: one slow or failing
        InferenceService never delays or breaks the others."""
        try:
            async with asyncio.timeout(self.target_timeout):
                for step in steps:
                    await step
        except TimeoutError:
            self.telemetry.errors.labels("target-timeout").inc()
            log.warning("%s: acting exceeded %.1fs; skipped this tick", key, self.target_timeout)
        except Exception:
            self.telemetry.errors.labels("target").inc()
            log.exception("%s: scaling failed", key)
        finally:
            for step in steps:
                step.close()  # the ones a timeout or an error left unstarted

    def _decide(self, t: Target, snapshot: MetricsSnapshot, now: float, scale: Any) -> None:
        """Decide one target (CPU only); the API calls it leads to are queued (:meth:`_later`)."""
        st = self.state.get(t.key)
        if st is None:
            st = self.state[t.key] = TargetState()
        spec, errors = self.decider.resolve(t.isvc)
        if errors:
            if tuple(errors) != st.spec_errors:
                st.spec_errors = tuple(errors)
                msg = "; ".join(errors)
                log.warning("%s: invalid scaling spec, replicas left as they are: %s", t.key, msg)
                self._later(
                    t.key,
                    self.recorder.record(
                        t.isvc, type_="Warning", reason="InvalidScalingSpec", message=msg
                    ),
                )
                self._later(t.key, self._annotate(t, st, f"invalid-spec: {msg}"))
            self.telemetry.errors.labels("invalid-spec").inc()
            return
        st.spec_errors = ()
        if scale is None:
            return  # the reconciler has not created the predictor yet
        written = st.last_written
        if st.foreign_changes or st.holding_for_conflict or written not in (None, scale.replicas):
            self._note_foreign_change(t, st, scale.replicas, now)  # else: nothing to note
        signals = self._signals(t.key, snapshot)
        record, st.policy_state = self.decider.decide(
            signals,
            spec,
            st.policy_state,
            now,
            scale.replicas,
            snapshot_available=snapshot.available,
        )
        last = st.history[-1] if st.history else None
        if last is not None and (last.rule, last.current, last.desired) == (
            record.rule,
            record.current,
            record.desired,
        ):
            # A repeat of the same verdict replaces the previous record: the history keeps
            # the last 100 *different* decisions (hours of a steady ISVC, not 100 seconds)
            # and its memory stays flat.
            st.history[-1] = record
        else:
            if len(st.history) >= HISTORY:
                del st.history[0]
            st.history.append(record)
        if st.metrics is None:
            st.metrics = decisions.TargetMetrics(self.telemetry, t.key)
        decisions.observe(self.telemetry, t.key, record, scale.replicas, signals, st.metrics)
        desired = record.desired
        if desired != scale.replicas and st.holding_for_conflict:
            log.info(
                "%s: would scale %d → %d but another scaler keeps changing it; holding",
                t.key,
                scale.replicas,
                desired,
            )
        elif desired != scale.replicas:
            self._later(t.key, self._write(t, st, scale, record))
        summary = record.summary
        if self.annotator is not None and summary != st.annotation:
            self._later(t.key, self._annotate(t, st, summary))

    def _note_foreign_change(self, t: Target, st: TargetState, current: int, now: float) -> None:
        """Detect a scale we did not write; adopt it, and stop writing if it keeps happening."""
        recent = [x for x in st.foreign_changes if now - x <= FOREIGN_WINDOW_S]
        if st.holding_for_conflict and not recent:
            st.holding_for_conflict = False
            log.info(
                "%s: no foreign scale changes for %.0fs; writing again", t.key, FOREIGN_WINDOW_S
            )
        if st.last_written is None or current == st.last_written:
            return
        st.foreign_changes = (*st.foreign_changes, now)[-FOREIGN_KEPT:]
        recent.append(now)
        log.warning(
            "%s: replicas changed to %d by someone else (we set %d); adopting it",
            t.key,
            current,
            st.last_written,
        )
        st.last_written = current
        if len(recent) >= FOREIGN_LIMIT:
            if not st.holding_for_conflict:
                st.holding_for_conflict = True
                msg = (
                    f"replicas of {t.predictor} changed {len(recent)} times in "
                    f"{FOREIGN_WINDOW_S:.0f}s by another writer (an HPA or a person?); "
                    "llm-autoscaler stops writing to it until that stops"
                )
                self._later(
                    t.key,
                    self.recorder.record(
                        t.isvc, type_="Warning", reason="ScalerConflict", message=msg
                    ),
                )
            return
        msg = f"replicas changed to {current} by another writer; adopted as the new baseline"
        self._later(
            t.key,
            self.recorder.record(t.isvc, type_="Normal", reason="ScaledExternally", message=msg),
        )

    async def _write(
        self, t: Target, st: TargetState, scale: Any, record: decisions.Record
    ) -> None:
        ns = t.key.namespace
        try:
            await self.scaler.set_replicas(ns, t.predictor, record.desired, scale)
        except ScaleConflictError:
            self.telemetry.scale_writes.labels(ns, t.key.name, "conflict").inc()
            log.info("%s: scale changed while deciding; re-reading next tick", t.key)
            return
        st.last_written = record.desired
        self.telemetry.scale_writes.labels(ns, t.key.name, "ok").inc()
        up = record.desired > scale.replicas
        reason = "ScaledUp" if up else "ScaledDown"
        msg = f"{scale.replicas} → {record.desired} replicas ({record.rule}): {record.reason}"
        log.info("%s: %s %s", t.key, reason, msg)
        await self.recorder.record(t.isvc, type_="Normal", reason=reason, message=msg)

    async def _annotate(self, t: Target, st: TargetState, value: str) -> None:
        if self.annotator is None or value == st.annotation:
            return
        try:
            await self.annotator.annotate(t.key.namespace, t.key.name, value)
            st.annotation = value
        except Exception as e:  # the annotation is informative; never fail the decision on it
            log.warning("%s: cannot write the decision annotation: %s", t.key, e)

    def history(self, key: TargetKey) -> list[decisions.Record]:
        st = self.state.get(key)
        return list(st.history) if st else []
