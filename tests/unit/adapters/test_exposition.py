"""The exposition parser: legal-but-odd text, invalid text, filtering, real exporters' output,
and properties (only ExpositionError escapes; generated expositions round-trip)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.exposition import ExpositionError, Family, parse
from tests.unit.adapters import samples

Flat = list[tuple[str, dict[str, str], Any, float | None]]


def flat(fam: Family) -> Flat:
    """Samples as comparable tuples (NaN as the string 'nan')."""
    return [
        (s.name, dict(s.labels), "nan" if math.isnan(s.value) else s.value, s.timestamp)
        for s in fam.samples
    ]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("a 1\n", [("a", {}, 1.0, None)], id="bare"),
        pytest.param("a{} 1", [("a", {}, 1.0, None)], id="empty-labels-no-newline"),
        pytest.param('a{x="1",} 2', [("a", {"x": "1"}, 2.0, None)], id="trailing-comma"),
        pytest.param(
            'a{ x = "1" , y="2" } 2', [("a", {"x": "1", "y": "2"}, 2.0, None)], id="blanks"
        ),
        pytest.param(
            'a{x="a,b}c=d e # f"} 3',
            [("a", {"x": "a,b}c=d e # f"}, 3.0, None)],
            id="value-with-separators",
        ),
        pytest.param(
            'a{x="q\\"uo\\\\te\\nnl"} 4',
            [("a", {"x": 'q"uo\\te\nnl'}, 4.0, None)],
            id="escapes",
        ),
        pytest.param('a{x="\\\\n"} 4', [("a", {"x": "\\n"}, 4.0, None)], id="escaped-backslash-n"),
        pytest.param('a{x="\\t"} 4', [("a", {"x": "\\t"}, 4.0, None)], id="unknown-escape-kept"),
        pytest.param('a{x="}\\""} 4', [("a", {"x": '}"'}, 4.0, None)], id="brace-and-quote"),
        pytest.param("a NaN", [("a", {}, "nan", None)], id="nan"),
        pytest.param("a +Inf\n", [("a", {}, math.inf, None)], id="inf"),
        pytest.param("a -Inf\n", [("a", {}, -math.inf, None)], id="minus-inf"),
        pytest.param("a 1.5e+06", [("a", {}, 1.5e6, None)], id="exponent"),
        pytest.param("a 1 1395066363000", [("a", {}, 1.0, 1395066363.0)], id="timestamp-ms"),
        pytest.param("a\t1\t-1000", [("a", {}, 1.0, -1.0)], id="tabs"),
        pytest.param("  a 1\n\n\t\n", [("a", {}, 1.0, None)], id="leading-blanks"),
        pytest.param("a 1\r\nb 2\r\n", [("a", {}, 1.0, None)], id="crlf"),
        pytest.param(
            "vllm:num_requests_waiting 3",
            [("vllm:num_requests_waiting", {}, 3.0, None)],
            id="colon",
        ),
        pytest.param(
            'a_bucket{le="0.5"} 3 # {trace_id="KOO5S4vxi0o"} 0.67 1520879607.789',
            [("a_bucket", {"le": "0.5"}, 3.0, None)],
            id="exemplar",
        ),
        pytest.param(
            'a_bucket{le="0.5"} 3 1520879607000 # {trace_id="x y"} 0.67',
            [("a_bucket", {"le": "0.5"}, 3.0, 1520879607.0)],
            id="timestamp-and-exemplar",
        ),
        pytest.param(
            "# a comment\n#\n# HELPFUL not help\na 1", [("a", {}, 1.0, None)], id="comments"
        ),
    ],
)
def test_legal_sample_lines(text: str, want: Flat) -> None:
    fams = parse(text)
    assert flat(fams[want[0][0]]) == want[:1]


def test_openmetrics_counter_created_timestamps_and_eof() -> None:
    text = (
        "# TYPE foo counter\n# UNIT foo seconds\n# HELP foo Help with \\\\ and \\n.\n"
        'foo_total{a="b"} 17.0 1520879607.789 # {id="x"} 1\n'
        'foo_created{a="b"} 1520430000.123\n'
        "# EOF\n"
    )
    fam = parse(text)["foo"]
    assert (fam.type, fam.unit, fam.help) == ("counter", "seconds", "Help with \\ and \n.")
    assert flat(fam) == [
        ("foo_total", {"a": "b"}, 17.0, 1520879607.789),
        ("foo_created", {"a": "b"}, 1520430000.123, None),
    ]


def test_text_format_counter_is_keyed_without_total() -> None:
    """prometheus_client's 0.0.4 output: `# TYPE x_total counter`, and a separate
    `x_created` gauge family. The family is `x`, as prometheus_client's parser names it."""
    fams = parse(samples.VLLM_V1)
    assert fams["vllm:num_preemptions"].type == "counter"
    assert [s.name for s in fams["vllm:num_preemptions"].samples] == [
        "vllm:num_preemptions_total"
    ] * 2
    assert fams["vllm:num_preemptions"].help.startswith("Cumulative number")
    assert fams["vllm:num_preemptions_created"].type == "gauge"


