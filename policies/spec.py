"""The resolved scaling spec of one InferenceService, and how it is resolved.

A :class:`ScalingSpec` is everything a policy needs to know about *what the operator wants*;
it is resolved from, in order of precedence:

1. **KServe's own fields** on ``spec.predictor``: ``minReplicas`` (default 1), ``maxReplicas``
   (``max(maxReplicas, minReplicas)`` as KServe's HPA reconciler does), ``scaleMetric`` /
   ``scaleTarget`` (``concurrency`` is honoured as in-flight requests per replica; ``cpu``,
   ``memory`` and ``rps`` are not LLM load signals and are ignored with a warning), and the
   newer ``autoScaling``: ``metrics[]`` entries of type ``External`` or ``PodMetric`` whose query
   names a vLLM or DCGM metric we read (``vllm:num_requests_waiting`` → queue depth, and so on;
   target ``AverageValue`` per replica, ``Value`` read the same way with a warning), and
   ``behavior`` (stabilization windows, tolerances, Pods/Percent policies, ``selectPolicy``).
2. **Annotations** ``llm-autoscaler.io/*`` (see :data:`ANNOTATIONS`, each documented there).
3. **Cluster defaults** (:class:`ClusterDefaults`, from the service settings).

A value set in a higher layer wins; a lower layer that disagrees gets a warning. An invalid
value (not a number, negative, min > max, unknown policy, ...) is an *error*: the resolution
returns no spec and the loop reports the errors (Event + condition) and leaves the replicas as
they are. Nothing is guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from policies.signals import Signal

PREFIX = "llm-autoscaler.io/"
POLICY_NAMES = ("default", "forecast")

CONCURRENCY = "concurrency"
"""Pseudo-signal: in-flight requests per replica (queue depth + running), KServe's
``scaleMetric: concurrency``."""

SCALABLE_SIGNALS: tuple[str, ...] = (
    Signal.QUEUE_DEPTH.value,
    Signal.KV_CACHE_USAGE.value,
    Signal.GPU_UTILIZATION.value,
    Signal.TTFT_P95.value,
    Signal.RUNNING.value,
    CONCURRENCY,
)
"""Signals a spec can put a per-replica target on."""

_IN_FLIGHT = (Signal.RUNNING.value, CONCURRENCY)
"""Two views of the requests a replica holds; an explicit target on one replaces the cluster
default on the other."""

ANNOTATIONS: dict[str, str] = {
    "policy": "`default` (target tracking) or `forecast` (default + trend pre-scaling)",
    "target-queue-depth": "waiting requests per ready replica (default 5); `off` disables",
    "target-kv-cache-usage": "KV-cache use per ready replica, 0-1 or `80%` (default 0.8); `off`",
    "target-gpu-utilization": "DCGM GPU utilization per replica, 0-100 (default off: a busy GPU "
    "reads ~100 % at any batch size, so it is no load signal for LLMs)",
    "target-ttft-p95": "TTFT p95 SLO in seconds per replica (default off), e.g. `2s`",
    "target-running": "running requests per ready replica (default 64); `off` disables",
    "target-concurrency": "in-flight (waiting + running) per ready replica (default off)",
    "tolerance": "no change while observed/target is within 1 ± this (default 0.1)",
    "panic-threshold": "observed/target at or above which scale-up skips its rate limit (2.0)",
    "scale-up-window": "scale-up stabilization: lowest recommendation over this window (0s)",
    "scale-down-window": "scale-down stabilization: highest recommendation over this (300s)",
    "scale-up-max-pods": "at most this many pods added per scale-up period (4)",
    "scale-up-max-percent": "or this percent of the replicas, whichever is more (100)",
    "scale-up-period": "scale-up rate-limit period (15s)",
    "scale-down-max-pods": "at most this many pods removed per scale-down period (1)",
    "scale-down-max-percent": "or this percent of the replicas, whichever is more (25)",
    "scale-down-period": "scale-down rate-limit period (30s)",
    "cold-start": "expected time from pod creation to Ready; pods younger than twice this "
    "count as capacity on the way, and `forecast` looks this far ahead (120s)",
    "max-sample-age": "a sample older than this is missing (60s)",
    "fallback-replicas": "replicas to set after metrics are unavailable for `fallback-after` "
    "(default: none, hold the current count)",
    "fallback-after": "how long metrics must be unavailable before the fallback applies (120s)",
    "forecast-window": "history the `forecast` policy fits its trend on (120s)",
}
"""Every ``llm-autoscaler.io/<name>`` annotation and what it means. Durations accept ``90``,
``90s``, ``5m``, ``1h30m``; fractions accept ``0.8`` or ``80%``."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """One HPA-style scaling policy: change at most ``value`` pods or percent per period."""

    kind: str  # "Pods" | "Percent"
    value: float
    period_s: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Rate limit of one direction; ``select`` is ``Max`` (most permissive), ``Min`` or
    ``Disabled`` (no change in that direction), as in the HPA's ``behavior``."""

    policies: tuple[RatePolicy, ...]
    select: str = "Max"

    @property
    def longest_period_s(self) -> float:
        return max((p.period_s for p in self.policies), default=0.0)


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """What the operator wants for one InferenceService. Times in seconds."""

    min_replicas: int = 1
    max_replicas: int = 1
    targets: Mapping[str, float] = field(default_factory=dict)
    """Per-replica target per signal name (see :data:`SCALABLE_SIGNALS`)."""
    policy: str = "default"
    tolerance_up: float = 0.1
    tolerance_down: float = 0.1
    panic_threshold: float = 2.0
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    scale_up: RateLimit = RateLimit((RatePolicy("Pods", 4, 15.0), RatePolicy("Percent", 100, 15.0)))
    scale_down: RateLimit = RateLimit(
        (RatePolicy("Pods", 1, 30.0), RatePolicy("Percent", 25, 30.0))
    )
    cold_start_s: float = 120.0
    max_sample_age_s: float = 60.0
    fallback_replicas: int | None = None
    fallback_after_s: float = 120.0
    forecast_window_s: float = 120.0


