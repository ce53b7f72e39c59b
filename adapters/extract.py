"""Per-pod signals out of parsed vLLM and dcgm-exporter expositions.

vLLM (``../shared/fixtures/vllm-metrics.md``): queue depth ``<prefix>num_requests_waiting``,
``<prefix>num_requests_running``, KV-cache use ``<prefix>kv_cache_usage_perc`` (fraction 0-1;
``<prefix>gpu_cache_usage_perc`` before 0.9.2), the ``<prefix>time_to_first_token_seconds``
histogram and ``<prefix>num_preemptions_total``. V1 labels every series with ``engine`` (one
per data-parallel engine): counts are summed across engines, fractions averaged, histogram
buckets summed by ``le``. The prefix is ``vllm:``, or ``kserve_vllm:`` in some KServe builds.

dcgm-exporter (``../shared/fixtures/dcgm-metrics.md``): ``DCGM_FI_DEV_GPU_UTIL`` (0-100) and
``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (0-1) per GPU, attributed to a pod by ``namespace``/``pod``
(``exported_namespace``/``exported_pod`` after Prometheus relabelling, ``pod_namespace``/
``pod_name`` with ``--use-old-namespace``). GPUs without those labels are unattributed.

Missing is ``None``, never 0: a signal without series, or with a NaN/±Inf series among those
aggregated, is ``None``. A GPU value outside its range (dcgm's occasional 4294967295) is
``None`` for that GPU; a pod's utilization is the mean over its GPUs with a valid value.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from adapters.exposition import Family, Labels

__all__ = [
    "DCGM_FAMILIES",
    "VLLM_PREFIX",
    "Buckets",
    "GpuSignals",
    "PodGpus",
    "PodKey",
    "VllmSignals",
    "aggregate_vllm",
    "extract_gpus",
    "extract_vllm",
    "gpus_by_pod",
    "histogram_quantile",
    "pod_identity",
    "vllm_families",
]

VLLM_PREFIX = "vllm:"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
DCGM_FAMILIES = frozenset({GPU_UTIL, GR_ENGINE_ACTIVE})
_VLLM = (
    "num_requests_waiting",
    "num_requests_running",
    "kv_cache_usage_perc",
    "gpu_cache_usage_perc",
    "time_to_first_token_seconds",
    "num_preemptions",
)
IDENTITY_LABELS = (
    ("exported_namespace", "exported_pod", "exported_container"),
    ("namespace", "pod", "container"),
    ("pod_namespace", "pod_name", "container_name"),
)
"""Pod attribution labels, most specific first: after a Prometheus scrape with
``honorLabels: false`` the plain ``namespace``/``pod`` are the exporter's own."""

PodKey = tuple[str, str]
"""``(namespace, pod name)``."""
Buckets = tuple[tuple[float, float], ...]
"""A cumulative histogram: ``(upper bound, count)`` pairs sorted by bound, ``+Inf`` last."""


def vllm_families(prefix: str = VLLM_PREFIX) -> frozenset[str]:
    """The family names to ask :func:`adapters.exposition.parse` for."""
    return frozenset(prefix + name for name in _VLLM)


def _attribution(labels: Labels) -> tuple[str, str, str | None] | None:
    """``(namespace, pod, container)`` from the first scheme that names a pod; empty values
    (old exporters print ``pod=""`` on idle GPUs) are absent."""
    for ns_label, pod_label, container_label in IDENTITY_LABELS:
        ns, pod = labels.get(ns_label), labels.get(pod_label)
        if ns and pod:
            return ns, pod, labels.get(container_label) or None
    return None


def pod_identity(labels: Labels) -> PodKey | None:
    """``(namespace, pod)`` from the attribution labels, or ``None``."""
    found = _attribution(labels)
    return None if found is None else found[:2]


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q``-quantile (0 <= q <= 1) of a cumulative histogram, as PromQL computes it.

    Buckets are sorted, equal bounds merged, counts made monotonic. With ``total`` the ``+Inf``
    count, ``rank = q * total`` falls in the first bucket whose count reaches it; the result is
    interpolated linearly inside it: ``lower + (upper - lower) * (rank - below) / (count -
    below)``, the lowest bucket starting at 0 (if its bound is positive). A rank in the
    ``+Inf`` bucket gives the highest finite bound. ``None`` (PromQL: NaN) with no ``+Inf``
    bucket, fewer than two buckets or no observations. Example: ``{0.1: 2, 0.5: 6, +Inf: 8}``,
    q = 0.5: rank 4 falls in (0.1, 0.5] holding 4, 2 below: 0.1 + 0.4 * (4 - 2) / 4 = 0.3.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside [0, 1]")
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    bs = sorted(merged.items())
    if len(bs) < 2 or bs[-1][0] != math.inf:
        return None
    counts = [c for _, c in bs]
    if not all(map(math.isfinite, counts)):
        return None
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    b = next((i for i in range(len(bs) - 1) if counts[i] >= rank), len(bs) - 1)
    if b == len(bs) - 1:
        return bs[-2][0]
    upper = bs[b][0]
    if b == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if b == 0 else (bs[b - 1][0], counts[b - 1])
    if counts[b] - below <= 0:
        return None
    return lower + (upper - lower) * (rank - below) / (counts[b] - below)


