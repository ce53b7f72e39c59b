"""The builders in detail: metadata precedence, pod-level merge, storage, Service ports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from autoscaler.reconciler import (
    PlanError,
    Reason,
    Settings,
    make_deployment,
    make_hpa,
    make_service,
)
from autoscaler.reconciler.manifests import bundled_runtimes
from autoscaler.reconciler.runtime import parse_runtime

from .helpers import container, plan_with, vllm_isvc

RUNTIME = parse_runtime(bundled_runtimes()[0], "ClusterServingRuntime")
SETTINGS = Settings()


def _deployment(isvc: dict[str, Any], settings: Settings = SETTINGS) -> dict[str, Any]:
    return make_deployment(isvc, RUNTIME, settings)


def _pod(isvc: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(isvc)["spec"]["template"]["spec"]
    return pod


def test_builders_share_one_metadata_and_agree_with_plan() -> None:
    isvc = vllm_isvc()
    result = plan_with(isvc)
    built = [
        make_deployment(isvc, RUNTIME, SETTINGS),
        make_service(isvc, RUNTIME, SETTINGS),
        make_hpa(isvc, RUNTIME, SETTINGS),
    ]
    assert list(result.objects) == built
    assert {str(o["metadata"]) for o in built} == {str(built[0]["metadata"])}


def test_label_and_annotation_precedence() -> None:
    raw = copy.deepcopy(bundled_runtimes()[0])
    raw["spec"]["labels"] = {"tier": "runtime", "from-runtime": "yes"}
    raw["spec"]["annotations"]["team"] = "runtime"
    isvc = vllm_isvc()
    isvc["metadata"]["labels"] = {"tier": "isvc", "component": "mine", "app": "mine"}
    isvc["metadata"]["annotations"] = {
        "team": "isvc",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "autoscaling.knative.dev/min-scale": "3",
    }
    isvc["spec"]["predictor"]["labels"] = {"tier": "predictor"}
    isvc["spec"]["predictor"]["annotations"] = {"team": "predictor"}
    meta = make_deployment(isvc, parse_runtime(raw, "ClusterServingRuntime"), SETTINGS)["metadata"]
    assert meta["labels"] == {
        "tier": "predictor",
        "from-runtime": "yes",
        "component": "predictor",  # KServe's fixed labels win over the user's
        "app": "isvc.llama-predictor",
        "serving.kserve.io/inferenceservice": "llama",
    }
    assert meta["annotations"]["team"] == "predictor"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]
    assert "autoscaling.knative.dev/min-scale" not in meta["annotations"]


def test_owner_reference_carries_the_isvc_uid() -> None:
    (owner,) = _deployment(vllm_isvc())["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "name": "llama",
        "controller": True,
        "blockOwnerDeletion": True,
        "uid": "uid-1",
    }


def test_named_predictor_changes_every_name_and_selector() -> None:
    isvc = vllm_isvc()
    isvc["spec"]["predictor"]["name"] = "v2"
    deployment = _deployment(isvc)
    assert deployment["metadata"]["name"] == "llama-v2-predictor"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "isvc.llama-v2-predictor"}


def test_pod_fields_pass_through_and_merge_with_the_runtime() -> None:
    isvc = vllm_isvc(
        nodeSelector={"gpu": "a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        serviceAccountName="models",
        imagePullSecrets=[{"name": "regcred"}],
        volumes=[{"name": "cache", "emptyDir": {}}],
        priorityClassName="inference",
    )
    pod = _pod(isvc)
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == isvc["spec"]["predictor"]["tolerations"]
    assert pod["serviceAccountName"] == "models"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "inference"
    # an ISVC-only volume comes first: apimachinery puts new patch items before base-only ones
    assert [v["name"] for v in pod["volumes"]] == ["cache", "devshm", "kserve-provision-location"]
    assert "affinity" in pod


def test_isvc_tolerations_replace_the_runtimes_and_node_selectors_merge() -> None:
    raw = copy.deepcopy(bundled_runtimes()[0])
    raw["spec"]["tolerations"] = [{"key": "runtime", "operator": "Exists"}]
    raw["spec"]["nodeSelector"] = {"pool": "gpu", "zone": "a"}
    runtime = parse_runtime(raw, "ClusterServingRuntime")
    isvc = vllm_isvc(
        tolerations=[{"key": "isvc", "operator": "Exists"}], nodeSelector={"zone": "b"}
    )
    pod = make_deployment(isvc, runtime, SETTINGS)["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "isvc", "operator": "Exists"}]
    assert pod["nodeSelector"] == {"pool": "gpu", "zone": "b"}


def test_sidecars_and_runtime_extra_containers_follow_the_model_container() -> None:
    raw = copy.deepcopy(bundled_runtimes()[0])
    raw["spec"]["containers"].append({"name": "runtime-sidecar", "image": "proxy:1"})
    isvc = vllm_isvc(containers=[{"name": "isvc-sidecar", "image": "log:1"}])
    pod = make_deployment(isvc, parse_runtime(raw, "ClusterServingRuntime"), SETTINGS)
    names = [c["name"] for c in pod["spec"]["template"]["spec"]["containers"]]
    assert names == ["kserve-container", "runtime-sidecar", "isvc-sidecar"]
    for c in pod["spec"]["template"]["spec"]["containers"]:
        assert {"name": "INFERENCE_SERVICE_NAME", "value": "llama"} in c["env"]


def test_runtime_without_kserve_container_is_invalid() -> None:
    raw = copy.deepcopy(bundled_runtimes()[0])
    raw["spec"]["containers"][0]["name"] = "server"
    with pytest.raises(PlanError) as info:
        make_deployment(vllm_isvc(), parse_runtime(raw, "ClusterServingRuntime"), SETTINGS)
    assert info.value.failure.reason == Reason.INVALID_RUNTIME


def test_pvc_storage_mounts_the_claim_without_an_init_container() -> None:
    pod = _pod(vllm_isvc(model={"storageUri": "pvc://models/llama/8b"}))
    assert "initContainers" not in pod
    assert {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": "models"}} in pod[
        "volumes"
    ]
    assert pod["containers"][0]["volumeMounts"][-1] == {
        "name": "kserve-pvc-source",
        "mountPath": "/mnt/models",
        "subPath": "llama/8b",
        "readOnly": True,
    }


def test_pvc_root_has_no_sub_path_and_readonly_false_annotation_is_honoured() -> None:
    isvc = vllm_isvc(model={"storageUri": "pvc://models"})
    isvc["metadata"]["annotations"] = {"storage.kserve.io/readonly": "false"}
    mount = _pod(isvc)["containers"][0]["volumeMounts"][-1]
    assert mount == {"name": "kserve-pvc-source", "mountPath": "/mnt/models"}


@pytest.mark.parametrize(
    "uri",
    [
        "hf://meta-llama/Llama-3.1-8B",
        "s3://bucket/llama",
        "gs://bucket/llama",
        "https://example.com/model.tar.gz",
        "http://minio:9000/model",
        "https://acct.blob.core.windows.net/models/llama",
        "/data/models/llama",
        "file:///data/models",
    ],
)
def test_downloadable_uris_get_the_storage_initializer(uri: str) -> None:
    pod = _pod(vllm_isvc(model={"storageUri": uri}))
    (init,) = pod["initContainers"]
    assert init["args"] == [uri, "/mnt/models"]
    assert init["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/mnt/models"}
    ]


def test_no_storage_uri_means_no_model_volume() -> None:
    isvc = vllm_isvc()
    del isvc["spec"]["predictor"]["model"]["storageUri"]
    deployment = _deployment(isvc)
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["devshm"]
    assert (
        "internal.serving.kserve.io/storage-initializer-sourceuri"
        not in deployment["metadata"]["annotations"]
    )


def test_azure_host_with_a_bad_path_is_invalid() -> None:
    with pytest.raises(PlanError) as info:
        _deployment(vllm_isvc(model={"storageUri": "https://acct.blob.core.windows.net"}))
    assert info.value.failure.reason == Reason.INVALID_STORAGE_URI


def test_storage_initializer_settings_are_used() -> None:
    settings = Settings(storage_initializer_image="mirror/si:1", storage_initializer_cpu_limit="2")
    init = _deployment(vllm_isvc(), settings)["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"] == "mirror/si:1"
    assert init["resources"]["limits"]["cpu"] == "2"


def _custom(*containers: dict[str, Any]) -> dict[str, Any]:
    isvc = vllm_isvc(containers=list(containers))
    del isvc["spec"]["predictor"]["model"]
    return isvc


def test_custom_predictor_puts_kserve_container_first_and_rewrites_storage_uri_env() -> None:
    isvc = _custom(
        {"name": "sidecar", "image": "s:1"},
        {
            "name": "kserve-container",
            "image": "server:1",
            "args": ["--model={{.Name}}"],  # no runtime, so no placeholder rendering
            "env": [{"name": "STORAGE_URI", "value": "s3://bucket/m"}],
        },
    )
    deployment = make_deployment(isvc, None, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "sidecar"]
    main = container(deployment)
    assert main["args"] == ["--model={{.Name}}"]
    assert {"name": "STORAGE_URI", "value": "/mnt/models"} in main["env"]
    assert pod["initContainers"][0]["args"] == ["s3://bucket/m", "/mnt/models"]
    assert "readinessProbe" not in pod["containers"][1]


def test_storage_uri_on_a_collocated_transformer_is_refused() -> None:
    isvc = _custom(
        {"name": "kserve-container", "image": "server:1"},
        {"name": "transformer-container", "env": [{"name": "STORAGE_URI", "value": "s3://b/m"}]},
    )
    result = plan_with(isvc)
    assert result.failure is not None
    assert result.failure.reason == Reason.INVALID_STORAGE_URI


def test_service_ports_follow_the_transformer_container_and_mark_grpc() -> None:
    isvc = _custom(
        {"name": "kserve-container", "image": "server:1", "ports": [{"containerPort": 9000}]},
        {
            "name": "transformer-container",
            "image": "t:1",
            "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
            ],
        },
    )
    assert make_service(isvc, None, SETTINGS)["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {
            "name": "grpc",
            "protocol": "TCP",
            "port": 8081,
            "targetPort": 8081,
            "appProtocol": "kubernetes.io/h2c",
        },
    ]


def test_headless_service_setting() -> None:
    service = make_service(vllm_isvc(), RUNTIME, Settings(service_cluster_ip_none=True))
    assert service["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in make_service(vllm_isvc(), RUNTIME, SETTINGS)["spec"]


def test_deployment_strategy_replaces_the_default_rollout() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    spec = _deployment(vllm_isvc(deploymentStrategy=strategy))["spec"]
    assert spec["strategy"] == strategy
    assert "revisionHistoryLimit" not in spec


def test_framework_shorthand_becomes_a_model() -> None:
    isvc = vllm_isvc()
    isvc["spec"]["predictor"] = {"huggingface": {"storageUri": "hf://org/m", "args": ["--x"]}}
    raw = copy.deepcopy(bundled_runtimes()[0])
    raw["metadata"]["name"] = "hf-runtime"
    raw["spec"]["supportedModelFormats"] = [{"name": "huggingface", "autoSelect": True}]
    raw["spec"]["protocolVersions"] = ["v2"]  # the shorthand defaults to protocol v2
    result = plan_with(isvc, raw)
    assert result.failure is None
    assert result.runtime is not None
    assert result.runtime.name == "hf-runtime"
    deployment = result.get("Deployment")
    assert deployment is not None
    assert container(deployment)["args"][-1] == "--x"
