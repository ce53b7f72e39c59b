"""One vLLM replica serving with continuous batching: the model shared by the live fleet and
the fast simulator (one implementation, so both see the same TTFT for the same arrivals).

Semantics (vLLM V1 scheduler, simplified):

* Requests wait FCFS. A waiting request is admitted when fewer than ``max_num_seqs`` run and
  the KV cache has room for its prompt (plus tokens already generated, after a preemption).
* Prefill is chunked: at most ``max_batched_tokens`` prompt tokens per engine step, mixed with
  one decode token for every decoding request. A request's first token is emitted at the end
  of the step that finishes its prefill: TTFT = queue wait + prefill (+ mixed-step time).
* Each decode step emits one token per decoding request and grows its KV by one token. When
  the cache cannot hold the next step, the newest running request is preempted (recompute:
  its KV is freed, it goes back to the front of the queue and re-prefills prompt + output).
* GPU utilization follows DCGM's definition: the fraction of wall time in which a kernel ran
  (any non-empty batch), which is why it saturates at low load and is a poor scaling signal.

Between events (admission, completion, preemption, the caller's horizon) decode steps are
identical, so they are applied in one macro step: a day of trace costs O(events), not O(steps).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from autoscaler.sim.profiles import Profile


@dataclass(slots=True, eq=False)
class Request:
    """One inference request. ``arrival`` is when it reached the replica (seconds).

    Compared by identity: a replica removes finished requests from its running list, and a
    field-by-field ``__eq__`` there would be slow and could match a different request.
    """

    id: int
    arrival: float
    prompt_tokens: int
    output_tokens: int
    generated: int = 0
    prefill_left: int = 0
    admitted_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    preemptions: int = 0

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.arrival

    @property
    def kv_tokens(self) -> int:
        """Tokens this request holds in the KV cache once admitted."""
        return self.prompt_tokens + self.generated - self.prefill_left


class EventKind(StrEnum):
    FIRST_TOKEN = "first_token"
    FINISHED = "finished"
    PREEMPTED = "preempted"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    request: Request
    at: float


@dataclass(slots=True)
class Counters:
    """Monotonic counters, exposed as vLLM's ``*_total`` metrics and DCGM's busy time."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    requests_finished: int = 0
    preemptions: int = 0
    busy_seconds: float = 0.0


