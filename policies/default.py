"""The default policy: target tracking on LLM load signals, safe in both directions.

One call decides one InferenceService: ``decide(signals, spec, state, now, current, *,
snapshot_available) -> (Decision, state)``. ``current`` is the live, non-terminating replica
count (the scale subresource); ``state`` is whatever the previous call returned (``None`` the
first time). The steps, each a function in :mod:`policies.formulas`:

1. **No data freezes.** An unavailable snapshot, or no ready pod reporting any signal, keeps
   ``current`` (``frozen-no-data``); after ``fallback_after`` the ``fallback`` count applies if
   one is set (``fallback``).
2. **Zero.** At 0 replicas no pod reports anything; only the target's ``demand`` sample (a
   queue in front of the pods, such as a gateway's) can wake it (``scale-from-zero``).
   Likewise the policy only proposes 0 when such a demand signal exists: without one nobody
   could ever scale the model back up.
3. **Proposals** per signal (:func:`~policies.formulas.signal_proposal`); the highest wins.
4. **Scale-up** at once and in proportion, rate-limited unless some signal is at
   ``panic_threshold`` × target (``panic``). While pods are starting, they count as capacity
   on the way: only the panic-relaxed target can add more (``cold-start-pending``).
5. **Scale-down** only on complete data (``hold-partial-data``), after the stabilization
   window (``stabilized``), never below what the N−1 check allows (``n-minus-1``), and
   rate-limited (``rate-limited``).
6. **Clamp** to min/max.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from policies import formulas
from policies.decision import Decision, Proposal, Rule
from policies.signals import PodSignals, TargetSignals
from policies.spec import ScalingSpec


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What a policy remembers between calls (immutable; each call returns a new one)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, proposal) for the stabilization windows."""
    scale_events: tuple[tuple[float, int], ...] = ()
    """(time, replica delta) of this policy's changes, for the rate limits."""
    unavailable_since: float | None = None
    """When the data went missing (for the fallback timer); ``None`` while data flows."""
    history: tuple[tuple[float, Mapping[str, float]], ...] = ()
    """(time, total per signal) for the forecast."""
    saturation: float | None = None
    """Learned running requests per replica at saturation (see
    :func:`~policies.formulas.saturation_update`); guards scale-down."""


@dataclass(frozen=True, slots=True)
class _View:
    """The pods of one decision, split the way every rule needs them."""

    ready: tuple[PodSignals, ...]
    starting: tuple[PodSignals, ...]
    stuck: int


def _view(signals: TargetSignals, spec: ScalingSpec, now: float) -> _View:
    """Ready pods; starting pods younger than 2 × cold start (capacity on the way); the rest
    of the unready pods are stuck (no GPU, crash loop) and are not counted as capacity."""
    starting, stuck = [], 0
    for p in signals.starting_pods:
        if p.created_at is None or now - p.created_at <= 2 * spec.cold_start_s:
            starting.append(p)
        else:
            stuck += 1
    return _View(signals.ready_pods, tuple(starting), stuck)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def describe(p: Proposal) -> str:
    """One proposal as ``queue_depth 7.5/5 → 3``."""
    if p.replicas is None:
        return f"{p.signal} no data"
    return f"{p.signal} {_fmt(p.observed)}/{_fmt(p.target)} → {p.replicas}"


Done = Callable[..., tuple[Decision, PolicyState]]
"""``done(desired, rule, reason, proposals=(), winner=None, new_state=...)`` of one call."""


