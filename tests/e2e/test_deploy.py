"""The manifests on the real local apiserver: accepted server-side, and least privilege.

* The kustomize base and its cert-manager-free objects are applied server-side with
  ``dryRun=All``: kube-apiserver validates them (schema, Pod Security admission of the
  namespace, RBAC escalation rules) without changing the shared stack.
* The chart's RBAC, rendered under a release name of its own, is applied for real; then
  SubjectAccessReviews *as the chart's ServiceAccount* prove every permission the service's
  code needs (tests/unit/test_deploy_rbac.py finds them in the source) is allowed, through the
  real bootstrap roles too, and that what it must not do (read Secrets, write elsewhere) is
  denied. A token of that ServiceAccount is refused Secrets by the apiserver itself.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.stack.stack import StackState
from tests.deploy_render import KUSTOMIZE, helm, kustomize
from tests.unit.test_deploy_rbac import CLUSTER, PLANNED, Perm, needed

pytestmark = pytest.mark.e2e

PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "APIService": "apiservices",
    "Pod": "pods",
}


def path_of(obj: dict[str, Any]) -> str:
    api_version, md = obj["apiVersion"], obj["metadata"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = f"/namespaces/{md['namespace']}" if md.get("namespace") else ""
    return f"{prefix}{ns}/{PLURALS[obj['kind']]}/{md['name']}"


async def apply(api: Any, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    query = [("fieldManager", "llm-autoscaler-e2e"), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    result = await api.call_api(
        path_of(obj),
        "PATCH",
        query_params=query,
        header_params={
            "Accept": "application/json",
            "Content-Type": "application/apply-patch+yaml",
        },
        body=obj,
        response_types_map={200: "object", 201: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=True,
    )
    return dict(result)


async def delete(api: Any, obj: dict[str, Any]) -> None:
    try:
        await api.call_api(
            path_of(obj),
            "DELETE",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as e:
        if e.status != 404:
            raise


async def test_kustomize_base_is_accepted_server_side(kube: Any) -> None:
    objs = kustomize(KUSTOMIZE / "base")
    ns = next(o for o in objs if o["kind"] == "Namespace")
    # The namespace exists for real (restricted Pod Security), so admission checks the pods.
    names = {n.metadata.name for n in (await client.CoreV1Api(kube).list_namespace()).items}
    created = ns["metadata"]["name"] not in names
    if created:
        await apply(kube, ns, dry_run=False)
    try:
        for obj in objs:
            if obj["kind"] == "Namespace":
                continue
            out = await apply(kube, obj, dry_run=True)
            assert out["kind"] == obj["kind"], out
            assert out["metadata"]["name"] == obj["metadata"]["name"]
        # Pod Security admission of the restricted namespace accepts the pod template
        # itself (pods are where "restricted" is enforced): dry-run one pod from it.
        dep = next(o for o in objs if o["kind"] == "Deployment")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "llm-autoscaler-psa-probe",
                "namespace": dep["metadata"]["namespace"],
            },
            "spec": dep["spec"]["template"]["spec"],
        }
        await apply(kube, pod, dry_run=True)
        bad = json.loads(json.dumps(pod))
        bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        with pytest.raises(ApiException) as refused:
            await apply(kube, bad, dry_run=True)
        assert refused.value.status == 403
        assert "restricted" in str(refused.value.body)
    finally:
        if created:
            await delete(kube, ns)


@pytest.fixture
async def chart_rbac(kube: Any) -> Any:
    """The chart's ServiceAccount and RBAC, applied for real under a fresh release."""
    release = f"e2e-{uuid.uuid4().hex[:6]}"
    objs = helm(release=release, namespace=release)
    keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rbac = [o for o in objs if o["kind"] in keep]
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release}}
    await apply(kube, ns, dry_run=False)
    for obj in rbac:
        await apply(kube, obj, dry_run=False)
    sa = next(o for o in rbac if o["kind"] == "ServiceAccount")["metadata"]["name"]
    try:
        yield release, sa
    finally:
        for obj in reversed(rbac):
            await delete(kube, obj)
        await delete(kube, ns)


async def allowed(kube: Any, user: str, ns: str, p: Perm, where: str) -> bool:
    namespace = {CLUSTER: "", "release": where}.get(p.namespace, p.namespace)
    group, _, sub = p.resource.partition("/")
    attrs: dict[str, Any] = {"group": p.group, "resource": group, "verb": p.verb}
    if sub:
        attrs["subresource"] = sub
    if namespace:
        attrs["namespace"] = namespace
    if p.name != "*":
        attrs["name"] = p.name
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{ns}",
                "system:authenticated",
            ],
            "resourceAttributes": attrs,
        },
    }
    out = await client.AuthorizationV1Api(kube).create_subject_access_review(body)
    return bool(out.status.allowed)


async def test_service_account_has_exactly_what_the_code_needs(kube: Any, chart_rbac: Any) -> None:
    ns, sa = chart_rbac
    user = f"system:serviceaccount:{ns}:{sa}"
    lease = "llm-autoscaler-leader"
    needs = set(needed(lease)) | PLANNED
    denied = [p for p in sorted(needs, key=str) if not await allowed(kube, user, ns, p, ns)]
    assert not denied, f"the chart's ServiceAccount may not: {denied}"
    must_not = [
        Perm("", "secrets", "list"),
        Perm("", "secrets", "get", "kube-system"),
        Perm("", "configmaps", "get", "default"),
        Perm("", "configmaps", "list", "kube-system"),
        Perm("", "pods", "delete"),
        Perm("", "pods", "create"),
        Perm("apps", "deployments", "update"),
        Perm("apps", "daemonsets", "list"),
        Perm("", "nodes", "list"),
        Perm("coordination.k8s.io", "leases", "update", "kube-system", "kube-controller-manager"),
        Perm("coordination.k8s.io", "leases", "update", "release", "someone-elses-lease"),
        Perm("serving.kserve.io", "inferenceservices", "delete"),
        Perm("rbac.authorization.k8s.io", "clusterroles", "create"),
        Perm("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", CLUSTER, "x"),
    ]
    wrongly = [p for p in must_not if await allowed(kube, user, ns, p, ns)]
    assert not wrongly, f"the chart's ServiceAccount may, but should not: {wrongly}"


async def test_service_account_token_is_refused_secrets(
    kube: Any, chart_rbac: Any, stack: StackState
) -> None:
    ns, sa = chart_rbac
    req = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    tok = await client.CoreV1Api(kube).create_namespaced_service_account_token(sa, ns, req)
    token = tok.status.token
    cfg = kube.configuration
    base = cfg.host
    ssl: Any = False
    if cfg.ssl_ca_cert:
        import ssl as ssl_mod

        ssl = ssl_mod.create_default_context(cafile=cfg.ssl_ca_cert)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(f"{base}/api/v1/namespaces/{ns}/secrets", ssl=ssl) as r:
            assert r.status == 403, await r.text()
        async with s.get(f"{base}/api/v1/pods?limit=1", ssl=ssl) as r:
            assert r.status == 200, await r.text()
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        body = {"metadata": {"name": "llm-autoscaler-leader"}, "spec": {"holderIdentity": "e2e"}}
        async with s.post(f"{base}{lease_path}", json=body, ssl=ssl) as r:
            assert r.status == 201, await r.text()
        async with s.get(f"{base}{lease_path}/llm-autoscaler-leader", ssl=ssl) as r:
            assert r.status == 200, await r.text()
        async with s.get(f"{base}{lease_path}", ssl=ssl) as r:
            assert r.status == 403, "listing all leases is not granted"
