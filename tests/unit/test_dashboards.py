"""The committed Grafana dashboards: fresh, well-formed, and querying metrics that exist."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, SHARED
from tests.unit.test_alerts import own_metric_names

JSON_DIR = REPO / "dashboards" / "json"
NAMES = ("autoscaler", "serving", "gpu")
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def boards() -> dict[str, dict[str, Any]]:
    return {n: json.loads((JSON_DIR / f"{n}.json").read_text()) for n in NAMES}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", v["query"])
            assert m, f"variable {v['name']}: {v['query']}"
            selector = m.group(1) if "{" in m.group(1) else m.group(1) + "{}"
            out.append((f"variable {v['name']}", selector))
    return out


def substitute(expr: str) -> str:
    """Grafana macros and variables -> values Prometheus accepts."""
    expr = (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
    )
    return re.sub(r"\$\{?(\w+)(:\w+)?\}?", ".*", expr)


def selected_metrics(expr: str) -> set[str]:
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))


def exporter_metrics() -> set[str]:
    """vLLM and dcgm-exporter metric names, from the real exporters' reference lists."""
    text = (SHARED / "fixtures" / "vllm-metrics.md").read_text() + (
        SHARED / "fixtures" / "dcgm-metrics.md"
    ).read_text()
    text += (SHARED / "fixtures" / "dcgm-default-counters.csv").read_text()
    names = set(re.findall(r"(vllm:[a-z_]+|DCGM_FI_[A-Z0-9_]+)", text))
    return names | {n + s for n in names for s in SUFFIXES}


def test_sdk_pin_and_fresh_json() -> None:
    """Regenerating changes nothing (run `python -m dashboards.generate` after editing)."""
    pytest.importorskip(
        "grafana_foundation_sdk", reason="pip install grafana-foundation-sdk==0.0.21"
    )
    from dashboards import generate

    installed = importlib.metadata.version("grafana-foundation-sdk").lstrip("v")
    assert installed == generate.SDK_VERSION == "0.0.21"
    for name in NAMES:
        assert generate.render(name) == (JSON_DIR / f"{name}.json").read_text(), (
            f"{name}.json is stale"
        )
    assert generate.main(["--check"]) == 0


def test_check_mode_detects_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(
        "grafana_foundation_sdk", reason="pip install grafana-foundation-sdk==0.0.21"
    )
    from dashboards import generate

    for name in NAMES:
        shutil.copy(JSON_DIR / f"{name}.json", tmp_path / f"{name}.json")
    monkeypatch.setattr(generate, "OUT", tmp_path)
    assert generate.main(["--check"]) == 0
    (tmp_path / "gpu.json").write_text("{}\n")
    assert generate.main(["--check"]) == 1


def test_three_dashboards_with_variables() -> None:
    uids = set()
    for name, board in boards().items():
        uids.add(board["uid"])
        assert board["title"]
        assert board["description"]
        assert "llm-autoscaler" in board["tags"]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert {"datasource", "namespace", "isvc"} <= set(variables), name
        assert variables["datasource"]["type"] == "datasource"
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"]["uid"] == "${datasource}"
    assert len(uids) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_is_described_and_laid_out(name: str) -> None:
    board = boards()[name]
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    for p in panels(board):
        assert len(p.get("description", "")) > 60, f"{p['title']}: say what to look for"
        assert "Metric" in p["description"], p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs, p["title"]
        assert len(refs) == len(set(refs)), p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_queries_reference_metrics_that_exist(name: str) -> None:
    own = own_metric_names()
    exporters = exporter_metrics()
    for title, expr in queries(boards()[name]):
        names = selected_metrics(expr)
        assert names, f"{title}: {expr}"
        for m in names:
            if m.startswith("llm_autoscaler_"):
                assert m in own, f"{title}: {m} is not defined in autoscaler/telemetry.py"
                assert 'job="llm-autoscaler"' in expr, title
            else:
                assert m in exporters, f"{title}: {m} is not a vLLM or dcgm-exporter metric"


@pytest.mark.parametrize("name", NAMES)
def test_queries_follow_promql_conventions(name: str) -> None:
    for title, expr in queries(boards()[name]):
        for arg in re.findall(r"\b(?:rate|increase)\(([^\[]+)\[", expr):
            (metric,) = selected_metrics(arg) or {arg.strip()}
            assert metric.endswith((*SUFFIXES[:2], "_total")) or metric.endswith("_count"), (
                f"{title}: rate over {metric}"
            )
            assert "[$__rate_interval]" in expr or "[5m]" in expr, title
        for by in re.findall(r"histogram_quantile\([^,]+, *sum by \(([^)]*)\)", expr):
            assert "le" in [b.strip() for b in by.split(",")], (
                f"{title}: histogram_quantile without le"
            )
        assert expr.count("histogram_quantile") == len(
            re.findall(r"histogram_quantile\([^,]+, *sum by \(", expr)
        ), title


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses each query (macros substituted) as a recording rule."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `apt-get install prometheus` (scripts/setup.sh does it)"
    rules = [
        {"record": f"dashboard:{name}:q{i}", "expr": substitute(expr)}
        for name, board in boards().items()
        for i, (_, expr) in enumerate(queries(board))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    p = subprocess.run(
        [promtool, "check", "rules", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(rules)} rules found" in p.stdout
