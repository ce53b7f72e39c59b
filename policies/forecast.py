"""The forecast policy: the default policy plus pre-scaling ahead of a rising trend.

LLM pods take minutes to start, so a ramp seen now is served by pods that exist a cold start
later. Every tick this policy fits a line through each signal's fleet total over
``forecast_window`` (:func:`~policies.formulas.trend_projection`) and, when the slope is
positive, adds a scale-up proposal ``forecast:<signal>`` = the replicas that would hold the
total projected ``cold_start`` seconds ahead at target. It never proposes fewer pods than the
signals do (falling trends are left to the default scale-down rules), and the projection is
capped at twice the current total so a noisy fit cannot order a fleet. Everything else —
tolerance, panic, cold-start accounting, stabilization, rate limits, missing data — is the
default policy's. ``llm-autoscaler simulate`` judges whether it earns its place.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies import formulas
from policies.decision import Proposal
from policies.default import DefaultPolicy, PolicyState
from policies.spec import ScalingSpec


class ForecastPolicy(DefaultPolicy):
    """:class:`~policies.default.DefaultPolicy` + trend proposals (see the module docstring)."""

    name = "forecast"
    keeps_history = True

    def extra_proposals(
        self,
        proposals: Sequence[Proposal],
        spec: ScalingSpec,
        state: PolicyState,
        now: float,
        current: int,
    ) -> tuple[Proposal, ...]:
        out = []
        for p in proposals:
            if p.total is None or p.replicas is None:
                continue
            series = [(t, totals[p.signal]) for t, totals in state.history if p.signal in totals]
            fit = formulas.trend_projection(series, now, spec.cold_start_s)
            if fit is None or fit[1] <= 0:
                continue
            projected = min(fit[0], 2.0 * p.total)
            replicas = formulas.ceil_replicas(projected, p.target)
            if replicas <= max(p.replicas, current):
                continue
            out.append(
                Proposal(
                    f"forecast:{p.signal}",
                    p.target,
                    projected / max(current, 1),
                    replicas,
                    projected,
                    p.reporting,
                    p.missing,
                )
            )
        return tuple(out)
