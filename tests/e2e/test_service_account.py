"""The service does its whole job under the chart's ServiceAccount token, not admin (issue #7).

The chart's RBAC is applied for real (fixture ``chart_rbac`` of ``test_deploy``), a token is
requested for its ServiceAccount, and ``llm-autoscaler run`` is started with a kubeconfig that
carries only that token: it must win its Lease, serve the metrics API (which reads the
front-proxy ConfigMap), reconcile a new InferenceService into its predictor and scale it on
queue depth. Any missing permission shows up as a failure here and as a 403 in its log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from autoscaler.stack.stack import StackState, free_port
from tests.e2e.conftest import eventually
from tests.e2e.test_deploy import chart_rbac  # noqa: F401  (fixture)
from tests.e2e.test_scaling import (
    REPO,
    _cleanup,  # noqa: F401  (autouse fixture: deletes the namespaces make_isvc creates)
    _ready_names,
    _replicas_are,
    install_crds,
    make_isvc,
    set_queue,
)

pytestmark = pytest.mark.e2e


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def test_service_runs_under_its_service_account(
    kube: Any,
    chart_rbac: Any,  # noqa: F811  (the fixture imported above)
    stack: StackState,
    tmp_path: Path,
) -> None:
    ns, sa = chart_rbac
    await install_crds(stack.kubeconfig)
    req = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    tok = await client.CoreV1Api(kube).create_namespaced_service_account_token(sa, ns, req)
    cfg = kube.configuration
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": cfg.host, "certificate-authority": cfg.ssl_ca_cert},
                    }
                ],
                "users": [{"name": sa, "user": {"token": tok.status.token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": sa}}],
            }
        )
    )
    log = tmp_path / "service.log"
    args = [
        sys.executable,
        "-m",
        "autoscaler.cli",
        "run",
        f"--kubeconfig={kubeconfig}",
        "--identity=sa-e2e",
        "--metrics-source=prometheus",
        f"--prometheus-url={stack.prometheus_url}",
        "--tick-seconds=1",
        "--stale-after-seconds=10",
        "--listen-address=127.0.0.1",
        f"--http-port={free_port()}",
        f"--metrics-api-port={free_port()}",
        f"--lease-namespace={ns}",
    ]
    proc = start(args, log)
    try:
        isvc_ns, deploy = await make_isvc(kube, "sa")  # waits for the service's reconciler
        first = await eventually(lambda: _ready_names(kube, isvc_ns), 60, what="a ready pod")
        await set_queue(stack, isvc_ns, first[0], 12)
        await eventually(
            lambda: _replicas_are(kube, isvc_ns, deploy, 3),
            30,
            what="scaled to 3 under the ServiceAccount",
        )
        lease = await client.CoordinationV1Api(kube).read_namespaced_lease(
            "llm-autoscaler-leader", ns
        )
        assert lease.spec.holder_identity == "sa-e2e"
        text = log.read_text(errors="replace")
        assert "external metrics API on https://" in text
        # An RBAC denial reads 'User "system:serviceaccount:..." cannot <verb> ...'; a 403 for
        # a namespace being deleted (an earlier test's) is not about our permissions.
        assert 'User "system:serviceaccount:' not in text, text[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(
            "\n--- service log (last lines)\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        )
