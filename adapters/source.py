"""The metrics-source seam: what the scaling loop asks for once per tick, and what it gets.

A :class:`MetricsSource` turns the current pod set (from the Kubernetes cache: identity,
readiness, creation time, owning InferenceService, where its ``/metrics`` is) into one
:class:`~policies.signals.MetricsSnapshot`. Two implementations: direct scrape
(:mod:`adapters.scrape`) and Prometheus (:mod:`adapters.prometheus`); :class:`StaticSource` is
the fake for tests of the loop. Pods come from the cache, never from metrics: a series of a
pod that is not in ``targets`` never reaches a policy.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from typing import Any, Protocol

from policies.signals import MetricsSnapshot, PodSignals, Sample, Signal, TargetKey, TargetSignals

__all__ = [
    "Column",
    "ColumnTargets",
    "MetricsSource",
    "PodKey",
    "PodTarget",
    "StaticSource",
    "assemble",
    "assemble_columns",
    "slots",
]

PodKey = tuple[str, str]
"""``(namespace, pod name)``."""


@dataclass(frozen=True, slots=True)
class PodTarget:
    """One predictor pod as the Kubernetes cache knows it."""

    isvc: TargetKey
    namespace: str
    pod: str
    ready: bool = True
    phase: str = "Running"
    created_at: float | None = None
    """Pod creation time, unix seconds."""
    ip: str | None = None
    port: int = 8080
    path: str = "/metrics"
    url: str | None = None
    """Full metrics URL; overrides ``ip``/``port``/``path`` when set."""

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.pod)

    def metrics_url(self) -> str | None:
        """Where to scrape this pod; ``None`` when it has no address yet."""
        if self.url:
            return self.url
        if not self.ip:
            return None
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}{self.path}"


class MetricsSource(Protocol):
    """One snapshot per tick for every target; never raises for an unreachable backend
    (that is ``MetricsSnapshot.unavailable``), never reports a missing value as 0."""

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot: ...


def assemble(
    targets: Iterable[PodTarget],
    values: Mapping[PodKey, Mapping[Signal, Sample]],
    now: float,
    source: str,
) -> MetricsSnapshot:
    """Group per-pod samples into a snapshot, every target pod present (missing: ``None``)."""
    pods: dict[TargetKey, list[PodSignals]] = {}
    for t in targets:
        get = values.get(t.key, {}).get
        pods.setdefault(t.isvc, []).append(
            PodSignals(
                namespace=t.namespace,
                pod=t.pod,
                ready=t.ready,
                phase=t.phase,
                created_at=t.created_at,
                queue_depth=get(Signal.QUEUE_DEPTH),
                running=get(Signal.RUNNING),
                kv_cache_usage=get(Signal.KV_CACHE_USAGE),
                gpu_utilization=get(Signal.GPU_UTILIZATION),
                ttft_p50_seconds=get(Signal.TTFT_P50),
                ttft_p95_seconds=get(Signal.TTFT_P95),
                preemption_rate=get(Signal.PREEMPTION_RATE),
            )
        )
    return MetricsSnapshot(
        taken_at=now,
        source=source,
        targets={k: TargetSignals(key=k, pods=tuple(v)) for k, v in pods.items()},
    )


@dataclass(slots=True)
class Column:
    """One signal's samples by pod slot (see :func:`slots`), as plain floats: pod ``i`` has
    ``value[i]`` sampled at ``at[i]``; ``value[i] is None`` is missing. Floats in lists cost
    a fraction of a :class:`~policies.signals.Sample` each and are no work for the garbage
    collector."""

    value: list[float | None]
    at: list[float]

    @classmethod
    def empty(cls, slots: int) -> Column:
        return cls([None] * slots, [0.0] * slots)


def slots(targets: Iterable[PodTarget]) -> tuple[dict[PodKey, int], list[int]]:
    """Number the distinct pods of ``targets``: ``(slot of each pod key, slot of each target)``.

    A source fills one :class:`Column` per signal by slot (no per-pod dict of samples) and
    hands them to :func:`assemble_columns`; a pod listed twice shares its slot, as it shares
    its entry in :func:`assemble`'s mapping."""
    index: dict[PodKey, int] = {}
    of_target: list[int] = []
    for t in targets:
        key = (t.namespace, t.pod)
        slot = index.get(key)
        if slot is None:
            slot = index[key] = len(index)
        of_target.append(slot)
    return index, of_target


def assemble_columns(
    targets: Sequence[PodTarget],
    of_target: Sequence[int],
    columns: Mapping[Signal, Column],
    now: float,
    source: str,
) -> MetricsSnapshot:
    """:func:`assemble` from per-signal columns: a snapshot equal to the one :func:`assemble`
    builds, whose targets are :class:`ColumnTargets` (each built when it is read).
    ``of_target`` is the slot of each target (:func:`slots`); a signal without a column is
    missing on every pod."""
    return MetricsSnapshot(
        taken_at=now, source=source, targets=ColumnTargets(targets, of_target, columns)
    )


