"""Properties of the exposition parser, with hypothesis.

1. Whatever the text (random, or a valid exposition with random damage), ``parse`` returns or
   raises :class:`ExpositionError` — nothing else.
2. A generated well-formed exposition (any label values: quotes, backslashes, newlines, braces,
   commas; NaN/±Inf; timestamps; families in any order, lines interleaved) parses back to
   exactly the samples it was made of, with or without a name filter.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.exposition import ExpositionError, parse
from tests.unit.adapters import samples

SUFFIXES = ("", "_total", "_created", "_bucket", "_sum", "_count", "_info", "_gsum", "_gcount")
VALID = samples.VLLM_V1 + samples.DCGM
WANTED = {"vllm:num_requests_waiting", "vllm:time_to_first_token_seconds", "DCGM_FI_DEV_GPU_UTIL"}


def _parse_or_error(text: str | bytes, names: set[str] | None) -> None:
    try:
        parse(text, names)
    except ExpositionError as e:
        line_no = e.line_no
    else:
        return
    assert 1 <= line_no <= text.count("\n" if isinstance(text, str) else b"\n") + 1


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8")), filtered=st.booleans())
def test_arbitrary_text_only_raises_exposition_error(text: str, filtered: bool) -> None:
    _parse_or_error(text, WANTED if filtered else None)


@settings(max_examples=200, deadline=None)
@given(data=st.binary())
def test_arbitrary_bytes_only_raise_exposition_error(data: bytes) -> None:
    _parse_or_error(data, None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pos=st.integers(0, len(VALID)),
    cut=st.integers(0, 8),
    insert=st.text(alphabet='{}",=\\ \t\n#abcINFaN0123456789.+-_:e', max_size=6),
    filtered=st.booleans(),
)
def test_damaged_exposition_only_raises_exposition_error(
    pos: int, cut: int, insert: str, filtered: bool
) -> None:
    _parse_or_error(VALID[:pos] + insert + VALID[pos + cut :], WANTED if filtered else None)


# --- round trip --------------------------------------------------------------------------

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
label_values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=12)
values = st.floats(allow_nan=True, allow_infinity=True)
timestamps = st.none() | st.integers(-(2**53), 2**53)
series = st.tuples(st.dictionaries(label_names, label_values, max_size=4), values, timestamps)
families = st.dictionaries(
    metric_names,
    st.tuples(
        st.sampled_from(["gauge", "untyped", None]),
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20),
        st.lists(series, max_size=4),
    ),
    max_size=6,
)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _render(fams: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Metadata lines (HELP before TYPE, per family) and sample lines."""
    meta, lines = [], []
    for name, (typ, help_text, rows) in fams.items():
        meta.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2)}")
        if typ:
            meta.append(f"# TYPE {name} {typ}")
        for labels, value, ts in rows:
            body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            line = f"{name}{{{body}}} {_number(value)}" if labels else f"{name} {_number(value)}"
            lines.append(line if ts is None else f"{line} {ts}")
    return meta, lines


def _key(value: float) -> Any:
    return "nan" if math.isnan(value) else value


def _expected(fams: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, str], Any, Any]]]:
    return {
        name: [
            (name, labels, _key(v), None if ts is None else ts / 1000.0) for labels, v, ts in rows
        ]
        for name, (_, _, rows) in fams.items()
    }


def _got(parsed: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, str], Any, Any]]]:
    return {
        name: [(s.name, dict(s.labels), _key(s.value), s.timestamp) for s in fam.samples]
        for name, fam in parsed.items()
    }


@settings(max_examples=200, deadline=None)
@given(fams=families)
def test_round_trip_grouped(fams: dict[str, Any]) -> None:
    """Families rendered the usual way: HELP, TYPE, then their samples."""
    text = ""
    for name, family in fams.items():
        meta, lines = _render({name: family})
        text += "\n".join(meta + lines) + "\n"
    parsed = parse(text)
    # a family is made by a TYPE line or a sample; a HELP line alone only stores its text
    made = {name for name, (typ, _, rows) in fams.items() if typ or rows}
    assert _got(parsed) == {k: v for k, v in _expected(fams).items() if k in made}
    for name in made:
        typ, help_text, _ = fams[name]
        assert parsed[name].type == (typ or "untyped")
        assert parsed[name].help == help_text.lstrip()


@settings(max_examples=200, deadline=None)
@given(fams=families, order=st.randoms(use_true_random=False), data=st.data())
def test_round_trip_interleaved_and_filtered(fams: dict[str, Any], order: Any, data: Any) -> None:
    """Sample lines in any order, metadata anywhere before them; a random name filter."""
    meta, lines = _render(fams)
    order.shuffle(lines)
    text = "\n".join(meta + lines)
    names = set(data.draw(st.lists(st.sampled_from(sorted(fams)), unique=True))) if fams else set()
    got = _got(parse(text, names))
    # the filter's rule: requested f collects f and f+suffix, exact names first
    route = {n + s: n for n in names for s in SUFFIXES}
    route.update((n, n) for n in names)
    want: dict[str, list[Any]] = {}
    for line in lines:  # expected samples, in text order
        name = line.split("{")[0].split(" ")[0]
        if name in route:
            want.setdefault(route[name], [])
    for fname in want:
        rendered = [s for n, s in _expected(fams).items() if route.get(n) == fname]
        want[fname] = sorted((x for rows in rendered for x in rows), key=repr)
    assert {k: sorted(v, key=repr) for k, v in got.items() if v} == want
