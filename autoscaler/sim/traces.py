"""Trace readers: public LLM inference traces as one uniform arrival list.

Formats (described in ``shared/traces/README.md``):

* ``azure``: Azure LLM inference 2023 CSV, ``TIMESTAMP,ContextTokens,GeneratedTokens``,
  timestamps with 7 fractional digits (and optionally a UTC offset, as in the 2024 traces);
* ``mooncake``: Mooncake JSONL, ``timestamp`` (ms from the trace start), ``input_length``,
  ``output_length``. The conversation trace sits on a 3 s grid; requests that share a
  timestamp are spread uniformly (seeded) up to the next distinct timestamp;
* ``burstgpt``: BurstGPT CSV, ``Timestamp`` (s), ``Request tokens``, ``Response tokens``,
  optional ``Model`` (filter with ``model=``). Rows with ``Response tokens`` = 0 are failed
  requests and are dropped;
* ``servegen``: the ServeGen aggregate rate series (``model,category,window_start_s,rate_rps,
  active_clients``, 10-min windows). Arrivals are generated: a Poisson process with the
  window's rate (piecewise constant, seeded); empty windows are gaps in the data and take the
  rate linearly interpolated from their neighbours. Token counts are drawn from the Azure
  conversation trace: joint pairs from ``tokens_from`` (an Azure CSV) when given, else
  independent draws from its embedded quantile table (:data:`AZURE_CONV_QUANTILES`).

Every reader yields a :class:`Trace` with times in seconds from the trace start (the first
request for per-request traces, 00:00 of day 1 for ServeGen). :func:`load_trace` then slices
``[start, start + duration)`` seconds of trace time (``t`` restarts at 0), applies
``rate_scale`` (keeps the time axis: each request is kept ``floor(k)`` times plus once more
with probability ``frac(k)``, copies offset by U(0, min(gap to the next request, 1 s)) so no
artificial simultaneous pairs appear; structure at ≥ 1 s scales is kept; for ServeGen it
multiplies the generated rate) and ``speedup`` (compresses time: every request kept, times
divided by ``speedup``, so the rate is ``speedup`` times higher). Reading is vectorized
where it matters: the largest shared file loads in well under a second.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.sim.loadgen import Arrival

FORMATS = ("azure", "mooncake", "servegen", "burstgpt")
MAX_GENERATED = 20_000_000

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Trace:
    """Arrivals as parallel arrays, sorted by ``t`` (seconds from the trace start)."""

    t: Floats
    prompt: Ints
    output: Ints

    def __len__(self) -> int:
        return len(self.t)

    @property
    def span(self) -> float:
        """Seconds from the first to the last arrival (0 for fewer than two)."""
        return float(self.t[-1] - self.t[0]) if len(self.t) > 1 else 0.0

    def arrivals(self) -> list[Arrival]:
        return [
            Arrival(float(t), int(p), int(o))
            for t, p, o in zip(self.t, self.prompt, self.output, strict=True)
        ]

    def take(self, mask: npt.NDArray[np.bool_]) -> Trace:
        return Trace(self.t[mask], self.prompt[mask], self.output[mask])


def _trace(t: Floats, prompt: Ints, output: Ints) -> Trace:
    order = np.argsort(t, kind="stable")
    return Trace(t[order], prompt[order], output[order])


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


_STAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(stamp: str, _days: dict[tuple[str, str], float] | None = None) -> float:
    """Seconds since the epoch of an Azure ``TIMESTAMP`` (any number of fractional digits).

    No offset means UTC (only differences matter). Example:
    ``parse_timestamp("2023-11-16 18:15:46.6805900") - parse_timestamp("2023-11-16
    18:15:46.0000000") == 0.68059``.
    """
    m = _STAMP.match(stamp.strip())
    if m is None:
        raise ValueError(f"bad timestamp {stamp!r}")
    day, hh, mm, ss, frac, tz = m.groups()
    key = (day, tz or "")
    base = None if _days is None else _days.get(key)
    if base is None:
        offset = tz.replace(":", "") if tz and tz != "Z" else "+0000"
        base = dt.datetime.strptime(f"{day} {offset}", "%Y-%m-%d %z").timestamp()
        if _days is not None:
            _days[key] = base
    seconds = int(hh) * 3600 + int(mm) * 60 + int(ss)
    return base + seconds + (int(frac) / 10 ** len(frac) if frac else 0.0)


def read_azure(path: Path) -> Trace:
    """An Azure LLM inference trace CSV (plain or gzipped); ``t`` from the first request."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != [
            "TIMESTAMP",
            "ContextTokens",
            "GeneratedTokens",
        ]:
            raise ValueError(f"{path}: not an Azure trace (header TIMESTAMP,ContextTokens,...)")
        days: dict[tuple[str, str], float] = {}
        stamps: list[float] = []
        prompt: list[int] = []
        output: list[int] = []
        for row in reader:
            if not row:
                continue
            stamps.append(parse_timestamp(row[0], days))
            prompt.append(int(row[1]))
            output.append(int(row[2]))
    t = np.asarray(stamps, dtype=np.float64)
    if len(t):
        t -= t.min()
    return _trace(t, np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64))


