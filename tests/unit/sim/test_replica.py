"""The replica model against hand-computed cases (chunked prefill, KV limits, preemption) and
the profiles' cold-start draws."""

from __future__ import annotations

import random
import statistics

import pytest

from autoscaler.sim.profiles import LLAMA_8B_H100 as P
from autoscaler.sim.profiles import TINY_CPU as TINY
from autoscaler.sim.profiles import get_profile
from autoscaler.sim.replica import EventKind, Replica, Request


def test_a_long_prompt_alone_is_prefilled_in_chunks_at_the_prefill_rate() -> None:
    """20,000 tokens = chunks of 8,192 + 8,192 + 3,616; no decode runs beside them, so
    TTFT = 20,000 / 16,000 = 1.25 s; then 2 decode steps of batch 1 for the 3 tokens."""
    r = Replica(P)
    r.submit(Request(1, 0.0, prompt_tokens=20_000, output_tokens=3))
    events = r.advance(5.0)
    assert [e.kind for e in events] == [EventKind.FIRST_TOKEN, EventKind.FINISHED]
    assert events[0].at == pytest.approx(1.25)
    steps = P.decode_step_s(1, 20_002) + P.decode_step_s(1, 20_003)
    assert events[1].at == pytest.approx(1.25 + steps)
    assert r.counters.busy_seconds == pytest.approx(1.25 + steps)


def test_two_requests_share_decode_steps_and_the_second_waits_for_its_prefill() -> None:
    """Both prompts (1,000 + 1,000 tokens) fit one 8,192-token chunk: one prefill step of
    2,000 / 16,000 = 0.125 s gives both their first token at the same time."""
    r = Replica(P)
    r.submit(Request(1, 0.0, 1000, 10))
    r.submit(Request(2, 0.0, 1000, 10))
    firsts = [e.at for e in r.advance(1.0) if e.kind is EventKind.FIRST_TOKEN]
    assert firsts == [pytest.approx(0.125), pytest.approx(0.125)]


def test_a_full_kv_cache_keeps_the_next_request_waiting_without_overcommitting() -> None:
    """Regression: admission counted only prefilled tokens, so two 3,000-token prompts were
    both admitted into a 4,096-token cache and the usage gauge reached 146 %."""
    r = Replica(TINY)
    a, b = Request(1, 0.0, 3000, 10), Request(2, 0.0, 3000, 10)
    r.submit(a)
    r.submit(b)
    r.advance(0.01)
    assert (r.num_running, r.num_waiting) == (1, 1)
    peak, t = 0.0, 0.0
    while b.finished_at is None:
        t += 0.01
        r.advance(t)
        peak = max(peak, r.kv_cache_usage)
    assert peak <= 1.0
    assert a.finished_at is not None
    assert b.first_token_at is not None
    assert b.first_token_at >= a.finished_at
    assert r.counters.preemptions == 0


def test_a_growing_cache_preempts_the_newest_request_which_keeps_its_first_token() -> None:
    """Two 1,500-token prompts generating 1,500 tokens each need 6,000 > 4,096 tokens: the
    newest is preempted (recompute), re-queued at the front, and still finishes."""
    r = Replica(TINY)
    a, b = Request(1, 0.0, 1500, 1500), Request(2, 0.0, 1500, 1500)
    r.submit(a)
    r.submit(b)
    events = r.advance(1_000.0)
    preempted = [e for e in events if e.kind is EventKind.PREEMPTED]
    assert preempted
    assert preempted[0].request is b
    assert r.counters.preemptions == len(preempted) == b.preemptions
    first = [e for e in events if e.kind is EventKind.FIRST_TOKEN and e.request is b]
    assert len(first) == 1  # re-prefill after a preemption emits no second first token
    assert a.finished_at is not None
    assert b.finished_at is not None
    assert b.finished_at > a.finished_at
    assert r.kv_used == 0


def test_a_full_sequence_budget_queues_the_rest() -> None:
    r = Replica(TINY)
    for i in range(TINY.max_num_seqs + 2):
        r.submit(Request(i, 0.0, 10, 50))
    r.advance(0.05)
    assert (r.num_running, r.num_waiting) == (TINY.max_num_seqs, 2)


def test_cold_start_draws_respect_the_floor_and_center_on_the_median() -> None:
    rng = random.Random(7)
    draws = [P.cold_start_s(rng) for _ in range(4000)]
    assert min(draws) >= P.cold_start_min_s
    assert statistics.median(draws) == pytest.approx(P.cold_start_median_s, rel=0.05)
    assert max(draws) > P.cold_start_median_s * 1.5  # log-normal tail, sigma 0.35
    again = random.Random(7)
    assert [P.cold_start_s(again) for _ in range(5)] == draws[:5]


def test_a_zero_sigma_profile_has_a_fixed_cold_start() -> None:
    assert {TINY.cold_start_s(random.Random(s)) for s in range(5)} == {TINY.cold_start_median_s}


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"llama-3\.1-8b-h100"):
        get_profile("gpt-5")
