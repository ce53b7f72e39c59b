"""Trace readers on the real shared files (counts and spans from traces/README.md) and on tiny
files written here, plus slicing and rate scaling."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim import traces
from autoscaler.sim.traces import load_arrivals, load_trace, parse_timestamp
from tests.conftest import SHARED

TRACES = SHARED / "traces"


@pytest.mark.parametrize(
    ("name", "fmt", "count", "span", "prompt_mean", "output_mean"),
    [
        pytest.param("azure_llm_2023_code.csv.gz", "azure", 8819, 3435.9, 2048, 27.9, id="code"),
        pytest.param("azure_llm_2023_conv.csv.gz", "azure", 19366, 3501.7, 1155, 211, id="conv"),
        pytest.param(
            "mooncake_fast25_conversation.jsonl.gz", "mooncake", 12031, 3537, 12035, 343, id="mc"
        ),
        pytest.param(
            "mooncake_fast25_synthetic.jsonl.gz", "mooncake", 3993, 1022.0, 15325, 149, id="syn"
        ),
    ],
)
def test_shared_per_request_traces_match_the_readme(
    name: str, fmt: str, count: int, span: float, prompt_mean: float, output_mean: float
) -> None:
    started = time.perf_counter()
    tr = load_trace(TRACES / name, fmt)
    assert time.perf_counter() - started < 5.0
    assert len(tr) == count
    assert tr.t[0] >= 0.0
    assert np.all(np.diff(tr.t) >= 0)
    # Mooncake: the last 3 s tick is spread over up to one grid step.
    assert tr.span == pytest.approx(span, abs=3.0 if fmt == "mooncake" else 0.1)
    assert tr.prompt.mean() == pytest.approx(prompt_mean, rel=0.001)
    assert tr.output.mean() == pytest.approx(output_mean, rel=0.002)


def test_mooncake_grid_is_spread_inside_each_tick() -> None:
    tr = load_trace(TRACES / "mooncake_fast25_conversation.jsonl.gz", "mooncake")
    assert len(np.unique(tr.t)) > 12_000  # 1,180 distinct raw timestamps
    assert np.max(np.bincount((tr.t // 1).astype(int))) < 28  # ≤ 28 per 3 s tick raw


def test_azure_timestamps_keep_the_seventh_digit_and_offsets() -> None:
    base = parse_timestamp("2023-11-16 18:15:46.0000000")
    assert parse_timestamp("2023-11-16 18:15:46.6805901") - base == pytest.approx(0.6805901)
    assert parse_timestamp("2023-11-17 00:00:00") - base == pytest.approx(20_654.0)
    utc = parse_timestamp("2024-05-10 00:00:00.009930+00:00")
    assert parse_timestamp("2024-05-10 02:00:00.009930+02:00") == pytest.approx(utc)
    with pytest.raises(ValueError, match="bad timestamp"):
        parse_timestamp("yesterday")


def write_azure(path: Path, stamps: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        f.write("\n".join(f"{s},{100 + i},{10 + i}" for i, s in enumerate(stamps)))
    return path


def test_azure_slice_and_speedup_on_a_tiny_file(tmp_path: Path) -> None:
    f = write_azure(tmp_path / "a.csv.gz", [f"2023-11-16 18:00:{s:02d}.5000000" for s in range(10)])
    a = load_arrivals(f, "azure", start=2, duration=4, speedup=2)
    assert [(x.t, x.prompt_tokens, x.output_tokens) for x in a] == [
        (0.0, 102, 12),
        (0.5, 103, 13),
        (1.0, 104, 14),
        (1.5, 105, 15),
    ]


def test_mooncake_tiny_file_spreads_only_shared_timestamps(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    rows = [(0, 10), (0, 11), (0, 12), (3000, 13), (4500, 14)]
    f.write_text(
        "\n".join(
            json.dumps({"timestamp": ts, "input_length": n, "output_length": 1, "hash_ids": []})
            for ts, n in rows
        )
    )
    tr = load_trace(f, "mooncake", seed=3)
    assert np.all((tr.t[:3] >= 0.0) & (tr.t[:3] < 3.0))
    assert tr.t[3:].tolist() == [3.0, 4.5]
    assert sorted(tr.prompt[:3].tolist()) == [10, 11, 12]
    assert load_trace(f, "mooncake", seed=3).t.tolist() == tr.t.tolist()


def test_burstgpt_drops_failures_and_filters_models(tmp_path: Path) -> None:
    f = tmp_path / "b.csv"
    f.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,100,20,120,Conversation log\n"
        "7,GPT-4,200,0,200,Conversation log\n"
        "9,GPT-4,300,30,330,API log\n"
        "12,ChatGPT,0,40,40,API log\n"
    )
    tr = load_trace(f, "burstgpt")
    assert tr.t.tolist() == [0.0, 4.0, 7.0]
    assert tr.prompt.tolist() == [100, 300, 1]
    assert tr.output.tolist() == [20, 30, 40]
    gpt4 = load_trace(f, "burstgpt", model="GPT-4")
    assert (gpt4.t.tolist(), gpt4.prompt.tolist()) == ([0.0], [300])


def test_rate_scale_duplicates_or_thins_with_a_seeded_sampler() -> None:
    conv = TRACES / "azure_llm_2023_conv.csv.gz"
    base = load_trace(conv, duration=600)
    up = load_trace(conv, duration=600, rate_scale=2.5, seed=4)
    down = load_trace(conv, duration=600, rate_scale=0.25, seed=4)
    assert len(up) == pytest.approx(2.5 * len(base), rel=0.03)
    assert len(down) == pytest.approx(0.25 * len(base), rel=0.08)
    assert up.t[-1] < 601
    assert np.all(np.diff(up.t) >= 0)
    assert len(np.unique(up.t)) == len(up)  # copies are offset, not stacked
    same = load_trace(conv, duration=600, rate_scale=2.5, seed=4)
    assert same.t.tolist() == up.t.tolist()
    assert load_trace(conv, duration=600, rate_scale=2.5, seed=5).t.tolist() != up.t.tolist()


def test_servegen_generates_the_window_rates_with_azure_like_tokens() -> None:
    f = TRACES / "servegen_aggregate_rate_10min.csv.gz"
    series = traces.read_servegen(f, model="m-large")
    assert len(series.start) == 2016
    assert series.width == 600.0
    assert series.rate.mean() * 60 == pytest.approx(11_751, rel=0.01)
    tr = load_trace(f, "servegen", duration=86_400, rate_scale=0.01, speedup=24, seed=2)
    day = series.rate[:144].sum() * 600 * 0.01
    assert len(tr) == pytest.approx(day, rel=0.01)
    assert tr.t[-1] <= 3600.0
    assert np.median(tr.prompt) == pytest.approx(1020, rel=0.05)
    assert tr.output.mean() == pytest.approx(211, rel=0.08)


def test_servegen_interpolates_empty_windows_and_names_models(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text(
        "model,category,window_start_s,rate_rps,active_clients\n"
        "x,language,0,1.0,3\nx,language,600,0,0\nx,language,1200,3.0,3\n"
    )
    assert traces.read_servegen(f, model="x").rate.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="known: x"):
        traces.read_servegen(f, model="m-large")


def test_unreadable_inputs_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an Azure trace"):
        load_trace(TRACES / "servegen_aggregate_rate_10min.csv.gz", "azure")
    with pytest.raises(ValueError, match="not a Mooncake trace line"):
        load_trace(TRACES / "azure_llm_2023_code.csv.gz", "mooncake")
    with pytest.raises(ValueError, match="unknown trace format"):
        load_trace(TRACES / "azure_llm_2023_code.csv.gz", "csv")
    with pytest.raises(FileNotFoundError):
        load_trace(tmp_path / "missing.csv", "azure")
