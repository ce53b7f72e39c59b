"""The chart's RBAC grants exactly what the service's code calls, nothing more.

The service's Kubernetes calls are found in its source: every module reachable by imports
from ``autoscaler.service`` is parsed and every call of a kubernetes-asyncio API method is
mapped to the permission it needs (``API_CALLS``). A call missing from that table fails the
test, so new code cannot ship without its RBAC. The reverse direction holds too: every verb
the chart grants is needed by a found call or by the reconciler's apply layer (``PLANNED``,
the contract in docs/reconciler.md, not yet wired into the service).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_asyncio.client as k8s_client
import pytest

from tests.deploy_render import NAMESPACE, REPO, helm

LOCAL_PACKAGES = ("autoscaler", "adapters", "policies")
ENTRY_MODULES = ("autoscaler.service", "autoscaler.commands.run")
KSERVE_PLURALS = {"inferenceservices", "servingruntimes", "clusterservingruntimes"}
CLUSTER = "*"  # any namespace


@dataclass(frozen=True)
class Perm:
    group: str
    resource: str
    verb: str
    namespace: str = CLUSTER  # CLUSTER, "release" (the chart's namespace) or a name
    name: str = "*"


# kubernetes-asyncio method -> (group, resource, verbs, namespace, resourceName)
API_CALLS: dict[str, tuple[str, str, tuple[str, ...], str, str]] = {
    "list_pod_for_all_namespaces": ("", "pods", ("list",), CLUSTER, "*"),
    "list_namespaced_pod": ("", "pods", ("list",), CLUSTER, "*"),
    "read_namespaced_deployment_scale": ("apps", "deployments/scale", ("get",), CLUSTER, "*"),
    "replace_namespaced_deployment_scale": ("apps", "deployments/scale", ("update",), CLUSTER, "*"),
    "create_namespaced_event": ("", "events", ("create",), CLUSTER, "*"),
    "read_namespaced_event": ("", "events", ("get",), CLUSTER, "*"),
    "patch_namespaced_event": ("", "events", ("patch",), CLUSTER, "*"),
    "read_namespaced_lease": ("coordination.k8s.io", "leases", ("get",), "release", "LEASE"),
    "create_namespaced_lease": ("coordination.k8s.io", "leases", ("create",), "release", "*"),
    "replace_namespaced_lease": ("coordination.k8s.io", "leases", ("update",), "release", "LEASE"),
    "create_token_review": ("authentication.k8s.io", "tokenreviews", ("create",), CLUSTER, "*"),
    "create_subject_access_review": (
        "authorization.k8s.io",
        "subjectaccessreviews",
        ("create",),
        CLUSTER,
        "*",
    ),
    "read_namespaced_config_map": (
        "",
        "configmaps",
        ("get",),
        "kube-system",
        "extension-apiserver-authentication",
    ),
    # the reconciler's informers on its children (list + watch)
    "list_deployment_for_all_namespaces": ("apps", "deployments", ("list",), CLUSTER, "*"),
    "list_namespaced_deployment": ("apps", "deployments", ("list",), CLUSTER, "*"),
    "list_service_for_all_namespaces": ("", "services", ("list",), CLUSTER, "*"),
    "list_namespaced_service": ("", "services", ("list",), CLUSTER, "*"),
    "list_horizontal_pod_autoscaler_for_all_namespaces": (
        "autoscaling",
        "horizontalpodautoscalers",
        ("list",),
        CLUSTER,
        "*",
    ),
    "list_namespaced_horizontal_pod_autoscaler": (
        "autoscaling",
        "horizontalpodautoscalers",
        ("list",),
        CLUSTER,
        "*",
    ),
    # "is KServe's controller installed?" (reconcile_isvc=auto)
    "read_mutating_webhook_configuration": (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("get",),
        CLUSTER,
        "inferenceservice.serving.kserve.io",
    ),
    "read_namespaced_deployment": ("apps", "deployments", ("get",), CLUSTER, "*"),
    # custom objects: group and plural come from the call's string arguments; list calls
    # that pass them indirectly (constants) read every KServe resource
    "list_cluster_custom_object": ("CUSTOM", "CUSTOM", ("list",), CLUSTER, "*"),
    "list_namespaced_custom_object": ("CUSTOM", "CUSTOM", ("list",), CLUSTER, "*"),
    "patch_namespaced_custom_object": ("CUSTOM", "CUSTOM", ("patch",), CLUSTER, "*"),
    "patch_namespaced_custom_object_status": ("CUSTOM", "CUSTOM/status", ("patch",), CLUSTER, "*"),
}

CHILDREN = (("apps", "deployments"), ("", "services"), ("autoscaling", "horizontalpodautoscalers"))
# Raw HTTP writers (not kubernetes-asyncio methods): module in the service -> what it writes.
# adapters.objects: server-side apply (PATCH, creating when absent), owned deletes, status.
RAW_WRITERS: dict[str, set[Perm]] = {
    "adapters.objects": {
        *(Perm(g, r, v) for g, r in CHILDREN for v in ("create", "patch", "delete")),
        Perm("serving.kserve.io", "inferenceservices/status", "patch"),
    },
}
# The InferenceService reconciler (autoscaler/reconciler/controller.py: informers on runtimes
# and children, raw writes, the KServe probe), granted before service.py starts it; once it
# does, the scan finds these same permissions.
PLANNED: set[Perm] = {
    *(
        Perm("serving.kserve.io", r, v)
        for r in ("servingruntimes", "clusterservingruntimes")
        for v in ("list", "watch")
    ),
    *(Perm(g, r, v) for g, r in CHILDREN for v in ("list", "watch")),
    Perm("apps", "deployments", "get"),
    Perm(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "get",
        CLUSTER,
        "inferenceservice.serving.kserve.io",
    ),
    *RAW_WRITERS["adapters.objects"],
}

# Bootstrap roles of kube-apiserver the chart binds to (checked for real by
# tests/e2e/test_deploy.py).
BUILTIN_ROLES: dict[str, set[Perm]] = {
    "system:auth-delegator": {
        Perm("authentication.k8s.io", "tokenreviews", "create"),
        Perm("authorization.k8s.io", "subjectaccessreviews", "create"),
    },
    "extension-apiserver-authentication-reader": {
        Perm("", "configmaps", v, "kube-system", "extension-apiserver-authentication")
        for v in ("get", "list", "watch")
    },
}


def _module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def service_modules() -> dict[str, ast.Module]:
    """Every local module reachable by imports (top-level or lazy) from the entry modules."""
    seen: dict[str, ast.Module] = {}
    todo = list(ENTRY_MODULES)
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        tree = ast.parse(path.read_text())
        seen[name] = tree
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names]
        todo = [n for n in todo if n.split(".")[0] in LOCAL_PACKAGES]
    return seen


def api_methods() -> set[str]:
    names: set[str] = set()
    for cls_name, cls in inspect.getmembers(k8s_client, inspect.isclass):
        if cls_name.endswith("Api") and cls_name != "ApiClient":
            names |= {m for m in vars(cls) if not m.startswith("_")}
    return names


@dataclass(frozen=True)
class Call:
    module: str
    line: int
    method: str
    strings: tuple[str, ...]
    in_informer: bool


def api_calls() -> list[Call]:
    methods = api_methods()
    calls: list[Call] = []
    for mod, tree in service_modules().items():
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr in methods):
                continue
            call = parents.get(node)
            while call is not None and not isinstance(call, ast.Call):
                call = parents.get(call)
            strings: tuple[str, ...] = ()
            informer = False
            if call is not None:
                strings = tuple(
                    n.value
                    for n in ast.walk(call)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                )
                informer = isinstance(call.func, ast.Name) and call.func.id == "Informer"
            calls.append(Call(mod, node.lineno, node.attr, strings, informer))
    return calls


def needed(lease: str) -> dict[Perm, list[str]]:
    out: dict[Perm, list[str]] = {}
    for c in api_calls():
        assert c.method in API_CALLS, (
            f"{c.module}:{c.line} calls {c.method}: add it to API_CALLS with the permission it "
            "needs, and to the chart's RBAC (deploy/helm/llm-autoscaler/templates/rbac.yaml)"
        )
        group, resource, verbs, ns, name = API_CALLS[c.method]
        plurals = [resource]
        if group == "CUSTOM":
            group = "serving.kserve.io"
            plurals = [s for s in c.strings if s in KSERVE_PLURALS]
            if not plurals:
                assert c.method.startswith("list_"), f"{c.module}:{c.line}: which resource?"
                plurals = sorted(KSERVE_PLURALS)
            plurals = [resource.replace("CUSTOM", p) for p in plurals]
        if c.method.startswith("list_"):
            verbs = (*verbs, "watch")  # every list of the service feeds an Informer
        for r in plurals:
            for v in verbs:
                perm = Perm(group, r, v, ns, lease if name == "LEASE" else name)
                out.setdefault(perm, []).append(f"{c.module}:{c.line} {c.method}")
    for mod in service_modules():
        for perm in RAW_WRITERS.get(mod, set()):
            out.setdefault(perm, []).append(f"{mod} (raw HTTP writes)")
    return out


def _perms(rules: list[dict[str, Any]], namespace: str) -> set[Perm]:
    return {
        Perm(g, r, v, namespace, n)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
        for n in rule.get("resourceNames", ["*"])
    }


def granted(objs: list[dict[str, Any]], sa: str = "llm-autoscaler") -> tuple[set[Perm], set[Perm]]:
    """(own rules bound to the ServiceAccount, bootstrap roles' rules bound to it)."""
    roles = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs
    }
    own: set[Perm] = set()
    builtin: set[Perm] = set()
    for b in objs:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in b["subjects"]):
            continue
        ns = b["metadata"].get("namespace", "")
        where = (
            CLUSTER if b["kind"] == "ClusterRoleBinding" else ("release" if ns == NAMESPACE else ns)
        )
        ref = b["roleRef"]
        role = roles.get((ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"]))
        if role is not None:
            own |= _perms(role["rules"], where)
        else:
            assert ref["name"] in BUILTIN_ROLES, f"{b['metadata']['name']} binds unknown {ref}"
            builtin |= {
                p
                if p.namespace != CLUSTER or where == CLUSTER
                else Perm(p.group, p.resource, p.verb, where, p.name)
                for p in BUILTIN_ROLES[ref["name"]]
            }
    return own, builtin


def allows(grants: set[Perm], need: Perm) -> bool:
    return any(
        g.group == need.group
        and g.resource == need.resource
        and g.verb == need.verb
        and g.namespace in (CLUSTER, need.namespace)
        and g.name in ("*", need.name)
        for g in grants
    )


def test_the_scan_finds_the_known_calls() -> None:
    """Guards the scanner itself: these calls exist in the service today."""
    found = {c.method for c in api_calls()}
    assert {
        "list_cluster_custom_object",
        "list_pod_for_all_namespaces",
        "replace_namespaced_deployment_scale",
        "create_namespaced_event",
        "replace_namespaced_lease",
    } <= found
    isvc = [c for c in api_calls() if c.method == "list_cluster_custom_object"]
    assert any(c.in_informer and "inferenceservices" in c.strings for c in isvc)


def test_rbac_allows_every_call_of_the_service() -> None:
    own, builtin = granted(helm())
    missing = {
        p: where
        for p, where in needed("llm-autoscaler-leader").items()
        if not allows(own | builtin, p)
    }
    assert not missing, f"calls the chart's RBAC does not allow: {missing}"
    assert all(allows(own, p) for p in PLANNED)


def test_rbac_grants_nothing_the_service_does_not_need() -> None:
    own, _ = granted(helm())
    needs = set(needed("llm-autoscaler-leader")) | PLANNED
    extra = {g for g in own if not any(allows({g}, n) for n in needs)}
    assert not extra, f"granted but never used: {sorted(extra, key=str)}"
    # No wildcard, no secrets, no cluster-wide write outside the listed resources.
    assert all("*" not in (g.group, g.resource, g.verb) for g in own)
    assert not any(g.resource in ("secrets", "configmaps", "nodes") for g in own)


def test_leases_are_limited_to_ours() -> None:
    objs = helm("--set", "settings.lease_name=my-lease")
    own, _ = granted(objs)
    leases = {p for p in own if p.resource == "leases"}
    assert leases == {
        Perm("coordination.k8s.io", "leases", "create", "release"),
        Perm("coordination.k8s.io", "leases", "get", "release", "my-lease"),
        Perm("coordination.k8s.io", "leases", "update", "release", "my-lease"),
    }


def test_reconciler_rights_can_be_turned_off() -> None:
    own, _ = granted(helm("--set", "rbac.reconciler=false"))
    # The scaling loop reads the current replicas from its own Deployment informer.
    loop_reads = {Perm("apps", "deployments", v) for v in ("list", "watch")}
    assert not any(allows(own, p) for p in PLANNED - loop_reads)
    assert all(allows(own, p) for p in loop_reads)
    assert allows(own, Perm("apps", "deployments/scale", "update"))


def test_delegated_auth_and_hpa_reader() -> None:
    objs = helm()
    _, builtin = granted(objs)
    assert (
        builtin
        == BUILTIN_ROLES["system:auth-delegator"]
        | BUILTIN_ROLES["extension-apiserver-authentication-reader"]
    )
    # The HPA controller may read external metrics, and only those.
    own_hpa, _ = granted(objs, sa="horizontal-pod-autoscaler")
    assert own_hpa == {Perm("external.metrics.k8s.io", "*", v) for v in ("get", "list", "watch")}
    off = helm("--set", "settings.metrics_api_enabled=false")
    assert granted(off)[1] == set()
    assert granted(off, sa="horizontal-pod-autoscaler") == (set(), set())


@pytest.mark.parametrize("method", sorted(API_CALLS))
def test_api_call_table_names_real_methods(method: str) -> None:
    assert method in api_methods()
