"""deploy/crds are byte-identical to KServe's full CRDs; the bundled runtime has one source."""

from __future__ import annotations

import hashlib

import pytest

from autoscaler.reconciler.manifests import BUNDLED_RUNTIME, bundled_runtimes

from .helpers import REPO, UPSTREAM_CRDS, plan_with, vllm_isvc

CRDS = (
    "serving.kserve.io_inferenceservices.yaml",
    "serving.kserve.io_servingruntimes.yaml",
    "serving.kserve.io_clusterservingruntimes.yaml",
)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", CRDS)
def test_crd_is_a_byte_identical_copy_of_kserves_full_crd(name: str) -> None:
    ours = (REPO / "deploy" / "crds" / name).read_bytes()
    upstream = (UPSTREAM_CRDS / name).read_bytes()
    assert len(ours) == len(upstream)
    assert _digest(ours) == _digest(upstream)


def test_deploy_crds_holds_exactly_the_full_crds() -> None:
    assert sorted(p.name for p in (REPO / "deploy" / "crds").iterdir()) == sorted(CRDS)


def test_the_isvc_crd_is_the_full_one_not_the_minimal() -> None:
    data = (REPO / "deploy" / "crds" / CRDS[0]).read_bytes()
    assert len(data) > 1_500_000  # the minimal variant is under 2 kB


def test_bundled_runtime_is_identical_to_the_deploy_manifest() -> None:
    deploy = REPO / "deploy" / "runtimes" / "vllm-clusterservingruntime.yaml"
    packaged = REPO / "autoscaler" / "reconciler" / "data" / BUNDLED_RUNTIME
    assert packaged.read_bytes() == deploy.read_bytes()


def test_bundled_runtime_serves_vllm_isvcs() -> None:
    (runtime,) = bundled_runtimes()
    assert (runtime["kind"], runtime["metadata"]["name"]) == (
        "ClusterServingRuntime",
        "kserve-vllmserver",
    )
    result = plan_with(vllm_isvc())
    assert result.failure is None
    assert result.runtime is not None
    assert result.runtime.name == "kserve-vllmserver"
