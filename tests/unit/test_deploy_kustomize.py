"""The kustomize base and overlays render the same objects as the Helm chart."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy_render import KUSTOMIZE, NAMESPACE, REPO, by_key, helm, kustomize, normalize


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """Normalised, with list order that strategic merge may change sorted by name."""
    obj = normalize(obj)
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if pod:
        pod["volumes"] = sorted(pod.get("volumes", []), key=lambda v: v["name"])
        for c in pod["containers"]:
            c["env"] = sorted(c.get("env", []), key=lambda e: e["name"])
            c["volumeMounts"] = sorted(c.get("volumeMounts", []), key=lambda m: m["mountPath"])
    return obj


def assert_same(kust: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    k, h = by_key(kust), by_key(chart)
    assert set(k) == set(h)
    for key in h:
        assert comparable(k[key]) == comparable(h[key]), (
            f"{key} differs (regenerate: python -m tests.deploy_render)"
        )


def test_base_is_the_chart_with_service_tls() -> None:
    objs = kustomize(KUSTOMIZE / "base")
    ns = [o for o in objs if o["kind"] == "Namespace"]
    assert len(ns) == 1
    assert ns[0]["metadata"]["name"] == NAMESPACE
    assert ns[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert_same([o for o in objs if o["kind"] != "Namespace"], helm("--set", "tls.mode=service"))


def test_cert_manager_overlay_is_the_chart_with_cert_manager() -> None:
    objs = [
        o for o in kustomize(KUSTOMIZE / "overlays" / "cert-manager") if o["kind"] != "Namespace"
    ]
    assert_same(objs, helm("--set", "tls.mode=cert-manager"))


def test_prometheus_operator_overlay() -> None:
    objs = by_key(kustomize(KUSTOMIZE / "overlays" / "prometheus-operator"))
    chart = by_key(helm("--set", "tls.mode=service", "--api-versions", "monitoring.coreos.com/v1"))
    for kind in ("ServiceMonitor", "PrometheusRule"):
        key = (kind, NAMESPACE, "llm-autoscaler")
        assert objs[key]["spec"] == chart[key]["spec"], kind
    src = yaml.safe_load((REPO / "deploy" / "alerts" / "prometheusrule.yaml").read_text())
    assert objs[("PrometheusRule", NAMESPACE, "llm-autoscaler")]["spec"] == src["spec"]
    assert {k for k in objs if k[0] not in ("ServiceMonitor", "PrometheusRule")} == set(
        by_key(kustomize(KUSTOMIZE / "base"))
    )


def test_auth_reader_binding_stays_in_kube_system() -> None:
    for path in (KUSTOMIZE / "base", KUSTOMIZE / "overlays" / "prometheus-operator"):
        keys = set(by_key(kustomize(path)))
        assert ("RoleBinding", "kube-system", "llm-autoscaler-auth-reader") in keys


@pytest.mark.parametrize("name", ["deployment.yaml", "rbac.yaml", "apiservice.yaml"])
def test_generated_base_files_say_so(name: str) -> None:
    assert (KUSTOMIZE / "base" / name).read_text().startswith("# Generated from the Helm chart")
