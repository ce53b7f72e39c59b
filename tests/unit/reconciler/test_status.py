"""``compute_status``: conditions from the Deployment, URLs, model status, stop, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
import yaml

from autoscaler.reconciler import Failure, Reason, RuntimeRef, Settings, compute_status

from .helpers import REPO, plan_with, vllm_isvc

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-03-01T12:00:00Z"
SETTINGS = Settings()
VLLM = RuntimeRef("ClusterServingRuntime", "kserve-vllmserver")


def _deployment(
    *conditions: tuple[str, str, str], ready: int = 0, generation: int = 3
) -> dict[str, Any]:
    planned = plan_with(vllm_isvc()).get("Deployment")
    assert planned is not None
    planned["status"] = {
        "observedGeneration": generation,
        "readyReplicas": ready,
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": f"{r} message"}
            for t, s, r in conditions
        ],
    }
    return planned


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


AVAILABLE = ("Available", "True", "MinimumReplicasAvailable")
COMPLETE = ("Progressing", "True", "NewReplicaSetAvailable")


def test_ready_isvc_status_matches_kserves_expected_shape() -> None:
    status = compute_status(
        vllm_isvc(),
        _deployment(AVAILABLE, COMPLETE, ready=2),
        None,
        SETTINGS,
        now=NOW,
        runtime=VLLM,
    )
    assert status == {
        "url": "http://llama-llm.example.com",
        "address": {"url": "http://llama-predictor.llm.svc.cluster.local"},
        "conditions": [
            {"type": "IngressReady", "status": "True", "lastTransitionTime": STAMP},
            {
                "type": "PredictorReady",
                "status": "True",
                "lastTransitionTime": STAMP,
                "reason": "NewReplicaSetAvailable",
                "message": "NewReplicaSetAvailable message",
            },
            {"type": "Ready", "status": "True", "lastTransitionTime": STAMP},
            {"type": "Stopped", "status": "False", "lastTransitionTime": STAMP, "severity": "Info"},
        ],
        "components": {"predictor": {"url": "http://llama-predictor-llm.example.com"}},
        "modelStatus": {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "copies": {"failedCopies": 0, "totalCopies": 2},
        },
        "deploymentMode": "Standard",
        "clusterServingRuntimeName": "kserve-vllmserver",
        "observedGeneration": 3,
    }


@pytest.mark.parametrize(
    ("conditions", "want"),
    [
        ((), ("False", "")),
        ((AVAILABLE,), ("True", "MinimumReplicasAvailable")),
        ((COMPLETE,), ("True", "NewReplicaSetAvailable")),
        ((("Progressing", "True", "ReplicaSetUpdated"),), ("Unknown", "ReplicaSetUpdated")),
        (
            (AVAILABLE, ("Progressing", "True", "ReplicaSetUpdated")),
            ("True", "MinimumReplicasAvailable"),
        ),
        (
            (("Available", "False", "MinimumReplicasUnavailable"), COMPLETE),
            ("False", "MinimumReplicasUnavailable"),
        ),
        (
            (AVAILABLE, ("Progressing", "False", "ProgressDeadlineExceeded")),
            ("False", "ProgressDeadlineExceeded"),
        ),
        (
            (AVAILABLE, COMPLETE, ("ReplicaFailure", "True", "FailedCreate")),
            ("False", "FailedCreate"),
        ),
    ],
    ids=[
        "new",
        "available",
        "complete",
        "rolling",
        "rolling-available",
        "unavailable",
        "deadline",
        "replica-failure",
    ],
)
def test_predictor_ready_follows_the_deployment(
    conditions: tuple[tuple[str, str, str], ...], want: tuple[str, str]
) -> None:
    status = compute_status(vllm_isvc(), _deployment(*conditions), None, SETTINGS, now=NOW)
    found = _conditions(status)
    assert found["PredictorReady"] == want
    assert found["Ready"] == (want if want[0] != "True" else ("True", ""))


def test_not_ready_keeps_url_but_no_predictor_component_url() -> None:
    status = compute_status(vllm_isvc(), _deployment(), None, SETTINGS, now=NOW)
    assert status["url"] == "http://llama-llm.example.com"
    assert "components" not in status
    assert status["modelStatus"]["transitionStatus"] == "InProgress"
    assert status["modelStatus"]["states"]["targetModelState"] == "Pending"


def test_missing_deployment_is_unknown() -> None:
    found = _conditions(compute_status(vllm_isvc(), None, None, SETTINGS, now=NOW))
    assert found["PredictorReady"] == ("Unknown", "")
    assert found["Ready"] == ("Unknown", "")


def test_plan_failure_sets_reason_message_and_model_failure_info() -> None:
    failure = plan_with(vllm_isvc(model={"runtime": "gone"})).failure
    assert failure is not None
    status = compute_status(vllm_isvc(), None, failure, SETTINGS, now=NOW)
    predictor = next(c for c in status["conditions"] if c["type"] == "PredictorReady")
    assert (predictor["status"], predictor["reason"]) == ("False", "RuntimeNotRecognized")
    assert "gone" in predictor["message"]
    assert _conditions(status)["Ready"] == ("False", "RuntimeNotRecognized")
    assert status["modelStatus"] == {
        "transitionStatus": "InvalidSpec",
        "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
        "lastFailureInfo": {"reason": "RuntimeNotRecognized", "message": failure.message},
    }
    assert "url" not in status


@pytest.mark.parametrize(
    ("reason", "kserve"),
    [
        (Reason.AMBIGUOUS_RUNTIME, "NoSupportingRuntime"),
        (Reason.RUNTIME_DISABLED, "RuntimeDisabled"),
        (Reason.INVALID_ARGS, "InvalidPredictorSpec"),
        (Reason.UNSUPPORTED_AUTOSCALER_CLASS, "InvalidPredictorSpec"),
    ],
)
def test_failure_info_reason_stays_inside_the_crd_enum(reason: Reason, kserve: str) -> None:
    status = compute_status(vllm_isvc(), None, Failure(reason, "m"), SETTINGS, now=NOW)
    assert status["modelStatus"]["lastFailureInfo"]["reason"] == kserve
    assert _conditions(status)["PredictorReady"] == ("False", reason.value)


def test_failure_after_ready_keeps_url_and_component_url() -> None:
    ready = compute_status(vllm_isvc(), _deployment(AVAILABLE), None, SETTINGS, now=NOW)
    isvc = {**vllm_isvc(), "status": ready}
    later = compute_status(
        isvc, None, Failure(Reason.RECONCILE_FAILED, "apply: 409"), SETTINGS, now=NOW
    )
    assert later["url"] == ready["url"]
    assert later["components"] == ready["components"]
    assert later["modelStatus"] == ready["modelStatus"]  # not a spec problem
    assert _conditions(later)["Ready"] == ("False", "ReconcileFailed")


def test_left_alone_mode_only_adds_conditions() -> None:
    isvc = {**vllm_isvc(), "status": {"url": "http://knative", "deploymentMode": "Knative"}}
    failure = Failure(Reason.DEPLOYMENT_MODE_NOT_SUPPORTED, "Serverless is not reconciled here")
    status = compute_status(isvc, None, failure, SETTINGS, now=NOW)
    assert (status["url"], status["deploymentMode"]) == ("http://knative", "Knative")
    assert _conditions(status) == {
        "PredictorReady": ("False", "DeploymentModeNotSupported"),
        "Ready": ("False", "DeploymentModeNotSupported"),
    }


def test_stopped_isvc_status_is_cleared_to_stop_conditions() -> None:
    isvc = vllm_isvc()
    isvc["metadata"]["annotations"] = {"serving.kserve.io/stop": "true"}
    isvc["status"] = compute_status(vllm_isvc(), _deployment(AVAILABLE), None, SETTINGS, now=NOW)
    status = compute_status(isvc, None, None, SETTINGS, now=NOW)
    assert set(status) == {"conditions", "deploymentMode"}
    assert _conditions(status) == {
        "IngressReady": ("False", "Stopped"),
        "PredictorReady": ("False", "Stopped"),
        "Ready": ("False", "Stopped"),
        "Stopped": ("True", ""),
    }


def test_last_transition_time_moves_only_on_status_change() -> None:
    first = compute_status(vllm_isvc(), _deployment(), None, SETTINGS, now=NOW)
    later = NOW + timedelta(minutes=5)
    isvc = {**vllm_isvc(), "status": first}
    second = compute_status(isvc, _deployment(AVAILABLE), None, SETTINGS, now=later)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["IngressReady"] == STAMP  # True before and after
    assert times["PredictorReady"] == "2026-03-01T12:05:00Z"
    assert times["Ready"] == "2026-03-01T12:05:00Z"


def test_component_url_survives_the_predictor_turning_unready() -> None:
    ready = compute_status(vllm_isvc(), _deployment(AVAILABLE), None, SETTINGS, now=NOW)
    isvc = {**vllm_isvc(), "status": ready}
    degraded = compute_status(
        isvc, _deployment(("Available", "False", "X")), None, SETTINGS, now=NOW
    )
    assert degraded["components"] == {
        "predictor": {"url": "http://llama-predictor-llm.example.com"}
    }


def test_settings_shape_the_urls() -> None:
    settings = Settings(
        ingress_domain="models.corp",
        url_scheme="https",
        cluster_domain="k8s.internal",
        service_cluster_ip_none=True,
    )
    status = compute_status(vllm_isvc(), _deployment(AVAILABLE), None, settings, now=NOW)
    assert status["url"] == "https://llama-llm.models.corp"
    assert status["address"] == {"url": "http://llama-predictor.llm.svc.k8s.internal:8080"}
    assert status["components"]["predictor"]["url"] == "http://llama-predictor-llm.models.corp"


def test_namespaced_runtime_name_replaces_the_cluster_one() -> None:
    isvc = {**vllm_isvc(), "status": {"clusterServingRuntimeName": "old"}}
    status = compute_status(
        isvc, None, None, SETTINGS, now=NOW, runtime=RuntimeRef("ServingRuntime", "mine")
    )
    assert status["servingRuntimeName"] == "mine"
    assert "clusterServingRuntimeName" not in status


@cache
def _status_schema() -> dict[str, Any]:
    text = (REPO / "deploy" / "crds" / "serving.kserve.io_inferenceservices.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: use libyaml
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]
    return schema


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    """A small structural validator: types, enums, required keys, known properties."""
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if "type" in schema:
        assert isinstance(value, kinds[schema["type"]]), path
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{path}.{key} is required"
        props = schema.get("properties")
        for key, item in value.items():
            sub = props.get(key) if props is not None else schema.get("additionalProperties")
            assert sub is not None, f"{path}.{key} is not in the CRD"
            _check(item, sub, f"{path}.{key}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]")


@pytest.mark.parametrize(
    "case", ["ready", "progressing", "failure", "ambiguous", "stopped", "missing"]
)
def test_every_status_we_write_fits_the_crd_schema(case: str) -> None:
    isvc = vllm_isvc()
    deployment: dict[str, Any] | None = _deployment(AVAILABLE, ready=1)
    failure: Failure | None = None
    if case == "progressing":
        deployment = _deployment(("Progressing", "True", "ReplicaSetUpdated"))
    elif case == "failure":
        failure = Failure(Reason.INVALID_RESOURCES, "bad")
    elif case == "ambiguous":
        failure = Failure(Reason.AMBIGUOUS_RUNTIME, "two")
    elif case == "stopped":
        isvc["metadata"]["annotations"] = {"serving.kserve.io/stop": "true"}
    elif case == "missing":
        deployment = None
    status = compute_status(isvc, deployment, failure, SETTINGS, now=NOW, runtime=VLLM)
    _check(status, _status_schema(), "status")