@dataclass(frozen=True, slots=True)
class ClusterDefaults:
    """The lowest layer: the service's settings. The spec fields it sets are the defaults."""

    spec: ScalingSpec = ScalingSpec(
        targets={
            Signal.QUEUE_DEPTH.value: 5.0,
            Signal.KV_CACHE_USAGE.value: 0.8,
            Signal.RUNNING.value: 64.0,
        }
    )


@dataclass(frozen=True, slots=True)
class SpecError:
    """One invalid value: where it came from and why it is rejected."""

    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """``spec`` is ``None`` exactly when ``errors`` is not empty."""

    spec: ScalingSpec | None
    errors: tuple[SpecError, ...] = ()
    warnings: tuple[str, ...] = ()


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")
_QUANTITY_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}

_QUERY_SIGNALS: tuple[tuple[str, str], ...] = (
    ("num_requests_waiting", Signal.QUEUE_DEPTH.value),
    ("num_requests_running", Signal.RUNNING.value),
    ("kv_cache_usage_perc", Signal.KV_CACHE_USAGE.value),
    ("gpu_cache_usage_perc", Signal.KV_CACHE_USAGE.value),
    ("DCGM_FI_DEV_GPU_UTIL", Signal.GPU_UTILIZATION.value),
    ("time_to_first_token_seconds", Signal.TTFT_P95.value),
)
"""Metric-name fragments in a KServe ``autoScaling`` query, and the signal each means."""