@dataclass(frozen=True, slots=True)
class VllmSignals:
    """One vLLM server's signals (all engines). ``None`` means missing.

    ``namespace``/``pod`` come from attribution labels on the series (a federated or relabelled
    exposition) or from the caller; ``model`` is ``model_name`` (several, comma-separated).
    """

    namespace: str | None
    pod: str | None
    model: str | None
    engines: int
    queue_depth: float | None
    running: float | None
    kv_cache_usage: float | None
    preemptions_total: float | None
    ttft_buckets: Buckets
    """Cumulative since the server started, summed across engines; ``()`` when not exposed."""

    @property
    def ttft_p50_seconds(self) -> float | None:
        """Median TTFT since the server started (computed on demand: the direct-scrape source
        uses windowed bucket deltas instead, so it never pays for this)."""
        return histogram_quantile(0.5, self.ttft_buckets)

    @property
    def ttft_p95_seconds(self) -> float | None:
        """95th-percentile TTFT since the server started (on demand, as the median)."""
        return histogram_quantile(0.95, self.ttft_buckets)


@dataclass(slots=True)
class _Acc:
    """Series of one group, collected before aggregation."""

    waiting: list[float] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    kv: list[float] = field(default_factory=list)
    gpu_cache: list[float] = field(default_factory=list)
    preemptions: list[float] = field(default_factory=list)
    buckets: dict[float, float] = field(default_factory=dict)
    engines: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)


_Group = tuple[str | None, str | None, str | None]


def _sum(values: Sequence[float]) -> float | None:
    if not values or not all(map(math.isfinite, values)):
        return None
    total = sum(values)
    return total if math.isfinite(total) else None


def _mean(values: Sequence[float]) -> float | None:
    total = _sum(values)
    return None if total is None else total / len(values)


def _collect(
    families: Mapping[str, Family], prefix: str, by_pod: bool, pod: PodKey | None = None
) -> dict[_Group, _Acc]:
    """The vLLM series grouped by (namespace, pod) when labelled (else ``pod``, else by
    ``model_name``); with ``by_pod=False`` all in one group."""
    slots = {
        prefix + "num_requests_waiting": "waiting",
        prefix + "num_requests_running": "running",
        prefix + "kv_cache_usage_perc": "kv",
        prefix + "gpu_cache_usage_perc": "gpu_cache",
        prefix + "num_preemptions_total": "preemptions",
        prefix + "num_preemptions": "preemptions",
        prefix + "time_to_first_token_seconds_bucket": "buckets",
    }
    groups: dict[_Group, _Acc] = {}
    for fname in vllm_families(prefix):
        fam = families.get(fname)
        for sample in fam.samples if fam is not None else ():
            slot = slots.get(sample.name)
            if slot is None:
                continue  # _created, _sum, _count, ...
            labels = sample.labels
            model = labels.get("model_name")
            group: _Group = (None, None, None)
            if by_pod:
                ident = pod_identity(labels) or pod
                group = (None, None, model) if ident is None else (*ident, None)
            acc = groups.get(group)
            if acc is None:
                acc = groups[group] = _Acc()
            if model is not None:
                acc.models.add(model)
            acc.engines.add(labels.get("engine", ""))
            if slot != "buckets":
                getattr(acc, slot).append(sample.value)
                continue
            try:
                bound = float(labels.get("le", "nan"))
            except ValueError:
                continue
            if not math.isnan(bound):
                acc.buckets[bound] = acc.buckets.get(bound, 0.0) + sample.value
    return groups


def _signals(group: _Group, acc: _Acc) -> VllmSignals:
    buckets: Buckets = tuple(sorted(acc.buckets.items()))
    return VllmSignals(
        namespace=group[0],
        pod=group[1],
        model=",".join(sorted(acc.models)) or None,
        engines=len(acc.engines),
        queue_depth=_sum(acc.waiting),
        running=_sum(acc.running),
        kv_cache_usage=_mean(acc.kv or acc.gpu_cache),
        preemptions_total=_sum(acc.preemptions),
        ttft_buckets=buckets,
    )