class DefaultPolicy:
    """Target tracking with panic, cold-start, N−1, stabilization and missing-data rules."""

    name = "default"
    keeps_history = False
    """Whether :attr:`PolicyState.history` is recorded (only trend policies read it)."""

    def extra_proposals(
        self,
        proposals: Sequence[Proposal],
        spec: ScalingSpec,
        state: PolicyState,
        now: float,
        current: int,
    ) -> tuple[Proposal, ...]:
        """Proposals beyond the signals' own (scale-up only). None here; see forecast."""
        return ()

    def decide(
        self,
        signals: TargetSignals,
        spec: ScalingSpec,
        state: PolicyState | None,
        now: float,
        current: int,
        *,
        snapshot_available: bool = True,
    ) -> tuple[Decision, PolicyState]:
        if isinstance(state, PolicyState):
            st = state
        else:
            # First call (a new target, or this process just started): act as if the current
            # count had been recommended now, so a restart never scales down at once.
            st = PolicyState(recommendations=((now, current),))
        view = _view(signals, spec, now)
        inputs: dict[str, object] = {
            "ready": len(view.ready),
            "starting": len(view.starting),
            "stuck": view.stuck,
            "snapshot_available": snapshot_available,
            "min": spec.min_replicas,
            "max": spec.max_replicas,
        }

        def done(
            desired: int,
            rule: Rule,
            reason: str,
            proposals: tuple[Proposal, ...] = (),
            winner: str | None = None,
            new_state: PolicyState = st,
        ) -> tuple[Decision, PolicyState]:
            if desired != current:
                new_state = replace(
                    new_state, scale_events=(*new_state.scale_events, (now, desired - current))
                )
            return Decision(now, current, desired, rule, reason, proposals, inputs, winner), _prune(
                new_state, spec, now
            )

        # 1. no data at all
        if not snapshot_available:
            return self._frozen(st, spec, now, current, "metrics source unavailable", done)

        # 2. zero
        if current == 0:
            demand = signals.demand
            if (
                demand is not None
                and demand.is_fresh(now, spec.max_sample_age_s)
                and (demand.value > 0)
            ):
                inputs["demand"] = demand.value
                return done(
                    max(spec.min_replicas, 1),
                    Rule.SCALE_FROM_ZERO,
                    f"{demand.value:g} requests waiting for a pod",
                )
            if spec.min_replicas > 0:
                return done(
                    spec.min_replicas,
                    Rule.MIN_REPLICAS,
                    f"at 0, below minReplicas {spec.min_replicas}",
                )
            return done(
                0, Rule.HOLD_AT_ZERO, "at 0 replicas and no demand signal shows waiting requests"
            )

        if not view.ready:
            if view.starting:
                return done(
                    *self._clamp_hold(
                        current,
                        spec,
                        Rule.COLD_START_PENDING,
                        f"no pod ready yet, {len(view.starting)} starting",
                    )
                )
            return self._frozen(st, spec, now, current, "no ready pod", done)

        # 3. proposals
        proposals = tuple(
            formulas.signal_proposal(
                sig,
                target,
                view.ready,
                current,
                now,
                spec.max_sample_age_s,
                spec.tolerance_up,
                spec.tolerance_down,
            )
            for sig, target in sorted(spec.targets.items())
        )
        with_data = [p for p in proposals if p.replicas is not None]
        if not with_data:
            return self._frozen(
                st,
                spec,
                now,
                current,
                "no ready pod reports " + ", ".join(spec.targets),
                done,
                proposals,
            )
        st = replace(
            st,
            unavailable_since=None,
            saturation=formulas.saturation_update(
                st.saturation, view.ready, now, spec.max_sample_age_s
            ),
            history=(
                (
                    *st.history,
                    (now, {p.signal: p.total for p in with_data if p.total is not None}),
                )
                if self.keeps_history
                else ()
            ),
        )
        extra = self.extra_proposals(proposals, spec, st, now, current)
        all_props = proposals + extra
        best = max((p for p in all_props if p.replicas is not None), key=lambda p: p.replicas or 0)
        proposal = best.replicas or 0
        if signals.demand is None:
            proposal = max(proposal, 1)  # 0 only when a demand signal could wake it again
        summary = "; ".join(describe(p) for p in all_props)
        st = replace(st, recommendations=_recommend(st.recommendations, now, proposal))
        panic = [
            p
            for p in with_data
            if p.observed is not None and p.observed >= spec.panic_threshold * p.target
        ]
        inputs["proposal"] = proposal

        # clamps first apply to where we are
        if current < spec.min_replicas:
            return done(
                spec.min_replicas,
                Rule.MIN_REPLICAS,
                f"below minReplicas {spec.min_replicas}",
                all_props,
                None,
                st,
            )
        if current > spec.max_replicas:
            return done(
                spec.max_replicas,
                Rule.MAX_REPLICAS,
                f"above maxReplicas {spec.max_replicas}",
                all_props,
                None,
                st,
            )

        stabilized = formulas.stabilize(
            st.recommendations[:-1],
            proposal,
            current,
            now,
            spec.scale_up_window_s,
            spec.scale_down_window_s,
        )

        # 4. scale-up
        if stabilized > current:
            want = min(stabilized, spec.max_replicas)
            if want <= current:
                return done(
                    current,
                    Rule.MAX_REPLICAS,
                    f"wants {stabilized}, at maxReplicas {spec.max_replicas} ({summary})",
                    all_props,
                    best.signal,
                    st,
                )
            if view.starting:
                relaxed = formulas.cold_start_replicas(with_data, spec.panic_threshold)
                inputs["cold_start_replicas"] = relaxed
                if relaxed <= current:
                    return done(
                        current,
                        Rule.COLD_START_PENDING,
                        f"{len(view.starting)} pods starting will absorb the load ({summary})",
                        all_props,
                        best.signal,
                        st,
                    )
                want = min(want, relaxed)
            if panic:
                rule, why = Rule.PANIC, f"{panic[0].signal} at {panic[0].ratio or 0:.1f}× target"
                desired = want
            else:
                desired = formulas.rate_limit(
                    want, current, st.scale_events, now, spec.scale_up, spec.scale_down
                )
                rule = Rule.FORECAST if best.signal.startswith("forecast:") else Rule.SCALE_UP
                why = summary
                if desired < want:
                    rule, why = Rule.RATE_LIMITED, f"scale-up to {want} limited ({summary})"
            if desired == current:
                return done(current, rule, why, all_props, best.signal, st)
            if stabilized > spec.max_replicas and desired == spec.max_replicas:
                rule, why = (
                    Rule.MAX_REPLICAS,
                    f"wants {stabilized}, maxReplicas {spec.max_replicas} ({summary})",
                )
            return done(desired, rule, why, all_props, best.signal, st)

        # 5. scale-down
        if stabilized < current <= spec.min_replicas:
            return done(
                current,
                Rule.MIN_REPLICAS,
                f"at minReplicas {spec.min_replicas} ({summary})",
                all_props,
                best.signal,
                st,
            )
        if stabilized < current:
            blocked = [p.signal for p in proposals if p.replicas is None]
            missing = sum(p.missing for p in proposals)
            if blocked or missing:
                what = (
                    ("no data for " + ", ".join(blocked))
                    if blocked
                    else (f"{missing} pod samples missing")
                )
                return done(
                    current,
                    Rule.HOLD_PARTIAL_DATA,
                    f"scale-down to {stabilized} refused: {what}",
                    all_props,
                    best.signal,
                    st,
                )
            floor = formulas.n_minus_1_floor(
                with_data, max(stabilized, spec.min_replicas), current, spec.tolerance_down
            )
            capacity = formulas.capacity_floor(
                view.ready, st.saturation, now, spec.max_sample_age_s, 1.0 - spec.tolerance_down
            )
            inputs["capacity_floor"] = capacity
            floor = min(max(floor, capacity), current)
            if floor >= current:
                return done(
                    current,
                    Rule.N_MINUS_1,
                    f"{current - 1} replicas would run above target ({summary})",
                    all_props,
                    best.signal,
                    st,
                )
            desired = formulas.rate_limit(
                floor, current, st.scale_events, now, spec.scale_up, spec.scale_down
            )
            rule, why = Rule.SCALE_DOWN, summary
            if floor > max(stabilized, spec.min_replicas):
                rule, why = (
                    Rule.N_MINUS_1,
                    f"scale-down stops at {floor}: fewer would run above target ({summary})",
                )
            if desired > floor:
                rule, why = Rule.RATE_LIMITED, f"scale-down to {floor} limited ({summary})"
            if proposal < stabilized and rule == Rule.SCALE_DOWN:
                rule, why = (
                    Rule.STABILIZED,
                    (
                        f"proposal {proposal}, highest in the last "
                        f"{spec.scale_down_window_s:g}s is {stabilized} "
                        f"({summary})"
                    ),
                )
            return done(desired, rule, why, all_props, best.signal, st)

        if proposal < current:
            return done(
                current,
                Rule.STABILIZED,
                f"proposal {proposal} held for the {spec.scale_down_window_s:g}s "
                f"window ({summary})",
                all_props,
                best.signal,
                st,
            )
        if proposal > current and view.starting:
            return done(
                current,
                Rule.COLD_START_PENDING,
                f"{len(view.starting)} pods starting ({summary})",
                all_props,
                best.signal,
                st,
            )
        return done(current, Rule.STEADY, summary, all_props, best.signal, st)

    @staticmethod
    def _clamp_hold(
        current: int, spec: ScalingSpec, rule: Rule, reason: str
    ) -> tuple[int, Rule, str]:
        if current < spec.min_replicas:
            return spec.min_replicas, Rule.MIN_REPLICAS, f"{reason}; below minReplicas"
        if current > spec.max_replicas:
            return spec.max_replicas, Rule.MAX_REPLICAS, f"{reason}; above maxReplicas"
        return current, rule, reason

    def _frozen(
        self,
        st: PolicyState,
        spec: ScalingSpec,
        now: float,
        current: int,
        why: str,
        done: Done,
        proposals: tuple[Proposal, ...] = (),
    ) -> tuple[Decision, PolicyState]:
        since = st.unavailable_since if st.unavailable_since is not None else now
        st = replace(st, unavailable_since=since)
        if spec.fallback_replicas is not None and now - since >= spec.fallback_after_s:
            return done(
                spec.fallback_replicas,
                Rule.FALLBACK,
                f"{why} for {now - since:.0f}s ≥ {spec.fallback_after_s:g}s: fallback "
                f"{spec.fallback_replicas} replicas",
                proposals,
                None,
                st,
            )
        desired, rule, reason = self._clamp_hold(
            current,
            spec,
            Rule.FROZEN_NO_DATA,
            f"{why} for {now - since:.0f}s: holding {current} replicas",
        )
        return done(desired, rule, reason, proposals, None, st)