_FIELDS = (  # PodSignals' sample fields, in the order ColumnTargets reads its columns
    Signal.QUEUE_DEPTH,
    Signal.RUNNING,
    Signal.KV_CACHE_USAGE,
    Signal.GPU_UTILIZATION,
    Signal.TTFT_P50,
    Signal.TTFT_P95,
    Signal.PREEMPTION_RATE,
)
assert set(_FIELDS) == set(Signal)


class ColumnTargets(Mapping[TargetKey, TargetSignals]):
    """A snapshot's targets kept as per-signal :class:`Column` s: looking a target up builds
    its :class:`~policies.signals.TargetSignals` (pods and samples) then, equal to what
    :func:`assemble` would have built.

    So a tick's snapshot of thousands of pods is a few lists of floats instead of an object
    per pod and per sample that lives until the next tick: the scaling loop reads each target
    once, and what it builds is freed with the decision. :meth:`values` and :meth:`items`
    (a reader going through every target, such as a selector query) build every target once
    and keep them, so that reader pays for it once.
    """

    __slots__ = ("_all", "_columns", "_groups", "_of_target", "_order", "_targets")

    def __init__(
        self,
        targets: Sequence[PodTarget],
        of_target: Sequence[int],
        columns: Mapping[Signal, Column],
    ) -> None:
        self._targets = tuple(targets)
        self._of_target = tuple(of_target)
        if len(self._of_target) != len(self._targets):
            raise ValueError("one slot per target")
        missing = Column.empty(max(self._of_target) + 1 if self._of_target else 0)
        self._columns = tuple(columns.get(s, missing) for s in _FIELDS)
        members: dict[TargetKey, list[int]] = {}
        key: TargetKey | None = None
        same: list[int] = []
        for j, t in enumerate(self._targets):
            if t.isvc is not key:  # the pods of one target are mostly listed together
                key = t.isvc
                found = members.get(key)
                if found is None:
                    found = members[key] = []
                same = found
            same.append(j)
        order: list[int] = []
        self._groups: dict[TargetKey, tuple[int, int]] = {}
        for key, js in members.items():
            self._groups[key] = (len(order), len(order) + len(js))
            order += js
        self._order = order
        self._all: dict[TargetKey, TargetSignals] | None = None

    def _build(self, key: TargetKey, start: int, stop: int) -> TargetSignals:
        (qv, qa), (rv, ra), (kv, ka), (gv, ga), (p5v, p5a), (p9v, p9a), (prv, pra) = (
            (c.value, c.at) for c in self._columns
        )
        targets, of_target = self._targets, self._of_target
        pods = []
        for j in self._order[start:stop]:
            t, i = targets[j], of_target[j]
            q, r, k, g, p5, p9, pr = qv[i], rv[i], kv[i], gv[i], p5v[i], p9v[i], prv[i]
            pods.append(
                PodSignals(
                    namespace=t.namespace,
                    pod=t.pod,
                    ready=t.ready,
                    phase=t.phase,
                    created_at=t.created_at,
                    queue_depth=None if q is None else Sample(q, qa[i]),
                    running=None if r is None else Sample(r, ra[i]),
                    kv_cache_usage=None if k is None else Sample(k, ka[i]),
                    gpu_utilization=None if g is None else Sample(g, ga[i]),
                    ttft_p50_seconds=None if p5 is None else Sample(p5, p5a[i]),
                    ttft_p95_seconds=None if p9 is None else Sample(p9, p9a[i]),
                    preemption_rate=None if pr is None else Sample(pr, pra[i]),
                )
            )
        return TargetSignals(key=key, pods=tuple(pods))

    def __getitem__(self, key: TargetKey) -> TargetSignals:
        if self._all is not None:
            return self._all[key]
        start, stop = self._groups[key]
        return self._build(key, start, stop)

    def get(self, key: TargetKey, default: Any = None) -> Any:
        span = self._groups.get(key)
        if span is None:
            return default
        return self._all[key] if self._all is not None else self._build(key, *span)

    def __contains__(self, key: object) -> bool:
        return key in self._groups

    def __iter__(self) -> Iterator[TargetKey]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def _every(self) -> dict[TargetKey, TargetSignals]:
        if self._all is None:
            self._all = {k: self._build(k, *span) for k, span in self._groups.items()}
        return self._all

    def values(self) -> ValuesView[TargetSignals]:
        return self._every().values()

    def items(self) -> ItemsView[TargetKey, TargetSignals]:
        return self._every().items()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} targets, {len(self._targets)} pods>"


class StaticSource:
    """A :class:`MetricsSource` fake: fixed per-pod values (or unavailable), calls recorded."""

    def __init__(
        self,
        values: Mapping[PodKey, Mapping[Signal, float]] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        self.values = dict(values or {})
        self.error = error
        self.calls: list[tuple[tuple[PodTarget, ...], float]] = []

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        self.calls.append((tuple(targets), now))
        if self.error is not None:
            return MetricsSnapshot.unavailable(now, self.error, source="static")
        samples = {
            pod: {signal: Sample(v, now) for signal, v in per_pod.items()}
            for pod, per_pod in self.values.items()
        }
        return assemble(targets, samples, now, "static")
