"""The Helm chart renders valid, restricted, consistent objects for every option."""

from __future__ import annotations

import base64
import re
import subprocess
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from autoscaler.settings import Settings
from tests.deploy_render import CHART, NAMESPACE, REPO, by_key, helm, helm_template, tool

MANAGED = {"kubeconfig", "identity", "lease_namespace", "tls_cert_file", "tls_key_file"}


def values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env_of(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}


def test_lint() -> None:
    p = subprocess.run(
        [str(tool("helm")), "lint", "--strict", str(CHART)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_default_objects() -> None:
    objs = helm()
    keys = set(by_key(objs))
    assert keys == {
        ("ServiceAccount", NAMESPACE, "llm-autoscaler"),
        ("ClusterRole", "", "llm-autoscaler"),
        ("ClusterRole", "", "llm-autoscaler-external-metrics-reader"),
        ("ClusterRoleBinding", "", "llm-autoscaler"),
        ("ClusterRoleBinding", "", "llm-autoscaler:system:auth-delegator"),
        ("ClusterRoleBinding", "", "llm-autoscaler-hpa-external-metrics"),
        ("Role", NAMESPACE, "llm-autoscaler-leader-election"),
        ("RoleBinding", NAMESPACE, "llm-autoscaler-leader-election"),
        ("RoleBinding", "kube-system", "llm-autoscaler-auth-reader"),
        ("Secret", NAMESPACE, "llm-autoscaler-tls"),
        ("Deployment", NAMESPACE, "llm-autoscaler"),
        ("PodDisruptionBudget", NAMESPACE, "llm-autoscaler"),
        ("Service", NAMESPACE, "llm-autoscaler"),
        ("NetworkPolicy", NAMESPACE, "llm-autoscaler"),
        ("APIService", "", "v1beta1.external.metrics.k8s.io"),
    }
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "llm-autoscaler"
        assert labels["app.kubernetes.io/instance"] == "llm-autoscaler"


def test_deployment_is_highly_available() -> None:
    objs = helm()
    d = one(objs, "Deployment")
    spec = d["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    )
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": spec["selector"]["matchLabels"]},
    }
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    hard = one(helm("--set", "podAntiAffinity=hard"), "Deployment")["spec"]["template"]["spec"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["affinity"]["podAntiAffinity"]
    assert "PodDisruptionBudget" not in {o["kind"] for o in helm("--set", "replicaCount=1")}


def check_restricted(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" profile (v1.30+), as kube-apiserver checks it."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(f):
            bad.append(f)
    if any("hostPath" in v for v in pod.get("volumes") or []):
        bad.append("hostPath volume")
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for v in pod.get("volumes") or []:
        if not (set(v) - {"name"}) <= allowed_volumes:
            bad.append(f"volume {v['name']}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in pod["containers"] + (pod.get("initContainers") or []):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            bad.append(f"{c['name']}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{c['name']}: allowPrivilegeEscalation")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            bad.append(f"{c['name']}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{c['name']}: runAsUser 0")
        if (sc.get("seccompProfile") or {}).get("type", pod_seccomp) not in (
            "RuntimeDefault",
            "Localhost",
        ):
            bad.append(f"{c['name']}: seccompProfile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{c['name']}: capabilities.drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{c['name']}: capabilities.add")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{c['name']}: hostPort")
    return bad


def test_pod_security_restricted() -> None:
    pod = one(helm(), "Deployment")["spec"]["template"]["spec"]
    assert check_restricted(pod) == []
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    # the checker is not vacuous
    loose = yaml.safe_load(yaml.safe_dump(pod))
    loose["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del loose["securityContext"]["seccompProfile"]
    assert len(check_restricted(loose)) == 2


def test_probes_ports_and_resources() -> None:
    objs = helm()
    c = container(objs)
    assert c["args"] == ["run"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "metrics-api": 6443}
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert "memory" in c["resources"]["limits"]
    svc = one(objs, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "https": (443, "metrics-api"),
        "http": (8080, "http"),
    }
    netpol = one(objs, "NetworkPolicy")
    allowed = {p["port"] for rule in netpol["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(ports)
    custom = container(
        helm("--set", "settings.http_port=9090", "--set", "settings.metrics_api_port=7443")
    )
    assert {p["name"]: p["containerPort"] for p in custom["ports"]} == {
        "http": 9090,
        "metrics-api": 7443,
    }


def test_values_cover_every_setting_of_the_service() -> None:
    fields = set(Settings.model_fields)
    settings = values()["settings"]
    assert set(settings) == fields - MANAGED
    for name, value in settings.items():
        field = Settings.model_fields[name]
        default = None if field.default_factory else field.default
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, (
            f"values.yaml settings.{name}={value!r}, service default {default!r}"
        )
    text = (CHART / "values.yaml").read_text()
    for name in MANAGED:
        assert name in text, f"values.yaml should say {name} is managed by the chart"


def test_rendered_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = helm(
        "--set",
        "settings.namespaces={team-a,team-b}",
        "--set",
        "settings.metrics_source=prometheus",
        "--set",
        "settings.prometheus_url=http://prometheus:9090",
        "--set",
        "settings.tick_seconds=0.5",
    )
    env = env_of(objs)
    assert "LLM_AUTOSCALER_PROMETHEUS_CA_FILE" not in env  # null: not passed
    for k in list(__import__("os").environ):
        if k.startswith("LLM_AUTOSCALER_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings(identity="pod-0")
    assert s.namespaces == ("team-a", "team-b")
    assert s.metrics_source == "prometheus"
    assert s.prometheus_url == "http://prometheus:9090"
    assert s.tick_seconds == 0.5
    assert s.lease_namespace == NAMESPACE
    assert str(s.tls_cert_file) == "/etc/llm-autoscaler/tls/tls.crt"
    ident = next(e for e in container(objs)["env"] if e["name"] == "LLM_AUTOSCALER_IDENTITY")
    assert ident["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("name", sorted(MANAGED))
def test_managed_settings_are_refused(name: str) -> None:
    with pytest.raises(RuntimeError, match="managed by the chart"):
        helm("--set", f"settings.{name}=x")


def test_bad_tls_mode_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"tls\.mode must be"):
        helm("--set", "tls.mode=bogus")


def _b64pem(data: str) -> bytes:
    return base64.b64decode(data)


def test_helm_tls_mode_generates_a_valid_serving_certificate() -> None:
    objs = helm()
    secret = one(objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(_b64pem(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(_b64pem(secret["data"]["tls.crt"]))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "llm-autoscaler.llm-autoscaler.svc",
        "llm-autoscaler.llm-autoscaler.svc.cluster.local",
    }
    key = ca.public_key()
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    if isinstance(key, rsa.RSAPublicKey):
        assert cert.signature_hash_algorithm is not None
        key.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )
    api = one(objs, "APIService")
    assert api["spec"]["caBundle"] == secret["data"]["ca.crt"]
    assert "insecureSkipTLSVerify" not in api["spec"]
    assert api["spec"]["service"] == {"name": "llm-autoscaler", "namespace": NAMESPACE, "port": 443}
    assert api["spec"]["group"] == "external.metrics.k8s.io"
    assert api["spec"]["version"] == "v1beta1"
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "llm-autoscaler-tls"}} in pod["volumes"]


def test_cert_manager_tls_mode() -> None:
    objs = helm("--set", "tls.mode=cert-manager")
    kinds = {o["kind"] for o in objs}
    assert {"Issuer", "Certificate"} <= kinds
    assert "Secret" not in kinds
    cert = one(objs, "Certificate")
    assert cert["spec"]["secretName"] == "llm-autoscaler-tls"
    assert cert["spec"]["issuerRef"] == {
        "name": "llm-autoscaler-selfsigned",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    api = one(objs, "APIService")
    assert (
        api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == f"{NAMESPACE}/llm-autoscaler-serving"
    )
    assert "caBundle" not in api["spec"]
    assert "insecureSkipTLSVerify" not in api["spec"]
    own = helm(
        "--set",
        "tls.mode=cert-manager",
        "--set",
        "tls.certManager.issuerRef.name=corp-ca",
        "--set",
        "tls.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert "Issuer" not in {o["kind"] for o in own}
    assert one(own, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
    }


def test_service_tls_mode() -> None:
    objs = helm("--set", "tls.mode=service")
    assert "Secret" not in {o["kind"] for o in objs}
    assert one(objs, "APIService")["spec"]["insecureSkipTLSVerify"] is True
    assert "LLM_AUTOSCALER_TLS_CERT_FILE" not in env_of(objs)
    assert all(
        v["name"] != "tls" for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    )


def test_metrics_api_can_be_disabled_or_left_to_keda() -> None:
    off = helm("--set", "settings.metrics_api_enabled=false")
    kinds = {o["kind"] for o in off}
    assert "APIService" not in kinds
    assert "Secret" not in kinds
    assert [p["name"] for p in container(off)["ports"]] == ["http"]
    keda = helm("--set", "apiService.create=false")
    assert "APIService" not in {o["kind"] for o in keda}
    assert "Secret" in {o["kind"] for o in keda}


def test_kserve_crds_are_optional_and_verbatim() -> None:
    assert "CustomResourceDefinition" not in {o["kind"] for o in helm()}
    crds = [
        o
        for o in helm("--set", "kserve.installCRDs=true")
        if o["kind"] == "CustomResourceDefinition"
    ]
    src = {}
    for p in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
        doc = yaml.safe_load(p.read_text())
        src[doc["metadata"]["name"]] = doc
    assert {c["metadata"]["name"] for c in crds} == set(src)
    for c in crds:
        assert c["metadata"]["annotations"].pop("helm.sh/resource-policy") == "keep"
        assert c["spec"] == src[c["metadata"]["name"]]["spec"]


def test_other_release_names_and_namespaces() -> None:
    objs = helm(release="prod", namespace="autoscaling")
    d = one(objs, "Deployment")
    assert d["metadata"] == {
        **d["metadata"],
        "name": "prod-llm-autoscaler",
        "namespace": "autoscaling",
    }
    crb = next(
        o
        for o in objs
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == "prod-llm-autoscaler"
    )
    assert crb["subjects"] == [
        {"kind": "ServiceAccount", "name": "prod-llm-autoscaler", "namespace": "autoscaling"}
    ]
    env = env_of(objs)
    assert env["LLM_AUTOSCALER_LEASE_NAMESPACE"] == "autoscaling"
    api = one(objs, "APIService")
    assert api["spec"]["service"]["name"] == "prod-llm-autoscaler"


def test_image_reference() -> None:
    assert container(helm())["image"] == "ghcr.io/llm-autoscaler/llm-autoscaler:0.1.0"
    digest = "sha256:" + "a" * 64
    assert container(helm("--set", f"image.digest={digest}"))["image"].endswith(f"@{digest}")


def test_every_template_value_is_documented() -> None:
    """Each top-level key of values.yaml has a comment and is used by a template."""
    text = (CHART / "values.yaml").read_text()
    templates = "".join(p.read_text() for p in (CHART / "templates").glob("*"))
    for top in values():
        assert f".Values.{top}" in templates, f"values.{top} is not used by any template"
    assert len(re.findall(r"^# ", text, flags=re.M)) >= 3
    assert helm_template().count("\nkind: ") + 1 >= len(helm())


def test_configuration_reference_lists_every_setting() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"| `{name}` | `LLM_AUTOSCALER_{name.upper()}` |" in doc, f"{name} undocumented"
