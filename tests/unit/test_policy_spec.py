"""Spec resolution (KServe fields → annotations → defaults) and each formula's worked example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import formulas
from policies.decision import Decision, Proposal, Rule
from policies.signals import PodSignals, Sample
from policies.spec import (
    ANNOTATIONS,
    ClusterDefaults,
    RateLimit,
    RatePolicy,
    ScalingSpec,
    parse_duration,
    parse_number,
    resolve_spec,
)
from tests.conftest import SHARED


def isvc(annotations: dict[str, str] | None = None, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "annotations": {"serving.kserve.io/autoscalerClass": "external", **(annotations or {})},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}, **predictor}},
    }


def ann(**kv: str) -> dict[str, str]:
    return {f"llm-autoscaler.io/{k.replace('_', '-')}": v for k, v in kv.items()}


def test_defaults_fill_what_the_isvc_leaves_out() -> None:
    r = resolve_spec(isvc())
    assert r.spec is not None
    assert (r.spec.min_replicas, r.spec.max_replicas) == (1, 1)
    assert dict(r.spec.targets) == {"queue_depth": 5.0, "kv_cache_usage": 0.8, "running": 64.0}
    assert r.errors == ()
    assert r.warnings == ()


def test_docstring_example_min_max_and_queue_annotation() -> None:
    r = resolve_spec(isvc(ann(target_queue_depth="3"), minReplicas=1, maxReplicas=8))
    assert r.spec is not None
    assert (r.spec.min_replicas, r.spec.max_replicas) == (1, 8)
    assert dict(r.spec.targets) == {"queue_depth": 3.0, "kv_cache_usage": 0.8, "running": 64.0}


def test_annotations_set_every_documented_knob() -> None:
    r = resolve_spec(
        isvc(
            ann(
                policy="forecast",
                target_kv_cache_usage="70%",
                target_gpu_utilization="90",
                target_ttft_p95="1.5s",
                target_queue_depth="off",
                target_running="30",
                target_concurrency="40",
                tolerance="0.05",
                panic_threshold="3",
                scale_up_window="10s",
                scale_down_window="5m",
                scale_up_max_pods="2",
                scale_up_max_percent="50",
                scale_up_period="20s",
                scale_down_max_pods="2",
                scale_down_max_percent="10",
                scale_down_period="1m",
                cold_start="4m",
                max_sample_age="45s",
                fallback_replicas="3",
                fallback_after="2m",
                forecast_window="90s",
            ),
            minReplicas=2,
            maxReplicas=6,
        )
    )
    assert r.errors == ()
    s = r.spec
    assert s is not None
    assert s.policy == "forecast"
    assert dict(s.targets) == {
        "kv_cache_usage": 0.7,
        "gpu_utilization": 90.0,
        "ttft_p95_seconds": 1.5,
        "running": 30.0,
        "concurrency": 40.0,
    }
    assert (s.tolerance_up, s.tolerance_down, s.panic_threshold) == (0.05, 0.05, 3.0)
    assert (s.scale_up_window_s, s.scale_down_window_s) == (10.0, 300.0)
    assert s.scale_up == RateLimit((RatePolicy("Pods", 2, 20), RatePolicy("Percent", 50, 20)))
    assert s.scale_down == RateLimit((RatePolicy("Pods", 2, 60), RatePolicy("Percent", 10, 60)))
    assert (s.cold_start_s, s.max_sample_age_s) == (240.0, 45.0)
    assert (s.fallback_replicas, s.fallback_after_s, s.forecast_window_s) == (3, 120.0, 90.0)
    assert set(ANNOTATIONS) >= {"policy", "cold-start", "fallback-replicas"}


@pytest.mark.parametrize(
    ("annotations", "predictor", "where"),
    [
        (ann(target_queue_depth="five"), {}, "target-queue-depth"),
        (ann(target_queue_depth="-2"), {}, "target-queue-depth"),
        (ann(target_queue_depth="0"), {}, "target-queue-depth"),
        (ann(target_kv_cache_usage="1.5"), {}, "target-kv-cache-usage"),
        (ann(target_ttft_p95="soon"), {}, "target-ttft-p95"),
        (ann(target_ttft_p95="0s"), {}, "target-ttft-p95"),
        (ann(policy="magic"), {}, "unknown policy 'magic'"),
        (ann(scale_down_window="forever"), {}, "scale-down-window"),
        (ann(tolerance="2"), {}, "tolerance"),
        (ann(panic_threshold="1"), {}, "panic-threshold"),
        (ann(panic_threshold="nan"), {}, "panic-threshold"),
        (ann(fallback_replicas="9"), {"maxReplicas": 4}, "outside minReplicas..maxReplicas"),
        (ann(fallback_replicas="1.5"), {"maxReplicas": 4}, "whole number"),
        (ann(scale_down_period="0s"), {}, "scale-down-period"),
        (ann(max_sample_age="0s"), {}, "max-sample-age"),
        (
            ann(target_queue_depth="off", target_kv_cache_usage="off", target_running="off"),
            {},
            "every signal is turned off",
        ),
        ({}, {"minReplicas": 5, "maxReplicas": 2}, "greater than maxReplicas"),
        ({}, {"minReplicas": -1}, "minReplicas"),
        ({}, {"maxReplicas": "3"}, "maxReplicas"),
        ({}, {"scaleMetric": "concurrency"}, "scaleTarget"),
        ({}, {"scaleMetric": "concurrency", "scaleTarget": 0}, "greater than 0"),
        ({}, {"scaleMetric": "concurrency", "scaleTarget": "x"}, "not a number"),
    ],
)
def test_invalid_values_are_errors_never_guesses(
    annotations: dict[str, str], predictor: dict[str, Any], where: str
) -> None:
    r = resolve_spec(isvc(annotations, **predictor))
    assert r.spec is None
    assert any(where in str(e) for e in r.errors), r.errors


def test_kserve_sample_keda_query_is_understood() -> None:
    path = (
        SHARED
        / "kserve/samples/website-docs-genai-autoscaling__huggingface-qwen-keda-prometheus.yaml"
    )
    obj = yaml.safe_load(path.read_text())
    obj["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = "external"
    r = resolve_spec(obj)
    assert r.spec is not None
    assert r.spec.targets["running"] == 2.0
    assert (r.spec.min_replicas, r.spec.max_replicas) == (1, 5)
    assert any("Value read as a per-replica average" in w for w in r.warnings)


def test_kserve_fields_win_over_annotations_with_a_warning() -> None:
    metrics = [
        {
            "type": "PodMetric",
            "podmetric": {
                "metric": {
                    "backend": "opentelemetry",
                    "metricNames": ["vllm:num_requests_waiting"],
                },
                "target": {"type": "AverageValue", "averageValue": "4"},
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {"query": "avg(vllm:kv_cache_usage_perc)"},
                "target": {"type": "AverageValue", "averageValue": "75"},
            },
        },
        {"type": "Resource", "resource": {"name": "cpu"}},
    ]
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "tolerance": "0.2",
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
            "selectPolicy": "Min",
        },
        "scaleUp": {"selectPolicy": "Disabled"},
    }
    r = resolve_spec(
        isvc(
            ann(
                target_queue_depth="9",
                scale_down_window="10m",
                tolerance="0.3",
                scale_down_max_pods="5",
                unknown_knob="1",
            ),
            autoScaling={"metrics": metrics, "behavior": behavior},
        )
    )
    s = r.spec
    assert s is not None
    assert dict(s.targets) == {"queue_depth": 4.0, "kv_cache_usage": 0.75, "running": 64.0}
    assert s.scale_down_window_s == 60.0
    assert s.tolerance_down == 0.2
    assert s.scale_down == RateLimit((RatePolicy("Pods", 2, 30),), "Min")
    assert s.scale_up.select == "Disabled"
    text = " | ".join(r.warnings)
    for expected in (
        "target for queue_depth ignored",
        "scale-down-window ignored",
        "tolerance ignored",
        "scale-down-* ignored",
        "Resource metrics ignored",
        "unknown annotation llm-autoscaler.io/unknown-knob",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("metric", "where"),
    [
        (
            {
                "type": "External",
                "external": {
                    "metric": {"query": "sum(http_requests)"},
                    "target": {"type": "Value", "value": "1"},
                },
            },
            "names no signal",
        ),
        (
            {
                "type": "External",
                "external": {
                    "metric": {"query": "vllm:num_requests_waiting"},
                    "target": {"type": "Utilization"},
                },
            },
            "target type",
        ),
        (
            {
                "type": "External",
                "external": {
                    "metric": {"query": "vllm:num_requests_waiting"},
                    "target": {"type": "AverageValue"},
                },
            },
            "no value",
        ),
        ({"type": "Pods"}, "unsupported metric type"),
    ],
)
def test_unusable_autoscaling_metrics_are_errors(metric: dict[str, Any], where: str) -> None:
    r = resolve_spec(isvc(autoScaling={"metrics": [metric]}))
    assert r.spec is None
    assert any(where in str(e) for e in r.errors), r.errors


@pytest.mark.parametrize(
    ("behavior", "where"),
    [
        ({"scaleDown": {"stabilizationWindowSeconds": -1}}, "stabilizationWindowSeconds"),
        ({"scaleDown": {"tolerance": "-1"}}, "tolerance"),
        ({"scaleDown": {"selectPolicy": "Most"}}, "selectPolicy"),
        ({"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}, "value"),
        ({"scaleUp": {"policies": [{"type": "Any", "value": 1, "periodSeconds": 15}]}}, "type"),
        ({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]}}, "period"),
    ],
)
def test_bad_behavior_is_an_error(behavior: dict[str, Any], where: str) -> None:
    r = resolve_spec(isvc(autoScaling={"behavior": behavior}))
    assert r.spec is None
    assert any(where in str(e) for e in r.errors), r.errors


def test_scale_metric_concurrency_and_ignored_cpu() -> None:
    r = resolve_spec(isvc(scaleMetric="concurrency", scaleTarget=12))
    assert r.spec is not None
    assert r.spec.targets["concurrency"] == 12.0
    r = resolve_spec(isvc(scaleMetric="cpu", scaleTarget=80))
    assert r.spec is not None
    assert "scaleMetric 'cpu' ignored" in r.warnings[0]


def test_cluster_defaults_are_the_lowest_layer() -> None:
    defaults = ClusterDefaults(ScalingSpec(targets={"queue_depth": 2.0}, cold_start_s=30))
    r = resolve_spec(isvc(maxReplicas=3), defaults)
    assert r.spec is not None
    assert dict(r.spec.targets) == {"queue_depth": 2.0}
    assert r.spec.cold_start_s == 30


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("1.5m", 90), ("1h30m", 5400), ("1m30s", 90)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5 minutes", "-3s", "1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3.0), ("0.8", 0.8), ("80%", 0.8), ("500m", 0.5), ("2k", 2000.0), (4, 4.0)],
)
def test_parse_number(text: str | int, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["x", "inf", True, "1e999"])
def test_parse_number_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="number"):
        parse_number(text)


# ---- each formula's worked example --------------------------------------------------------


def test_ceil_replicas_example() -> None:
    assert formulas.ceil_replicas(0.5 + 0.7 + 0.9, 0.8) == 3
    assert formulas.ceil_replicas(10, 5) == 2
    assert formulas.ceil_replicas(0, 5) == 0


def test_pod_value_example() -> None:
    p = PodSignals("n", "p", True, queue_depth=Sample(3, 96), running=Sample(8, 96))
    assert formulas.pod_value(p, "concurrency", 100, 60) == 11.0
    assert formulas.pod_value(p, "concurrency", 170, 60) is None


def test_signal_proposal_example() -> None:
    pods = [
        PodSignals("n", "a", True, queue_depth=Sample(9, 0)),
        PodSignals("n", "b", True, queue_depth=Sample(7, 0)),
    ]
    p = formulas.signal_proposal("queue_depth", 5, pods, 2, 0, 60, 0.1, 0.1)
    assert p.replicas == 4
    assert p.ratio == pytest.approx(1.6)
    pods[1] = PodSignals("n", "b", True)
    p = formulas.signal_proposal("queue_depth", 5, pods, 2, 0, 60, 0.1, 0.1)
    assert (p.replicas, p.missing) == (2, 1)


def test_cold_start_replicas_example() -> None:
    p = Proposal("queue_depth", 5, 50, 10, 50.0, 1, 0)
    assert formulas.cold_start_replicas([p], 2.0) == 5


def test_n_minus_1_floor_example() -> None:
    p = Proposal("kv_cache_usage", 0.8, 0.5, 2, 1.5, 3, 0)
    assert formulas.n_minus_1_floor([p], 2, 3, 0.1) == 3
    p = Proposal("kv_cache_usage", 0.8, 0.4, 2, 1.2, 3, 0)
    assert formulas.n_minus_1_floor([p], 2, 3, 0.1) == 2


def test_stabilize_example() -> None:
    recs = [(0.0, 6), (60.0, 3)]
    assert formulas.stabilize(recs, 2, 6, 120.0, 0, 180) == 6
    assert formulas.stabilize(recs, 2, 6, 181.0, 0, 180) == 3
    assert formulas.stabilize([(0.0, 3)], 8, 2, 5.0, 10, 0) == 3  # up window: lowest


def test_rate_limit_example() -> None:
    up = RateLimit((RatePolicy("Pods", 4, 15), RatePolicy("Percent", 100, 15)))
    down = RateLimit((RatePolicy("Pods", 1, 30), RatePolicy("Percent", 25, 30)))
    assert formulas.rate_limit(10, 2, [], 0, up, down) == 6
    assert formulas.rate_limit(2, 10, [], 0, up, down) == 8
    assert formulas.rate_limit(5, 5, [], 0, up, down) == 5
    strict = RateLimit(down.policies, "Min")
    assert formulas.rate_limit(2, 10, [], 0, up, strict) == 9
    assert formulas.rate_limit(50, 2, [], 0, RateLimit(()), down) == 50


def test_trend_projection_example() -> None:
    hist = [(0.0, 10.0), (5.0, 12.0), (10.0, 14.0), (15.0, 16.0)]
    projected, slope = formulas.trend_projection(hist, 15.0, 30.0) or (0.0, 0.0)
    assert projected == pytest.approx(28.0)
    assert slope == pytest.approx(0.4)
    assert formulas.trend_projection(hist[:3], 15.0, 30.0) is None
    assert formulas.trend_projection([(0, 1), (1, 2), (2, 3), (3, 4)], 3, 1) is None


def test_decision_direction() -> None:
    d = Decision(0, 3, 5, Rule.SCALE_UP, "x")
    assert (d.direction, d.changed) == ("up", True)
    assert Decision(0, 3, 1, Rule.SCALE_DOWN, "x").direction == "down"
    assert Decision(0, 3, 3, Rule.STEADY, "x").direction == "none"


def test_every_annotation_and_rule_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "scaling.md").read_text()
    for name in ANNOTATIONS:
        assert f"`llm-autoscaler.io/{name}`" in doc, name
    for rule in Rule:
        assert f"`{rule.value}`" in doc, rule


def test_saturation_update_example() -> None:
    sat = [
        PodSignals("n", f"p{i}", True, queue_depth=Sample(2, 0), running=Sample(r, 0))
        for i, r in enumerate((70, 80))
    ]
    idle = [PodSignals("n", "q", True, queue_depth=Sample(0, 0), running=Sample(10, 0))]
    assert formulas.saturation_update(60.0, sat, 0, 60) == pytest.approx(64.5)
    assert formulas.saturation_update(None, sat, 0, 60) == pytest.approx(75.0)
    assert formulas.saturation_update(60.0, idle, 0, 60) == 60.0
    assert formulas.saturation_update(None, idle, 0, 60) is None


def test_capacity_floor_example() -> None:
    pods = [PodSignals("n", f"p{i}", True, running=Sample(30, 0)) for i in range(13)]
    assert formulas.capacity_floor(pods, 60.0, 0, 60, 0.8) == 9
    assert formulas.capacity_floor(pods, None, 0, 60, 0.8) == 0


def test_an_explicit_in_flight_target_replaces_the_default_running_target() -> None:
    """Running and concurrency measure the same requests: KServe's ``scaleTarget: 100`` on
    concurrency must not be overruled by the cluster's running 64 (which would fire first)."""
    r = resolve_spec(isvc(scaleMetric="concurrency", scaleTarget=100))
    assert r.spec is not None
    assert dict(r.spec.targets) == {"queue_depth": 5.0, "kv_cache_usage": 0.8, "concurrency": 100.0}
    r = resolve_spec(isvc(ann(target_concurrency="40")))
    assert r.spec is not None
    assert "running" not in r.spec.targets
    r = resolve_spec(isvc(ann(target_running="off")))
    assert r.spec is not None
    assert dict(r.spec.targets) == {"queue_depth": 5.0, "kv_cache_usage": 0.8}
    r = resolve_spec(isvc(ann(target_running="32")))
    assert r.spec is not None
    assert r.spec.targets["running"] == 32.0
