"""Benchmark: decision quality of our policies against the default baselines and the oracle.

Three one-hour windows of real traces (``shared/traces/``), each replayed on the fast simulated
fleet (``autoscaler.sim.fast``) under every policy, through ``llm-autoscaler simulate``'s own
:func:`~autoscaler.commands.simulate.compare`:

* **steady**: the Azure LLM 2023 conversation trace, whole (58 min), every request kept 8
  times on average (``rate_scale`` 8, seeded duplication with sub-second offsets): 5.5 → 44
  req/s, so the fleet needs about 4 to 12 replicas;
* **bursty**: the Azure LLM 2023 code trace, whole (57 min), ``rate_scale`` 3: 2.6 → 7.7 req/s
  on average, on/off bursts up to ~30 req/s per minute (prefill-heavy, 2k-token prompts);
* **daily ramp**: ServeGen ``m-large``, day 1 (24 h of 10-min windows) compressed 24× into
  one hour, Poisson arrivals at the window rates scaled to a 30 req/s daily mean; tokens
  drawn from the Azure conversation trace's distribution.

Fixed for every policy: profile ``llama-3.1-8b-h100`` (unchanged, cold starts drawn from it
with the same seed), TTFT SLO 2 s, 1 to 24 replicas, the same warm fleet at t = 0 (the
oracle's answer for the first minute), least-loaded balancing. Each (window, policy) run is
independent and deterministic; they are spread over ``--jobs`` processes. The table goes to
stdout and to ``bench/results/decision_quality.md``.

Run: ``python bench/bench_decision_quality.py [--jobs N] [--policies a,b,...]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autoscaler.commands.simulate import ALL, compare  # noqa: E402
from autoscaler.sim.fast import SimConfig  # noqa: E402
from autoscaler.sim.oracle import initial_need  # noqa: E402
from autoscaler.sim.profiles import get_profile  # noqa: E402
from autoscaler.sim.traces import Trace, load_trace, read_servegen  # noqa: E402

TRACES = REPO.parent / "shared" / "traces"
PROFILE = "llama-3.1-8b-h100"
SLO_S = 2.0
MAX_REPLICAS = 24
SEED = 1
SERVEGEN_MEAN_RPS = 30.0


@dataclass(frozen=True)
class Window:
    name: str
    file: str
    fmt: str
    scaling: str
    load: dict[str, Any] = field(default_factory=dict)
    end_s: float | None = None


def servegen_rate_scale(mean_rps: float, speedup: float) -> float:
    """``rate_scale`` that gives ServeGen m-large day 1, compressed ``speedup``×, a mean of
    ``mean_rps``: ``mean_rps / (day-1 mean × speedup)`` (day-1 mean 279 req/s → 0.00448)."""
    series = read_servegen(TRACES / "servegen_aggregate_rate_10min.csv.gz", model="m-large")
    day = series.rate[series.start < 86_400]
    return mean_rps / (float(day.mean()) * speedup)


def windows() -> list[Window]:
    return [
        Window(
            "steady",
            "azure_llm_2023_conv.csv.gz",
            "azure",
            "Azure conversation, whole trace, rate_scale 8 (each request kept 8× on average)",
            {"rate_scale": 8.0},
        ),
        Window(
            "bursty",
            "azure_llm_2023_code.csv.gz",
            "azure",
            "Azure code, whole trace, rate_scale 3",
            {"rate_scale": 3.0},
        ),
        Window(
            "daily ramp",
            "servegen_aggregate_rate_10min.csv.gz",
            "servegen",
            f"ServeGen m-large day 1 compressed 24× (speedup 24), Poisson at the window rates "
            f"scaled to a {SERVEGEN_MEAN_RPS:g} req/s mean, Azure-conversation tokens",
            {
                "duration": 86_400.0,
                "speedup": 24.0,
                "rate_scale": servegen_rate_scale(SERVEGEN_MEAN_RPS, 24.0),
                "model": "m-large",
            },
            end_s=3600.0,
        ),
        # Held out: two more loads of the conversation trace, not used when the default
        # policy's targets were chosen (docs/scaling.md), to show they were not fitted.
        Window(
            "held-out light",
            "azure_llm_2023_conv.csv.gz",
            "azure",
            "Azure conversation, whole trace, rate_scale 4 (held out: not used to pick defaults)",
            {"rate_scale": 4.0},
        ),
        Window(
            "held-out heavy",
            "azure_llm_2023_conv.csv.gz",
            "azure",
            "Azure conversation, whole trace, rate_scale 14 (held out: not used to pick defaults)",
            {"rate_scale": 14.0},
        ),
    ]


def setup(w: Window) -> tuple[Trace, SimConfig, float]:
    trace = load_trace(TRACES / w.file, w.fmt, seed=SEED, **w.load)
    end = w.end_s if w.end_s is not None else float(trace.t[-1])
    cfg = SimConfig(get_profile(PROFILE), slo_ttft_s=SLO_S, seed=SEED, max_replicas=MAX_REPLICAS)
    return trace, replace(cfg, initial_replicas=initial_need(trace, cfg)), end


def run_one(w: Window, policy: str) -> tuple[str, str, dict[str, Any], float]:
    """One (window, policy) run in a worker process: its summary row and wall time."""
    started = time.perf_counter()
    trace, cfg, end = setup(w)
    result = compare(trace, cfg, [policy], end_s=end)[policy]
    return w.name, policy, result.summary(), time.perf_counter() - started


def describe(w: Window) -> str:
    trace, cfg, end = setup(w)
    per_min = np.bincount((trace.t // 60).astype(int)) / 60.0
    return (
        f"{w.scaling}. {len(trace):,} requests over {end:,.0f} s: mean "
        f"{len(trace) / end:.1f} req/s, busiest minute {per_min.max():.1f} req/s, quietest "
        f"{per_min[: int(end // 60)].min():.1f} req/s; {cfg.initial_replicas} warm replicas at "
        "t = 0 for every policy."
    )


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| policy | SLO attainment | TTFT p50 (s) | TTFT p99 (s) | GPU-hours | GPU-h ÷ oracle "
        "| scale events | max replicas |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = rows.get("oracle", {}).get("gpu_hours")
    for name, r in rows.items():
        ratio = f"{r['gpu_hours'] / base:.2f}" if base else "-"
        out.append(
            f"| {name} | {100 * r['slo_attainment']:.1f} % | {r['ttft_p50_s']:.2f} "
            f"| {r['ttft_p99_s']:.2f} | {r['gpu_hours']:.2f} | {ratio} | {r['scale_events']} "
            f"| {r['max_replicas']} |"
        )
    return out


NOTES = """\
How to read it:

