"""``llm-autoscaler simulate`` end to end on a short slice of a real trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.cli import main
from tests.conftest import SHARED

CONV = str(SHARED / "traces" / "azure_llm_2023_conv.csv.gz")
KEYS = {
    "slo_attainment",
    "ttft_p50_s",
    "ttft_p99_s",
    "gpu_hours",
    "gpu_hours_vs_oracle",
    "scale_events",
    "max_replicas",
}
BASE = ["simulate", "--trace", CONV, "--duration", "180", "--rate-scale", "3", "--json"]


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, float]]:
    assert main([*BASE, *args]) == 0
    out: dict[str, dict[str, float]] = json.loads(capsys.readouterr().out)
    return out


def test_json_rows_have_the_keys_and_sane_values(capsys: pytest.CaptureFixture[str]) -> None:
    names = ["hpa-gpu", "keda-queue", "kpa-concurrency", "oracle"]
    rows = simulate(capsys, "--policy", ",".join(names))
    assert list(rows) == names
    for name, row in rows.items():
        assert set(row) >= KEYS, name
        assert 0.0 <= row["slo_attainment"] <= 1.0
        assert 0.0 < row["ttft_p50_s"] <= row["ttft_p99_s"]
        assert row["gpu_hours"] > 0
        assert row["max_replicas"] >= 1
        assert row["gpu_hours_vs_oracle"] == pytest.approx(
            row["gpu_hours"] / rows["oracle"]["gpu_hours"]
        )
    assert rows["oracle"]["gpu_hours_vs_oracle"] == 1.0
    assert rows["oracle"]["slo_attainment"] >= 0.97


def test_more_replicas_raise_attainment(capsys: pytest.CaptureFixture[str]) -> None:
    """A cold single replica misses while KEDA reacts; a floor of 6 replicas never does."""
    few = simulate(capsys, "--policy", "keda-queue", "--initial-replicas", "1")["keda-queue"]
    many = simulate(
        capsys, "--policy", "keda-queue", "--min-replicas", "6", "--initial-replicas", "6"
    )["keda-queue"]
    assert few["slo_attainment"] < 0.9
    assert many["slo_attainment"] > 0.999
    assert (many["max_replicas"], many["scale_events"]) == (6, 0)
    assert few["gpu_hours_vs_oracle"] is None  # no oracle in the run


def test_same_seed_same_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--policy", "kpa-concurrency,oracle", "--seed", "3")
    assert simulate(capsys, *args) == simulate(capsys, *args)


def test_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "runs.png"
    args = ["simulate", "--trace", CONV, "--duration", "120", "--policy", "hpa-gpu,oracle"]
    assert main([*args, "--plot", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("azure_llm_2023_conv.csv.gz: ")
    assert out[1].split()[:3] == ["policy", "SLO", "att."]
    assert [line.split()[0] for line in out[2:]] == ["hpa-gpu", "oracle"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--trace", "/nonexistent.csv"], "no such trace file", id="missing"),
        pytest.param(["--trace", CONV, "--policy", "hpa-cpu"], "unknown policy", id="policy"),
        pytest.param(["--trace", CONV, "--profile", "gpt-5"], "unknown profile", id="profile"),
        pytest.param(["--trace", CONV, "--format", "parquet"], "unknown trace format", id="fmt"),
        pytest.param(["--trace", CONV, "--format", "mooncake"], "cannot read", id="wrong-fmt"),
        pytest.param(["--trace", CONV, "--start", "99999"], "no requests", id="empty-slice"),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", "--policy", "hpa-gpu,oracle", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert err[0].startswith("llm-autoscaler simulate:")
