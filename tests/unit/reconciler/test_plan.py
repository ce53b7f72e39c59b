"""``plan``: autoscaler classes, deployment modes, stop, and every kind of bad input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from autoscaler.reconciler import Deletion, Reason, Settings, plan
from autoscaler.reconciler.manifests import bundled_runtimes

from .helpers import SAMPLES, load, plan_with, vllm_isvc

HPA_DELETION = Deletion("autoscaling/v2", "HorizontalPodAutoscaler", "llm", "llama-predictor")


def _with_fragment(fragment: str, isvc: dict[str, Any]) -> dict[str, Any]:
    """The ISVC with a website ``autoscalerClass`` fragment's annotations applied."""
    import yaml

    patch = yaml.safe_load((SAMPLES / fragment).read_text())
    out = copy.deepcopy(isvc)
    out["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
    return out


def _annotated(**annotations: str) -> dict[str, Any]:
    isvc = vllm_isvc(minReplicas=3, maxReplicas=8)
    isvc["metadata"]["annotations"] = dict(annotations)
    return isvc


# --- autoscaler classes -------------------------------------------------------------------


def test_class_hpa_is_the_default_and_creates_the_hpa() -> None:
    result = plan_with(_annotated())
    assert result.autoscaler_class == "hpa"
    assert [o["kind"] for o in result.objects] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ]
    assert result.deletes == ()
    assert result.replicas_owned_by_scaler is True
    hpa = result.get("HorizontalPodAutoscaler")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)


def test_class_external_fragment_drops_our_hpa_and_leaves_replicas_to_the_scaler() -> None:
    isvc = _with_fragment(
        "website-docs-hpa-autoscaler__autoscalerClass-external.fragment.yaml",
        vllm_isvc(minReplicas=3, maxReplicas=8),
    )
    result = plan_with(isvc)
    assert result.autoscaler_class == "external"
    assert [o["kind"] for o in result.objects] == ["Deployment", "Service"]
    assert result.deletes == (HPA_DELETION,)
    assert result.replicas_owned_by_scaler is True
    deployment = result.get("Deployment")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3  # only used when the Deployment is created
    assert deployment["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"


def test_class_none_fragment_pins_replicas_to_min_replicas() -> None:
    isvc = _with_fragment(
        "website-docs-hpa-autoscaler__autoscalerClass-none.fragment.yaml",
        vllm_isvc(minReplicas=3, maxReplicas=8),
    )
    result = plan_with(isvc)
    assert result.autoscaler_class == "none"
    assert [o["kind"] for o in result.objects] == ["Deployment", "Service"]
    assert result.deletes == (HPA_DELETION,)
    assert result.replicas_owned_by_scaler is False
    deployment = result.get("Deployment")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("cls", "min_replicas", "replicas"),
    [("none", 0, 0), ("none", None, 1), ("external", 0, 0), ("external", None, 1), ("hpa", 0, 1)],
)
def test_initial_replicas_per_class(cls: str, min_replicas: int | None, replicas: int) -> None:
    isvc = vllm_isvc() if min_replicas is None else vllm_isvc(minReplicas=min_replicas)
    isvc["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": cls}
    deployment = plan_with(isvc).get("Deployment")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == replicas


def test_class_from_predictor_annotations_wins_over_the_isvc() -> None:
    isvc = _annotated(**{"serving.kserve.io/autoscalerClass": "hpa"})
    isvc["spec"]["predictor"]["annotations"] = {"serving.kserve.io/autoscalerClass": "none"}
    assert plan_with(isvc).autoscaler_class == "none"


@pytest.mark.parametrize("cls", ["keda", "kpa", "HPA", ""])
def test_unsupported_class_fails_and_says_what_is_supported(cls: str) -> None:
    result = plan_with(_annotated(**{"serving.kserve.io/autoscalerClass": cls}))
    assert result.failure is not None
    assert result.failure.reason == Reason.UNSUPPORTED_AUTOSCALER_CLASS
    assert f"[{cls}]" in result.failure.message
    assert "supported: hpa, external, none" in result.failure.message
    assert (result.objects, result.deletes) == ((), ())


# --- HPA metrics ---------------------------------------------------------------------------


def _metrics(**predictor: Any) -> list[dict[str, Any]] | None:
    hpa = plan_with(vllm_isvc(**predictor)).get("HorizontalPodAutoscaler")
    assert hpa is not None
    metrics: list[dict[str, Any]] | None = hpa["spec"].get("metrics")
    return metrics