- SLO attainment is the share of *all* requests whose TTFT is ≤ 2 s; a request still without
  a first token 300 s after the last arrival counts as a miss with its censored TTFT.
- GPU-hours: every pod from creation (cold start included) to deletion (graceful drain
  included), within the window, × 1 GPU. GPU-h ÷ oracle compares cost only: read it together
  with the attainment (the oracle aims at 99 % per minute; a policy below it may be cheaper).
- The oracle (`autoscaler/sim/oracle.py`) knows the arrivals and the cold starts: minute by
  minute, on the state its own schedule leaves, the fewest replicas that keep that minute's
  attainment ≥ 99 %, its pods created one cold start early. Greedy and 60 s-grained, it is a
  reference, not a strict lower bound.
- Baselines run their documented defaults (`autoscaler/sim/baselines.py`, sources in
  `shared/research/anchors.md` §1, §2, §4): hpa-gpu = HPA on DCGM GPU utilization,
  AverageValue 80, Prometheus 15 s; keda-queue = KEDA Prometheus trigger
  `sum(vllm:num_requests_waiting)` AverageValue 5 into the HPA (15 s sync, 300 s scale-down
  window, max(+4, +100 %) per 15 s), minReplicaCount 1; kpa-concurrency = Knative KPA,
  target 70 in-flight per pod (100 × 70 %), 60 s / 6 s windows, 2 s tick, 1 s scrape. Our
  policies read a direct scrape every 5 s and decide every 1 s, as the service does.
