"""Every manifest in ``../shared/kserve/samples`` against the reconciler, one table row each.

In the subset (planned end to end, checked below):

* the huggingface LLM samples (``storage-hf``, ``text-generation qwen-cpu``, both ``fluid``
  ISVCs) with the KServe huggingface runtimes from the samples;
* custom containers (``v1beta1-custom simple``) and a transformer *collocated* in the predictor
  pod (``transformer-collocation``: it is ``predictor.containers``, not ``spec.transformer``);
* the sklearn/tensorflow samples (HPA classes, legacy ``RawDeployment``, ``https://``/``s3://``/
  ``gs://`` storage, the second rollout-strategy ISVC) given a stand-in sklearn/tensorflow
  runtime, since KServe's are not among the samples.

Not in the subset, each with the failure ``plan`` reports:

* ``spec.transformer`` (torchserve image transformer, rollout-strategy #1):
  ``TransformerNotSupported``;
* ``canaryTrafficPercent`` (v1beta1-rollout canary): ``CanaryNotSupported``, because raw mode
  has no revisions to split traffic between;
* ``workerSpec`` multi-node Ray serving (multi-node llama3): ``MultiNodeNotSupported``;
* autoscaler class ``keda`` (genai qwen, sklearn-v2-iris): ``UnsupportedAutoscalerClass``;
* ``oci+native://`` model images: ``UnsupportedStorageURI``;
* model + ``kserve-container`` both set (rollout-strategy #3): ``InvalidPredictorSpec``, the
  "exactly one implementation" rule KServe's webhook enforces;
* the ``autoscalerClass`` fragments are not manifests (no apiVersion/kind) -- ``render`` says
  so; ``test_plan.py`` applies them to a full ISVC instead;
* the four runtime files are runtimes, not ISVCs; the multi-node one is never auto-selected.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.reconciler import Reason
from autoscaler.reconciler.manifests import bundled_runtimes

from .helpers import (
    SAMPLES,
    SKLEARN_RUNTIME,
    TENSORFLOW_RUNTIME,
    container,
    load,
    plan_with,
    sample_isvc,
    sample_runtime,
)

HF = "config-runtimes__kserve-huggingfaceserver.yaml"
HF_MULTINODE = "config-runtimes__kserve-huggingfaceserver-multinode.yaml"
VLLM = "config-runtimes__kserve-vllmserver.yaml"
FLUID_RUNTIME = "docs-samples-fluid__kserve-huggingfaceserver.yaml"
ROLLOUT = "docs-samples-rollout-strategy__rollout-strategy-example.yaml"
FRAGMENTS = (
    "website-docs-hpa-autoscaler__autoscalerClass-external.fragment.yaml",
    "website-docs-hpa-autoscaler__autoscalerClass-none.fragment.yaml",
)
RUNTIME_FILES = (HF, HF_MULTINODE, VLLM, FLUID_RUNTIME)


def _runtime(spec: str | dict[str, Any]) -> dict[str, Any]:
    return sample_runtime(spec) if isinstance(spec, str) else spec


# (file, ISVC index, runtimes, expectation): expectation is a dict of checks, or a Reason
IN_SUBSET: list[Any] = [
    pytest.param(
        "docs-samples-storage-hf__hf_isvc.yaml",
        0,
        [HF],
        {
            "runtime": "kserve-huggingfaceserver",
            "image": "huggingfaceserver:replace-gpu",
            "download": "hf://meta-llama/Llama-2-7b-chat-hf",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="hf-isvc",
    ),
    pytest.param(
        "website-docs-text-generation__qwen-cpu-vllm-env.yaml",
        0,
        [HF],
        {
            "runtime": "kserve-huggingfaceserver",
            "image": "huggingfaceserver:replace",
            "download": "hf://Qwen/Qwen2-0.5B-Instruct",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="qwen-cpu",
    ),
    pytest.param(
        "docs-samples-fluid__fluid-isvc.yaml",
        0,
        [FLUID_RUNTIME, HF],
        {
            "runtime": "custom-kserve-huggingfaceserver",
            "image": "kserve/huggingfaceserver:latest",
            "pvc": ("s3-data", "llama-31-8b-instruct"),
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="fluid-pvc",
    ),
    pytest.param(
        "docs-samples-fluid__kserve-isvc.yaml",
        0,
        [HF],
        {
            "runtime": "kserve-huggingfaceserver",
            "image": "huggingfaceserver:replace-gpu",
            "download": "s3://${bucket}/models/meta-llama--Meta-Llama-3.1-8B-Instruct",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="fluid-s3",
    ),
    pytest.param(
        "docs-samples-v1beta1-custom__simple.yaml",
        0,
        [],
        {"runtime": None, "image": "codait/max-object-detector", "port": 5000, "hpa": (1, 1, 80)},
        id="custom-simple",
    ),
    pytest.param(
        "docs-samples-v1beta1-transformer-collocation__collocation.yaml",
        0,
        [],
        {
            "runtime": None,
            "image": "pytorch/torchserve:0.9.0-cpu",
            "download": "gs://kfserving-examples/models/torchserve/image_classifier/v1",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="collocation",
    ),
    pytest.param(
        "test-benchmark__sklearn_hpa.yaml",
        0,
        [SKLEARN_RUNTIME],
        {
            "runtime": "kserve-sklearnserver",
            "image": "kserve/sklearnserver:latest",
            "download": "gs://kfserving-examples/models/sklearn/1.0/model",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="benchmark-hpa",
    ),
    pytest.param(
        "website-docs-hpa-autoscaler__sklearn-iris-hpa-standard.yaml",
        0,
        [SKLEARN_RUNTIME],
        {
            "runtime": "kserve-sklearnserver",
            "image": "kserve/sklearnserver:latest",
            "download": "gs://kfserving-examples/models/sklearn/1.0/model",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="hpa-standard",
    ),
    pytest.param(
        "website-legacy-raw_deployment_autoscaling__sklearn-iris-hpa-rawdeployment.yaml",
        0,
        [SKLEARN_RUNTIME],
        {
            "runtime": "kserve-sklearnserver",
            "image": "kserve/sklearnserver:latest",
            "download": "gs://kfserving-examples/models/sklearn/1.0/model",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="legacy-rawdeployment",
    ),
    pytest.param(
        "docs-samples-storage-uri__sklearn.yaml",
        0,
        [SKLEARN_RUNTIME],
        {
            "runtime": "kserve-sklearnserver",
            "image": "kserve/sklearnserver:latest",
            "download": "https://github.com/tduffy000/kfserving-uri-examples/blob/master/sklearn/"
            "frozen/model.joblib?raw=true",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="https-uri",
    ),
    pytest.param(
        "docs-samples-storage-s3__tensorflow_s3.yaml",
        0,
        [TENSORFLOW_RUNTIME],
        {
            "runtime": "kserve-tensorflow-serving",
            "image": "tensorflow/serving:2.6.2",
            "download": "s3://kfserving-examples/mnist",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="tensorflow-s3",
    ),
    pytest.param(
        ROLLOUT,
        1,
        [SKLEARN_RUNTIME],
        {
            "runtime": "kserve-sklearnserver",
            "image": "kserve/sklearnserver:latest",
            "download": "s3://my-bucket/model",
            "port": 8080,
            "hpa": (1, 1, 80),
        },
        id="rollout-configmap-defaults",
    ),
]

OUT_OF_SUBSET: list[Any] = [
    pytest.param(
        ROLLOUT, 0, [SKLEARN_RUNTIME], Reason.TRANSFORMER_NOT_SUPPORTED, id="rollout-transformer"
    ),
    pytest.param(
        ROLLOUT, 2, [HF], Reason.INVALID_PREDICTOR_SPEC, id="rollout-model-and-containers"
    ),
    pytest.param(
        "docs-samples-v1beta1-transformer-torchserve_image_transformer__transformer.yaml",
        0,
        [],
        Reason.TRANSFORMER_NOT_SUPPORTED,
        id="transformer",
    ),
    pytest.param(
        "docs-samples-v1beta1-rollout__canary.yaml",
        0,
        [TENSORFLOW_RUNTIME],
        Reason.CANARY_NOT_SUPPORTED,
        id="canary",
    ),
    pytest.param(
        "website-docs-multi-node__huggingface-llama3-autoscaler-none.yaml",
        0,
        [HF, HF_MULTINODE],
        Reason.MULTI_NODE_NOT_SUPPORTED,
        id="multi-node",
    ),
    pytest.param(
        "website-docs-genai-autoscaling__huggingface-qwen-keda-prometheus.yaml",
        0,
        [HF],
        Reason.UNSUPPORTED_AUTOSCALER_CLASS,
        id="keda-genai",
    ),
    pytest.param(
        "website-docs-keda-autoscaler__sklearn-v2-iris-keda.yaml",
        0,
        [SKLEARN_RUNTIME],
        Reason.UNSUPPORTED_AUTOSCALER_CLASS,
        id="keda-sklearn",
    ),
    pytest.param(
        "docs-samples-storage-oci-image-volume__inference_service.yaml",
        0,
        [SKLEARN_RUNTIME],
        Reason.UNSUPPORTED_STORAGE_URI,
        id="oci-native",
    ),
]

# Without the runtime they need, the in-subset model samples fail with KServe's reasons.
WITHOUT_RUNTIME: list[Any] = [
    pytest.param(
        "docs-samples-fluid__fluid-isvc.yaml", Reason.RUNTIME_NOT_RECOGNIZED, id="fluid-pvc"
    ),
    pytest.param(
        "docs-samples-fluid__kserve-isvc.yaml", Reason.NO_SUPPORTING_RUNTIME, id="fluid-s3"
    ),
    pytest.param(
        "docs-samples-storage-hf__hf_isvc.yaml", Reason.NO_SUPPORTING_RUNTIME, id="hf-isvc"
    ),
    pytest.param(
        "test-benchmark__sklearn_hpa.yaml", Reason.NO_SUPPORTING_RUNTIME, id="benchmark-hpa"
    ),
    pytest.param(
        "docs-samples-storage-s3__tensorflow_s3.yaml",
        Reason.NO_SUPPORTING_RUNTIME,
        id="tensorflow-s3",
    ),
]


def _files(params: list[Any]) -> set[str]:
    return {p.values[0] for p in params}


def test_the_table_covers_every_sample() -> None:
    covered = _files(IN_SUBSET) | _files(OUT_OF_SUBSET) | set(FRAGMENTS) | set(RUNTIME_FILES)
    on_disk = {p.name for p in SAMPLES.glob("*.yaml")}
    assert len(on_disk) == 24
    assert on_disk == covered


def test_every_isvc_of_every_sample_has_a_row() -> None:
    rows = {(p.values[0], p.values[1]) for p in IN_SUBSET + OUT_OF_SUBSET}
    for path in SAMPLES.glob("*.yaml"):
        for index in range(len(load(path.name).isvcs)):
            assert (path.name, index) in rows


@pytest.mark.parametrize(("file", "index", "runtimes", "want"), IN_SUBSET)
def test_in_subset_sample_plans_kserve_shaped_objects(
    file: str, index: int, runtimes: list[Any], want: dict[str, Any]
) -> None:
    isvc = sample_isvc(file, index)
    name = isvc["metadata"]["name"]
    component = f"{name}-predictor"
    result = plan_with(isvc, *map(_runtime, runtimes))
    assert result.failure is None
    assert [o["kind"] for o in result.objects] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ]
    assert (result.runtime.name if result.runtime else None) == want["runtime"]

    labels = {
        "serving.kserve.io/inferenceservice": name,
        "component": "predictor",
        "app": f"isvc.{component}",
    }
    for obj in result.objects:
        assert obj["metadata"]["name"] == component
        assert obj["metadata"]["namespace"] == isvc["metadata"].get("namespace", "default")
        assert labels.items() <= obj["metadata"]["labels"].items()
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "InferenceService",
            name,
            True,
        )

    deployment, service, hpa = result.objects
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": f"isvc.{component}"}}
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    main = container(deployment)
    assert main["image"] == want["image"]
    assert {"name": "INFERENCE_SERVICE_NAME", "value": name} in main["env"]
    pod = deployment["spec"]["template"]["spec"]
    if "download" in want:
        (init,) = pod["initContainers"]
        assert (init["name"], init["args"]) == (
            "storage-initializer",
            [want["download"], "/mnt/models"],
        )
        assert {"name": "kserve-provision-location", "emptyDir": {}} in pod["volumes"]
        assert {
            "name": "kserve-provision-location",
            "mountPath": "/mnt/models",
            "readOnly": True,
        } in main["volumeMounts"]
    elif "pvc" in want:
        claim, sub_path = want["pvc"]
        assert "initContainers" not in pod
        assert {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": claim}} in pod[
            "volumes"
        ]
        assert {
            "name": "kserve-pvc-source",
            "mountPath": "/mnt/models",
            "subPath": sub_path,
            "readOnly": True,
        } in main["volumeMounts"]
    else:
        assert "initContainers" not in pod

    assert service["spec"]["selector"] == {"app": f"isvc.{component}"}
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == want["port"]

    low, high, cpu = want["hpa"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": component,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (low, high)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": cpu},
            },
        }
    ]


@pytest.mark.parametrize(("file", "index", "runtimes", "reason"), OUT_OF_SUBSET)
def test_out_of_subset_sample_fails_with_its_reason(
    file: str, index: int, runtimes: list[Any], reason: Reason
) -> None:
    result = plan_with(sample_isvc(file, index), *map(_runtime, runtimes))
    assert result.failure is not None
    assert result.failure.reason == reason
    assert result.objects == ()
    assert result.deletes == ()


@pytest.mark.parametrize(("file", "reason"), WITHOUT_RUNTIME)
def test_model_sample_without_its_runtime_names_the_missing_runtime(
    file: str, reason: Reason
) -> None:
    result = plan_with(sample_isvc(file))
    assert result.failure is not None
    assert result.failure.reason == reason


def test_runtime_files_hold_one_cluster_runtime_each() -> None:
    for file in RUNTIME_FILES:
        found = load(file)
        assert (len(found.isvcs), len(found.runtimes), len(found.cluster_runtimes)) == (0, 0, 1)


def test_multi_node_runtime_is_never_auto_selected() -> None:
    """Only the single-node huggingface runtime serves a single-node ISVC (priority 2 < 1 loses)."""
    result = plan_with(
        sample_isvc("docs-samples-storage-hf__hf_isvc.yaml"), sample_runtime(HF_MULTINODE)
    )
    assert result.failure is not None
    assert result.failure.reason == Reason.NO_SUPPORTING_RUNTIME
    chosen = plan_with(
        sample_isvc("docs-samples-storage-hf__hf_isvc.yaml"),
        sample_runtime(HF_MULTINODE),
        sample_runtime(HF),
    )
    assert chosen.runtime is not None
    assert chosen.runtime.name == "kserve-huggingfaceserver"


def test_two_huggingface_runtimes_of_equal_priority_are_ambiguous() -> None:
    """fluid's custom runtime and KServe's both auto-select huggingface at priority 1."""
    result = plan_with(
        sample_isvc("docs-samples-fluid__kserve-isvc.yaml"),
        sample_runtime(HF),
        sample_runtime(FLUID_RUNTIME),
    )
    assert result.failure is not None
    assert result.failure.reason == Reason.AMBIGUOUS_RUNTIME
    assert "custom-kserve-huggingfaceserver" in result.failure.message
    assert "kserve-huggingfaceserver" in result.failure.message


def test_kserve_vllm_sample_runtime_and_bundled_runtime_agree_on_the_contract() -> None:
    """Same name, model format, command and args as KServe's kserve-vllmserver."""
    (ours,) = bundled_runtimes()
    theirs = sample_runtime(VLLM)
    assert ours["metadata"] == theirs["metadata"]
    assert ours["spec"]["supportedModelFormats"] == theirs["spec"]["supportedModelFormats"]
    mine, upstream = ours["spec"]["containers"][0], theirs["spec"]["containers"][0]
    for key in ("name", "command", "args", "readinessProbe", "startupProbe", "volumeMounts"):
        assert mine[key] == upstream[key], key
