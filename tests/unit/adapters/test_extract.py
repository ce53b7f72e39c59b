"""Signals out of parsed expositions: engine aggregation, the KV fallback, the TTFT quantile
against a hand computation, DCGM attribution (current, relabelled and old label names),
unattributed GPUs, the ``kserve_vllm:`` prefix, and missing-is-None."""

from __future__ import annotations

import math

import pytest

from adapters.exposition import parse
from adapters.extract import (
    DCGM_FAMILIES,
    GpuSignals,
    aggregate_vllm,
    extract_gpus,
    extract_vllm,
    gpus_by_pod,
    histogram_quantile,
    pod_identity,
    vllm_families,
)
from tests.unit.adapters import samples

INF = math.inf


def vllm(text: str, prefix: str = "vllm:") -> list:  # type: ignore[type-arg]
    return extract_vllm(parse(text, vllm_families(prefix)), prefix)


def test_v1_sums_counts_and_averages_fractions_across_engines() -> None:
    [vs] = vllm(samples.VLLM_V1)
    assert (vs.namespace, vs.pod, vs.model, vs.engines) == (None, None, samples.MODEL, 2)
    assert vs.queue_depth == 3.0 + 2.0
    assert vs.running == 8.0 + 6.0
    assert vs.kv_cache_usage == (0.5 + 0.25) / 2
    assert vs.preemptions_total == 4.0 + 1.0


def test_ttft_quantiles_match_a_hand_computation() -> None:
    """Both engines' buckets summed by le: 0.1 -> 16, 0.25 -> 24, 0.75 -> 37, 1.0 -> 39,
    +Inf -> 40. p95: rank 38 lies in (0.75, 1.0] holding 2 with 37 below:
    0.75 + 0.25 * (38 - 37) / 2 = 0.875. p50: rank 20 in (0.1, 0.25] holding 8, 16 below:
    0.1 + 0.15 * (20 - 16) / 8 = 0.175."""
    [vs] = vllm(samples.VLLM_V1)
    assert vs.ttft_p95_seconds == pytest.approx(0.875)
    assert vs.ttft_p50_seconds == pytest.approx(0.175)
    assert dict(vs.ttft_buckets)[0.25] == 24.0
    assert vs.ttft_buckets[-1] == (INF, 40.0)


def test_v0_falls_back_to_gpu_cache_usage_and_has_no_ttft_without_requests() -> None:
    [vs] = vllm(samples.VLLM_V0)
    assert (vs.model, vs.engines) == ("Qwen/Qwen2.5-1.5B-Instruct", 1)
    assert (vs.queue_depth, vs.running, vs.kv_cache_usage) == (0.0, 1.0, 0.0125)
    assert vs.preemptions_total == 0.0
    assert vs.ttft_p95_seconds is None  # count 0: no quantile, not 0
    assert vs.ttft_p50_seconds is None


def test_new_kv_name_wins_over_the_deprecated_one() -> None:
    text = 'vllm:kv_cache_usage_perc{engine="0"} 0.6\nvllm:gpu_cache_usage_perc{engine="0"} 0.1\n'
    assert vllm(text)[0].kv_cache_usage == 0.6


def test_kserve_prefix() -> None:
    [vs] = vllm(samples.vllm_v1("kserve_vllm:"), "kserve_vllm:")
    assert (vs.queue_depth, vs.ttft_p95_seconds) == (5.0, pytest.approx(0.875))
    assert vllm(samples.vllm_v1("kserve_vllm:")) == []  # default prefix sees nothing


def test_missing_signals_are_none_never_zero() -> None:
    [vs] = vllm('vllm:num_requests_waiting{engine="0",model_name="m"} 4\n')
    assert vs.queue_depth == 4.0
    assert (vs.running, vs.kv_cache_usage, vs.preemptions_total) == (None, None, None)
    assert (vs.ttft_p50_seconds, vs.ttft_p95_seconds, vs.ttft_buckets) == (None, None, ())


def test_a_nan_engine_makes_the_aggregate_missing() -> None:
    text = 'vllm:num_requests_waiting{engine="0"} 4\nvllm:num_requests_waiting{engine="1"} NaN\n'
    assert vllm(text)[0].queue_depth is None


def test_unlabelled_series_group_by_model_and_labelled_by_pod() -> None:
    text = (
        'vllm:num_requests_waiting{model_name="a"} 1\n'
        'vllm:num_requests_waiting{model_name="b"} 2\n'
        'vllm:num_requests_waiting{engine="0",model_name="c",namespace="ns",pod="p"} 3\n'
        'vllm:num_requests_waiting{engine="1",model_name="c",namespace="ns",pod="p"} 4\n'
    )
    got = [(v.namespace, v.pod, v.model, v.queue_depth) for v in vllm(text)]
    assert got == [(None, None, "a", 1.0), (None, None, "b", 2.0), ("ns", "p", "c", 7.0)]
    fams = parse(text, vllm_families())
    pinned = [
        (v.namespace, v.pod, v.model, v.queue_depth) for v in extract_vllm(fams, pod=("x", "y"))
    ]
    assert pinned == [("ns", "p", "c", 7.0), ("x", "y", "a,b", 3.0)]