def _with(spec: ScalingSpec, attr: str, value: object) -> ScalingSpec:
    """``spec`` with one field, named at run time, replaced."""
    changes: dict[str, Any] = {attr: value}
    return replace(spec, **changes)


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m``, ``1h30m``; ``ValueError`` otherwise.

    Example: ``parse_duration("1m30s")`` → 90.0.
    """
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 5m, 1h30m)")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def parse_number(text: str | int | float) -> float:
    """A finite number from ``3``, ``0.8``, ``80%`` (→ 0.8) or a Kubernetes quantity
    (``500m`` → 0.5, ``2k`` → 2000); ``ValueError`` otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"not a number: {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = text.strip()
        scale, divide = 1.0, 1.0
        if t.endswith("%"):
            t, divide = t[:-1], 100.0
        elif t and t[-1] in _QUANTITY_SUFFIX:
            t, scale = t[:-1], _QUANTITY_SUFFIX[t[-1]]
        try:
            value = float(t) * scale / divide
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


class _Resolver:
    """Collects errors and warnings while one spec is resolved."""

    def __init__(self, isvc: Mapping[str, Any], defaults: ClusterDefaults) -> None:
        md = isvc.get("metadata") or {}
        self.annotations: Mapping[str, str] = md.get("annotations") or {}
        self.predictor: Mapping[str, Any] = (isvc.get("spec") or {}).get("predictor") or {}
        self.defaults = defaults.spec
        self.errors: list[SpecError] = []
        self.warnings: list[str] = []

    # ---- low-level readers -------------------------------------------------------------

    def _error(self, source: str, message: str) -> None:
        self.errors.append(SpecError(source, message))

    def annotation(self, name: str) -> str | None:
        value = self.annotations.get(PREFIX + name)
        return None if value is None else str(value)

    def number(self, name: str, lo: float = 0.0, hi: float = math.inf) -> float | None:
        raw = self.annotation(name)
        if raw is None:
            return None
        try:
            value = parse_number(raw)
        except ValueError as e:
            self._error(PREFIX + name, str(e))
            return None
        if not lo <= value <= hi:
            bound = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
            self._error(PREFIX + name, f"{raw!r} must be {bound}")
            return None
        return value

    def integer(self, name: str) -> int | None:
        value = self.number(name)
        if value is not None and value != int(value):
            self._error(PREFIX + name, f"{self.annotation(name)!r} must be a whole number")
            return None
        return None if value is None else int(value)

    def duration(self, name: str) -> float | None:
        raw = self.annotation(name)
        if raw is None:
            return None
        try:
            return parse_duration(raw)
        except ValueError as e:
            self._error(PREFIX + name, str(e))
            return None

    # ---- layers ------------------------------------------------------------------------

    def replicas(self) -> tuple[int, int]:
        lo_raw = self.predictor.get("minReplicas")
        hi_raw = self.predictor.get("maxReplicas")
        lo, hi = 1, 0
        if lo_raw is not None:
            if not isinstance(lo_raw, int) or isinstance(lo_raw, bool) or lo_raw < 0:
                self._error("spec.predictor.minReplicas", f"{lo_raw!r} must be an integer ≥ 0")
            else:
                lo = lo_raw
        if hi_raw is not None:
            if not isinstance(hi_raw, int) or isinstance(hi_raw, bool) or hi_raw < 0:
                self._error("spec.predictor.maxReplicas", f"{hi_raw!r} must be an integer ≥ 0")
            else:
                hi = hi_raw
        if hi and lo > hi:
            self._error("spec.predictor", f"minReplicas {lo} is greater than maxReplicas {hi}")
        return lo, max(hi, lo, 1)

    def kserve_targets(self) -> dict[str, float]:
        """Targets from ``scaleMetric``/``scaleTarget`` and ``autoScaling.metrics``."""
        out: dict[str, float] = {}
        metric = self.predictor.get("scaleMetric")
        target = self.predictor.get("scaleTarget")
        if metric is not None:
            if metric == CONCURRENCY:
                if target is None:
                    self._error("spec.predictor.scaleTarget", "scaleMetric concurrency needs it")
                else:
                    self._put(out, CONCURRENCY, target, "spec.predictor.scaleTarget")
            else:
                self.warnings.append(
                    f"spec.predictor.scaleMetric {metric!r} ignored: not an LLM load signal "
                    "(class external reads queue depth, KV cache, GPU utilization, TTFT)"
                )
        auto = self.predictor.get("autoScaling") or {}
        for i, m in enumerate(auto.get("metrics") or []):
            where = f"spec.predictor.autoScaling.metrics[{i}]"
            kind = m.get("type")
            body = m.get("external") if kind == "External" else m.get("podmetric")
            if kind == "Resource":
                self.warnings.append(f"{where}: Resource metrics ignored for class external")
                continue
            if kind not in ("External", "PodMetric") or not isinstance(body, Mapping):
                self._error(where, f"unsupported metric type {kind!r}")
                continue
            metric_def = body.get("metric") or {}
            query = " ".join(
                [str(metric_def.get("query") or "")]
                + [str(n) for n in metric_def.get("metricNames") or []]
            )
            signal = next((s for frag, s in _QUERY_SIGNALS if frag in query), None)
            if signal is None:
                self._error(
                    where,
                    f"query {query.strip()!r} names no signal we read "
                    "(vllm:num_requests_waiting, vllm:num_requests_running, "
                    "vllm:kv_cache_usage_perc, DCGM_FI_DEV_GPU_UTIL, "
                    "vllm:time_to_first_token_seconds)",
                )
                continue
            tgt = body.get("target") or {}
            ttype = tgt.get("type")
            raw = tgt.get("averageValue") if ttype == "AverageValue" else tgt.get("value")
            if ttype == "Value":
                self.warnings.append(
                    f"{where}: target type Value read as a per-replica average (an HPA "
                    "multiplies a Value target by the ready pods; that overshoots)"
                )
            elif ttype != "AverageValue":
                self._error(where, f"target type {ttype!r}: use AverageValue or Value")
                continue
            if raw is None:
                self._error(where, "target has no value")
                continue
            self._put(out, signal, raw, f"{where}.target")
        return out

    def _put(self, out: dict[str, float], signal: str, raw: Any, source: str) -> None:
        try:
            value = parse_number(raw)
        except ValueError as e:
            self._error(source, str(e))
            return
        if value <= 0:
            self._error(source, f"target {raw!r} must be greater than 0")
            return
        if signal == Signal.KV_CACHE_USAGE.value and value > 1:
            value = value / 100.0  # 80 means 80 %
        out[signal] = value

    def annotation_targets(self) -> dict[str, float | None]:
        """``None`` value: the annotation turns that signal off."""
        names = {
            Signal.QUEUE_DEPTH.value: "target-queue-depth",
            Signal.KV_CACHE_USAGE.value: "target-kv-cache-usage",
            Signal.GPU_UTILIZATION.value: "target-gpu-utilization",
            Signal.TTFT_P95.value: "target-ttft-p95",
            Signal.RUNNING.value: "target-running",
            CONCURRENCY: "target-concurrency",
        }
        out: dict[str, float | None] = {}
        for signal, name in names.items():
            raw = self.annotation(name)
            if raw is None:
                continue
            if raw.strip().lower() in ("off", "none", "disabled"):
                out[signal] = None
                continue
            if signal == Signal.TTFT_P95.value:
                value = self.duration(name)
                if value is not None and value <= 0:
                    self._error(PREFIX + name, f"{raw!r} must be greater than 0")
                    value = None
                if value is not None:
                    out[signal] = value
                continue
            hi = (
                1.0
                if signal == Signal.KV_CACHE_USAGE.value
                else (100.0 if signal == Signal.GPU_UTILIZATION.value else math.inf)
            )
            num = self.number(name, lo=0.0, hi=hi)
            if num is not None and num == 0:
                self._error(PREFIX + name, f"{raw!r} must be greater than 0 (or `off`)")
            elif num is not None:
                out[signal] = num
        return out

    def behavior(self, spec: ScalingSpec) -> ScalingSpec:
        """``autoScaling.behavior`` (HPA v2 shape) onto ``spec``."""
        behavior = (self.predictor.get("autoScaling") or {}).get("behavior") or {}
        for direction in ("scaleUp", "scaleDown"):
            rules = behavior.get(direction)
            if not rules:
                continue
            where = f"spec.predictor.autoScaling.behavior.{direction}"
            up = direction == "scaleUp"
            window = rules.get("stabilizationWindowSeconds")
            if window is not None:
                if not isinstance(window, int) or window < 0 or window > 3600:
                    self._error(where, f"stabilizationWindowSeconds {window!r}: 0-3600")
                else:
                    spec = _with(
                        spec, "scale_up_window_s" if up else "scale_down_window_s", float(window)
                    )
            tol = rules.get("tolerance")
            if tol is not None:
                try:
                    t = parse_number(tol)
                    if t < 0:
                        raise ValueError(f"tolerance {tol!r} must be ≥ 0")
                    spec = _with(spec, "tolerance_up" if up else "tolerance_down", t)
                except ValueError as e:
                    self._error(where, str(e))
            pols = rules.get("policies")
            select = rules.get("selectPolicy", "Max")
            if select not in ("Max", "Min", "Disabled"):
                self._error(where, f"selectPolicy {select!r}: Max, Min or Disabled")
                continue
            current = spec.scale_up if up else spec.scale_down
            parsed = current.policies
            if pols:
                out = []
                for p in pols:
                    kind, value, period = p.get("type"), p.get("value"), p.get("periodSeconds")
                    if kind not in ("Pods", "Percent"):
                        self._error(where, f"policy type {kind!r}: Pods or Percent")
                    elif not isinstance(value, int) or value <= 0:
                        self._error(where, f"policy value {value!r} must be an integer > 0")
                    elif not isinstance(period, int) or not 0 < period <= 1800:
                        self._error(where, f"periodSeconds {period!r}: 1-1800")
                    else:
                        out.append(RatePolicy(kind, float(value), float(period)))
                parsed = tuple(out)
            limit = RateLimit(parsed, select)
            spec = _with(spec, "scale_up" if up else "scale_down", limit)
        return spec

    def annotation_rates(self, spec: ScalingSpec, kserve: ScalingSpec) -> ScalingSpec:
        """Annotations for windows and rate limits; KServe ``behavior`` wins where set."""
        for direction in ("up", "down"):
            field_name = f"scale_{direction}"
            from_kserve = getattr(kserve, field_name) != getattr(self.defaults, field_name)
            limit: RateLimit = getattr(spec, field_name)
            pods = self.number(f"scale-{direction}-max-pods", lo=1)
            pct = self.number(f"scale-{direction}-max-percent", lo=1)
            period = self.duration(f"scale-{direction}-period")
            if pods is None and pct is None and period is None:
                continue
            if from_kserve:
                self.warnings.append(
                    f"{PREFIX}scale-{direction}-* ignored: autoScaling.behavior sets them"
                )
                continue
            by_kind = {p.kind: p for p in limit.policies}
            new = []
            for kind, value in (("Pods", pods), ("Percent", pct)):
                old = by_kind.get(kind)
                v = value if value is not None else (old.value if old else None)
                if v is None:
                    continue
                per = period if period is not None else (old.period_s if old else 15.0)
                if per <= 0:
                    self._error(PREFIX + f"scale-{direction}-period", "must be greater than 0")
                    per = 15.0
                new.append(RatePolicy(kind, v, per))
            spec = _with(spec, field_name, RateLimit(tuple(new), limit.select))
        for name, attr in (
            ("scale-up-window", "scale_up_window_s"),
            ("scale-down-window", "scale_down_window_s"),
        ):
            value = self.duration(name)
            if value is None:
                continue
            if getattr(kserve, attr) != getattr(self.defaults, attr):
                self.warnings.append(f"{PREFIX}{name} ignored: autoScaling.behavior sets it")
            else:
                spec = _with(spec, attr, value)
        return spec


