"""Decision value objects: what a policy decided, from what, and by which rule.

A :class:`Decision` is explainable on its own: its inputs (pod counts, snapshot state), each
signal's :class:`Proposal`, the :class:`Rule` that settled the result and a one-line reason a
human can read at 3 a.m. The scaling loop turns it into an Event, a log line, metric labels
and the ``llm-autoscaler explain`` output; nothing there recomputes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Rule(StrEnum):
    """The rule that settled a decision (exported as a metric label: keep the set small)."""

    STEADY = "steady"
    """Every proposal is within tolerance of the current count."""
    SCALE_UP = "scale-up"
    """Proportional scale-up to the highest proposal."""
    PANIC = "panic"
    """A signal is at or above ``panic_threshold`` × target: scale-up skips its rate limit."""
    RATE_LIMITED = "rate-limited"
    """The change was cut by the direction's rate limit."""
    COLD_START_PENDING = "cold-start-pending"
    """Scale-up held: pods still starting will absorb the load (capacity on the way)."""
    STABILIZED = "stabilized"
    """Scale-down held or reduced by the stabilization window (highest recent proposal)."""
    N_MINUS_1 = "n-minus-1"
    """Scale-down held or reduced: the remaining replicas would exceed their target."""
    SCALE_DOWN = "scale-down"
    """Scale-down to the stabilized proposal."""
    HOLD_PARTIAL_DATA = "hold-partial-data"
    """Scale-down refused: a signal or pod has no fresh data."""
    FROZEN_NO_DATA = "frozen-no-data"
    """The source is unavailable or no pod reports anything: the count is frozen."""
    FALLBACK = "fallback"
    """Metrics unavailable for longer than ``fallback_after``: the fallback count applies."""
    MIN_REPLICAS = "min-replicas"
    """Clamped up to ``minReplicas``."""
    MAX_REPLICAS = "max-replicas"
    """Clamped down to ``maxReplicas``."""
    HOLD_AT_ZERO = "hold-at-zero"
    """At 0 replicas with no demand signal: stays at 0."""
    SCALE_FROM_ZERO = "scale-from-zero"
    """At 0 replicas and the target's demand signal shows waiting requests."""
    FORECAST = "forecast"
    """Scale-up ahead of a rising trend (``forecast`` policy)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """One signal's view: its observed per-replica average and the replicas it asks for.

    ``replicas`` is ``None`` when the signal has no fresh data on any ready pod.
    """

    signal: str
    target: float
    observed: float | None
    replicas: int | None
    total: float | None = None
    """Sum over ready pods, missing pods counted as empty (the scale-up view)."""
    reporting: int = 0
    """Ready pods with a fresh sample."""
    missing: int = 0
    """Ready pods without a fresh sample."""

    @property
    def ratio(self) -> float | None:
        return None if self.observed is None else self.observed / self.target


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one policy call for one InferenceService."""

    at: float
    current_replicas: int
    desired_replicas: int
    rule: Rule
    reason: str
    proposals: tuple[Proposal, ...] = ()
    inputs: Mapping[str, object] = field(default_factory=dict)
    winner: str | None = None
    """The signal whose proposal set the result (``None`` when no proposal did)."""

    @property
    def direction(self) -> str:
        if self.desired_replicas > self.current_replicas:
            return "up"
        if self.desired_replicas < self.current_replicas:
            return "down"
        return "none"

    @property
    def changed(self) -> bool:
        return self.desired_replicas != self.current_replicas
