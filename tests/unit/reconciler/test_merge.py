"""Strategic merge, the runtime+ISVC container merge, placeholders, image tags, quantities."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from autoscaler.reconciler import PlanError, Reason, smp
from autoscaler.reconciler.containers import (
    merge_model_container,
    render_placeholders,
    update_image_tag,
)
from autoscaler.reconciler.quantity import canonical, parse_quantity
from autoscaler.reconciler.spec import Meta


def _env(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "value": n.lower()} for n in names]


@pytest.mark.parametrize(
    ("base", "patch", "merged"),
    [
        (["A", "B", "C"], ["D"], ["D", "A", "B", "C"]),
        (["A", "B", "C"], ["B"], ["A", "B", "C"]),
        (["A", "B", "C"], ["D", "B"], ["D", "A", "B", "C"]),
        (["A", "B", "C"], ["C", "A"], ["B", "C", "A"]),
        ([], ["X", "Y"], ["X", "Y"]),
    ],
)
def test_env_merge_order_follows_apimachinery(
    base: list[str], patch: list[str], merged: list[str]
) -> None:
    """New patch items first; overridden ones at their base position (``mergeSortedSlice``)."""
    result = smp.merge({"env": _env(*base)}, {"env": _env(*patch)}, smp.CONTAINER)
    assert [e["name"] for e in result["env"]] == merged


def test_unkeyed_lists_are_replaced_and_maps_merged() -> None:
    base = {"command": ["a", "b"], "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}
    patch = {"command": ["c"], "resources": {"limits": {"memory": "8Gi"}}}
    assert smp.merge(base, patch, smp.CONTAINER) == {
        "command": ["c"],
        "resources": {"limits": {"cpu": "1", "memory": "8Gi"}},
    }


def test_ports_merge_on_container_port_and_volumes_on_name() -> None:
    pod = smp.merge(
        {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}]},
        {"volumes": [{"name": "shm", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "x"}]},
        smp.POD,
    )
    assert pod["volumes"] == [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "x"},
    ]
    ports = smp.merge(
        {"ports": [{"containerPort": 8080, "name": "http"}]},
        {"ports": [{"containerPort": 8080, "protocol": "TCP"}]},
        smp.CONTAINER,
    )
    assert ports["ports"] == [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]


def test_merge_leaves_its_inputs_alone() -> None:
    base: dict[str, Any] = {"env": _env("A"), "resources": {"limits": {"cpu": "1"}}}
    merged = smp.merge(
        base, {"env": _env("A"), "resources": {"limits": {"cpu": "2"}}}, smp.CONTAINER
    )
    merged["resources"]["limits"]["cpu"] = "9"
    assert base == {"env": _env("A"), "resources": {"limits": {"cpu": "1"}}}


def test_keyed_item_without_its_key_is_invalid() -> None:
    with pytest.raises(PlanError) as info:
        smp.merge({"volumeMounts": []}, {"volumeMounts": [{"name": "x"}]}, smp.CONTAINER)
    assert info.value.failure.reason == Reason.INVALID_PREDICTOR_SPEC


RUNTIME_CONTAINER: dict[str, Any] = {
    "name": "kserve-container",
    "image": "vllm/vllm-openai:v1",
    "args": ["--port=8080", "--served-model-name={{.Name}}"],
    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
    "readinessProbe": {"httpGet": {"path": "/v1/models", "port": 8080}, "periodSeconds": 10},
}


def test_args_concatenate_runtime_first_without_dedup() -> None:
    merged = merge_model_container(RUNTIME_CONTAINER, {"args": ["--port=8080", "--enforce-eager"]})
    assert merged["args"] == [
        "--port=8080",
        "--served-model-name={{.Name}}",
        "--port=8080",
        "--enforce-eager",
    ]


def test_isvc_env_value_replaces_runtime_value_from() -> None:
    merged = merge_model_container(RUNTIME_CONTAINER, {"env": [{"name": "TOKEN", "value": "t"}]})
    assert merged["env"] == [{"name": "TOKEN", "value": "t"}]


def test_isvc_probe_handler_replaces_the_runtime_handler() -> None:
    probe = {"exec": {"command": ["true"]}, "timeoutSeconds": 3}
    merged = merge_model_container(RUNTIME_CONTAINER, {"readinessProbe": probe})
    assert merged["readinessProbe"] == {
        "periodSeconds": 10,
        "exec": {"command": ["true"]},
        "timeoutSeconds": 3,
    }
    tuned = merge_model_container(RUNTIME_CONTAINER, {"readinessProbe": {"periodSeconds": 30}})
    assert tuned["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": 8080}


def test_null_and_empty_isvc_fields_do_not_erase_runtime_fields() -> None:
    merged = merge_model_container(RUNTIME_CONTAINER, {"args": None, "env": [], "image": None})
    assert merged["image"] == "vllm/vllm-openai:v1"
    assert merged["args"] == RUNTIME_CONTAINER["args"]
    assert merged["env"] == RUNTIME_CONTAINER["env"]


META = Meta("llama", "llm", None, {"team": "ml"}, {"example.com/model": "meta/llama"})


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("--served-model-name={{.Name}}", "--served-model-name=llama"),
        ("{{ .Namespace }}/{{.Name}}", "llm/llama"),
        ("--team={{.Labels.team}}", "--team=ml"),
        ('--model={{index .Annotations "example.com/model"}}', "--model=meta/llama"),
        ("--missing={{.Labels.nope}}", "--missing="),
        ("plain ${SHELL} $(expr)", "plain ${SHELL} $(expr)"),
    ],
)
def test_placeholders(text: str, rendered: str) -> None:
    container = {"name": "kserve-container", "args": [text], "env": [{"name": "X", "value": text}]}
    out = render_placeholders(container, META, "rt")
    assert out["args"] == [rendered]
    assert out["env"] == [{"name": "X", "value": rendered}]


@pytest.mark.parametrize("text", ["{{.Spec.Predictor}}", "{{ .Name | upper }}", "{{.Name"])
def test_unsupported_placeholders_fail_with_kserve_message(text: str) -> None:
    with pytest.raises(PlanError) as info:
        render_placeholders({"name": "kserve-container", "args": [text]}, META, "kserve-vllmserver")
    assert info.value.failure.reason == Reason.INVALID_PLACEHOLDER
    assert info.value.failure.message.startswith(
        "failed to replace placeholders in serving runtime kserve-vllmserver "
        "Container kserve-container"
    )


GPU = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
MIG = {"resources": {"limits": {"nvidia.com/mig-1g.5gb": "1"}}}
VLLM_TYPE = {"serving.kserve.io/server-type": "vllmserver"}


@pytest.mark.parametrize(
    ("image", "extra", "version", "runtime", "annotations", "want"),
    [
        ("vllm/vllm-openai:v1", {}, None, "x", VLLM_TYPE, "vllm/vllm-openai-cpu:v1"),
        ("vllm/vllm-openai:v1", GPU, None, "x", VLLM_TYPE, "vllm/vllm-openai:v1"),
        ("vllm/vllm-openai:v1", MIG, None, "x", VLLM_TYPE, "vllm/vllm-openai:v1"),
        ("vllm/vllm-openai:v1", {}, None, "kserve-vllmserver", {}, "vllm/vllm-openai-cpu:v1"),
        ("vllm/vllm-openai-cpu:v1", {}, None, "x", VLLM_TYPE, "vllm/vllm-openai-cpu:v1"),
        ("hf:1.0", GPU, None, "kserve-huggingfaceserver", {}, "hf:1.0-gpu"),
        ("hf:1.0-gpu", GPU, None, "kserve-huggingfaceserver", {}, "hf:1.0-gpu"),
        ("hf:1.0", {}, None, "kserve-huggingfaceserver", {}, "hf:1.0"),
        ("vllm/vllm-openai:v1", {}, "v2", "x", VLLM_TYPE, "vllm/vllm-openai:v2"),
        ("registry:5000/vllm", {}, "v2", "x", {}, "registry:5000/vllm:v2"),
        ("vllm@sha256:abc", {}, "v2", "x", VLLM_TYPE, "vllm@sha256:abc"),
        ("custom:1", {}, None, "my-runtime", {}, "custom:1"),
    ],
)
def test_image_tag_rules(
    image: str,
    extra: dict[str, Any],
    version: str | None,
    runtime: str,
    annotations: dict[str, str],
    want: str,
) -> None:
    container = {"name": "kserve-container", "image": image, **extra}
    assert update_image_tag(container, version, runtime, annotations)["image"] == want


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2Gi", Decimal(2 * 1024**3)),
        ("1.5", Decimal("1.5")),
        ("1e3", Decimal(1000)),
        ("100M", Decimal(100_000_000)),
        ("+.5k", Decimal(500)),
        (4, Decimal(4)),
        (0.25, Decimal("0.25")),
    ],
)
def test_quantities(text: object, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1.5.2", "2GB", "Gi", "1 Gi", True, None, [1]])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


def test_canonical_quantity_strings() -> None:
    assert [canonical(v) for v in (1, 2.0, 0.5, "24Gi")] == ["1", "2", "0.5", "24Gi"]
