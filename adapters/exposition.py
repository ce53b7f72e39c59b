"""A fast parser for the Prometheus text exposition format (0.0.4), tolerant of OpenMetrics.

What a scrape of a vLLM pod or a dcgm-exporter needs: the few families the autoscaler reads,
out of hundreds it does not. :func:`parse` takes an optional set of family names. An unwanted
family announced by HELP/TYPE lines (as every real exporter announces them) is skipped whole:
``str.find``/``str.count`` check, in C, that the lines up to the next ``#`` line all start with
its name, and the scan jumps over them. Wanted lines are parsed with ``str`` methods; a label
set is parsed once per text (dcgm-exporter repeats each GPU's labels in every family, vLLM
repeats ``engine``/``model_name`` in every gauge), and samples are plain tuples.

Accepted, because legal: HELP/TYPE/UNIT lines in any order, other comments, blank lines and
leading blanks, ``# EOF``, exemplars after `` # ``, ``NaN``/``+Inf``/``-Inf``, optional
timestamps (milliseconds in 0.0.4, seconds in OpenMetrics — detected by a trailing ``# EOF``),
``_created`` series, escaped label values (``\\"``, ``\\\\``, ``\\n``; other escapes are kept
as written, like prometheus_client does), label values holding ``,`` ``}`` ``=`` ``#`` or
spaces, metric names with colons, a trailing comma in a label set, CRLF line ends.

Anything else on a parsed line raises :class:`ExpositionError` with the line number. Lines of
families not asked for are skipped unchecked (at most their metric name is read) — that is
what makes filtering cheap.

Families are keyed as ``prometheus_client``'s parser keys them: a counter declared as
``foo_total`` is family ``foo``. Samples keep their exposed names (``foo_total``,
``foo_created``, ``foo_bucket``...). A requested family ``f`` collects the samples ``f``,
``f_total``, ``f_created``, ``f_bucket``, ``f_sum``, ``f_count``, ``f_info``, ``f_gsum`` and
``f_gcount``, whatever the TYPE lines say. Not supported: Prometheus 3's quoted UTF-8 metric
names (``{"my.metric"}``), an error here. Pure: no I/O.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["TYPES", "ExpositionError", "Family", "Labels", "Sample", "parse"]

Labels = Mapping[str, str]
"""A sample's labels. Shared between samples with the same label text: treat as read-only."""


class ExpositionError(ValueError):
    """The text is not a valid exposition; ``line_no`` is 1-based."""

    def __init__(self, line_no: int, message: str) -> None:
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no
        self.message = message


class _LineError(Exception):
    """Raised by the helpers; :func:`parse` adds the line number (computed only then)."""


class Sample(NamedTuple):
    """One exposed sample. ``timestamp`` is in unix seconds (``None`` when not exposed)."""

    name: str
    labels: Labels
    value: float
    timestamp: float | None = None


@dataclass(slots=True)
class Family:
    """A metric family: its declared type (``untyped`` when undeclared), help, unit, samples."""

    name: str
    type: str = "untyped"
    help: str = ""
    unit: str = ""
    samples: list[Sample] = field(default_factory=list)


TYPES = frozenset(
    {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}
    | {"untyped", "unknown"}
)
_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_info", "_gsum", "_gcount")
_TYPE_SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "histogram": ("", "_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("", "_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("", "_info"),
}
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_STR = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_PAIR = r"[ \t]*[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*" + _STR + r"[ \t]*"
_BODY_RE = re.compile(rf"(?:{_PAIR}(?:,{_PAIR})*,?)?[ \t]*")
_LABELS_RE = re.compile(rf"\{{{_BODY_RE.pattern}\}}")
_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"')
_FIRST_KEY_RE = re.compile(r"[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*")
_NEXT_KEY_RE = re.compile(r"[ \t]*,[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*")
_TAIL_RE = re.compile(r"[ \t]*(?:,[ \t]*)?")
_FIRST_KEYS: dict[str, str] = {}  # 'name=' -> name, for the first label of a set
_NEXT_KEYS: dict[str, str] = {}  # ',name=' -> name, for the others
_ESCAPE_RE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HELP_ESCAPES = {"\\": "\\", "n": "\n"}
_AFTER_NAME = frozenset("{ \t")
_NEW = tuple.__new__


def _unescape(text: str, escapes: dict[str, str]) -> str:
    return _ESCAPE_RE.sub(lambda m: escapes.get(m.group(1), m.group(0)), text)


def _key(segment: str, first: bool) -> str:
    """The label name in the text before a value's opening quote: ``name=`` for the first
    label, ``,name=`` for the others, blanks allowed. Cached: label names repeat."""
    cache, regex = (_FIRST_KEYS, _FIRST_KEY_RE) if first else (_NEXT_KEYS, _NEXT_KEY_RE)
    key = cache.get(segment)
    if key is None:
        m = regex.fullmatch(segment)
        if m is None:
            raise _LineError(f"invalid label name or separator {segment!r}")
        key = m.group(1)
        if len(cache) < 4096:
            cache[segment] = key
    return key


