"""The Prometheus source's fast path (typed decoding straight into per-signal columns) against
its general path (any JSON, through ``_vector`` and ``join``), and the column snapshot against
:func:`adapters.source.assemble`: same samples, same errors, same snapshot."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.prometheus import (
    PrometheusError,
    _column,
    _column_of_text,
    _decode_vector,
)
from adapters.source import Column, ColumnTargets, PodTarget, assemble, assemble_columns, slots
from policies.signals import Sample, Signal, TargetKey

RECORDED = Path(__file__).parent / "data" / "prometheus"
SIGNAL = Signal.QUEUE_DEPTH


def index_of(*pods: tuple[str, str]) -> dict[tuple[str, str], int]:
    return {p: i for i, p in enumerate(pods)}


def both(body: Any, index: dict[tuple[str, str], int], status: int = 200) -> Column | str:
    """The column of ``body`` (or ``"error: <message>"``), the same by both paths."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    def read(path: Callable[[], Column]) -> Column | str:
        try:
            return path()
        except PrometheusError as e:
            return f"error: {e}"

    general = read(lambda: _column_of_text(SIGNAL, status, raw.decode(), index))
    fast = read(lambda: _column(SIGNAL, status, raw, "utf-8", index))
    assert fast == general
    return fast


def vector(*series: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": list(series)}}


def test_recorded_answers_read_the_same_by_both_paths() -> None:
    for path in sorted(RECORDED.glob("*.json")):
        record = json.loads(path.read_text())
        pods = {
            (m.get(ns, ""), m.get(pod, ""))
            for s in (record["body"].get("data") or {}).get("result") or []
            for m in [s["metric"]]
            for ns, pod in (("namespace", "pod"), ("exported_namespace", "exported_pod"))
        }
        index = index_of(*sorted(pods))
        column = both(record["body"], index, record["status"])
        if record["body"].get("status") != "success":
            assert str(column).startswith("error: HTTP 400 bad_data")
            continue
        assert _decode_vector(json.dumps(record["body"]).encode()) is not None  # the fast path
        assert isinstance(column, Column)
        assert any(v is not None for v in column.value)


def test_join_order_first_sample_wins_and_missing_values() -> None:
    index = index_of(("llm", "a"), ("llm", "b"), ("llm", "c"), ("llm", "d"))
    column = both(
        vector(
            # dcgm's series: the exporter's own labels, the workload's as exported_*
            {
                "metric": {
                    "namespace": "gpu",
                    "pod": "exporter",
                    "exported_namespace": "llm",
                    "exported_pod": "a",
                },
                "value": [10, "80"],
            },
            {"metric": {"namespace": "llm", "pod": "a"}, "value": [10, "1"]},  # a: 2nd, ignored
            {"metric": {"pod_namespace": "llm", "pod_name": "b", "job": "x"}, "value": [11, "2"]},
            {"metric": {"namespace": "llm", "pod": "c"}, "value": [12.5, "NaN"]},  # missing...
            {"metric": {"namespace": "llm", "pod": "c"}, "value": [12.5, "3"]},  # ...then 3
            {"metric": {"namespace": "llm", "pod": "gone"}, "value": [12.5, "9"]},
            {"metric": {"namespace": "llm", "pod": "d"}, "value": [13, "-Inf"]},
        ),
        index,
    )
    assert isinstance(column, Column)
    assert column.value == [80.0, 2.0, 3.0, None]
    assert column.at[:3] == [10.0, 11.0, 12.5]


def test_a_pod_without_names_is_joined_as_join_does() -> None:
    series = {"metric": {"job": "x"}, "value": [1, "5"]}  # no attribution label at all
    column = both(vector(series), index_of(("llm", "a"), ("", "")))
    assert isinstance(column, Column)
    assert column.value == [None, 5.0]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"status":"error","errorType":"bad_data","error":"parse error"}',
        vector({"metric": {"namespace": "llm", "pod": "a"}, "value": [1, "x"]}),
        vector({"metric": {"namespace": "llm", "pod": "gone"}, "value": [1, "x"]}),
        vector({"metric": {"namespace": "llm", "pod": "a"}, "value": [1]}),
        vector({"metric": ["llm", "a"], "value": [1, "2"]}),
        vector({"metric": {"namespace": "llm", "pod": "a"}}),
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector"}},
        {"status": "success"},
    ],
)
def test_failures_are_reported_the_same(body: Any) -> None:
    assert str(both(body, index_of(("llm", "a")))).startswith("error: ")