def test_histogram_family_groups_buckets_sum_count() -> None:
    fam = parse(samples.VLLM_V1)["vllm:time_to_first_token_seconds"]
    assert fam.type == "histogram"
    names = {s.name for s in fam.samples}
    assert names == {f"vllm:time_to_first_token_seconds_{x}" for x in ("bucket", "sum", "count")}
    assert len(fam.samples) == 2 * (22 + 1 + 2)


@pytest.mark.parametrize(
    ("text", "line_no", "fragment"),
    [
        pytest.param("a 1\n{} 2", 2, "invalid metric name", id="no-name"),
        pytest.param("a", 1, "expected labels or a value", id="name-only"),
        pytest.param('a{x="1"}', 1, "missing value", id="no-value"),
        pytest.param("a one", 1, "invalid value", id="word-value"),
        pytest.param("a 1_000", 1, "invalid value", id="underscore-value"),
        pytest.param("a 1 2 3", 1, "unexpected text", id="three-numbers"),
        pytest.param("a 1 soon", 1, "invalid timestamp", id="word-timestamp"),
        pytest.param('a{x="1" 2', 1, "invalid label set", id="unclosed-brace"),
        pytest.param('a{x="1} 2', 1, "invalid label set", id="unclosed-quote"),
        pytest.param("a{x=1} 2", 1, "unexpected", id="unquoted-value"),
        pytest.param('a{x="1"y="2"} 2', 1, "separator", id="missing-comma"),
        pytest.param('a{x="1",,y="2"} 2', 1, "separator", id="double-comma"),
        pytest.param('a{1x="1"} 2', 1, "separator", id="bad-label-name"),
        pytest.param('a{x="1",x="2"} 2', 1, "duplicate label", id="duplicate-label"),
        pytest.param('a{x="\\\\"y"} 2', 1, "invalid label set", id="escaped-backslash-then-quote"),
        pytest.param("# TYPE a gauge\n# TYPE b metric", 2, "unknown metric type", id="bad-type"),
        pytest.param("# TYPE\n", 1, "valid metric name", id="type-without-name"),
        pytest.param("# HELP 9a x\n", 1, "valid metric name", id="help-bad-name"),
        pytest.param("<!DOCTYPE html>\n<html>", 1, "invalid metric name", id="html"),
        pytest.param('{"status": "success"}', 1, "invalid metric name", id="json"),
    ],
)
def test_invalid_text_raises_with_line_number(text: str, line_no: int, fragment: str) -> None:
    with pytest.raises(ExpositionError) as err:
        parse(text)
    assert err.value.line_no == line_no
    assert fragment in err.value.message
    assert str(err.value).startswith(f"line {line_no}: ")


def test_invalid_utf8_bytes() -> None:
    with pytest.raises(ExpositionError, match="line 2: invalid UTF-8"):
        parse(b"a 1\nb\xff 2\n")


def test_bytes_input_is_decoded() -> None:
    assert flat(parse(b'a{x="\xc3\xa9"} 1')["a"]) == [("a", {"x": "é"}, 1.0, None)]


