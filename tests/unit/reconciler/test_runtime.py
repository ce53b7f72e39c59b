"""Runtime selection: explicit names, autoSelect, priority, protocol, disabled, scope, ties."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.reconciler import PlanError, Reason, select_runtime
from autoscaler.reconciler.spec import Model


def _model(
    fmt: str = "vLLM",
    *,
    runtime: str | None = None,
    version: str | None = None,
    protocol: str | None = None,
) -> Model:
    return Model(fmt, version, runtime, protocol, None, {})


def _rt(
    name: str,
    *formats: dict[str, Any],
    kind: str = "ClusterServingRuntime",
    namespace: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if namespace:
        metadata["namespace"] = namespace
    body = {"supportedModelFormats": list(formats), "containers": [{"name": "kserve-container"}]}
    return {"kind": kind, "metadata": metadata, "spec": {**body, **spec}}


def _fmt(
    name: str = "vLLM",
    *,
    priority: int | None = None,
    auto: bool = True,
    version: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "autoSelect": auto}
    if priority is not None:
        out["priority"] = priority
    if version is not None:
        out["version"] = version
    return out


def _select(
    model: Model, cluster: list[dict[str, Any]], local: list[dict[str, Any]] | None = None
) -> str:
    return select_runtime(model, "ns", local or [], cluster).name


def _reason(
    model: Model, cluster: list[dict[str, Any]], local: list[dict[str, Any]] | None = None
) -> Reason:
    with pytest.raises(PlanError) as info:
        select_runtime(model, "ns", local or [], cluster)
    return info.value.failure.reason


def test_explicit_runtime_prefers_the_namespaced_one() -> None:
    local = [_rt("vllm", _fmt(), kind="ServingRuntime", namespace="ns")]
    cluster = [_rt("vllm", _fmt())]
    runtime = select_runtime(_model(runtime="vllm"), "ns", local, cluster)
    assert (runtime.kind, runtime.name) == ("ServingRuntime", "vllm")
    assert select_runtime(_model(runtime="vllm"), "ns", [], cluster).kind == "ClusterServingRuntime"


def test_runtime_of_another_namespace_is_invisible() -> None:
    local = [_rt("vllm", _fmt(), kind="ServingRuntime", namespace="other")]
    assert _reason(_model(runtime="vllm"), [], local) == Reason.RUNTIME_NOT_RECOGNIZED
    assert _reason(_model(), [], local) == Reason.NO_SUPPORTING_RUNTIME


def test_explicit_runtime_ignores_auto_select_but_checks_format() -> None:
    cluster = [_rt("manual", _fmt(auto=False))]
    assert _select(_model(runtime="manual"), cluster) == "manual"
    assert _reason(_model(), cluster) == Reason.NO_SUPPORTING_RUNTIME
    assert _reason(_model("onnx", runtime="manual"), cluster) == Reason.NO_SUPPORTING_RUNTIME


def test_explicit_disabled_runtime() -> None:
    cluster = [_rt("off", _fmt(), disabled=True)]
    assert _reason(_model(runtime="off"), cluster) == Reason.RUNTIME_DISABLED
    assert _reason(_model(), cluster) == Reason.NO_SUPPORTING_RUNTIME


def test_explicit_runtime_must_speak_the_models_protocol() -> None:
    cluster = [_rt("v1only", _fmt(), protocolVersions=["v1"])]
    assert _select(_model(runtime="v1only", protocol="v1"), cluster) == "v1only"
    assert _reason(_model(runtime="v1only", protocol="v2"), cluster) == Reason.NO_SUPPORTING_RUNTIME


def test_auto_select_requires_v1_when_the_model_names_no_protocol() -> None:
    cluster = [_rt("v2only", _fmt(), protocolVersions=["v2"]), _rt("any", _fmt("sklearn"))]
    assert _reason(_model(), cluster) == Reason.NO_SUPPORTING_RUNTIME
    assert _select(_model(protocol="v2"), cluster) == "v2only"


def test_format_version_must_match_exactly_when_given() -> None:
    cluster = [_rt("v1fmt", _fmt(version="1"))]
    assert _select(_model(version="1"), cluster) == "v1fmt"
    assert _select(_model(), cluster) == "v1fmt"
    assert _reason(_model(version="2"), cluster) == Reason.NO_SUPPORTING_RUNTIME


def test_higher_priority_wins_and_unset_priority_loses() -> None:
    cluster = [_rt("low", _fmt(priority=1)), _rt("none", _fmt()), _rt("high", _fmt(priority=5))]
    assert _select(_model(), cluster) == "high"


def test_namespaced_candidates_beat_cluster_ones_regardless_of_priority() -> None:
    local = [_rt("mine", _fmt(priority=1), kind="ServingRuntime", namespace="ns")]
    assert _select(_model(), [_rt("global", _fmt(priority=9))], local) == "mine"


def test_lower_protocol_breaks_a_priority_tie_like_kserve() -> None:
    cluster = [
        _rt("v2", _fmt(priority=1), protocolVersions=["v2"]),
        _rt("v1", _fmt(priority=1), protocolVersions=["v1", "v2"]),
    ]
    assert _select(_model(protocol="v2"), cluster) == "v1"


@pytest.mark.parametrize("priority", [1, None])
def test_equal_priority_and_protocol_is_ambiguous(priority: int | None) -> None:
    cluster = [
        _rt("older", _fmt(priority=priority), created="2025-01-01T00:00:00Z"),
        _rt("newer", _fmt(priority=priority), created="2026-01-01T00:00:00Z"),
    ]
    with pytest.raises(PlanError) as info:
        select_runtime(_model(), "ns", [], cluster)
    assert info.value.failure.reason == Reason.AMBIGUOUS_RUNTIME
    assert "newer and older" in info.value.failure.message


def test_a_tie_below_the_winner_is_not_ambiguous() -> None:
    cluster = [_rt("a", _fmt(priority=1)), _rt("b", _fmt(priority=1)), _rt("top", _fmt(priority=2))]
    assert _select(_model(), cluster) == "top"


def test_multi_model_and_multi_node_runtimes_are_not_auto_selected() -> None:
    cluster = [
        _rt("mm", _fmt(priority=9), multiModel=True),
        _rt("ray", _fmt(priority=8), workerSpec={"tensorParallelSize": 1}),
        _rt("plain", _fmt(priority=1)),
    ]
    assert _select(_model(), cluster) == "plain"


def test_malformed_runtimes_are_skipped_by_auto_select_but_named_ones_fail() -> None:
    broken = {"kind": "ClusterServingRuntime", "metadata": {"name": "broken"}, "spec": "?"}
    cluster = [broken, _rt("ok", _fmt())]
    assert _select(_model(), cluster) == "ok"
    assert _reason(_model(runtime="broken"), cluster) == Reason.INVALID_RUNTIME