@pytest.mark.parametrize(
    "series",
    [
        {"metric": {"namespace": "llm", "pod": 7}, "value": [1, "2"]},  # a label not a string
        {"metric": {"namespace": "llm", "pod": "a"}, "value": ["1.5", "2"]},  # time as text
        {"metric": {"namespace": "llm", "pod": "a"}, "value": [1, "2", "3"]},  # 3 elements
    ],
)
def test_answers_the_fast_path_does_not_read_go_the_general_way(series: Any) -> None:
    assert _decode_vector(json.dumps(vector(series)).encode()) is None
    both(vector(series), index_of(("llm", "a")))


@pytest.mark.parametrize(
    ("text", "value"),
    [("+Inf", None), ("NaN", None), (" 2 ", 2.0), ("1e3", 1000.0), ("-0", -0.0), ("0.1", 0.1)],
)
def test_values_are_read_as_python_reads_them(text: str, value: float | None) -> None:
    series = {"metric": {"namespace": "llm", "pod": "a"}, "value": [1, text]}
    column = both(vector(series), index_of(("llm", "a")))
    assert isinstance(column, Column)
    assert column.value == [value]
    if value == 0:
        assert str(column.value[0]) == "-0.0"  # the sign of a zero is kept


def test_non_utf8_answers_are_decoded_as_declared() -> None:
    body = json.dumps(vector({"metric": {"namespace": "llm", "pod": "é"}, "value": [1, "2"]}))
    index = index_of(("llm", "é"))
    column = _column(SIGNAL, 200, body.encode("latin-1", "ignore"), "latin-1", index)
    assert column.value == [2.0]


def random_world(rng: random.Random) -> tuple[list[PodTarget], dict[tuple[str, str], dict]]:
    targets = []
    for i in range(rng.randint(0, 12)):
        key = TargetKey(rng.choice(["a", "b"]), f"isvc-{i}")
        targets += [
            PodTarget(key, key.namespace, f"isvc-{i}-{j}", ready=rng.random() < 0.8)
            for j in range(rng.randint(1, 4))
        ]
    rng.shuffle(targets)  # the pods of one target are not always listed together
    if targets:
        targets.append(targets[0])  # and a pod listed twice
    values: dict[tuple[str, str], dict[Signal, Sample]] = {}
    for t in targets:
        for s in Signal:
            if rng.random() < 0.7:
                values.setdefault(t.key, {})[s] = Sample(rng.random(), rng.choice([1.0, 2.0]))
    return targets, values


def test_column_snapshot_equals_assemble() -> None:
    rng = random.Random(7)
    for _ in range(200):
        targets, values = random_world(rng)
        index, of_target = slots(targets)
        columns = {s: Column.empty(len(index)) for s in Signal if rng.random() < 0.9}
        for key, per_signal in values.items():
            for s, sample in per_signal.items():
                if s in columns:
                    columns[s].value[index[key]] = sample.value
                    columns[s].at[index[key]] = sample.at
        kept = {k: {s: v for s, v in d.items() if s in columns} for k, d in values.items()}
        want = assemble(targets, kept, 5.0, "prometheus")
        got = assemble_columns(targets, of_target, columns, 5.0, "prometheus")
        assert isinstance(got.targets, ColumnTargets)
        assert list(got.targets) == list(want.targets)
        assert len(got.targets) == len(want.targets)
        for key, signals in want.targets.items():
            assert key in got.targets
            assert got.targets[key] == signals
            assert got.targets.get(key) == signals
        assert got.targets.get(TargetKey("x", "y")) is None
        assert TargetKey("x", "y") not in got.targets
        assert got == want  # Mapping equality: every target built once, and kept
        assert list(got.targets.values()) == list(want.targets.values())
        for key, signals in got.targets.items():  # built once by values()/items(), then kept
            assert got.targets[key] is signals
