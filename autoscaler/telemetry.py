"""The service's own metrics (``llm_autoscaler_*``), on a registry of its own.

Created from an injected :class:`prometheus_client.CollectorRegistry`, so tests read exact
values from a fresh registry and two services in one process never collide. Names follow
Prometheus conventions: base units (seconds, ratios), ``_total`` for counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

ISVC = ("namespace", "isvc")

GAUGES = (
    ("llm_autoscaler_desired_replicas", "Replicas the policy decided on."),
    ("llm_autoscaler_current_replicas", "spec.replicas of the predictor's scale."),
    ("llm_autoscaler_min_replicas", "Resolved minimum replicas."),
    ("llm_autoscaler_max_replicas", "Resolved maximum replicas."),
    ("llm_autoscaler_ready_replicas", "Ready predictor pods."),
)
"""The per-InferenceService gauges, in the order of :attr:`IsvcRow.gauges`."""
SIGNAL_GAUGES = (
    ("llm_autoscaler_signal_observed", "Observed per-replica value of a signal."),
    ("llm_autoscaler_signal_target", "Target value of a signal."),
)


class IsvcRow:
    """One InferenceService's series: its gauges, per signal (observed, target), and its
    decision counts by (rule, direction)."""

    __slots__ = ("decisions", "gauges", "signals")

    def __init__(self) -> None:
        self.gauges: list[float | None] = [None] * len(GAUGES)
        self.signals: dict[str, list[float | None]] = {}
        self.decisions: dict[tuple[str, str], int] = {}


DECISIONS_HELP = "Scaling decisions by winning rule and direction (up, down, none)."


class IsvcSeries(Collector):
    """The per-InferenceService series, rendered from plain rows when scraped.

    prometheus_client keeps one child object (lock, value holder, label tuple) per series:
    ~700 bytes each, a dozen per InferenceService, ~80 MB at 10k. A row here is a list and
    two small dicts; the scrape builds the metric families from them (the loop and the
    scrape both run on the event loop, so a scrape never sees a row half written).
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], IsvcRow] = {}

    def row(self, namespace: str, isvc: str) -> IsvcRow:
        key = (namespace, isvc)
        r = self.rows.get(key)
        if r is None:
            r = self.rows[key] = IsvcRow()
        return r

    def drop(self, namespace: str, isvc: str) -> None:
        """Drop the gauges of a gone InferenceService (its counters stay, as counters do)."""
        r = self.rows.get((namespace, isvc))
        if r is None:
            return
        if r.decisions:
            r.gauges = [None] * len(GAUGES)
            r.signals = {}
        else:
            del self.rows[(namespace, isvc)]

    @staticmethod
    def _families() -> tuple[list[GaugeMetricFamily], list[GaugeMetricFamily], CounterMetricFamily]:
        return (
            [GaugeMetricFamily(n, d, labels=ISVC) for n, d in GAUGES],
            [GaugeMetricFamily(n, d, labels=(*ISVC, "signal")) for n, d in SIGNAL_GAUGES],
            CounterMetricFamily(
                "llm_autoscaler_decisions", DECISIONS_HELP, labels=(*ISVC, "rule", "direction")
            ),
        )

    def describe(self) -> list[Metric]:
        gauges, signals, decisions = self._families()
        return [*gauges, *signals, decisions]

    def collect(self) -> Iterator[Metric]:
        gauges, signals, decisions = self._families()
        for (ns, isvc), r in self.rows.items():
            for fam, v in zip(gauges, r.gauges, strict=True):
                if v is not None:
                    fam.add_metric((ns, isvc), v)
            for sig, values in r.signals.items():
                for fam, v in zip(signals, values, strict=True):
                    if v is not None:
                        fam.add_metric((ns, isvc, sig), v)
            for (rule, direction), n in r.decisions.items():
                decisions.add_metric((ns, isvc, rule, direction), n)
        yield from gauges
        yield from signals
        yield decisions


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.isvcs = IsvcSeries()
        """desired/current/min/max/ready replicas, signal observed/target, decisions_total."""
        r.register(self.isvcs)
        self.scale_writes = Counter(
            "llm_autoscaler_scale_writes_total",
            "Writes to the scale subresource.",
            (*ISVC, "result"),
            registry=r,
        )
        self.tick = Histogram(
            "llm_autoscaler_tick_duration_seconds",
            "Time of one scaling-loop tick (snapshot, decisions, writes).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.snapshot_age = Gauge(
            "llm_autoscaler_snapshot_age_seconds",
            "Age of the newest metric snapshot.",
            ("source",),
            registry=r,
        )
        self.snapshot_available = Gauge(
            "llm_autoscaler_snapshot_available",
            "1 when the metric source answered on the last tick.",
            ("source",),
            registry=r,
        )
        self.queries = Counter(
            "llm_autoscaler_source_queries_total",
            "Queries or scrapes made by the metric source.",
            ("source",),
            registry=r,
        )
        self.errors = Counter(
            "llm_autoscaler_errors_total", "Errors by kind.", ("kind",), registry=r
        )
        self.leader = Gauge(
            "llm_autoscaler_leader", "1 while this replica holds the leader Lease.", registry=r
        )
        self.reconciles = Counter(
            "llm_autoscaler_reconcile_total",
            "InferenceService reconciles by result.",
            ("result",),
            registry=r,
        )
        self.targets = Gauge(
            "llm_autoscaler_targets", "InferenceServices the loop scales.", registry=r
        )
        self.api_requests = Counter(
            "llm_autoscaler_metrics_api_requests_total",
            "External metrics API requests by HTTP status code.",
            ("code",),
            registry=r,
        )

    def forget(self, namespace: str, isvc: str) -> None:
        """Drop the series of an InferenceService that is gone (no stale series)."""
        self.isvcs.drop(namespace, isvc)