def test_aggregate_vllm_is_one_server_or_none() -> None:
    vs = aggregate_vllm(parse(samples.VLLM_V1, vllm_families()))
    assert vs is not None
    assert vs.queue_depth == 5.0
    assert aggregate_vllm(parse(samples.DCGM, vllm_families())) is None


@pytest.mark.parametrize(
    ("buckets", "q", "want"),
    [
        pytest.param([(0.1, 2), (0.5, 6), (INF, 8)], 0.5, 0.3, id="docstring-example"),
        pytest.param([(1, 0), (2, 10), (INF, 10)], 0.5, 1.5, id="middle-of-second"),
        pytest.param([(1, 10), (INF, 10)], 0.5, 0.5, id="first-bucket-from-zero"),
        pytest.param([(1, 5), (2, 5), (INF, 10)], 0.9, 2.0, id="in-inf-bucket"),
        pytest.param([(-1, 4), (1, 8), (INF, 8)], 0.25, -1.0, id="non-positive-first-bound"),
        pytest.param([(INF, 10), (1, 5), (2, 10)], 0.75, 1.5, id="unsorted"),
        pytest.param([(1, 5), (1, 5), (2, 20), (INF, 20)], 0.5, 1.0, id="duplicate-bounds-merged"),
        pytest.param([(1, 6), (2, 4), (INF, 8)], 0.5, 4 / 6, id="non-monotonic-fixed"),
        pytest.param([(1, 0), (INF, 0)], 0.5, None, id="no-observations"),
        pytest.param([(1, 3), (2, 4)], 0.5, None, id="no-inf-bucket"),
        pytest.param([(INF, 4)], 0.5, None, id="only-inf"),
        pytest.param([], 0.5, None, id="empty"),
        pytest.param([(1, math.nan), (INF, 4)], 0.5, None, id="nan-count"),
    ],
)
def test_histogram_quantile(
    buckets: list[tuple[float, float]], q: float, want: float | None
) -> None:
    got = histogram_quantile(q, buckets)
    assert got == (None if want is None else pytest.approx(want))


def test_histogram_quantile_rejects_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="outside"):
        histogram_quantile(1.5, [(1, 1), (INF, 1)])


def test_dcgm_attributes_gpus_to_pods_and_keeps_idle_ones_apart() -> None:
    gpus = extract_gpus(parse(samples.DCGM, DCGM_FAMILIES))
    assert [(g.gpu, g.pod, g.utilization, g.engine_active) for g in gpus] == [
        (0, "chat-predictor-7d9f-abcde", 90.0, 0.912345),
        (1, "chat-predictor-7d9f-abcde", 70.0, 0.687654),
        (2, None, 0.0, 0.0),
    ]
    assert gpus[0].hostname == "gpu-node-1"
    assert gpus[0].container == "kserve-container"
    assert gpus[0].uuid == "GPU-0b2c3d4e-0000-1111-2222-333344445550"
    pods, loose = gpus_by_pod(gpus)
    pg = pods[samples.DCGM_POD]
    assert (pg.indices, pg.utilization, pg.engine_active) == ([0, 1], 80.0, pytest.approx(0.8))
    assert [g.gpu for g in loose] == [2]


def test_dcgm_old_names_empty_pod_labels_and_garbage_values() -> None:
    gpus = extract_gpus(parse(samples.DCGM_OLD, DCGM_FAMILIES))
    assert [(g.uuid, g.namespace, g.pod, g.utilization) for g in gpus] == [
        ("GPU-aaaa", "batch", "train-0", 100.0),
        ("GPU-bbbb", None, None, 0.0),  # pod="" is no pod
        ("GPU-cccc", "batch", "train-0", None),  # 4294967295 is not a utilization
    ]
    pods, loose = gpus_by_pod(gpus)
    assert pods[("batch", "train-0")].utilization == 100.0  # mean over GPUs that report
    assert pods[("batch", "train-0")].indices == [0, 2]
    assert [g.uuid for g in loose] == ["GPU-bbbb"]


def test_dcgm_lowercase_hostname_and_prometheus_relabelled_names() -> None:
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="3",UUID="GPU-x",hostname="n2",namespace="gpu-operator",'
        'pod="nvidia-dcgm-exporter-abc",exported_namespace="llm",exported_pod="chat-1",'
        'exported_container="main"} 55\n'
    )
    [g] = extract_gpus(parse(text))
    assert g == GpuSignals("n2", 3, "GPU-x", "llm", "chat-1", "main", 55.0, None)


def test_pod_identity_precedence() -> None:
    assert pod_identity({"namespace": "a", "pod": "b"}) == ("a", "b")
    assert pod_identity(
        {"namespace": "x", "pod": "y", "exported_namespace": "a", "exported_pod": "b"}
    ) == (
        "a",
        "b",
    )
    assert pod_identity({"pod_namespace": "a", "pod_name": "b"}) == ("a", "b")
    assert pod_identity({"namespace": "a"}) is None
    assert pod_identity({"namespace": "", "pod": ""}) is None
