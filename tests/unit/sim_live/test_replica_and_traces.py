"""Hand-computed cases of the replica model and the Azure trace reader used by loadgen/demo."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from autoscaler.sim.loadgen import azure_arrivals
from autoscaler.sim.profiles import LLAMA_8B_H100 as P
from autoscaler.sim.replica import EventKind, Replica, Request
from tests.conftest import SHARED


def test_one_request_alone_ttft_is_prefill_and_finish_adds_the_decode_steps() -> None:
    r = Replica(P)
    r.submit(Request(1, 0.0, prompt_tokens=1000, output_tokens=100))
    events = r.advance(10.0)
    assert [e.kind for e in events] == [EventKind.FIRST_TOKEN, EventKind.FINISHED]
    ttft = 1000 / P.prefill_tokens_per_s
    assert events[0].at == pytest.approx(ttft)
    # 99 more tokens, one decode step each, batch 1, the cache growing by one token a step.
    decode = sum(P.decode_step_s(1, 1000 + k + 1) for k in range(1, 100))
    assert events[1].at == pytest.approx(ttft + decode, rel=1e-3)
    assert r.kv_used == 0
    assert (
        r.counters.prompt_tokens,
        r.counters.generation_tokens,
        r.counters.requests_finished,
    ) == (1000, 100, 1)


def test_a_request_larger_than_the_kv_cache_is_refused_like_vllm() -> None:
    r = Replica(P)
    with pytest.raises(ValueError, match="exceeds the KV cache"):
        r.submit(Request(1, 0.0, prompt_tokens=P.kv_cache_tokens, output_tokens=1))


def test_a_full_sequence_budget_makes_requests_wait() -> None:
    r = Replica(P)
    for i in range(P.max_num_seqs + 3):
        r.submit(Request(i, 0.0, prompt_tokens=10, output_tokens=500))
    r.advance(0.5)
    assert r.num_running == P.max_num_seqs
    assert r.num_waiting == 3


def test_azure_reader_on_the_shared_conversation_trace() -> None:
    a = azure_arrivals(SHARED / "traces" / "azure_llm_2023_conv.csv.gz", start=0, duration=60)
    assert 191 <= len(a) <= 507  # 191-507 requests a minute (traces/README.md)
    assert a[0].t == 0.0
    assert all(x.t < 60 for x in a)
    assert all(x.prompt_tokens >= 2 and x.output_tokens >= 2 for x in a)


def test_azure_reader_slices_and_speeds_up(tmp_path: Path) -> None:
    f = tmp_path / "t.csv.gz"
    with gzip.open(f, "wt") as out:
        out.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for s in range(10):
            out.write(f"2023-11-16 18:00:{s:02d}.1234567,{100 + s},{10 + s}\n")
    a = azure_arrivals(f, start=2, duration=4, speedup=2)
    assert [x.prompt_tokens for x in a] == [102, 103, 104, 105]
    assert [round(x.t, 3) for x in a] == [0.0, 0.5, 1.0, 1.5]


def test_azure_reader_rejects_other_csvs(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an Azure trace"):
        azure_arrivals(f)