def _labels(raw: str) -> dict[str, str]:
    """The label set between ``{`` and ``}``. Without backslashes no value holds a quote, so
    splitting at quotes alternates the text before each value with the values themselves."""
    if "\\" in raw:
        if _BODY_RE.fullmatch(raw) is None:
            raise _LineError(f"invalid label set {{{raw}}}")
        pairs = _PAIR_RE.findall(raw)
        labels = {k: _unescape(v, _ESCAPES) if "\\" in v else v for k, v in pairs}
    else:
        parts = raw.split('"')
        if not len(parts) & 1:
            raise _LineError(f"unterminated label value in {{{raw}}}")
        segments, pairs = parts[0::2], parts[1::2]
        tail = segments.pop()
        if tail and (tail.strip(" \t") if not pairs else _TAIL_RE.fullmatch(tail) is None):
            raise _LineError(f"unexpected {tail!r} at the end of {{{raw}}}")
        keys = [_NEXT_KEYS.get(seg, "") for seg in segments]
        if keys:
            keys[0] = _FIRST_KEYS.get(segments[0], "")
        if "" in keys:
            keys = [_key(seg, i == 0) for i, seg in enumerate(segments)]
        labels = dict(zip(keys, pairs))  # noqa: B905  # equal lengths by construction
    if len(labels) != len(pairs):
        raise _LineError(f"duplicate label name in {{{raw}}}")
    return labels


def _number(token: str, what: str) -> float:
    try:
        if "_" in token:  # float() accepts "1_000"; the format does not
            raise ValueError(token)
        return float(token)
    except ValueError:
        raise _LineError(f"invalid {what} {token!r}") from None


def _value_and_timestamp(rest: str, om: bool) -> tuple[float, float | None]:
    """The slow path after the name and labels: a timestamp, an exemplar, or an error."""
    parts = rest.split()
    if "#" in parts:  # exemplar: `value [timestamp] # {labels} value [timestamp]`
        parts = parts[: parts.index("#")]
    if not parts:
        raise _LineError("missing value")
    if len(parts) > 2:
        raise _LineError(f"unexpected text after the value: {rest.strip()!r}")
    value = _number(parts[0], "value")
    if len(parts) == 1:
        return value, None
    ts = _number(parts[1], "timestamp")
    return value, ts if om else ts / 1000.0


