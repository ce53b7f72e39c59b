"""Prometheus source: one PromQL instant query per signal for all targets, per tick.

Never one query per InferenceService: each signal is one query grouped ``by`` the pod
attribution labels of every naming scheme (``namespace``/``pod``, ``exported_namespace``/
``exported_pod`` after a scrape with ``honorLabels: false``, ``pod_namespace``/``pod_name``
of ``--use-old-namespace``); each result series is joined to the known pods (the first
scheme that names a known pod wins), and series of pods not in the pod list are dropped.

Each value carries the timestamp Prometheus returns with it. Staleness is Prometheus': a
series whose target disappeared or failed its scrape is marked stale and is absent from
instant queries; ``max_age`` additionally drops gauges older than that many seconds
(``last_over_time``). NaN/±Inf results are missing. Prometheus unreachable, an HTTP error or
a query error make the whole snapshot ``unavailable`` — never zeros. The queries run
concurrently; ``stats`` counts them so a benchmark can report queries per tick.

Each answer is decoded as it arrives, straight into that signal's column of samples (one slot
per known pod): a typed decoder (msgspec) reads only the attribution labels and the value of
each series, without building a dict per series; an answer it does not recognise (an error,
another result type, an odd label value) goes through the general JSON path, which reports it
exactly as before.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import re
import ssl
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from adapters.extract import GPU_UTIL, VLLM_PREFIX
from adapters.source import Column, PodKey, PodTarget, assemble_columns, slots
from policies.signals import MetricsSnapshot, Signal

__all__ = ["PrometheusError", "PrometheusSource", "QueryStats", "build_queries"]

log = logging.getLogger(__name__)

IDENTITY = (
    ("exported_namespace", "exported_pod"),
    ("namespace", "pod"),
    ("pod_namespace", "pod_name"),
)
BY = ", ".join(label for pair in IDENTITY for label in pair)


class PrometheusError(Exception):
    """A query could not be answered: unreachable, HTTP error, or a PromQL error."""


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _regex(namespaces: Sequence[str]) -> str:
    """``a|b``: namespace names are DNS labels, nothing in them needs escaping."""
    for ns in namespaces:
        if not _DNS_LABEL.fullmatch(ns):
            raise ValueError(f"not a namespace name: {ns!r}")
    return "|".join(namespaces)


def build_queries(
    prefix: str = VLLM_PREFIX,
    namespaces: Sequence[str] = (),
    window: str = "1m",
    max_age: float | None = None,
) -> dict[Signal, str]:
    """The PromQL of each signal. ``namespaces`` filters the vLLM series (not dcgm's, whose
    ``namespace`` may be the exporter's own)."""
    sel = f'{{namespace=~"{_regex(namespaces)}"}}' if namespaces else ""

    def gauge(name: str) -> str:
        series = f"{prefix}{name}{sel}"
        return f"last_over_time({series}[{max_age:g}s])" if max_age else series

    ttft = f"sum by ({BY}, le) (rate({prefix}time_to_first_token_seconds_bucket{sel}[{window}]))"
    preemptions = f"rate({prefix}num_preemptions_total{sel}[{window}])"
    return {
        Signal.QUEUE_DEPTH: f"sum by ({BY}) ({gauge('num_requests_waiting')})",
        Signal.RUNNING: f"sum by ({BY}) ({gauge('num_requests_running')})",
        Signal.KV_CACHE_USAGE: f"avg by ({BY}) ({gauge('kv_cache_usage_perc')})"
        f" or avg by ({BY}) ({gauge('gpu_cache_usage_perc')})",
        Signal.TTFT_P50: f"histogram_quantile(0.5, {ttft})",
        Signal.TTFT_P95: f"histogram_quantile(0.95, {ttft})",
        Signal.PREEMPTION_RATE: f"sum by ({BY}) ({preemptions})",
        Signal.GPU_UTILIZATION: f"avg by ({BY}) ({GPU_UTIL} <= 100)",
    }


def join(metric: Mapping[str, str], known: Container[PodKey]) -> PodKey | None:
    """The known pod a result series belongs to, or ``None``."""
    for ns_label, pod_label in IDENTITY:
        key = (metric.get(ns_label, ""), metric.get(pod_label, ""))
        if key in known:
            return key
    return None


@dataclass(slots=True)
class QueryStats:
    """Counts since start, and of the last tick (for logs, own metrics and benchmarks)."""

    ticks: int = 0
    queries: int = 0
    failures: int = 0
    last_queries: int = 0
    """Queries of the last tick: one per signal, whatever the number of targets."""

    @property
    def last_requests(self) -> int:
        """Requests made in the last tick (the name every source's stats share)."""
        return self.last_queries


class PrometheusSource:
    """A :class:`~adapters.source.MetricsSource` over the Prometheus HTTP API."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = VLLM_PREFIX,
        namespaces: Sequence[str] = (),
        window: str = "1m",
        max_age: float | None = None,
        timeout: float = 5.0,
        bearer_token: str | None = None,
        bearer_token_file: Path | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: Path | None = None,
        insecure_skip_verify: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v1/query"
        self.queries = build_queries(prefix, namespaces, window, max_age)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.bearer_token = bearer_token
        self.bearer_token_file = bearer_token_file
        self.basic_auth = None
        if basic_auth is not None:  # RFC 7617, as aiohttp.BasicAuth (deprecated) encodes it
            user, password = basic_auth
            encoded = base64.b64encode(f"{user}:{password}".encode("latin1")).decode()
            self.basic_auth = f"Basic {encoded}"
        self.ssl: ssl.SSLContext | bool = True
        if insecure_skip_verify:
            self.ssl = False
        elif ca_file is not None:
            self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.stats = QueryStats()
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> PrometheusSource:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        """Authorization. A token file is re-read every tick (projected tokens rotate); it is
        a few bytes on a local volume, read synchronously."""
        token = self.bearer_token
        if self.bearer_token_file is not None:
            try:
                token = self.bearer_token_file.read_text().strip()
            except OSError as e:
                raise PrometheusError(f"bearer token file: {e}") from e
        if token:
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": self.basic_auth} if self.basic_auth else {}

    async def snapshot(self, targets: Sequence[PodTarget], now: float) -> MetricsSnapshot:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.stats.ticks += 1
        self.stats.last_queries = len(self.queries)
        self.stats.queries += len(self.queries)
        index, of_target = slots(targets)
        try:
            headers = self._headers()
            results = await asyncio.gather(
                *(self._query(self._session, signal, headers, index) for signal in self.queries),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        except PrometheusError as e:
            self.stats.failures += 1
            log.warning("prometheus: %s", e)
            return MetricsSnapshot.unavailable(now, f"prometheus: {e}", source=self.name)
        columns: dict[Signal, Column] = {}
        for signal, column in zip(self.queries, results, strict=True):
            assert not isinstance(column, BaseException)
            columns[signal] = column
        return assemble_columns(targets, of_target, columns, now, self.name)

    async def _query(
        self,
        session: aiohttp.ClientSession,
        signal: Signal,
        headers: Mapping[str, str],
        index: Mapping[PodKey, int],
    ) -> Column:
        """The signal's instant vector as a column: the first finite sample of each known pod
        at its slot in ``index``, missing where it has none."""
        try:
            async with session.post(
                self.endpoint,
                data={"query": self.queries[signal]},
                headers=headers,
                ssl=self.ssl,
                timeout=self.timeout,
            ) as resp:
                status, raw = resp.status, await resp.read()
                encoding = resp.get_encoding()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PrometheusError(f"unreachable: {type(e).__name__}: {e}") from e
        return _column(signal, status, raw, encoding, index)


def _column(
    signal: Signal, status: int, raw: bytes, encoding: str, index: Mapping[PodKey, int]
) -> Column:
    """One answer as the signal's column: the typed fast path when it reads the answer, the
    general path (:func:`_column_of_text`) otherwise; both give the same column or error."""
    fast = _decode_vector(raw) if encoding == "utf-8" else None
    if fast is None:
        return _column_of_text(signal, status, raw.decode(encoding), index)  # as resp.text()
    column = Column.empty(len(index))
    try:
        _fill(column, fast, index)
    except ValueError as e:  # a value that is no number, as _vector reports it
        raise PrometheusError(f"malformed result of {signal.value}: {e!r}") from e
    return column


def _column_of_text(signal: Signal, status: int, text: str, index: Mapping[PodKey, int]) -> Column:
    """The general path: any JSON answer, every failure reported as a :class:`PrometheusError`
    naming the HTTP status, Prometheus' error or what is malformed."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") != "success":
        kind, detail = "", text[:200].strip()
        if isinstance(body, dict):
            kind, detail = f" {body.get('errorType', '')}".rstrip(), str(body.get("error"))
        raise PrometheusError(f"HTTP {status}{kind}: {detail} (query of {signal.value})")
    try:
        series = _vector(body["data"])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
        raise PrometheusError(f"malformed result of {signal.value}: {e!r}") from e
    column = Column.empty(len(index))
    for metric, at, value in series:
        key = join(metric, index)
        if key is not None and math.isfinite(value):
            slot = index[key]
            if column.value[slot] is None:
                column.value[slot], column.at[slot] = value, at
    return column


def _vector(data: Any) -> list[tuple[dict[str, str], float, float]]:
    """The series of an instant-vector result; a lookup or type error when malformed."""
    if data.get("resultType") != "vector":
        raise TypeError(f"expected a vector, got {data.get('resultType')!r}")
    out = []
    for item in data["result"]:
        metric, (at, value) = item["metric"], item["value"]
        if not isinstance(metric, dict):
            raise TypeError(f"labels are not an object: {metric!r}")
        out.append((metric, float(at), float(value)))
    return out


# ------------------------------------------------------------------ the typed fast path
class _Identity(msgspec.Struct, gc=False):
    """The attribution labels of a series (:data:`IDENTITY`); every other label is skipped
    unread. An absent label is ``""``, as ``metric.get(label, "")`` reads it in :func:`join`."""

    exported_namespace: str = ""
    exported_pod: str = ""
    namespace: str = ""
    pod: str = ""
    pod_namespace: str = ""
    pod_name: str = ""


assert set(_Identity.__struct_fields__) == {label for pair in IDENTITY for label in pair}


class _Point(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    """``[<unix time>, "<value>"]``, exactly two elements."""

    at: float
    value: str


class _Series(msgspec.Struct, gc=False):
    metric: _Identity
    value: _Point


class _Data(msgspec.Struct, gc=False):
    result_type: str = msgspec.field(name="resultType")
    result: list[_Series]


class _Answer(msgspec.Struct, gc=False):
    status: str
    data: _Data


_ANSWER = msgspec.json.Decoder(_Answer)


def _decode_vector(raw: bytes) -> list[_Series] | None:
    """The series of a successful instant-vector answer, or ``None`` for anything else (not
    JSON, an error, another result type, a series of another shape or with a label value that
    is not a string): the general path then reads it, and reports it, as it always has."""
    try:
        answer = _ANSWER.decode(raw)
    except msgspec.DecodeError:
        return None
    if answer.status != "success" or answer.data.result_type != "vector":
        return None
    return answer.data.result


def _fill(column: Column, series: list[_Series], index: Mapping[PodKey, int]) -> None:
    """:func:`join` and keep the first finite sample of each known pod, as the general path
    does; every value is converted (a ``ValueError`` names the first that is no number)."""
    get = index.get
    isfinite = math.isfinite
    values, ats = column.value, column.at
    blank = get(("", ""))  # where a pair of absent labels leads (nowhere, unless a pod is "")
    at: float | None = None
    for s in series:
        m, point = s.metric, s.value
        value = float(point.value)
        ns, pod = m.exported_namespace, m.exported_pod
        slot = get((ns, pod)) if ns or pod else blank
        if slot is None:
            slot = get((m.namespace, m.pod))
            if slot is None:
                ns, pod = m.pod_namespace, m.pod_name
                slot = get((ns, pod)) if ns or pod else blank
                if slot is None:
                    continue
        if values[slot] is not None or not isfinite(value):
            continue
        if point.at != at:  # an instant query stamps every series with its evaluation time
            at = point.at
        values[slot], ats[slot] = value, at
