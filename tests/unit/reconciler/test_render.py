"""``llm-autoscaler render`` on every sample, and on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.cli import main

from .helpers import SAMPLES

HF = str(SAMPLES / "config-runtimes__kserve-huggingfaceserver.yaml")
FLUID_RUNTIME = str(SAMPLES / "docs-samples-fluid__kserve-huggingfaceserver.yaml")

# What `render -f <sample>` alone (bundled vLLM runtime only) reports: the reasons, one line
# per InferenceService, or [] for success.
ALONE: dict[str, list[str]] = {
    "config-runtimes__kserve-huggingfaceserver-multinode.yaml": ["no InferenceService"],
    "config-runtimes__kserve-huggingfaceserver.yaml": ["no InferenceService"],
    "config-runtimes__kserve-vllmserver.yaml": ["no InferenceService"],
    "docs-samples-fluid__kserve-huggingfaceserver.yaml": ["no InferenceService"],
    "website-docs-hpa-autoscaler__autoscalerClass-external.fragment.yaml": ["a fragment?"],
    "website-docs-hpa-autoscaler__autoscalerClass-none.fragment.yaml": ["a fragment?"],
    "docs-samples-fluid__fluid-isvc.yaml": ["RuntimeNotRecognized"],
    "docs-samples-fluid__kserve-isvc.yaml": ["NoSupportingRuntime"],
    "docs-samples-rollout-strategy__rollout-strategy-example.yaml": [
        "TransformerNotSupported",
        "NoSupportingRuntime",
        "InvalidPredictorSpec",
    ],
    "docs-samples-storage-hf__hf_isvc.yaml": ["NoSupportingRuntime"],
    "docs-samples-storage-oci-image-volume__inference_service.yaml": ["UnsupportedStorageURI"],
    "docs-samples-storage-s3__tensorflow_s3.yaml": ["NoSupportingRuntime"],
    "docs-samples-storage-uri__sklearn.yaml": ["NoSupportingRuntime"],
    "docs-samples-v1beta1-custom__simple.yaml": [],
    "docs-samples-v1beta1-rollout__canary.yaml": ["CanaryNotSupported"],
    "docs-samples-v1beta1-transformer-collocation__collocation.yaml": [],
    "docs-samples-v1beta1-transformer-torchserve_image_transformer__transformer.yaml": [
        "TransformerNotSupported"
    ],
    "test-benchmark__sklearn_hpa.yaml": ["NoSupportingRuntime"],
    "website-docs-genai-autoscaling__huggingface-qwen-keda-prometheus.yaml": [
        "UnsupportedAutoscalerClass"
    ],
    "website-docs-hpa-autoscaler__sklearn-iris-hpa-standard.yaml": ["NoSupportingRuntime"],
    "website-docs-keda-autoscaler__sklearn-v2-iris-keda.yaml": ["UnsupportedAutoscalerClass"],
    "website-docs-multi-node__huggingface-llama3-autoscaler-none.yaml": ["MultiNodeNotSupported"],
    "website-docs-text-generation__qwen-cpu-vllm-env.yaml": ["NoSupportingRuntime"],
    "website-legacy-raw_deployment_autoscaling__sklearn-iris-hpa-rawdeployment.yaml": [
        "NoSupportingRuntime"
    ],
}


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = main(["render", *args])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_the_table_lists_every_sample() -> None:
    assert set(ALONE) == {p.name for p in SAMPLES.glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(ALONE))
def test_render_every_sample_alone(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = _render(capsys, "-f", str(SAMPLES / name))
    expected = ALONE[name]
    assert code == (1 if expected else 0)
    assert len(err) == len(expected)  # one line per problem
    for line, reason in zip(err, expected, strict=True):
        assert line.startswith("render: ")
        assert reason in line
    if not expected:
        kinds = [d["kind"] for d in yaml.safe_load_all(out)]
        assert kinds == ["Deployment", "Service", "HorizontalPodAutoscaler"]


@pytest.mark.parametrize(
    ("files", "name"),
    [
        (["docs-samples-storage-hf__hf_isvc.yaml", HF], "huggingface-llama2"),
        (["website-docs-text-generation__qwen-cpu-vllm-env.yaml", HF], "qwen-cpu"),
        (["docs-samples-fluid__fluid-isvc.yaml", FLUID_RUNTIME], "llama-31-8b-instruct"),
        (["docs-samples-fluid__kserve-isvc.yaml", HF], "llama-31-8b-instruct"),
    ],
)
def test_render_llm_samples_with_their_runtime(
    capsys: pytest.CaptureFixture[str], files: list[str], name: str
) -> None:
    args = [arg for f in files for arg in ("-f", str(SAMPLES / f))]
    code, out, err = _render(capsys, *args)
    assert (code, err) == (0, [])
    docs = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", f"{name}-predictor"),
        ("Service", f"{name}-predictor"),
        ("HorizontalPodAutoscaler", f"{name}-predictor"),
    ]
    assert out.startswith(f"# InferenceService {name}: autoscalerClass hpa, runtime ")


def test_render_mixed_multi_document_file_and_namespace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "chat",
            "annotations": {"serving.kserve.io/autoscalerClass": "external"},
        },
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "vLLM"}, "storageUri": "pvc://m/x"}}
        },
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([cm, isvc]))
    code, out, err = _render(capsys, "-f", str(path), "--namespace", "team-a")
    assert (code, err) == (0, [])
    assert "# would delete HorizontalPodAutoscaler team-a/chat-predictor" in out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert {d["metadata"]["namespace"] for d in docs} == {"team-a"}


def test_a_file_runtime_overrides_the_bundled_one_by_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    upstream = SAMPLES / "config-runtimes__kserve-vllmserver.yaml"  # same name, placeholder image
    isvc = tmp_path / "isvc.yaml"
    isvc.write_text(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\n"
        "spec: {predictor: {model: {modelFormat: {name: vLLM}}}}\n"
    )
    code, out, _ = _render(capsys, "-f", str(isvc), "-f", str(upstream))
    assert code == 0
    assert "image: vllmserver-cpu:replace" in out
    code, out, _ = _render(capsys, "-f", str(isvc))
    assert code == 0
    assert "image: vllm/vllm-openai-cpu:latest" in out


def test_no_bundled_runtime_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    isvc = tmp_path / "isvc.yaml"
    isvc.write_text(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\n"
        "spec: {predictor: {model: {modelFormat: {name: vLLM}}}}\n"
    )
    code, _, err = _render(capsys, "-f", str(isvc), "--no-bundled-runtime")
    assert code == 1
    assert len(err) == 1
    assert "NoSupportingRuntime" in err[0]


def test_invalid_yaml_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: InferenceService\nmetadata: {name: [\n")
    code, out, err = _render(capsys, "-f", str(path))
    assert (code, out) == (1, "")
    assert len(err) == 1
    assert err[0].startswith(f"render: {path} line ")
    assert "invalid YAML" in err[0]


def test_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _render(capsys, "-f", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert len(err) == 1
    assert "nope.yaml" in err[0]


def test_scalar_document_is_not_an_isvc(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text("just a string\n")
    code, _, err = _render(capsys, "-f", str(path))
    assert code == 1
    assert err == [
        f"render: no InferenceService in {path} "
        "(scalar.yaml document 1: no apiVersion/kind (a fragment?))"
    ]


def test_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    text = (SAMPLES / "docs-samples-v1beta1-custom__simple.yaml").read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = _render(capsys, "-f", "-")
    assert code == 0
    assert "custom-simple-predictor" in out


def test_render_is_registered_with_the_cli() -> None:
    from autoscaler.cli import COMMANDS
    from autoscaler.commands import render

    assert COMMANDS["render"] == "render"
    assert render.HELP
    assert "\n" not in render.HELP
