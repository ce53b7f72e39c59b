"""Property: whatever shape an InferenceService has, ``plan`` answers with a typed result.

Random JSON is written into the fields the reconciler reads. ``plan`` must neither raise nor
fall back to its ``InternalError`` safety net: every malformed value has to be caught by the
field checks and reported with a specific reason.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.reconciler import Reason, Settings, compute_status, plan
from autoscaler.reconciler.manifests import bundled_runtimes

from .helpers import SKLEARN_RUNTIME, vllm_isvc

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PATHS = [
    "metadata",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.annotations.serving.kserve.io/autoscalerClass",
    "status",
    "status.deploymentMode",
    "spec",
    "spec.predictor",
    "spec.predictor.model",
    "spec.predictor.model.modelFormat",
    "spec.predictor.model.modelFormat.name",
    "spec.predictor.model.modelFormat.version",
    "spec.predictor.model.runtime",
    "spec.predictor.model.args",
    "spec.predictor.model.env",
    "spec.predictor.model.resources",
    "spec.predictor.model.resources.limits",
    "spec.predictor.model.ports",
    "spec.predictor.model.readinessProbe",
    "spec.predictor.model.storageUri",
    "spec.predictor.model.volumeMounts",
    "spec.predictor.containers",
    "spec.predictor.minReplicas",
    "spec.predictor.maxReplicas",
    "spec.predictor.scaleMetric",
    "spec.predictor.scaleTarget",
    "spec.predictor.autoScaling",
    "spec.predictor.nodeSelector",
    "spec.predictor.tolerations",
    "spec.predictor.volumes",
    "spec.predictor.labels",
    "spec.predictor.annotations",
    "spec.predictor.deploymentStrategy",
    "spec.predictor.name",
    "spec.predictor.sklearn",
    "spec.predictor.canaryTrafficPercent",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "x", "1Gi", "{{.X}}"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "value", "containerPort", "type"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _put(obj: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if head == "metadata" and rest.startswith("annotations."):
        key = rest.removeprefix("annotations.")
        node = obj.setdefault("metadata", {})
        if isinstance(node, dict) and isinstance(node.setdefault("annotations", {}), dict):
            node["annotations"][key] = value
        return
    if not rest:
        obj[head] = value
        return
    node = obj.setdefault(head, {})
    if isinstance(node, dict):
        _put(node, rest, value)


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_plan_never_raises_and_never_needs_the_safety_net(edits: list[tuple[str, Any]]) -> None:
    isvc = vllm_isvc(minReplicas=1, maxReplicas=3)
    for path, value in edits:
        _put(isvc, path, copy.deepcopy(value))
    result = plan(isvc, [], [SKLEARN_RUNTIME, *bundled_runtimes()], Settings())
    if result.failure is not None:
        assert result.failure.reason != Reason.INTERNAL_ERROR, result.failure
        assert result.objects == ()
    else:
        assert [o["kind"] for o in result.objects][:2] == ["Deployment", "Service"]
    status = compute_status(isvc, None, result.failure, Settings(), now=NOW)
    assert isinstance(status.get("conditions"), list)
