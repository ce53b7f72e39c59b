"""A simulated vLLM replica as an HTTP server: OpenAI-style completions on top of the shared
:class:`~autoscaler.sim.replica.Replica` model, and ``/metrics`` with vLLM's real metric names,
types and labels (``model_name``, ``engine``), read from the model at scrape time.

The engine runs in real time: a task advances the replica to the wall clock every few
milliseconds while it has work, and sleeps while idle. A request is answered when the model
says it finished; ``stream: true`` sends the first chunk when the first token is out, so a
client measures TTFT as it would against vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from autoscaler.sim.profiles import Profile
from autoscaler.sim.replica import EventKind, Replica, Request

log = logging.getLogger(__name__)

# vLLM V1 bucket boundaries (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
LATENCY_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
_ids = itertools.count(1)


class Histogram:
    """Cumulative-bucket histogram state, rendered by the collector."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.sum += v
        for i, b in enumerate(self.bounds):
            if v <= b:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if b == float("inf") else repr(b), float(acc)))
        return out


@dataclass
class _Pending:
    request: Request
    first_token: asyncio.Future[float]
    done: asyncio.Future[float]


@dataclass
class SimulatedVllm:
    """One simulated vLLM pod: engine task + HTTP app. ``metrics_style`` is ``v1`` (default,
    ``vllm:kv_cache_usage_perc``), ``v0`` (``vllm:gpu_cache_usage_perc``, no ``engine`` label)."""

    profile: Profile
    model_name: str
    metrics_style: str = "v1"
    replica: Replica = field(init=False)
    started: float = field(default_factory=time.monotonic)
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    queue_time: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    extra_waiting: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _busy_hist: deque[tuple[float, float]] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.replica = Replica(self.profile)

    def now(self) -> float:
        return time.monotonic() - self.started

    # ---- engine ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"engine {self.model_name}"
        )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for p in self._pending.values():
            for f in (p.first_token, p.done):
                if not f.done():
                    f.set_exception(ConnectionResetError("replica stopped"))
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            self._step()
            if self.replica.load == 0:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.25)
            else:
                await asyncio.sleep(0.005)

    def _step(self) -> None:
        now = self.now()
        for ev in self.replica.advance(now):
            p = self._pending.get(ev.request.id)
            if ev.kind is EventKind.FIRST_TOKEN:
                r = ev.request
                self.ttft.observe(ev.at - r.arrival)
                self.queue_time.observe((r.admitted_at or ev.at) - r.arrival)
                if p:
                    _resolve_at(p.first_token, ev.at, now)
            elif ev.kind is EventKind.FINISHED:
                self.e2e.observe(ev.at - ev.request.arrival)
                if p:
                    self._pending.pop(ev.request.id, None)
                    _resolve_at(p.done, ev.at, now)
        self._busy_hist.append((now, self.replica.counters.busy_seconds))
        while len(self._busy_hist) > 2 and self._busy_hist[1][0] < now - 1.0:
            self._busy_hist.popleft()

    def gpu_utilization(self) -> float:
        """Percent of the last second in which the engine ran a batch (DCGM's definition)."""
        if len(self._busy_hist) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._busy_hist[0], self._busy_hist[-1]
        if t1 - t0 <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (b1 - b0) / (t1 - t0)))

    def submit(self, prompt_tokens: int, output_tokens: int) -> _Pending:
        self._step()
        loop = asyncio.get_running_loop()
        req = Request(next(_ids), self.now(), max(1, prompt_tokens), max(1, output_tokens))
        self.replica.submit(req)
        pending = _Pending(req, loop.create_future(), loop.create_future())
        self._pending[req.id] = pending
        self._wake.set()
        return pending

    # ---- HTTP -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ping", self._health)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(text="")

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model_name, "object": "model", "owned_by": "vllm"}],
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        chat = request.path.endswith("/chat/completions")
        try:
            prompt_tokens = count_prompt_tokens(body, chat=chat)
            max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        except (TypeError, ValueError) as e:
            return _error(400, str(e))
        if body.get("model") not in (None, self.model_name):
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        try:
            pending = self.submit(prompt_tokens, max_tokens)
        except ValueError as e:
            return _error(400, f"This model's maximum context length is exceeded: {e}")
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{pending.request.id}"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max_tokens,
            "total_tokens": prompt_tokens + max_tokens,
        }
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await pending.first_token
            await resp.write(_sse(_chunk(rid, self.model_name, chat, "tok ", None)))
            await pending.done
            await resp.write(
                _sse(_chunk(rid, self.model_name, chat, "tok " * (max_tokens - 1), "length", usage))
            )
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        await pending.done
        text = "tok " * max_tokens
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return web.json_response(
            {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": [choice],
                "usage": usage,
            }
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        self._step()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_VllmCollector(self))
        return web.Response(
            body=generate_latest(registry), content_type="text/plain", charset="utf-8"
        )


