"""The committed Grafana dashboards against the live stack (issue #7, item 4).

The real service (``python -m autoscaler.cli run``) scales an external-class InferenceService
while the load generator sends requests to its simulated vLLM pods and a queue step makes it
scale up. Prometheus scrapes the service's own ``/metrics`` (job ``llm-autoscaler``, through
the ``llm-autoscaler.json`` file_sd file), the vLLM pods and the dcgm-exporters. Then, for
every dashboard in ``dashboards/json``:

* every template variable's ``label_values(...)`` query is resolved against Prometheus, as
  Grafana does, and must return values; the variable is set to a real value (our namespace
  and ISVC, else the first value) for the queries that follow;
* every panel target's PromQL, with ``$__rate_interval``/``$__interval``/``$__range`` and the
  variables substituted, is run as a range query over the load window and must return data,
  except the few reviewed in :data:`ALLOWED_EMPTY`, which must be empty (no stale entries);
* a PNG preview with one small subplot per panel is written to ``results/dashboards/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.sim.loadgen import LoadGenerator, poisson_arrivals, summarize
from autoscaler.stack import prometheus as prom_config
from autoscaler.stack.stack import StackState, free_port
from tests.e2e.conftest import eventually, prom_query
from tests.e2e.test_scaling import CREATED, install_crds, make_isvc, pods, replicas, set_queue

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
JSON_DIR = REPO / "dashboards" / "json"
RESULTS = REPO / "results" / "dashboards"
LEASE = "dashboards-e2e"
RATE_INTERVAL = "1m"  # Grafana: max(4 x scrape interval, $__interval); 1m as on a real cluster
INTERVAL = "15s"
STEP = 2.0  # seconds between points of the range queries

ALLOWED_EMPTY: dict[tuple[str, str, str], str] = {
    # Reviewed: targets that are legitimately empty on a healthy run of this test.
    ("autoscaler", "Errors by kind", "A"): (
        "llm_autoscaler_errors_total{kind} has no series until the first error; a healthy "
        "run has none (the Errors/s stat uses `or vector(0)` and is checked)"
    ),
    ("autoscaler", "Reconciles and metrics API requests", "B"): (
        "the external metrics API is disabled here (--metrics-api-enabled=false: it needs the "
        "APIService and serving cert, covered by test_metrics_api.py), so "
        "llm_autoscaler_metrics_api_requests_total has no series"
    ),
}


# ------------------------------------------------------------------------ dashboard parsing
def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in board["templating"]["list"] if v["type"] == "query"]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's macros and template variables -> PromQL Prometheus accepts."""
    expr = (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", INTERVAL)
        .replace("$__range", "1h")
    )

    def var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"unknown variable ${name} in {expr}"
        return values[name]

    # $1 etc. (label_replace's capture groups) are not variables
    return re.sub(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)", var, expr)


