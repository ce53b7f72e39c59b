"""Shared inputs for the reconciler tests: the KServe samples, extra runtimes, ISVC factories."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from autoscaler.reconciler import Plan, Settings, plan
from autoscaler.reconciler.manifests import Manifests, bundled_runtimes, classify, parse_documents

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "kserve" / "samples"
UPSTREAM_CRDS = SHARED / "kserve" / "crds"
SETTINGS = Settings()


def load(name: str) -> Manifests:
    """The KServe objects in one sample file."""
    path = SAMPLES / name
    return classify(parse_documents(path.read_text(), str(path)), str(path))


def sample_isvc(name: str, index: int = 0) -> JSON:
    return copy.deepcopy(load(name).isvcs[index])


def sample_runtime(name: str) -> JSON:
    return copy.deepcopy(load(name).cluster_runtimes[0])


def _runtime(name: str, fmt: str, image: str, protocols: list[str], args: list[str]) -> JSON:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": name},
        "spec": {
            "supportedModelFormats": [
                {"name": fmt, "version": "1", "autoSelect": True, "priority": 1}
            ],
            "protocolVersions": protocols,
            "containers": [{"name": "kserve-container", "image": image, "args": args}],
        },
    }


# Small stand-ins for KServe's sklearn / tensorflow runtimes (not among the samples), so the
# sklearn and tensorflow samples can be planned end to end.
SKLEARN_RUNTIME = _runtime(
    "kserve-sklearnserver",
    "sklearn",
    "kserve/sklearnserver:latest",
    ["v1", "v2"],
    ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"],
)
TENSORFLOW_RUNTIME = _runtime(
    "kserve-tensorflow-serving",
    "tensorflow",
    "tensorflow/serving:2.6.2",
    ["v1", "grpc-v1"],
    ["--model_name={{.Name}}", "--model_base_path=/mnt/models", "--rest_api_port=8080"],
)


def vllm_isvc(name: str = "llama", **predictor: Any) -> JSON:
    """A vLLM InferenceService served by the bundled ``kserve-vllmserver`` runtime."""
    model: JSON = {"modelFormat": {"name": "vLLM"}, "storageUri": "hf://meta-llama/Llama-3.1-8B"}
    model.update(predictor.pop("model", {}))
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "llm", "uid": "uid-1"},
        "spec": {"predictor": {"model": model, **predictor}},
    }


def plan_with(isvc: JSON, *cluster_runtimes: JSON, runtimes: tuple[JSON, ...] = ()) -> Plan:
    """``plan`` with the given runtimes plus the bundled vLLM one."""
    return plan(isvc, list(runtimes), [*cluster_runtimes, *bundled_runtimes()], SETTINGS)


def container(obj: JSON, name: str = "kserve-container") -> JSON:
    """A container of a planned Deployment by name."""
    pod = obj["spec"]["template"]["spec"]
    found: JSON = next(c for c in pod["containers"] if c["name"] == name)
    return found
