"""Pure scaling math: no I/O, no clock reads.

Everything here is a function of (metrics snapshot, resolved spec, previous state, ``now``).
The signal types in :mod:`policies.signals` are the contract between the metric adapters
(which produce snapshots) and the policies (which consume them); :mod:`policies.spec`
resolves what the operator asked for, :mod:`policies.formulas` holds each formula once,
:mod:`policies.default` and :mod:`policies.forecast` are the policies, and
:mod:`policies.decision` the explainable result.
"""

from __future__ import annotations

from typing import Protocol

from policies.decision import Decision
from policies.default import DefaultPolicy, PolicyState
from policies.forecast import ForecastPolicy
from policies.signals import TargetSignals
from policies.spec import POLICY_NAMES, ScalingSpec


class Policy(Protocol):
    """What the scaling loop and the simulator call, once per target per tick."""

    name: str

    def decide(
        self,
        signals: TargetSignals,
        spec: ScalingSpec,
        state: PolicyState | None,
        now: float,
        current: int,
        *,
        snapshot_available: bool = True,
    ) -> tuple[Decision, PolicyState]: ...


_POLICIES: dict[str, Policy] = {"default": DefaultPolicy(), "forecast": ForecastPolicy()}
assert tuple(_POLICIES) == POLICY_NAMES


def make_policy(name: str) -> Policy:
    """The policy called ``name``; ``ValueError`` naming the known ones otherwise.

    Policies are stateless objects (state travels in :class:`PolicyState`), so one instance
    serves every target.
    """
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(_POLICIES)}") from None


__all__ = ["Decision", "Policy", "PolicyState", "make_policy"]