def label_values_query(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (series selector, label)."""
    m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
    assert m, f"not a label_values() query: {query}"
    sel = m.group(1).strip()
    return (sel if "{" in sel else sel + "{}"), m.group(2)


# ------------------------------------------------------------------------------ Prometheus
async def prom_get(stack: StackState, path: str, **params: Any) -> Any:
    url = f"{stack.prometheus_url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        body = json.loads(await r.text())
    assert body["status"] == "success", (path, params, body)
    return body["data"]


async def label_values(stack: StackState, selector: str, label: str, start: float) -> list[str]:
    series = await prom_get(
        stack, "/api/v1/series", **{"match[]": selector, "start": start, "end": time.time()}
    )
    return sorted({s[label] for s in series if s.get(label)})


async def query_range(
    stack: StackState, expr: str, start: float, end: float
) -> list[dict[str, Any]]:
    data = await prom_get(stack, "/api/v1/query_range", query=expr, start=start, end=end, step=STEP)
    return [r for r in data["result"] if any(not math.isnan(float(v[1])) for v in r["values"])]


# --------------------------------------------------------------------------------- service
@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="module")
def service(stack: StackState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    asyncio.run(install_crds(stack.kubeconfig))
    port = free_port()
    log = tmp_path_factory.mktemp("dashboards-service") / "llm-autoscaler.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler.cli",
            "run",
            f"--kubeconfig={stack.kubeconfig}",
            "--identity=dashboards",
            "--metrics-source=prometheus",
            f"--prometheus-url={stack.prometheus_url}",
            "--tick-seconds=1",
            "--stale-after-seconds=10",
            "--listen-address=127.0.0.1",
            f"--http-port={port}",
            "--metrics-api-enabled=false",
            "--lease-namespace=default",
            f"--lease-name={LEASE}",
            "--lease-duration-seconds=6",
            "--renew-deadline-seconds=4",
            "--retry-period-seconds=1",
        ],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Prometheus scrapes the service as a ServiceMonitor would: job="llm-autoscaler"
    sd = Path(stack.state_dir) / "prometheus" / "sd" / "llm-autoscaler.json"
    assert sd.parent.is_dir(), sd
    prom_config.write_targets(sd, [{"targets": [f"127.0.0.1:{port}"], "labels": {}}])
    try:
        yield Service(proc, f"http://127.0.0.1:{port}", log)
    finally:
        prom_config.write_targets(sd, [])
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(
            f"\n--- {log} (last lines)\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        )


@pytest.fixture(autouse=True)
async def _cleanup(kube: Any) -> AsyncIterator[None]:
    yield
    while CREATED:
        with contextlib.suppress(ApiException):
            await client.CoreV1Api(kube).delete_namespace(CREATED.pop())


# ------------------------------------------------------------------------------------ test
async def test_every_dashboard_query_returns_data_on_the_live_stack(
    stack: StackState, service: Service, kube: Any
) -> None:
    start = time.time()
    ns, deploy = await make_isvc(kube, "dash")

    async def ready() -> list[str]:
        return [n for n, ok in await pods(kube, ns) if ok]

    first = await eventually(ready, 60, what="the first predictor pod ready")

    # load: a queue step on one pod (target 5 per replica -> 3 replicas) and real requests
    gen = LoadGenerator(stack.kubeconfig, ns, "llm")
    load = asyncio.get_running_loop().create_task(
        gen.run(poisson_arrivals(rate=3, duration=50, prompt_tokens=300, output_tokens=24))
    )
    await set_queue(stack, ns, first[0], 12)

    async def scaled() -> bool:
        return await replicas(kube, ns, deploy) == 3

    await eventually(scaled, 30, what="the service to scale the predictor to 3")
    await eventually(lambda: _n_ready(kube, ns, 3), 60, what="3 ready pods")
    await eventually(
        lambda: prom_query(stack, f'llm_autoscaler_decisions_total{{namespace="{ns}"}}'),
        30,
        what="the service's own metrics in Prometheus",
    )
    summary = summarize(await load)
    print(f"\nload: {summary}")
    assert summary["ok"] >= 50, summary
    await set_queue(stack, ns, first[0], 0)
    await asyncio.sleep(5)  # a few more scrapes after the load
    end = time.time()

    known = {"namespace": ns, "isvc": "llm"}
    empty: dict[tuple[str, str, str], str] = {}
    checked: set[tuple[str, str, str]] = set()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, board in boards().items():
        values: dict[str, str] = {"datasource": "prometheus"}
        for v in variables(board):
            selector, label = label_values_query(substitute(v["query"], values))
            found = await label_values(stack, selector, label, start)
            key = (name, f"variable {v['name']}", "")
            checked.add(key)
            if not found:
                empty[key] = v["query"]
                values[v["name"]] = ".*"
                continue
            want = known.get(v["name"])
            if want is not None:
                assert want in found, (name, v["name"], found)
            pick = want if want is not None else found[0]
            assert re.fullmatch(r"[\w.:-]+", pick), pick  # no regex escaping needed
            values[v["name"]] = pick
        print(f"{name}: variables {values}")

        results: list[tuple[dict[str, Any], list[tuple[str, list[dict[str, Any]]]]]] = []
        for p in panels(board):
            per_target = []
            for t in p["targets"]:
                expr = substitute(t["expr"], values)
                rows = await query_range(stack, expr, start, end)
                key = (name, p["title"], t["refId"])
                checked.add(key)
                if not rows:
                    empty[key] = expr
                elif t.get("instant"):  # stat panels: their instant query too
                    assert await prom_query(stack, expr), (key, expr)
                per_target.append((t.get("legendFormat", ""), rows))
            results.append((p, per_target))
        png = render(name, board, results, start, RESULTS / f"{name}.png")
        print(f"dashboard preview: {png}")

    unexpected = {k: e for k, e in empty.items() if k not in ALLOWED_EMPTY}
    assert not unexpected, "queries without data:\n" + "\n".join(
        f"  {k}: {e}" for k, e in unexpected.items()
    )
    unknown = set(ALLOWED_EMPTY) - checked
    assert not unknown, f"allow-list entries for queries no dashboard has: {unknown}"
    stale = set(ALLOWED_EMPTY) - set(empty)
    assert not stale, f"allow-listed queries that returned data (remove them): {stale}"


async def _n_ready(api: Any, ns: str, n: int) -> bool:
    return sum(ok for _, ok in await pods(api, ns)) == n


# --------------------------------------------------------------------------------- preview
def legend(fmt: str, metric: dict[str, str]) -> str:
    if fmt in ("", "__auto"):
        return ",".join(f"{k}={v}" for k, v in sorted(metric.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def render(
    name: str,
    board: dict[str, Any],
    results: list[tuple[dict[str, Any], list[tuple[str, list[dict[str, Any]]]]]],
    start: float,
    out: Path,
) -> Path:
    """One small subplot per panel, lines from the range-query results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax, (panel, per_target) in zip(axes.flat, results, strict=False):
        unit = (panel.get("fieldConfig", {}).get("defaults", {}) or {}).get("unit", "")
        ax.set_title(f"{panel['title']}" + (f" [{unit}]" if unit else ""), fontsize=8)
        ax.tick_params(labelsize=6)
        n = 0
        for fmt, series in per_target:
            for s in series[:8]:
                xs = [(float(t) - start) / 60 for t, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                ax.plot(xs, ys, linewidth=0.8, label=legend(fmt, s["metric"])[:40])
                n += 1
        if n == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        elif n <= 8:
            ax.legend(fontsize=5, loc="upper left")
        ax.set_xlabel("minutes", fontsize=6)
    fig.suptitle(f"{board['title']} ({name}.json) on the e2e stack", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