def _recommend(
    recs: tuple[tuple[float, int], ...], now: float, proposal: int
) -> tuple[tuple[float, int], ...]:
    """Append ``(now, proposal)``; a run of equal proposals keeps only its latest entry.

    The windows take the min or max of the proposals younger than the window, and a run's
    latest entry is in any window that holds one of its entries, so the result is the same,
    while a steady target keeps a handful of entries instead of one per tick (a 300 s window at
    a 1 s tick was 301 entries per InferenceService). Example: ``((0, 3), (5, 4))`` + (6, 4)
    → ``((0, 3), (6, 4))``.
    """
    if recs and recs[-1][1] == proposal:
        return (*recs[:-1], (now, proposal))
    return (*recs, (now, proposal))


def _expired(entries: tuple[tuple[float, Any], ...], now: float, keep: float) -> bool:
    """Whether the oldest entry (entries are in time order) is older than ``keep``."""
    return bool(entries) and now - entries[0][0] > keep


def _prune(st: PolicyState, spec: ScalingSpec, now: float) -> PolicyState:
    """Forget what no window can look at any more (a no-op, no copy, when nothing expired)."""
    keep_recs = max(spec.scale_up_window_s, spec.scale_down_window_s)
    keep_events = max(spec.scale_up.longest_period_s, spec.scale_down.longest_period_s)
    if not (
        _expired(st.recommendations, now, keep_recs)
        or _expired(st.scale_events, now, keep_events)
        or _expired(st.history, now, spec.forecast_window_s)
    ):
        return st
    return replace(
        st,
        recommendations=tuple(r for r in st.recommendations if now - r[0] <= keep_recs),
        scale_events=tuple(e for e in st.scale_events if now - e[0] <= keep_events),
        history=tuple(h for h in st.history if now - h[0] <= spec.forecast_window_s),
    )
