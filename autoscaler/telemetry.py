"""The service's own metrics (``llm_autoscaler_*``), on a registry of its own.

Created from an injected :class:`prometheus_client.CollectorRegistry`, so tests read exact
values from a fresh registry and two services in one process never collide. Names follow
Prometheus conventions: base units (seconds, ratios), ``_total`` for counters.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ISVC = ("namespace", "isvc")


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.desired = Gauge(
            "llm_autoscaler_desired_replicas", "Replicas the policy decided on.", ISVC, registry=r
        )
        self.current = Gauge(
            "llm_autoscaler_current_replicas",
            "spec.replicas of the predictor's scale.",
            ISVC,
            registry=r,
        )
        self.ready = Gauge(
            "llm_autoscaler_ready_replicas", "Ready predictor pods.", ISVC, registry=r
        )
        self.min = Gauge(
            "llm_autoscaler_min_replicas", "Resolved minimum replicas.", ISVC, registry=r
        )
        self.max = Gauge(
            "llm_autoscaler_max_replicas", "Resolved maximum replicas.", ISVC, registry=r
        )
        self.observed = Gauge(
            "llm_autoscaler_signal_observed",
            "Observed per-replica value of a signal.",
            (*ISVC, "signal"),
            registry=r,
        )
        self.target = Gauge(
            "llm_autoscaler_signal_target",
            "Target value of a signal.",
            (*ISVC, "signal"),
            registry=r,
        )
        self.decisions = Counter(
            "llm_autoscaler_decisions_total",
            "Scaling decisions by winning rule and direction (up, down, none).",
            (*ISVC, "rule", "direction"),
            registry=r,
        )
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
        for g in (self.desired, self.current, self.ready, self.min, self.max):
            with contextlib.suppress(KeyError):
                g.remove(namespace, isvc)