@pytest.mark.parametrize("text", [samples.VLLM_V1, samples.VLLM_V0, samples.DCGM, samples.DCGM_OLD])
def test_same_samples_as_prometheus_client(text: str) -> None:
    """Every sample prometheus_client's parser reads from a real-looking exposition, we read."""
    theirs = sorted(
        (s.name, sorted(s.labels.items()), float(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    )
    ours = sorted(
        (s.name, sorted(s.labels.items()), s.value)
        for fam in parse(text).values()
        for s in fam.samples
    )
    assert ours == theirs


def test_filter_returns_only_requested_families_with_their_suffixes() -> None:
    wanted = {
        "vllm:num_requests_waiting",
        "vllm:num_preemptions",
        "vllm:time_to_first_token_seconds",
    }
    fams = parse(samples.VLLM_V1, wanted)
    assert set(fams) == wanted
    assert {s.name for s in fams["vllm:num_preemptions"].samples} == {
        "vllm:num_preemptions_total",
        "vllm:num_preemptions_created",
    }
    assert fams["vllm:num_preemptions"].type == "counter"  # not the _created gauge's type
    full = parse(samples.VLLM_V1)
    assert flat(fams["vllm:num_requests_waiting"]) == flat(full["vllm:num_requests_waiting"])
    assert (
        fams["vllm:time_to_first_token_seconds"].help
        == full["vllm:time_to_first_token_seconds"].help
    )


def test_filter_skips_garbage_in_unwanted_families_only() -> None:
    text = "# TYPE junk gauge\njunk{ this is not valid\njunk 1 2 3 4\n# TYPE ok gauge\nok 1\n"
    assert flat(parse(text, {"ok"})["ok"]) == [("ok", {}, 1.0, None)]
    with pytest.raises(ExpositionError) as err:
        parse(text)
    assert err.value.line_no == 2


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# TYPE a gauge\na 1\nb 2\n", id="untyped-after-unwanted"),
        pytest.param("# TYPE a gauge\na 1\n\nb 2\n", id="blank-line-between"),
        pytest.param("# HELP a x\na 1\nb 2", id="help-only-no-newline-at-end"),
        pytest.param("# TYPE a gauge\na 1\n  b 2\n", id="indented"),
        pytest.param("b 2\n# TYPE a gauge\na 1\n", id="before"),
        pytest.param(
            "# TYPE b_sum gauge\nb_sum 9\nb 2\n", id="unwanted-name-is-a-suffix-of-wanted"
        ),
    ],
)
def test_filter_never_skips_a_wanted_line(text: str) -> None:
    """The block skip of an unwanted family must stop at any line not of that family."""
    assert [s.value for s in parse(text, {"b"})["b"].samples if s.name == "b"] == [2.0]


def test_filter_when_unwanted_family_name_prefixes_a_wanted_one() -> None:
    text = "# TYPE vllm:num gauge\nvllm:num 1\nvllm:num_requests_waiting 5\n"
    fams = parse(text, {"vllm:num_requests_waiting"})
    assert flat(fams["vllm:num_requests_waiting"]) == [("vllm:num_requests_waiting", {}, 5.0, None)]


def test_labels_are_parsed_once_per_text() -> None:
    fams = parse(samples.DCGM)
    sm = fams["DCGM_FI_DEV_SM_CLOCK"].samples[0].labels
    util = fams["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels
    assert sm is util
    assert util["pod"] == "chat-predictor-7d9f-abcde"
    assert util["pci_bus_id"] == "00000000:18:00.0"


def test_dcgm_blank_sentinel_value_parses() -> None:
    fam = parse(samples.DCGM)["DCGM_FI_DEV_MEMORY_TEMP"]
    assert fam.samples[0].value == 9223372036854775794.0


def test_family_declared_after_its_samples_is_tolerated() -> None:
    fams = parse("a 1\n# TYPE a gauge\na 2\n")
    assert fams["a"].type == "gauge"
    assert [s.value for s in fams["a"].samples] == [1.0, 2.0]


def test_type_line_of_histogram_routes_suffixes() -> None:
    text = '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 3\n'
    fams = parse(text)
    assert list(fams) == ["h"]
    assert fams["h"].samples[1].labels == {"le": "+Inf"}
