"""The loop's side of the policy seam: resolve specs, call the policy, keep explainable records.

:class:`Decider` resolves an InferenceService's scaling spec (cached per ISVC generation and
annotations) and calls the named policy. Every decision becomes a :class:`Record`: the
:class:`~policies.decision.Decision` itself with the inputs, each signal's proposal, the
winning rule, the reason and the result, kept per ISVC for ``llm-autoscaler explain`` (rendered
as JSON only when asked for) and exported as metrics (:class:`TargetMetrics`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.source import PodTarget
from autoscaler.telemetry import Telemetry
from policies import make_policy
from policies.decision import Decision
from policies.signals import PodSignals, TargetKey, TargetSignals
from policies.spec import ClusterDefaults, ScalingSpec, resolve_spec


@dataclass(frozen=True, slots=True)
class Record:
    """One decision, as a human reads it at 3 a.m.

    Keeps the policy's :class:`~policies.decision.Decision` as it is; its JSON form
    (:attr:`inputs`, :attr:`proposals`, :meth:`to_json`) is built when someone reads it, not
    on every tick."""

    at: float
    target: TargetKey
    current: int
    desired: int
    rule: str
    decision: Decision

    @property
    def key(self) -> str:
        return str(self.target)

    @property
    def reason(self) -> str:
        return str(self.decision.reason)

    @property
    def winner(self) -> str | None:
        return self.decision.winner

    @property
    def inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = _jsonable(self.decision.inputs)
        return inputs

    @property
    def proposals(self) -> list[dict[str, Any]]:
        return [_jsonable(p) for p in self.decision.proposals]

    @property
    def direction(self) -> str:
        if self.desired == self.current:
            return "none"
        return "up" if self.desired > self.current else "down"

    @property
    def summary(self) -> str:
        """The annotation value: rule and result only, so it changes when the decision does."""
        return f"{self.rule}: {self.desired} replicas"

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "key": self.key,
            "current": self.current,
            "desired": self.desired,
            "rule": self.rule,
            "reason": self.reason,
            "inputs": self.inputs,
            "proposals": self.proposals,
            "winner": self.winner,
            "direction": self.direction,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
        }


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Decider:
    """Resolves specs and decides with the spec's policy; see the module docstring."""

    def __init__(self, defaults: ClusterDefaults | None = None) -> None:
        self.defaults = defaults or ClusterDefaults()
        self._specs: dict[tuple[Any, Any], _Resolved] = {}

    def resolve(self, isvc: dict[str, Any]) -> tuple[ScalingSpec | None, list[str]]:
        md = isvc.get("metadata") or {}
        key = (md.get("namespace"), md.get("name"))
        generation, annotations = md.get("generation"), md.get("annotations")
        cached = self._specs.get(key)
        if (
            cached is not None
            and cached.generation == generation
            and cached.annotations == annotations
        ):
            return cached.spec, cached.errors
        result = resolve_spec(isvc, self.defaults)
        spec, errors = result.spec, [str(e) for e in result.errors]
        # A copy: the fingerprint must not follow an annotations dict changed in place.
        kept = dict(annotations) if isinstance(annotations, dict) else annotations
        self._specs[key] = _Resolved(generation, kept, spec, errors)
        return spec, errors

    def decide(
        self,
        signals: TargetSignals,
        spec: ScalingSpec | None,
        state: Any,
        now: float,
        current: int,
        *,
        snapshot_available: bool,
    ) -> tuple[Record, Any]:
        assert spec is not None
        policy = make_policy(spec.policy)
        decision, new_state = policy.decide(
            signals, spec, state, now, current, snapshot_available=snapshot_available
        )
        record = Record(
            now, signals.key, current, int(decision.desired_replicas), str(decision.rule), decision
        )
        return record, new_state


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A resolved spec and what it was resolved from (the ISVC's generation and annotations)."""

    generation: Any
    annotations: Any
    spec: ScalingSpec | None
    errors: list[str]


def signals_without_samples(key: TargetKey, pods: Sequence[PodTarget]) -> TargetSignals:
    """The pods known to Kubernetes with every signal missing (source unavailable)."""
    return TargetSignals(
        key=key,
        pods=tuple(PodSignals(p.namespace, p.pod, p.ready, p.phase, p.created_at) for p in pods),
    )


def observe(
    t: Telemetry,
    key: TargetKey,
    r: Record,
    current: int,
    signals: TargetSignals,
    bound: TargetMetrics | None = None,
) -> None:
    """Export one decision as metrics (through ``bound``, the target's own series kept from
    one decision to the next, when given: the same series with the same values)."""
    m = bound if bound is not None else TargetMetrics(t, key)
    inputs = r.decision.inputs
    gauge, signal_gauge = m.gauge, m.signal_gauge
    gauge(DESIRED, r.desired)
    gauge(CURRENT, current)
    low, high = inputs.get("min"), inputs.get("max")
    if isinstance(low, int):
        gauge(MIN, low)
    if isinstance(high, int):
        gauge(MAX, high)
    gauge(READY, len(signals.ready_pods))
    m.decided(r.rule, r.direction)
    for p in r.decision.proposals:
        sig = str(p.signal)
        if not sig:
            continue
        if isinstance(p.observed, (int, float)):
            signal_gauge(OBSERVED, sig, float(p.observed))
        if isinstance(p.target, (int, float)):
            signal_gauge(TARGET, sig, float(p.target))


DESIRED, CURRENT, MIN, MAX, READY = range(5)
"""The per-ISVC gauges of :class:`TargetMetrics`, in :data:`autoscaler.telemetry.GAUGES` order."""
OBSERVED, TARGET = 0, 1
"""The per-signal gauges (``llm_autoscaler_signal_observed``, ``..._target``)."""


class TargetMetrics:
    """One InferenceService's own series (``llm_autoscaler_*{namespace, isvc, ...}``): its
    row in :class:`~autoscaler.telemetry.IsvcSeries`, looked up once and kept. A series
    appears when first set; :meth:`Telemetry.forget` drops the gauges with the target."""

    __slots__ = ("_row",)

    def __init__(self, t: Telemetry, key: TargetKey) -> None:
        self._row = t.isvcs.row(key.namespace, key.name)

    def gauge(self, which: int, value: float) -> None:
        """Set ``<desired|current|min|max|ready>{namespace, isvc}``."""
        self._row.gauges[which] = value

    def signal_gauge(self, which: int, signal: str, value: float) -> None:
        """Set ``<observed|target>{namespace, isvc, signal}``."""
        values = self._row.signals.get(signal)
        if values is None:
            values = self._row.signals[signal] = [None, None]
        values[which] = value

    def decided(self, rule: str, direction: str) -> None:
        """Count ``decisions_total{namespace, isvc, rule, direction}``."""
        d = self._row.decisions
        d[(rule, direction)] = d.get((rule, direction), 0) + 1