def _utilization(name: str, value: int) -> dict[str, Any]:
    target = {"type": "Utilization", "averageUtilization": value}
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def test_hpa_metric_defaults_to_cpu_80() -> None:
    assert _metrics() == [_utilization("cpu", 80)]


def test_hpa_memory_metric_needs_a_target() -> None:
    assert _metrics(scaleMetric="memory") is None
    assert _metrics(scaleMetric="memory", scaleTarget=150) == [_utilization("memory", 150)]


def test_hpa_auto_scaling_metrics_replace_scale_metric() -> None:
    auto = {
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "20Gi"},
                },
            },
        ]
    }
    assert _metrics(autoScaling=auto, scaleMetric="memory", scaleTarget=50) == [
        _utilization("cpu", 80),
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "AverageValue", "averageValue": "20Gi"},
            },
        },
    ]


def test_hpa_min_is_at_least_one_and_max_at_least_min() -> None:
    hpa = plan_with(vllm_isvc(minReplicas=0)).get("HorizontalPodAutoscaler")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 1)
    hpa = plan_with(vllm_isvc(minReplicas=4)).get("HorizontalPodAutoscaler")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 4)


@pytest.mark.parametrize(
    "predictor",
    [
        {"scaleMetric": "concurrency"},
        {"scaleMetric": "rps", "scaleTarget": 5},
        {"scaleTarget": 0},
        {"scaleTarget": 101},
        {"autoScaling": {"metrics": [{"type": "External", "external": {}}]}},
        {"autoScaling": {"metrics": [{"type": "Resource"}]}},
        {"autoScaling": {"metrics": "cpu"}},
    ],
    ids=["concurrency", "rps", "target-0", "target-101", "external", "no-resource", "not-list"],
)
def test_hpa_rejects_what_kserves_webhook_rejects(predictor: dict[str, Any]) -> None:
    result = plan_with(vllm_isvc(**predictor))
    assert result.failure is not None
    assert result.failure.reason == Reason.INVALID_AUTOSCALING