def resolve_spec(isvc: Mapping[str, Any], defaults: ClusterDefaults | None = None) -> Resolution:
    """Resolve the :class:`ScalingSpec` of ``isvc`` (a raw InferenceService object).

    Example: an ISVC with ``minReplicas: 1``, ``maxReplicas: 8`` and the annotation
    ``llm-autoscaler.io/target-queue-depth: "3"`` resolves to min 1, max 8, targets
    ``{queue_depth: 3.0, kv_cache_usage: 0.8, running: 64.0}`` (KV and running targets from
    the cluster defaults).
    """
    r = _Resolver(isvc, defaults or ClusterDefaults())
    base = r.defaults
    lo, hi = r.replicas()

    # targets: KServe > annotation > default, per signal
    kserve_t = r.kserve_targets()
    ann_t = r.annotation_targets()
    targets: dict[str, float] = {}
    for signal in SCALABLE_SIGNALS:
        if signal in kserve_t:
            if signal in ann_t and ann_t[signal] != kserve_t[signal]:
                r.warnings.append(
                    f"{PREFIX}target for {signal} ignored: spec.predictor.autoScaling sets it"
                )
            targets[signal] = kserve_t[signal]
        elif signal in ann_t:
            value = ann_t[signal]
            if value is not None:
                targets[signal] = value
        elif signal in base.targets and not (
            signal in _IN_FLIGHT and any(s in kserve_t or s in ann_t for s in _IN_FLIGHT)
        ):
            # A default in-flight target gives way to an explicit one on the other in-flight
            # signal: `scaleTarget: 100` on concurrency must not be overruled by running 64.
            targets[signal] = base.targets[signal]
    if not targets and not r.errors:
        r._error(PREFIX + "target-*", "every signal is turned off; nothing to scale on")

    policy = r.annotation("policy") or base.policy
    if policy not in POLICY_NAMES:
        r._error(PREFIX + "policy", f"unknown policy {policy!r}; known: {', '.join(POLICY_NAMES)}")

    spec = replace(base, min_replicas=lo, max_replicas=hi, targets=targets, policy=policy)
    kserve_spec = r.behavior(spec)
    spec = r.annotation_rates(kserve_spec, kserve_spec)

    tol = r.number("tolerance", lo=0.0, hi=1.0)
    if tol is not None:
        if kserve_spec.tolerance_up != base.tolerance_up or (
            kserve_spec.tolerance_down != base.tolerance_down
        ):
            r.warnings.append(f"{PREFIX}tolerance ignored: autoScaling.behavior sets it")
        else:
            spec = replace(spec, tolerance_up=tol, tolerance_down=tol)
    panic = r.number("panic-threshold", lo=1.0)
    if panic is not None:
        if panic == 1.0:
            r._error(PREFIX + "panic-threshold", "must be greater than 1")
        else:
            spec = replace(spec, panic_threshold=panic)
    for name, attr in (
        ("cold-start", "cold_start_s"),
        ("max-sample-age", "max_sample_age_s"),
        ("fallback-after", "fallback_after_s"),
        ("forecast-window", "forecast_window_s"),
    ):
        value = r.duration(name)
        if value is not None:
            spec = _with(spec, attr, value)
    if spec.max_sample_age_s <= 0:
        r._error(PREFIX + "max-sample-age", "must be greater than 0")
    fallback = r.integer("fallback-replicas")
    if fallback is not None:
        if not lo <= fallback <= hi:
            r._error(
                PREFIX + "fallback-replicas",
                f"{fallback} is outside minReplicas..maxReplicas ({lo}..{hi})",
            )
        else:
            spec = replace(spec, fallback_replicas=fallback)

    known = {PREFIX + k for k in ANNOTATIONS}
    for key in r.annotations:
        if key.startswith(PREFIX) and key not in known and not key.startswith(PREFIX + "status"):
            r.warnings.append(f"unknown annotation {key} ignored")

    if r.errors:
        return Resolution(None, tuple(r.errors), tuple(r.warnings))
    return Resolution(spec, (), tuple(r.warnings))