- hpa-gpu tends to sit at the replica ceiling: a vLLM GPU is "busy" whenever any request
  runs, so its utilization stays near 100 % far below saturation; its cost depends on the
  ceiling (24 here).
"""


GOAL_SLO, GOAL_COST = 0.99, 1.15
BASELINES = ("hpa-gpu", "keda-queue", "kpa-concurrency")


def verdicts(rows: dict[str, dict[str, dict[str, Any]]], policy: str = "default") -> list[str]:
    """The goals, checked per window: ≥ 99 % SLO at ≤ 1.15× the oracle's GPU-hours, and
    against each baseline whether ``policy`` dominates it (better on one axis, not worse on
    the other), is dominated by it, or trades one axis for the other."""
    out = [
        f"## Goals ({policy})",
        "",
        f"| window | SLO ≥ {100 * GOAL_SLO:g} % | GPU-h ≤ {GOAL_COST}× oracle | "
        + " | ".join(f"vs {b}" for b in BASELINES)
        + " |",
        "|---|---|---|" + "---|" * len(BASELINES),
    ]
    for wname, r in rows.items():
        me, base = r.get(policy), r.get("oracle", {}).get("gpu_hours")
        if me is None or not base:
            continue
        slo, cost = me["slo_attainment"], me["gpu_hours"]
        cells = [
            f"{'yes' if slo >= GOAL_SLO else 'no'} ({100 * slo:.1f} %)",
            f"{'yes' if cost <= GOAL_COST * base else 'no'} ({cost / base:.2f}×)",
        ]
        for b in BASELINES:
            o = r.get(b)
            if o is None:
                cells.append("-")
                continue
            better = (slo > o["slo_attainment"], cost < o["gpu_hours"])
            worse = (slo < o["slo_attainment"], cost > o["gpu_hours"])
            if any(better) and not any(worse):
                cells.append("dominates")
            elif any(worse) and not any(better):
                cells.append("dominated")
            else:
                cells.append("trade-off")
        out.append(f"| {wname} | " + " | ".join(cells) + " |")
    return [*out, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--policies", default=ALL)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decision_quality.md")
    args = ap.parse_args()
    policies = [p for p in args.policies.split(",") if p]
    started = time.perf_counter()
    ws = windows()
    tasks = [(w, p) for w in ws for p in sorted(policies, key=lambda p: p != "oracle")]
    rows: dict[str, dict[str, dict[str, Any]]] = {w.name: {} for w in ws}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, w, p) for w, p in tasks]
        for fut in futures:
            wname, policy, row, secs = fut.result()
            rows[wname][policy] = row
            print(f"{wname:<11} {policy:<16} {secs:6.1f}s", file=sys.stderr)
    elapsed = time.perf_counter() - started
    lines = [
        "# Decision quality benchmark",
        "",
        f"- command: `python bench/bench_decision_quality.py --jobs {args.jobs}"
        + (f" --policies {args.policies}" if args.policies != ALL else "")
        + "`",
        f"- machine: {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, "
        f"{platform.machine()} {platform.system()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; wall time {elapsed:.0f} s",
        f"- fixed for every policy: profile `{PROFILE}`, TTFT SLO {SLO_S:g} s, 1-{MAX_REPLICAS} "
        f"replicas, seed {SEED}, least-loaded balancing, same warm start",
        "",
    ]
    for w in ws:
        lines += [f"## {w.name}", "", describe(w), "", *table(rows[w.name]), ""]
    lines += verdicts(rows)
    lines.append(NOTES)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