@functools.lru_cache(maxsize=64)
def _wanted(names: frozenset[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Sample name -> requested family (exact names win over suffixed ones), and the sample
    names sorted, to tell quickly whether an unwanted name prefixes a wanted one."""
    route = {n + s: n for n in names for s in _SUFFIXES}
    route.update((n, n) for n in names)
    return route, tuple(sorted(route))


class _Metadata:
    """HELP/TYPE/UNIT lines and the families they create (the cold path of :func:`parse`)."""

    def __init__(self, wanted: dict[str, str] | None) -> None:
        self.wanted = wanted
        self.families: dict[str, Family] = {}
        self.declared: dict[str, str] = {}  # sample name -> family, from TYPE lines (no filter)
        self.helps: dict[str, str] = {}  # by the name on the HELP line
        self.units: dict[str, str] = {}

    def family(self, fname: str, meta_name: str) -> Family:
        fam = self.families.get(fname)
        if fam is None:
            help_, unit = self.helps.get(meta_name), self.units.get(meta_name)
            fam = self.families[fname] = Family(
                fname,
                help=self.helps.get(fname, "") if help_ is None else help_,
                unit=self.units.get(fname, "") if unit is None else unit,
            )
        return fam

    def route(self, name: str) -> str | None:
        """The family a sample named ``name`` belongs to; ``None``: not asked for."""
        if self.wanted is not None:
            return self.wanted.get(name)
        return self.declared.get(name, name)

    def line(self, line: str) -> str | None:
        """Handle a ``#`` line; returns the metric name when its family is not wanted."""
        parts = line[1:].split(None, 2)
        if not parts or parts[0] not in ("TYPE", "HELP", "UNIT"):
            return None  # a comment, or OpenMetrics' `# EOF`
        kw, mname = parts[0], parts[1] if len(parts) > 1 else ""
        arg = parts[2].rstrip("\r") if len(parts) > 2 else ""
        if self.wanted is not None:
            routed = self.wanted.get(mname)
            if routed is None or (mname != routed and mname != routed + "_total"):
                return mname or None  # not asked for, or prometheus_client's _created gauge
            fname = routed
        elif kw == "TYPE":
            is_total = arg.strip() == "counter" and mname.endswith("_total")
            fname = mname[:-6] if is_total else mname
        else:  # HELP/UNIT of a family by its own name, or of a counter declared as *_total
            counter = self.families.get(mname[:-6]) if mname.endswith("_total") else None
            fname = counter.name if counter is not None and counter.type == "counter" else mname
        if _NAME_RE.fullmatch(mname) is None:
            raise _LineError(f"{kw} line without a valid metric name")
        if kw == "TYPE":
            arg = arg.strip()
            if arg not in TYPES:
                raise _LineError(f"unknown metric type {arg!r}")
            if self.wanted is None:
                for suffix in _TYPE_SUFFIXES.get(arg, ("",)):
                    self.declared[fname + suffix] = fname
            self.family(fname, mname).type = arg
        elif kw == "HELP":
            self.helps[mname] = _unescape(arg, _HELP_ESCAPES)
            if fname in self.families:
                self.families[fname].help = self.helps[mname]
        else:
            self.units[mname] = arg.strip()
            if fname in self.families:
                self.families[fname].unit = self.units[mname]
        return None


def _skip_family(text: str, end: int, base: str) -> int:
    """Where the scan may resume after the ``#`` line ending at ``end`` (its newline) of an
    unwanted family ``base``: past its TYPE line and its samples when every line up to the
    next ``#`` line starts with ``base``; else ``end + 1``, the next line."""
    type_line = f"\n# TYPE {base} "
    if text.startswith(type_line, end):
        nl = text.find("\n", end + 1)
        end = len(text) if nl < 0 else nl
    nxt = text.find("\n#", end)
    if nxt < 0:
        nxt = len(text)
    lines = text.count("\n", end, nxt)
    if lines and text.count("\n" + base, end, nxt) != lines:
        return end + 1 if end < len(text) else end
    return nxt + 1


def parse(
    text: str | bytes,
    names: Collection[str] | None = None,
    *,
    openmetrics: bool | None = None,
) -> dict[str, Family]:
    """Parse ``text`` into families keyed by name, only those in ``names`` when given.

    ``openmetrics`` says how to read timestamps (seconds rather than milliseconds); ``None``
    detects it from a final ``# EOF``. Raises :class:`ExpositionError` on invalid input.
    """
    if isinstance(text, bytes | bytearray):
        data = bytes(text)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ExpositionError(data.count(b"\n", 0, e.start) + 1, "invalid UTF-8") from None
    if openmetrics is None:
        openmetrics = text[-16:].rstrip().endswith("# EOF")
    wanted, sorted_wanted = (None, ()) if names is None else _wanted(frozenset(names))
    meta = _Metadata(wanted)
    labels_seen: dict[str, Labels] = {}
    no_labels: Labels = {}
    prev = "\0"  # the metric name of the previous sample line, and where its samples go
    plen = 1
    append: Callable[[Sample], None] | None = None
    find, size = text.find, len(text)
    pos = start = 0
    try:
        while pos < size:
            start = pos
            end = find("\n", pos)
            if end < 0:
                end = size
            line = text[pos:end]
            pos = end + 1
            if not line:
                continue
            c = line[0]
            if c in " \t\r":
                line = line.strip(" \t\r")
                if not line:
                    continue
                c = line[0]
            if c == "#":
                prev = "\0"  # routing may change
                base = meta.line(line)
                if base is not None:  # an unwanted family: skip its samples in one go
                    i = bisect.bisect_left(sorted_wanted, base)
                    if i == len(sorted_wanted) or not sorted_wanted[i].startswith(base):
                        pos = _skip_family(text, end, base)
                continue
            # A sample line. Same name as the line before: same destination, no regex.
            if not (line.startswith(prev) and line[plen : plen + 1] in _AFTER_NAME):
                m = _NAME_RE.match(line)
                if m is None:
                    raise _LineError(f"invalid metric name in {line[:60]!r}")
                prev = m.group()
                plen = len(prev)
                if line[plen : plen + 1] not in _AFTER_NAME:
                    raise _LineError(f"expected labels or a value after {prev!r}")
                fname = meta.route(prev)
                append = None if fname is None else meta.family(fname, prev).samples.append
            if append is None:
                continue
            if line[plen] == "{":
                close = line.find("}", plen)
                raw = line[plen + 1 : close]
                labels = labels_seen.get(raw) if close > 0 else None
                if labels is None:  # a label text not seen yet: check the quoting first
                    if close < 0 or "\\" in raw or raw.count('"') & 1:
                        m = _LABELS_RE.match(line, plen)  # escapes, or a `}` inside a value
                        if m is None:
                            raise _LineError(f"invalid label set in {line[:80]!r}")
                        close = m.end() - 1
                        raw = line[plen + 1 : close]
                    labels = labels_seen.get(raw)
                    if labels is None:
                        labels = labels_seen[raw] = _labels(raw)
                rest = line[close + 1 :]
            else:
                labels, rest = no_labels, line[plen:]
            try:
                value = float(rest)
            except ValueError:
                value, ts = _value_and_timestamp(rest, openmetrics)
            else:
                if "_" in rest:
                    raise _LineError(f"invalid value {rest.strip()!r}")
                ts = None
            append(_NEW(Sample, (prev, labels, value, ts)))
    except _LineError as e:
        raise ExpositionError(text.count("\n", 0, start) + 1, str(e)) from None
    return meta.families