def spread_grid(t: Floats, rng: np.random.Generator) -> Floats:
    """Spread requests sharing a timestamp uniformly up to the next distinct timestamp.

    Example: times ``[0, 0, 0, 3]`` become three sorted U(0, 3) draws and ``3``. A group at
    the last timestamp spreads over the median gap between distinct timestamps.
    """
    if len(t) == 0:
        return t
    uniq, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    gaps = np.diff(uniq)
    last = float(np.median(gaps)) if len(gaps) else 0.0
    gaps = np.append(gaps, last)
    crowded = counts[inverse] > 1
    out = t.astype(np.float64, copy=True)
    out[crowded] += rng.random(int(crowded.sum())) * gaps[inverse][crowded]
    return np.sort(out, kind="stable")


def read_mooncake(path: Path, *, seed: int = 1, spread: bool = True) -> Trace:
    """A Mooncake JSONL trace; ``timestamp`` is ms from the trace start."""
    stamps: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                stamps.append(float(row["timestamp"]) / 1000.0)
                prompt.append(int(row["input_length"]))
                output.append(int(row["output_length"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a Mooncake trace line ({e})") from None
    tr = _trace(
        np.asarray(stamps, dtype=np.float64),
        np.asarray(prompt, dtype=np.int64),
        np.asarray(output, dtype=np.int64),
    )
    if spread:
        tr = Trace(spread_grid(tr.t, np.random.default_rng(seed)), tr.prompt, tr.output)
    return tr


def read_burstgpt(path: Path, *, model: str | None = None) -> Trace:
    """A BurstGPT CSV; failed rows (``Response tokens`` = 0) dropped; ``t`` from the first."""
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        need = {"Timestamp", "Request tokens", "Response tokens"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: not a BurstGPT trace (need {', '.join(sorted(need))})")
        stamps: list[float] = []
        prompt: list[int] = []
        output: list[int] = []
        for row in reader:
            if model is not None and row.get("Model") != model:
                continue
            out = int(float(row["Response tokens"]))
            if out <= 0:
                continue
            stamps.append(float(row["Timestamp"]))
            prompt.append(max(1, int(float(row["Request tokens"]))))
            output.append(out)
    t = np.asarray(stamps, dtype=np.float64)
    if len(t):
        t -= t.min()
    return _trace(t, np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64))


# Azure conversation trace token quantiles (computed from azure_llm_2023_conv.csv.gz with
# numpy.percentile, linear): probability -> (prompt tokens, output tokens). Prompt and output
# are nearly independent there (correlation of the logs 0.09), so they are drawn independently.
AZURE_CONV_QUANTILES: tuple[tuple[float, int, int], ...] = (
    (0.00, 2, 7), (0.01, 29, 16), (0.05, 181, 41), (0.10, 207, 54), (0.20, 387, 77),
    (0.30, 403, 91), (0.40, 703, 103), (0.50, 1020, 129), (0.60, 1071, 177),
    (0.70, 1130, 384), (0.80, 1315, 400), (0.90, 2734, 424), (0.95, 4083, 451),
    (0.99, 4142, 601), (1.00, 14050, 1000),
)  # fmt: skip


@dataclass(frozen=True)
class RateSeries:
    """Piecewise-constant request rate: ``rate[i]`` req/s from ``start[i]`` for ``width`` s."""

    start: Floats
    rate: Floats
    width: float


def read_servegen(path: Path, *, model: str = "m-large") -> RateSeries:
    """One model's windows from the ServeGen aggregate file; empty windows interpolated."""
    starts: list[float] = []
    rates: list[float] = []
    models: set[str] = set()
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        need = {"model", "window_start_s", "rate_rps"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: not a ServeGen aggregate file (need {sorted(need)})")
        for row in reader:
            models.add(row["model"])
            if row["model"] == model:
                starts.append(float(row["window_start_s"]))
                rates.append(float(row["rate_rps"]))
    if not starts:
        raise ValueError(f"{path}: no model {model!r}; known: {', '.join(sorted(models))}")
    start, rate = np.asarray(starts), np.asarray(rates)
    order = np.argsort(start)
    start, rate = start[order], rate[order]
    width = float(np.median(np.diff(start))) if len(start) > 1 else 600.0
    good = rate > 0
    if good.any() and not good.all():
        rate = np.interp(start, start[good], rate[good])
    return RateSeries(start, rate, width)


def sample_tokens(n: int, rng: np.random.Generator, pool: Trace | None) -> tuple[Ints, Ints]:
    """``n`` (prompt, output) pairs: drawn from ``pool``'s rows, else from the quantile table.

    The table is inverted with linear interpolation (inverse-CDF sampling), so the draws
    reproduce the table's percentiles: the median prompt is 1,020 tokens.
    """
    if pool is not None and len(pool):
        pick = rng.integers(0, len(pool), n)
        return pool.prompt[pick], pool.output[pick]
    q = np.asarray(AZURE_CONV_QUANTILES, dtype=np.float64)
    prompt = np.interp(rng.random(n), q[:, 0], q[:, 1])
    output = np.interp(rng.random(n), q[:, 0], q[:, 2])
    return np.rint(prompt).astype(np.int64), np.rint(output).astype(np.int64)


def servegen_arrivals(
    series: RateSeries,
    start: float,
    duration: float | None,
    rate_scale: float,
    rng: np.random.Generator,
    tokens: Trace | None = None,
) -> Trace:
    """Poisson arrivals at ``rate × rate_scale`` per window over ``[start, start+duration)``.

    Per window piece of length ``w`` at rate ``λ``: ``N ~ Poisson(λ·w)`` arrivals, uniform in
    the piece (the order statistics of a Poisson process). ``t`` is relative to ``start``.
    """
    if rate_scale <= 0:
        raise ValueError(f"rate_scale must be > 0, got {rate_scale}")
    end = series.start[-1] + series.width if duration is None else start + duration
    lo = np.maximum(series.start, start)
    hi = np.minimum(series.start + series.width, end)
    keep = hi > lo
    lo, hi, lam = lo[keep], hi[keep], series.rate[keep] * rate_scale
    expected = float(np.sum(lam * (hi - lo)))
    if expected > MAX_GENERATED:
        raise ValueError(
            f"the slice would generate ~{expected:.3g} requests; lower --rate-scale or --duration"
        )
    counts = rng.poisson(lam * (hi - lo))
    t = np.repeat(lo, counts) + rng.random(int(counts.sum())) * np.repeat(hi - lo, counts)
    prompt, output = sample_tokens(len(t), rng, tokens)
    return _trace(t - start, prompt, output)


def scale_rate(trace: Trace, rate_scale: float, rng: np.random.Generator) -> Trace:
    """Thin or duplicate requests so the rate is ``rate_scale`` times the original.

    Each request is kept ``floor(k)`` times plus once more with probability ``frac(k)``.
    Copies after the first are offset by U(0, min(gap to the next request, 1 s)). Example:
    ``k = 2.5`` keeps every request twice and half of them a third time.
    """
    if rate_scale <= 0:
        raise ValueError(f"rate_scale must be > 0, got {rate_scale}")
    if rate_scale == 1.0 or len(trace) == 0:
        return trace
    whole, frac = int(rate_scale), rate_scale - int(rate_scale)
    copies = np.full(len(trace), whole, dtype=np.int64) + (rng.random(len(trace)) < frac)
    idx = np.repeat(np.arange(len(trace)), copies)
    first = np.zeros(len(idx), dtype=bool)
    first[(np.cumsum(copies) - copies)[copies > 0]] = True
    gap = np.minimum(np.append(np.diff(trace.t), 1.0), 1.0)
    t = trace.t[idx] + np.where(first, 0.0, rng.random(len(idx)) * gap[idx])
    return _trace(t, trace.prompt[idx], trace.output[idx])


def slice_trace(trace: Trace, start: float, duration: float | None) -> Trace:
    """Arrivals in ``[start, start + duration)`` with ``t`` shifted so ``start`` is 0."""
    end = np.inf if duration is None else start + duration
    cut = trace.take((trace.t >= start) & (trace.t < end))
    return Trace(cut.t - start, cut.prompt, cut.output)


def load_trace(
    path: Path | str,
    fmt: str = "azure",
    *,
    speedup: float = 1.0,
    rate_scale: float = 1.0,
    start: float = 0.0,
    duration: float | None = None,
    seed: int = 1,
    model: str | None = None,
    tokens_from: Path | None = None,
) -> Trace:
    """Read ``path`` as ``fmt``, slice, scale the rate, then compress time (module docstring).

    ``model`` picks the ServeGen model (default ``m-large``) or filters BurstGPT rows.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; known: {', '.join(FORMATS)}")
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    if not path.is_file():
        raise FileNotFoundError(f"no such trace file: {path}")
    rng = np.random.default_rng(seed)
    if fmt == "servegen":
        windows = read_servegen(path, model=model or "m-large")
        tokens = read_azure(tokens_from) if tokens_from else None
        tr = servegen_arrivals(windows, start, duration, rate_scale, rng, tokens)
    else:
        readers: dict[str, Callable[[Path], Trace]] = {
            "azure": read_azure,
            "mooncake": lambda p: read_mooncake(p, seed=seed),
            "burstgpt": lambda p: read_burstgpt(p, model=model),
        }
        tr = scale_rate(slice_trace(readers[fmt](path), start, duration), rate_scale, rng)
    return Trace(tr.t / speedup, tr.prompt, tr.output) if speedup != 1.0 else tr


def load_arrivals(
    path: Path | str,
    fmt: str = "azure",
    *,
    speedup: float = 1.0,
    rate_scale: float = 1.0,
    start: float = 0.0,
    duration: float | None = None,
    seed: int = 1,
    model: str | None = None,
    tokens_from: Path | None = None,
) -> list[Arrival]:
    """:func:`load_trace` as a list of :class:`Arrival`."""
    return load_trace(
        path,
        fmt,
        speedup=speedup,
        rate_scale=rate_scale,
        start=start,
        duration=duration,
        seed=seed,
        model=model,
        tokens_from=tokens_from,
    ).arrivals()
