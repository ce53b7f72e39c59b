"""The metrics this API serves: names, units, and how pods are folded into one value.

Every name is ``llm-<signal>`` or ``llm-<signal>-<form>``. The signal is one field of a
:class:`~policies.signals.PodSignals`; the form says how the pods of one InferenceService
become the values of one response:

========== ====================================================================================
form       items returned for each matching InferenceService
========== ====================================================================================
``sum``    one item: the sum over its Ready pods
``avg``    one item: the mean over its Ready pods that have a fresh sample
``max``    one item: the largest value among its Ready pods
``per-pod``one item per Ready pod with a fresh sample (label ``pod``)
(none)     the signal's default form (the third column below)
========== ====================================================================================

================================ ============================== ========= =================
name (default form)              source                         unit      default form
================================ ============================== ========= =================
``llm-queue-depth``              ``vllm:num_requests_waiting``  requests  sum
``llm-running``                  ``vllm:num_requests_running``  requests  sum
``llm-kv-cache-usage``           ``vllm:kv_cache_usage_perc``   0–1       avg
``llm-gpu-utilization``          ``DCGM_FI_DEV_GPU_UTIL``       0–100 %   avg
``llm-ttft-p50-seconds``         TTFT histogram, p50            seconds   max
``llm-ttft-p95-seconds``         TTFT histogram, p95            seconds   max
``llm-preemption-rate``          ``vllm:num_preemptions_total`` 1/s       sum
================================ ============================== ========= =================

**What an HPA target means with each form.** The HPA sums every item it receives
(``usage``), then for an ``External`` metric:

* ``target.type: AverageValue`` → ``desired = ceil(usage / averageValue)``. Use it with a
  *sum*: ``llm-queue-depth`` with ``averageValue: 5`` means "five waiting requests per
  replica", whatever the number of replicas.
* ``target.type: Value`` → ``desired = ceil(readyReplicas × usage / value)``. Use it with an
  *avg* or *max*: ``llm-kv-cache-usage`` with ``value: 800m`` means "keep the mean KV-cache
  use near 0.8", the usual utilization target.

A ``sum`` paired with ``Value`` multiplies the backlog by the ready replicas at every sync and
overshoots (``llm-d/llm-d-autoscaling#1019``); an ``avg`` paired with ``AverageValue`` ignores
the replica count. The selector must match one InferenceService for ``avg``/``max`` to mean
what they say (the HPA would add the values of several).

**Missing is not zero.** Only Ready pods count, and only samples that are finite and fresh.
``sum`` counts every Ready pod: when some have no fresh sample, they are counted at the mean
of those that have one (the sum over *all* Ready pods, estimated), never at 0. An
InferenceService none of whose Ready pods has a fresh sample yields no item; a response with
no items makes the HPA report ``FailedGetExternalMetric`` and leave the replicas alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies.signals import Signal

__all__ = ["METRICS", "PREFIX", "Form", "MetricSpec", "lookup"]

PREFIX = "llm-"


class Form(StrEnum):
    """How the pods of one InferenceService are folded into the response's items."""

    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    PER_POD = "per-pod"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One served metric name."""

    name: str
    signal: Signal
    form: Form
    unit: str
    description: str


_SIGNALS: tuple[tuple[str, Signal, Form, str, str], ...] = (
    ("queue-depth", Signal.QUEUE_DEPTH, Form.SUM, "requests", "requests waiting in vLLM"),
    ("running", Signal.RUNNING, Form.SUM, "requests", "requests running in vLLM"),
    ("kv-cache-usage", Signal.KV_CACHE_USAGE, Form.AVG, "fraction 0-1", "KV-cache use"),
    ("gpu-utilization", Signal.GPU_UTILIZATION, Form.AVG, "percent 0-100", "GPU utilization"),
    ("ttft-p50-seconds", Signal.TTFT_P50, Form.MAX, "seconds", "time to first token, p50"),
    ("ttft-p95-seconds", Signal.TTFT_P95, Form.MAX, "seconds", "time to first token, p95"),
    ("preemption-rate", Signal.PREEMPTION_RATE, Form.SUM, "per second", "vLLM preemptions"),
)


def _catalog() -> dict[str, MetricSpec]:
    out: dict[str, MetricSpec] = {}
    for stem, signal, default, unit, what in _SIGNALS:
        base = PREFIX + stem
        out[base] = MetricSpec(base, signal, default, unit, f"{what} ({default.value})")
        for form in Form:
            name = f"{base}-{form.value}"
            out[name] = MetricSpec(name, signal, form, unit, f"{what} ({form.value})")
    return out


METRICS: dict[str, MetricSpec] = _catalog()
"""Every served metric by name, in discovery order."""

BASE_NAMES: frozenset[str] = frozenset(PREFIX + stem for stem, *_ in _SIGNALS)
"""The metric names without a fold suffix (each with its default fold)."""


def lookup(name: str) -> MetricSpec | None:
    """The metric called ``name`` (exactly; names are case-sensitive), or ``None``."""
    return METRICS.get(name)