def test_external_class_ignores_hpa_only_settings() -> None:
    isvc = vllm_isvc(autoScaling={"metrics": [{"type": "External", "external": {}}]})
    isvc["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "external"}
    assert plan_with(isvc).failure is None


# --- deployment modes and stop -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_raw_modes_are_reconciled_alike(mode: str) -> None:
    result = plan_with(_annotated(**{"serving.kserve.io/deploymentMode": mode}))
    assert result.failure is None
    deployment = result.get("Deployment")
    assert deployment is not None
    annotations = deployment["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"


@pytest.mark.parametrize("mode", ["Serverless", "Knative", "ModelMesh"])
def test_other_modes_are_left_alone(mode: str) -> None:
    result = plan_with(_annotated(**{"serving.kserve.io/deploymentMode": mode}))
    assert result.failure is not None
    assert result.failure.reason == Reason.DEPLOYMENT_MODE_NOT_SUPPORTED
    assert mode in result.failure.message
    assert (result.objects, result.deletes) == ((), ())


def test_unknown_mode_is_left_alone_too() -> None:
    result = plan_with(_annotated(**{"serving.kserve.io/deploymentMode": "Raw"}))
    assert result.failure is not None
    assert result.failure.reason == Reason.INVALID_DEPLOYMENT_MODE


def test_status_deployment_mode_is_sticky_over_the_annotation() -> None:
    isvc = _annotated(**{"serving.kserve.io/deploymentMode": "Serverless"})
    isvc["status"] = {"deploymentMode": "Standard"}
    assert plan_with(isvc).failure is None


def test_default_mode_comes_from_settings() -> None:
    knative = Settings(default_deployment_mode="Serverless")
    result = plan(vllm_isvc(), [], bundled_runtimes(), knative)
    assert result.failure is not None
    assert result.failure.reason == Reason.DEPLOYMENT_MODE_NOT_SUPPORTED


def test_stop_annotation_deletes_our_objects() -> None:
    result = plan_with(_annotated(**{"serving.kserve.io/stop": "true"}))
    assert result.failure is None
    assert result.stopped is True
    assert result.objects == ()
    assert [(d.kind, d.name) for d in result.deletes] == [
        ("Deployment", "llama-predictor"),
        ("Service", "llama-predictor"),
        ("HorizontalPodAutoscaler", "llama-predictor"),
    ]


# --- bad input: each a typed failure, never an exception ----------------------------------


def _set(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    isvc = copy.deepcopy(base or vllm_isvc())
    *parents, leaf = path.split(".")
    node = isvc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return isvc


_DELETE = object()
BAD_INPUT: list[Any] = [
    pytest.param(_set("spec.predictor", _DELETE), Reason.NO_PREDICTOR, id="no-predictor"),
    pytest.param(_set("spec", _DELETE), Reason.NO_PREDICTOR, id="no-spec"),
    pytest.param(
        _set("spec.predictor", {"minReplicas": 1}), Reason.NO_PREDICTOR, id="no-implementation"
    ),
    pytest.param(_set("spec.predictor", "vllm"), Reason.NO_PREDICTOR, id="predictor-not-a-mapping"),
    pytest.param(
        _set("spec.predictor.model.runtime", "nope"),
        Reason.RUNTIME_NOT_RECOGNIZED,
        id="unknown-runtime",
    ),
    pytest.param(
        _set("spec.predictor.model.modelFormat", {"name": "onnx"}),
        Reason.NO_SUPPORTING_RUNTIME,
        id="no-runtime-for-format",
    ),
    pytest.param(
        _set("spec.predictor.model.modelFormat", {"name": "vLLM", "version": "2"}),
        Reason.NO_SUPPORTING_RUNTIME,
        id="no-runtime-for-version",
    ),
    pytest.param(
        _set("spec.predictor.model.storageUri", "ftp://models/llama"),
        Reason.INVALID_STORAGE_URI,
        id="bad-storage-scheme",
    ),
    pytest.param(
        _set("spec.predictor.model.storageUri", "pvc://"),
        Reason.INVALID_STORAGE_URI,
        id="pvc-without-claim",
    ),
    pytest.param(
        _set("spec.predictor.model.storageUri", "oci://ghcr.io/m:v1"),
        Reason.UNSUPPORTED_STORAGE_URI,
        id="oci-uri",
    ),
    pytest.param(
        _set("spec.predictor.model.storageUri", 42),
        Reason.INVALID_PREDICTOR_SPEC,
        id="storage-uri-not-a-string",
    ),
    pytest.param(
        _set("spec.predictor.model.args", "--max-model-len=4096"),
        Reason.INVALID_ARGS,
        id="args-not-a-list",
    ),
    pytest.param(
        _set("spec.predictor.model.args", ["--port", 8080]),
        Reason.INVALID_ARGS,
        id="args-item-not-a-string",
    ),
    pytest.param(
        _set("spec.predictor.model.command", {"python": "-m"}),
        Reason.INVALID_ARGS,
        id="command-not-a-list",
    ),
    pytest.param(
        _set("spec.predictor.model.env", {"A": "1"}), Reason.INVALID_ENV, id="env-not-a-list"
    ),
    pytest.param(
        _set("spec.predictor.model.env", [{"name": "N", "value": 4}]),
        Reason.INVALID_ENV,
        id="env-value-not-a-string",
    ),
    pytest.param(
        _set("spec.predictor.model.env", [{"value": "x"}]),
        Reason.INVALID_ENV,
        id="env-without-name",
    ),
    pytest.param(
        _set("spec.predictor.model.resources", {"limits": {"memory": "lots"}}),
        Reason.INVALID_RESOURCES,
        id="quantity-unparsable",
    ),
    pytest.param(
        _set("spec.predictor.model.resources", {"limits": {"cpu": "1.5.2"}}),
        Reason.INVALID_RESOURCES,
        id="quantity-two-dots",
    ),
    pytest.param(
        _set("spec.predictor.model.resources", {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        Reason.INVALID_RESOURCES,
        id="request-above-limit",
    ),
    pytest.param(
        _set("spec.predictor.model.resources", {"limits": {"memory": "1Gi"}}),
        Reason.INVALID_RESOURCES,
        id="limit-below-runtime-request",
    ),
    pytest.param(
        _set("spec.predictor.model.resources", "4 cpus"),
        Reason.INVALID_PREDICTOR_SPEC,
        id="resources-not-a-mapping",
    ),
    pytest.param(
        _set("spec.predictor.minReplicas", -1), Reason.INVALID_PREDICTOR_SPEC, id="negative-min"
    ),
    pytest.param(
        _set("spec.predictor.minReplicas", "2"), Reason.INVALID_PREDICTOR_SPEC, id="min-not-an-int"
    ),
    pytest.param(
        _set("spec.predictor.maxReplicas", 1, _set("spec.predictor.minReplicas", 3)),
        Reason.INVALID_PREDICTOR_SPEC,
        id="min-above-max",
    ),
    pytest.param(
        _set("spec.predictor.nodeSelector", {"gpu": True}),
        Reason.INVALID_PREDICTOR_SPEC,
        id="node-selector-bool",
    ),
    pytest.param(
        _set("spec.predictor.tolerations", "all"),
        Reason.INVALID_PREDICTOR_SPEC,
        id="tolerations-not-a-list",
    ),
    pytest.param(
        _set("spec.predictor.model.modelFormat", "vLLM"),
        Reason.INVALID_PREDICTOR_SPEC,
        id="model-format-not-a-mapping",
    ),
    pytest.param(
        _set("spec.predictor.model.name", "x"), Reason.INVALID_PREDICTOR_SPEC, id="model-name-set"
    ),
    pytest.param(
        _set("spec.predictor.sklearn", {"storageUri": "gs://m"}),
        Reason.INVALID_PREDICTOR_SPEC,
        id="two-implementations",
    ),
    pytest.param(
        _set(
            "spec.predictor.containers",
            [{"name": "sidecar"}],
            _set("spec.predictor.model", _DELETE),
        ),
        Reason.INVALID_PREDICTOR_SPEC,
        id="containers-without-kserve-container",
    ),
    pytest.param(
        _set("spec.predictor.containers", [{"image": "x"}]),
        Reason.INVALID_PREDICTOR_SPEC,
        id="container-without-name",
    ),
    pytest.param(_set("metadata.name", "Llama_3"), Reason.INVALID_NAME, id="bad-name"),
    pytest.param(_set("metadata", _DELETE), Reason.INVALID_NAME, id="no-metadata"),
    pytest.param(
        _set("metadata.labels", {"team": 7}), Reason.INVALID_PREDICTOR_SPEC, id="label-not-a-string"
    ),
    pytest.param(
        _set("spec.explainer", {"art": {}}), Reason.EXPLAINER_NOT_SUPPORTED, id="explainer"
    ),
    pytest.param(
        _set("spec.canary", [{"predictor": {"name": "v2"}, "trafficPercent": 10}]),
        Reason.CANARY_NOT_SUPPORTED,
        id="canary-list",
    ),
    pytest.param(
        _set("spec.predictor.logger", {"mode": "all"}), Reason.UNSUPPORTED_FEATURE, id="logger"
    ),
    pytest.param(
        _set("spec.predictor.storageUris", [{"uri": "s3://a"}]),
        Reason.UNSUPPORTED_FEATURE,
        id="storage-uris",
    ),
    pytest.param(
        _set("spec.predictor.model.storage", {"key": "k", "path": "p"}),
        Reason.UNSUPPORTED_FEATURE,
        id="storage-spec",
    ),
]


@pytest.mark.parametrize(("isvc", "reason"), BAD_INPUT)
def test_bad_input_is_a_typed_failure(isvc: dict[str, Any], reason: Reason) -> None:
    result = plan(isvc, [], bundled_runtimes(), Settings())
    assert result.failure is not None, "expected a failure"
    assert result.failure.reason == reason, result.failure
    assert result.failure.message
    assert (result.objects, result.deletes) == ((), ())


def test_runtime_deleted_while_in_use_is_unknown_runtime_now() -> None:
    isvc = _set("spec.predictor.model.runtime", "kserve-vllmserver")
    assert plan(isvc, [], bundled_runtimes(), Settings()).failure is None
    after = plan(isvc, [], [], Settings())
    assert after.failure is not None
    assert after.failure.reason == Reason.RUNTIME_NOT_RECOGNIZED
    assert "kserve-vllmserver" in after.failure.message


def test_auto_selected_runtime_deleted_is_no_supporting_runtime_now() -> None:
    result = plan(vllm_isvc(), [], [], Settings())
    assert result.failure is not None
    assert result.failure.reason == Reason.NO_SUPPORTING_RUNTIME


def test_non_mapping_isvc_is_a_failure_not_an_exception() -> None:
    junk: list[Any] = [None, [], "isvc", 3]
    for value in junk:
        result = plan(value, [], [], Settings())
        assert result.failure is not None


def test_plan_does_not_mutate_its_inputs() -> None:
    isvc, runtimes = vllm_isvc(minReplicas=2), bundled_runtimes()
    before = copy.deepcopy((isvc, runtimes))
    plan(isvc, [], runtimes, Settings())
    assert (isvc, runtimes) == before


def test_every_sample_isvc_plans_without_internal_error() -> None:
    everything = [load(p.name) for p in SAMPLES.glob("*.yaml")]
    runtimes = [r for m in everything for r in m.runtimes]
    cluster = [r for m in everything for r in m.cluster_runtimes] + bundled_runtimes()
    for manifests in everything:
        for isvc in manifests.isvcs:
            result = plan(isvc, runtimes, cluster, Settings())
            assert result.failure is None or result.failure.reason != Reason.INTERNAL_ERROR
