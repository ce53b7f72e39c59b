"""The loop's side of the policy seam: resolve specs, call the policy, keep explainable records.

:class:`Decider` resolves an InferenceService's scaling spec (cached per ISVC generation and
annotations) and calls the named policy. Every decision becomes a :class:`Record`: a
JSON-ready value with the inputs, each signal's proposal, the winning rule, the reason and the
result, kept per ISVC for ``llm-autoscaler explain`` and exported as metrics.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.source import PodTarget
from autoscaler.telemetry import Telemetry
from policies import make_policy
from policies.signals import PodSignals, TargetKey, TargetSignals
from policies.spec import ClusterDefaults, ScalingSpec, resolve_spec


@dataclass(frozen=True)
class Record:
    """One decision, as a human reads it at 3 a.m."""

    at: float
    key: str
    current: int
    desired: int
    rule: str
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    proposals: list[dict[str, Any]] = field(default_factory=list)

    winner: str | None = None

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
        d = dataclasses.asdict(self)
        d["direction"] = self.direction
        d["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        return d


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
        self._specs: dict[str, tuple[str, ScalingSpec | None, list[str]]] = {}

    def resolve(self, isvc: dict[str, Any]) -> tuple[ScalingSpec | None, list[str]]:
        md = isvc.get("metadata") or {}
        key = f"{md.get('namespace')}/{md.get('name')}"
        fingerprint = json.dumps([md.get("generation"), md.get("annotations")], sort_keys=True)
        cached = self._specs.get(key)
        if cached and cached[0] == fingerprint:
            return cached[1], cached[2]
        result = resolve_spec(isvc, self.defaults)
        spec, errors = result.spec, [str(e) for e in result.errors]
        self._specs[key] = (fingerprint, spec, errors)
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
            at=now,
            key=str(signals.key),
            current=current,
            desired=int(decision.desired_replicas),
            rule=str(decision.rule),
            reason=str(decision.reason),
            inputs=_jsonable(decision.inputs),
            proposals=[_jsonable(p) for p in decision.proposals],
            winner=decision.winner,
        )
        return record, new_state


def signals_without_samples(key: TargetKey, pods: Sequence[PodTarget]) -> TargetSignals:
    """The pods known to Kubernetes with every signal missing (source unavailable)."""
    return TargetSignals(
        key=key,
        pods=tuple(PodSignals(p.namespace, p.pod, p.ready, p.phase, p.created_at) for p in pods),
    )


def observe(t: Telemetry, key: TargetKey, r: Record, current: int, signals: TargetSignals) -> None:
    """Export one decision as metrics."""
    ns, name = key.namespace, key.name
    t.desired.labels(ns, name).set(r.desired)
    t.current.labels(ns, name).set(current)
    if isinstance(r.inputs.get("min"), int):
        t.min.labels(ns, name).set(r.inputs["min"])
    if isinstance(r.inputs.get("max"), int):
        t.max.labels(ns, name).set(r.inputs["max"])
    t.ready.labels(ns, name).set(len(signals.ready_pods))
    t.decisions.labels(ns, name, r.rule, r.direction).inc()
    for p in r.proposals:
        sig = str(p.get("signal", ""))
        if not sig:
            continue
        if isinstance(p.get("observed"), (int, float)):
            t.observed.labels(ns, name, sig).set(float(p["observed"]))
        if isinstance(p.get("target"), (int, float)):
            t.target.labels(ns, name, sig).set(float(p["target"]))