def _resolve_at(future: asyncio.Future[float], at: float, now: float) -> None:
    """Resolve ``future`` with ``at`` when the wall clock reaches model time ``at``.

    :meth:`Replica.advance` runs whole engine steps, so the step that ends past ``now`` is
    computed, and its tokens reported, up to a step early (a full 8192-token prefill chunk is
    0.5 s on the 8B profile): releasing them at once would show the client a TTFT shorter
    than the model's by up to that much.
    """

    def resolve() -> None:
        if not future.done():
            future.set_result(at)

    if at <= now:
        resolve()
    else:
        future.get_loop().call_later(at - now, resolve)


def count_prompt_tokens(body: dict[str, Any], *, chat: bool) -> int:
    """Prompt length in tokens: a token-id list counts exactly; text counts ~4 chars a token."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list")
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        return max(1, len(text) // 4)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        if prompt and isinstance(prompt[0], list):
            raise ValueError("batched prompts are not supported by the simulator")
        if prompt and isinstance(prompt[0], int):
            return len(prompt)
        prompt = " ".join(map(str, prompt))
    return max(1, len(str(prompt)) // 4)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"object": "error", "message": message, "type": "BadRequestError", "code": status},
        status=status,
    )


def _chunk(
    rid: str,
    model: str,
    chat: bool,
    text: str,
    finish: str | None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    out: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if usage:
        out["usage"] = usage
    return out


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class _VllmCollector:
    """Renders the pod's state as vLLM's metric families at scrape time."""

    def __init__(self, sim: SimulatedVllm) -> None:
        self.sim = sim

    def collect(self) -> Any:
        s, r = self.sim, self.sim.replica
        v1 = s.metrics_style != "v0"
        names = ["model_name", "engine"] if v1 else ["model_name"]
        lv = [s.model_name, "0"] if v1 else [s.model_name]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(lv, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=names)
            c.add_metric(lv, value)
            return c

        def hist(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
            m = HistogramMetricFamily(name, doc, labels=names)
            m.add_metric(lv, h.buckets(), h.sum)
            return m

        yield gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            r.num_running,
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            r.num_waiting + s.extra_waiting,
        )
        if v1:
            yield gauge(
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                r.kv_cache_usage,
            )
        else:
            yield gauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                r.kv_cache_usage,
            )
        yield counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            r.counters.preemptions,
        )
        yield counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", r.counters.prompt_tokens
        )
        yield counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            r.counters.generation_tokens,
        )
        ok = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*names, "finished_reason"],
        )
        ok.add_metric([*lv, "length"], r.counters.requests_finished)
        yield ok
        yield hist(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            s.ttft,
        )
        yield hist(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            s.e2e,
        )
        yield hist(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            s.queue_time,
        )
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=["block_size", "num_gpu_blocks", *(["engine"] if v1 else [])],
        )
        info.add_metric(["16", str(s.profile.kv_cache_tokens // 16), *(["0"] if v1 else [])], 1.0)
        yield info
