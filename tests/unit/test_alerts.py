"""The alert rules (deploy/alerts): promtool check + unit tests, metric names, runbook links."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from autoscaler.telemetry import Telemetry
from tests.deploy_render import REPO, helm

ALERTS = REPO / "deploy" / "alerts"
RULE = ALERTS / "prometheusrule.yaml"
RUNBOOK = REPO / "docs" / "runbook.md"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: `apt-get install prometheus` (scripts/setup.sh does it)"
    return path


def rule_groups(text: str | None = None) -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULE.read_text() if text is None else text)
    assert doc["kind"] == "PrometheusRule"
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    return list(doc["spec"]["groups"])


def alerts() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def own_metric_names() -> set[str]:
    """Every sample name the service exports (counters with _total, histograms' series)."""
    names: set[str] = set()
    for metric in Telemetry(CollectorRegistry()).registry.collect():
        if metric.type == "counter":
            names |= {f"{metric.name}_total", f"{metric.name}_created"}
        elif metric.type == "histogram":
            names |= {f"{metric.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(metric.name)
    return names


def run_promtool_tests(
    tmp_path: Path, rule_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups(rule_text)}))
    shutil.copy(ALERTS / "tests.yaml", tmp_path / "tests.yaml")
    return subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "tests.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_check_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    p = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in p.stdout


def test_promtool_test_rules(tmp_path: Path) -> None:
    p = run_promtool_tests(tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """The cases are not vacuous: widening SaturatedAtMax to any signal breaks them."""
    text = RULE.read_text()
    assert text.count('signal="queue_depth"') == 2
    p = run_promtool_tests(tmp_path, text.replace('signal="queue_depth"', 'signal=~".+"'))
    assert p.returncode != 0
    assert "LLMAutoscalerSaturatedAtMax" in p.stdout + p.stderr


def test_every_alert_has_a_positive_and_a_negative_case() -> None:
    tests = yaml.safe_load((ALERTS / "tests.yaml").read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts without a case where they fire"
    assert names - silent == set(), "alerts without a case where they stay silent"


def test_alerts_are_documented_and_labelled() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), flags=re.M)
    }
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"LLMAutoscaler[A-Z][A-Za-z]+", name)
        assert a["labels"]["severity"] in {"critical", "warning", "info"}, name
        ann = a["annotations"]
        assert ann["summary"], name
        assert ann["description"], name
        url = ann["runbook_url"]
        assert url.endswith(f"docs/runbook.md#{name.lower()}"), url
        assert name.lower() in anchors, f"docs/runbook.md has no section {name}"


def test_alerts_use_only_metrics_the_service_exports() -> None:
    known = own_metric_names() | {"up"}
    for a in alerts():
        expr = a["expr"]
        selected = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
        assert selected, a["alert"]
        assert selected <= known, f"{a['alert']}: unknown metrics {selected - known}"
        assert expr.count("{") == expr.count('job="llm-autoscaler"'), a["alert"]


@pytest.mark.parametrize(
    "labels",
    [
        {"release": "kube-prometheus-stack"},
        {"prometheus": "k8s", "role": "alert-rules"},
    ],
)
def test_chart_renders_the_same_rules_with_selector_labels(labels: dict[str, str]) -> None:
    args = ["--set", "prometheusRule.enabled=true"]
    for k, v in labels.items():
        args += ["--set", f"prometheusRule.labels.{k}={v}"]
    (rule,) = [o for o in helm(*args) if o["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == rule_groups()
    assert labels.items() <= rule["metadata"]["labels"].items()
    assert rule["metadata"]["namespace"] == "llm-autoscaler"


def test_chart_renders_no_rule_without_the_prometheus_operator_api() -> None:
    kinds = {o["kind"] for o in helm()}
    assert "PrometheusRule" not in kinds
    assert "ServiceMonitor" not in kinds
    kinds = {o["kind"] for o in helm("--api-versions", "monitoring.coreos.com/v1")}
    assert {"PrometheusRule", "ServiceMonitor"} <= kinds
