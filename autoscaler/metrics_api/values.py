"""From a snapshot to an ``ExternalMetricValueList``: selection, folding, quantities. Pure.

:func:`select_items` applies a metric's form (:mod:`~autoscaler.metrics_api.catalog`) to the
InferenceServices of one namespace that a selector matches; :func:`value_list` renders the
result as the JSON the HPA controller decodes. Values are Kubernetes quantities in milli-units
(``"1500m"``, or ``"2"`` when whole), as the HPA compares them by ``MilliValue()``; the
timestamp is the oldest sample folded into the value (the value is at least that fresh).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.metrics_api.catalog import Form, MetricSpec
from autoscaler.metrics_api.selectors import Selector
from policies.signals import MetricsSnapshot, Sample, TargetKey, TargetSignals

__all__ = ["GROUP", "ISVC_LABEL", "VERSION", "Item", "quantity", "select_items", "value_list"]

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
POD_LABEL = "pod"


@dataclass(frozen=True, slots=True)
class Item:
    """One ``ExternalMetricValue``: its labels, value and sample time (unix seconds)."""

    labels: Mapping[str, str]
    value: float
    at: float


def quantity(value: float) -> str:
    """A finite float as a Kubernetes quantity, rounded to milli-units: 1.5 → ``"1500m"``."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def rfc3339(at: float) -> str:
    """Unix seconds as ``metav1.Time`` (RFC 3339, UTC, whole seconds)."""
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fresh(sample: Sample | None, now: float, max_age: float | None) -> bool:
    if sample is None or not math.isfinite(sample.value):
        return False
    return max_age is None or sample.is_fresh(now, max_age)


def fold(target: TargetSignals, spec: MetricSpec, now: float, max_age: float | None) -> list[Item]:
    """The items of one InferenceService for ``spec`` (empty when no Ready pod reports)."""
    ready = [p for p in target.pods if p.ready]
    samples: list[tuple[str, Sample]] = []
    for p in ready:
        s = p.get(spec.signal)
        if s is not None and _fresh(s, now, max_age):
            samples.append((p.pod, s))
    if not samples:
        return []
    base = {ISVC_LABEL: target.key.name}
    if spec.form is Form.PER_POD:
        return [Item({**base, POD_LABEL: pod}, s.value, s.at) for pod, s in samples]
    values = [s.value for _, s in samples]
    at = min(s.at for _, s in samples)
    if spec.form is Form.SUM:
        total = math.fsum(values)
        if len(values) < len(ready):  # the pods without a sample count at the mean, not 0
            total = total / len(values) * len(ready)
        return [Item(base, total, at)]
    if spec.form is Form.AVG:
        return [Item(base, math.fsum(values) / len(values), at)]
    return [Item(base, max(values), at)]


def selectable_labels(key: TargetKey, labels: Mapping[str, str]) -> dict[str, str]:
    """What a selector is matched against: the InferenceService's labels and its name."""
    return {**labels, ISVC_LABEL: key.name}


def select_items(
    snapshot: MetricsSnapshot,
    labels: Mapping[TargetKey, Mapping[str, str]],
    namespace: str,
    spec: MetricSpec,
    selector: Selector,
    now: float,
    max_sample_age: float | None = None,
) -> list[Item]:
    """Items of every InferenceService in ``namespace`` matching ``selector``, sorted by name.

    ``labels`` holds the InferenceServices' own labels; one missing from it is matched on its
    name only.
    """
    out: list[Item] = []
    targets: Iterable[TargetSignals] = snapshot.targets.values()
    for target in sorted(targets, key=lambda t: t.key.name):
        if target.key.namespace != namespace:
            continue
        if selector.matches(selectable_labels(target.key, labels.get(target.key, {}))):
            out.extend(fold(target, spec, now, max_sample_age))
    return out


def value_list(spec: MetricSpec, items: Iterable[Item]) -> dict[str, Any]:
    """The ``ExternalMetricValueList`` JSON of ``items``."""
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {},
        "items": [
            {
                "metricName": spec.name,
                "metricLabels": dict(i.labels),
                "timestamp": rfc3339(i.at),
                "value": quantity(i.value),
            }
            for i in items
        ],
    }
