"""Named replica profiles: the performance parameters of one vLLM replica on given GPUs.

Profiles are fixed before any policy comparison and are the same for every policy. Each is
calibrated from published figures, cited in its docstring; where no figure exists the value is
derived (shown) from model shape and GPU memory.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """Performance of one replica. Times in seconds, sizes in tokens.

    Decode step time for a batch of ``n`` sequences holding ``kv`` cached tokens is
    ``decode_base_s + n * decode_per_seq_s + kv * decode_per_kv_token_s`` (weights read once
    per step, per-sequence overhead, attention over the cache). Prefill runs at
    ``prefill_tokens_per_s``, at most ``max_batched_tokens`` per engine step (chunked prefill).
    """

    name: str
    model: str
    decode_base_s: float
    decode_per_seq_s: float
    decode_per_kv_token_s: float
    prefill_tokens_per_s: float
    max_num_seqs: int
    max_batched_tokens: int
    kv_cache_tokens: int
    gpus: int
    gpu_model: str
    cold_start_median_s: float
    cold_start_sigma: float
    cold_start_min_s: float

    def decode_step_s(self, batch: int, kv_tokens: int) -> float:
        """Duration of one decode step.

        Example (llama-3.1-8b-h100): 128 sequences holding 192,000 tokens →
        0.007 + 128·0.00006 + 192000·7.6e-8 = 0.0293 s per step → 128/0.0293 ≈ 4,370 tok/s.
        """
        return (
            self.decode_base_s
            + batch * self.decode_per_seq_s
            + kv_tokens * self.decode_per_kv_token_s
        )

    def cold_start_s(self, rng: random.Random) -> float:
        """Draw a cold start (pod created → Ready): log-normal around the median, floored."""
        return max(
            self.cold_start_min_s,
            self.cold_start_median_s * math.exp(rng.gauss(0.0, self.cold_start_sigma)),
        )


LLAMA_8B_H100 = Profile(
    name="llama-3.1-8b-h100",
    model="meta-llama/Llama-3.1-8B-Instruct",
    # Throughput: 3,800-5,200 output tok/s per 8B pod on one H100 at high batch (the figure
    # quoted in the project's issue seeds from vLLM/NVIDIA benchmark posts). The formula gives
    # ≈140 tok/s single-stream and ≈4,400 tok/s at 128 sequences of ~1.5k context.
    decode_base_s=0.007,
    decode_per_seq_s=0.00006,
    decode_per_kv_token_s=7.6e-8,
    # Prefill: ~16k tok/s for an 8B model on one H100 (compute-bound; ~2·8e9 FLOP/token at
    # ~40 % of 989 TFLOP/s dense BF16 ≈ 24k tok/s, derated for attention and scheduling).
    prefill_tokens_per_s=16_000.0,
    max_num_seqs=256,  # vLLM default --max-num-seqs
    max_batched_tokens=8192,  # vLLM V1 chunked-prefill budget for online serving
    # KV capacity: 80 GB × 0.9 (gpu_memory_utilization) − 16 GB weights ≈ 56 GB; per token
    # 2 (K,V) × 32 layers × 8 KV heads × 128 dims × 2 bytes = 128 KiB → ≈ 450k tokens.
    kv_cache_tokens=450_000,
    gpus=1,
    gpu_model="NVIDIA H100 80GB HBM3",
    # Cold start of an 8B pod with a cached image: 30-90 s (weights load + CUDA graphs).
    cold_start_median_s=45.0,
    cold_start_sigma=0.35,
    cold_start_min_s=20.0,
)

LLAMA_70B_4XH100 = Profile(
    name="llama-3.1-70b-4xh100",
    model="meta-llama/Llama-3.1-70B-Instruct",
    # TP=4 on H100: ~40 tok/s single-stream, ~1,500-2,000 tok/s at high batch.
    decode_base_s=0.018,
    decode_per_seq_s=0.00012,
    decode_per_kv_token_s=1.5e-7,
    prefill_tokens_per_s=7_000.0,
    max_num_seqs=256,
    max_batched_tokens=8192,
    # 4 × 80 GB × 0.9 − 140 GB weights ≈ 148 GB; per token 2 × 80 layers × 8 KV heads × 128 ×
    # 2 bytes = 320 KiB → ≈ 460k tokens; 420k after activation/graph reserves.
    kv_cache_tokens=420_000,
    gpus=4,
    gpu_model="NVIDIA H100 80GB HBM3",
    # 2-5 min cold starts for 70B (issue seeds: weights ~140 GB from a node cache or PVC).
    cold_start_median_s=180.0,
    cold_start_sigma=0.3,
    cold_start_min_s=90.0,
)

# A tiny profile for the live stack on a 2-core machine: requests finish in about a second,
# so a demo or an e2e test sees queues build and drain within seconds.
TINY_CPU = Profile(
    name="tiny-test",
    model="tiny-test",
    decode_base_s=0.02,
    decode_per_seq_s=0.002,
    decode_per_kv_token_s=1e-6,
    prefill_tokens_per_s=20_000.0,
    max_num_seqs=4,
    max_batched_tokens=2048,
    kv_cache_tokens=4096,
    gpus=1,
    gpu_model="NVIDIA H100 80GB HBM3",
    cold_start_median_s=3.0,
    cold_start_sigma=0.0,
    cold_start_min_s=0.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LLAMA_8B_H100, LLAMA_70B_4XH100, TINY_CPU)}


def get_profile(name: str) -> Profile:
    """Look up a profile by name; the error lists the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