def extract_vllm(
    families: Mapping[str, Family], prefix: str = VLLM_PREFIX, pod: PodKey | None = None
) -> list[VllmSignals]:
    """One entry per pod named by attribution labels on the series (a federated exposition);
    series without them (a pod's own ``/metrics``) are pod ``pod`` when given, else one entry
    per ``model_name``."""
    groups = _collect(families, prefix, by_pod=True, pod=pod)
    out = [_signals(g, acc) for g, acc in groups.items()]
    return sorted(out, key=lambda s: (s.namespace or "", s.pod or "", s.model or ""))


def aggregate_vllm(families: Mapping[str, Family], prefix: str = VLLM_PREFIX) -> VllmSignals | None:
    """Every vLLM series as one server (a pod's own ``/metrics``); ``None`` when there are none."""
    acc = _collect(families, prefix, by_pod=False).get((None, None, None))
    return None if acc is None else _signals((None, None, None), acc)


@dataclass(frozen=True, slots=True)
class GpuSignals:
    """One GPU (or MIG instance) as dcgm-exporter reports it."""

    hostname: str | None
    gpu: int | None
    uuid: str | None
    namespace: str | None
    pod: str | None
    container: str | None
    utilization: float | None
    """``DCGM_FI_DEV_GPU_UTIL``, percent 0-100."""
    engine_active: float | None
    """``DCGM_FI_PROF_GR_ENGINE_ACTIVE``, fraction 0-1 (DCP metrics, Volta and newer)."""


def _gpu(labels: Labels) -> GpuSignals:
    """A GPU's identity from one of its series (values filled in by the caller)."""
    index = labels.get("gpu")
    namespace, pod, container = _attribution(labels) or (None, None, None)
    return GpuSignals(
        hostname=labels.get("Hostname") or labels.get("hostname") or None,
        gpu=int(index) if index is not None and index.isdecimal() else None,
        uuid=labels.get("UUID") or labels.get("uuid") or None,
        namespace=namespace,
        pod=pod,
        container=container,
        utilization=None,
        engine_active=None,
    )


def extract_gpus(families: Mapping[str, Family]) -> list[GpuSignals]:
    """Every GPU (or MIG instance) in the dcgm-exporter families, in exposition order."""
    found: dict[tuple[str | None, str | None, str | None], GpuSignals] = {}
    for fname, util, high in ((GPU_UTIL, True, 100.0), (GR_ENGINE_ACTIVE, False, 1.0)):
        fam = families.get(fname)
        for sample in fam.samples if fam is not None else ():
            if sample.name != fname:
                continue
            labels = sample.labels
            key = (
                labels.get("Hostname") or labels.get("hostname"),
                labels.get("UUID") or labels.get("uuid") or labels.get("gpu"),
                labels.get("GPU_I_ID"),
            )
            gpu = found.get(key) or _gpu(labels)
            value = sample.value if 0.0 <= sample.value <= high else None  # NaN fails too
            if util:
                found[key] = dataclasses.replace(gpu, utilization=value)
            else:
                found[key] = dataclasses.replace(gpu, engine_active=value)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class PodGpus:
    """The GPUs attributed to one pod, and their mean utilization."""

    namespace: str
    pod: str
    gpus: tuple[GpuSignals, ...]

    @property
    def indices(self) -> list[int]:
        return sorted({g.gpu for g in self.gpus if g.gpu is not None})

    @property
    def utilization(self) -> float | None:
        """Mean ``DCGM_FI_DEV_GPU_UTIL`` over the pod's GPUs that report a valid value."""
        return _mean([g.utilization for g in self.gpus if g.utilization is not None])

    @property
    def engine_active(self) -> float | None:
        """Mean ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` over the GPUs that report it."""
        return _mean([g.engine_active for g in self.gpus if g.engine_active is not None])


def gpus_by_pod(gpus: Iterable[GpuSignals]) -> tuple[dict[PodKey, PodGpus], list[GpuSignals]]:
    """Attributed GPUs grouped per ``(namespace, pod)``, and the unattributed ones."""
    per_pod: dict[PodKey, list[GpuSignals]] = {}
    loose: list[GpuSignals] = []
    for g in gpus:
        if g.namespace and g.pod:
            per_pod.setdefault((g.namespace, g.pod), []).append(g)
        else:
            loose.append(g)
    pods = {k: PodGpus(k[0], k[1], tuple(v)) for k, v in per_pod.items()}
    return pods, loose