@dataclass
class Replica:
    """A replica's engine state; time only moves forward through :meth:`advance`."""

    profile: Profile
    clock: float = 0.0
    waiting: deque[Request] = field(default_factory=deque)
    running: list[Request] = field(default_factory=list)
    kv_used: int = 0
    counters: Counters = field(default_factory=Counters)
    _just_preempted: bool = False

    KV_WATERMARK = 0.01

    # ---- gauges (vLLM names in comments) -------------------------------------------------
    @property
    def num_waiting(self) -> int:  # vllm:num_requests_waiting
        return len(self.waiting)

    @property
    def num_running(self) -> int:  # vllm:num_requests_running
        return len(self.running)

    @property
    def kv_cache_usage(self) -> float:  # vllm:kv_cache_usage_perc (fraction 0-1)
        return self.kv_used / self.profile.kv_cache_tokens

    @property
    def load(self) -> int:
        """Requests on the replica (waiting + running): what a least-loaded balancer compares."""
        return len(self.waiting) + len(self.running)

    # ---- inputs --------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        """Queue a request. Call :meth:`advance` up to ``request.arrival`` first.

        Like vLLM, a request that can never fit the KV cache (prompt + output longer than
        the cache) is refused up front instead of being preempted forever.
        """
        if request.prompt_tokens + request.output_tokens > self.profile.kv_cache_tokens:
            raise ValueError(
                f"request of {request.prompt_tokens} + {request.output_tokens} tokens exceeds "
                f"the KV cache of {self.profile.kv_cache_tokens} tokens"
            )
        request.prefill_left = request.prompt_tokens
        self.waiting.append(request)

    def advance(self, until: float) -> list[Event]:
        """Run the engine up to ``until`` and return what happened, in time order.

        The last step may end slightly after ``until`` (a step is not interrupted); the next
        call continues from there.
        """
        events: list[Event] = []
        while self.clock < until:
            self._admit()
            if not self.running:
                self.clock = until
                break
            if any(r.prefill_left > 0 for r in self.running):
                self._prefill_step(events)
            else:
                self._decode_steps(until, events)
        return events

    # ---- engine --------------------------------------------------------------------------
    def _admit(self) -> None:
        """Admit queue heads while a sequence slot and KV room (above a 1 % watermark) exist.

        Nothing is admitted right after a preemption: like vLLM, the engine first lets the
        running requests make progress, which avoids preempt/re-admit thrash. The prompt still
        to prefill of running requests counts as used, so admissions never over-commit the
        cache (two 3k-token prompts are not both admitted into a 4k-token cache).
        """
        p = self.profile
        if self._just_preempted:
            self._just_preempted = False
            return
        if not self.waiting:
            return
        limit = p.kv_cache_tokens * (1.0 - self.KV_WATERMARK)
        committed = self.kv_used + sum(r.prefill_left for r in self.running)
        while self.waiting and len(self.running) < p.max_num_seqs:
            head = self.waiting[0]
            need = head.prompt_tokens + head.generated + 1
            if committed + need > limit and self.running:
                return
            self.waiting.popleft()
            committed += need
            head.prefill_left = head.prompt_tokens + head.generated
            if head.admitted_at is None:
                head.admitted_at = self.clock
            self.running.append(head)

    def _prefill_step(self, events: list[Event]) -> None:
        """One mixed step: a chunk of prefill plus one token for every decoding request."""
        p = self.profile
        budget = p.max_batched_tokens
        decoding = [r for r in self.running if r.prefill_left == 0]
        done_prefill: list[Request] = []
        chunk = 0
        for r in self.running:
            if r.prefill_left > 0 and budget > 0:
                take = min(r.prefill_left, budget)
                r.prefill_left -= take
                budget -= take
                chunk += take
                if r.prefill_left == 0:
                    done_prefill.append(r)
        self.kv_used += chunk
        dt = chunk / p.prefill_tokens_per_s
        if decoding:
            dt += p.decode_step_s(len(decoding), self.kv_used)
        self._spend(dt)
        for r in done_prefill:
            if r.first_token_at is None:
                self.counters.prompt_tokens += r.prompt_tokens
                r.first_token_at = self.clock
                events.append(Event(EventKind.FIRST_TOKEN, r, self.clock))
            self._emit_tokens(r, 1, events)
        for r in decoding:
            self._emit_tokens(r, 1, events)

    def _decode_steps(self, until: float, events: list[Event]) -> None:
        """Apply ``k`` identical decode steps at once, up to the next event."""
        p = self.profile
        n = len(self.running)
        free = p.kv_cache_tokens - self.kv_used
        if free < n:
            self._preempt_newest(events)
            return
        dt = p.decode_step_s(n, self.kv_used + n)
        k = min(r.output_tokens - r.generated for r in self.running)
        k = min(k, free // n)
        # No admission can become possible before a completion (decode only grows the KV),
        # so a blocked queue head does not shorten the macro step.
        k = max(1, min(k, math.ceil((until - self.clock) / dt)))
        self._spend(dt * k)
        for r in list(self.running):
            self._emit_tokens(r, k, events)

    def _emit_tokens(self, r: Request, k: int, events: list[Event]) -> None:
        r.generated += k
        self.kv_used += k
        self.counters.generation_tokens += k
        if r.generated >= r.output_tokens:
            r.finished_at = self.clock
            self.running.remove(r)
            self.kv_used -= r.prompt_tokens + r.generated
            self.counters.requests_finished += 1
            events.append(Event(EventKind.FINISHED, r, self.clock))

    def _preempt_newest(self, events: list[Event]) -> None:
        victim = self.running.pop()
        self.kv_used -= victim.kv_tokens
        victim.preemptions += 1
        self.counters.preemptions += 1
        self.waiting.appendleft(victim)
        self._just_preempted = True
        events.append(Event(EventKind.PREEMPTED, victim, self.clock))

    def _spend(self, dt: float) -> None:
        self.clock += dt
        self.counters.busy_seconds += dt
