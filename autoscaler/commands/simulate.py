"""``llm-autoscaler simulate``: replay a trace on the fast simulated fleet under each policy.

Every policy sees the same arrivals, the same profile, the same seeded cold starts and starts
from the same warm fleet (``--initial-replicas``; ``auto`` is the oracle's answer for the
first minute). It prints one row per policy: SLO attainment (share of requests with
TTFT ≤ ``--slo-ttft``), TTFT p50/p99, GPU-hours, GPU-hours ÷ the oracle's, scale events and
the most replicas. ``--json`` prints one object keyed by policy instead.

Exit status: 0 on success; 2 with one line on stderr for a missing or unreadable trace, an
unknown format, policy or profile, or a bad number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoscaler.sim.fast import SimConfig
    from autoscaler.sim.report import SimResult
    from autoscaler.sim.traces import Trace

HELP = "replay a trace on the simulated fleet under each policy; compare SLO and GPU-hours"
ALL = "default,forecast,hpa-gpu,keda-queue,kpa-concurrency,oracle"

Progress = Callable[[str, float], None]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", type=Path, required=True, metavar="FILE")
    p.add_argument(
        "--format", default="azure", help="azure (default), mooncake, servegen, burstgpt"
    )
    p.add_argument("--profile", default="llama-3.1-8b-h100", help="replica profile")
    p.add_argument("--policy", default=ALL, help=f"comma-separated (default: {ALL})")
    p.add_argument("--slo-ttft", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--speedup", type=float, default=1.0, help="compress time by this factor")
    p.add_argument("--rate-scale", type=float, default=1.0, help="thin/duplicate requests (seeded)")
    p.add_argument("--start", type=float, default=0.0, help="trace offset, seconds")
    p.add_argument("--duration", type=float, default=None, help="trace seconds to replay")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default=None, help="ServeGen model (m-large) / BurstGPT Model")
    p.add_argument("--tokens-from", type=Path, default=None, help="ServeGen: Azure CSV tokens")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=20)
    p.add_argument("--initial-replicas", default="auto", help="warm pods at t=0, or auto")
    p.add_argument("--balancer", default="least-loaded", help="least-loaded or round-robin")
    p.add_argument("--oracle-target", type=float, default=0.99, help="per-minute attainment")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by policy")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def compare(
    trace: Trace,
    cfg: SimConfig,
    names: Sequence[str],
    *,
    end_s: float | None = None,
    oracle_target: float = 0.99,
    progress: Progress | None = None,
) -> dict[str, SimResult]:
    """Run every named policy on ``trace`` under ``cfg``; the oracle is planned first."""
    from autoscaler.sim import oracle
    from autoscaler.sim.baselines import Autoscaler, make_autoscaler
    from autoscaler.sim.fast import FastSim

    def step(label: str) -> Callable[[float], None] | None:
        return None if progress is None else (lambda f: progress(label, f))

    results: dict[str, SimResult] = {}
    for name in names:
        scaler: Autoscaler
        if name == "oracle":
            scaler = oracle.plan(
                trace, cfg, target=oracle_target, end_s=end_s, progress=step("oracle plan")
            )
        else:
            scaler = make_autoscaler(
                name, min_replicas=cfg.min_replicas, max_replicas=cfg.max_replicas
            )
        results[name] = FastSim(cfg, scaler, trace, end_s).run(progress=step(name))
    return results


def summaries(results: dict[str, SimResult]) -> dict[str, dict[str, Any]]:
    """The JSON rows; ``gpu_hours_vs_oracle`` is null when the oracle was not run."""
    base = results["oracle"].gpu_hours if "oracle" in results else None
    return {name: r.summary(base) for name, r in results.items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


class Bar:
    """A plain-text progress bar on stderr, redrawn in place."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.monotonic()

    def __call__(self, label: str, fraction: float) -> None:
        if not self.enabled:
            return
        filled = int(30 * fraction)
        elapsed = time.monotonic() - self.t0
        bar = "#" * filled + "-" * (30 - filled)
        sys.stderr.write(f"\r{label:<18} [{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _fail(msg: str) -> int:
    print(f"llm-autoscaler simulate: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from autoscaler.sim.baselines import POLICIES, make_autoscaler
    from autoscaler.sim.fast import BALANCERS, SimConfig
    from autoscaler.sim.oracle import initial_need
    from autoscaler.sim.profiles import get_profile
    from autoscaler.sim.traces import FORMATS, load_trace

    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    for n in names:
        if n not in POLICIES:
            return _fail(f"unknown policy {n!r}; known: {', '.join(POLICIES)}")
        if n != "oracle":
            try:
                make_autoscaler(n, min_replicas=1, max_replicas=1)
            except (ImportError, ValueError, KeyError) as e:
                return _fail(f"policy {n!r} unavailable: {e}")
    if args.format not in FORMATS:
        return _fail(f"unknown trace format {args.format!r}; known: {', '.join(FORMATS)}")
    if args.balancer not in BALANCERS:
        return _fail(f"unknown balancer {args.balancer!r}; known: {', '.join(BALANCERS)}")
    try:
        profile = get_profile(args.profile)
    except ValueError as e:
        return _fail(str(e))
    if not 1 <= args.min_replicas <= args.max_replicas:
        return _fail("need 1 <= --min-replicas <= --max-replicas")
    try:
        trace = load_trace(
            args.trace,
            args.format,
            speedup=args.speedup,
            rate_scale=args.rate_scale,
            start=args.start,
            duration=args.duration,
            seed=args.seed,
            model=args.model,
            tokens_from=args.tokens_from,
        )
    except FileNotFoundError as e:
        return _fail(str(e))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return _fail(f"cannot read {args.trace} as {args.format}: {e}")
    if len(trace) == 0:
        return _fail(f"no requests in {args.trace} for the chosen slice")
    end = args.duration / args.speedup if args.duration else float(trace.t[-1])
    cfg = SimConfig(
        profile,
        slo_ttft_s=args.slo_ttft,
        seed=args.seed,
        balancer=args.balancer,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        initial_replicas=args.min_replicas,
    )
    if args.initial_replicas == "auto":
        initial = initial_need(trace, cfg, target=args.oracle_target)
    elif args.initial_replicas.isdigit():
        initial = int(args.initial_replicas)
    else:
        return _fail(f"--initial-replicas must be a number or auto, not {args.initial_replicas!r}")
    if not args.min_replicas <= initial <= args.max_replicas:
        return _fail("--initial-replicas must lie within [--min-replicas, --max-replicas]")
    cfg = dataclasses.replace(cfg, initial_replicas=initial)
    bar = Bar(sys.stderr.isatty() and not args.no_progress)
    results = compare(trace, cfg, names, end_s=end, oracle_target=args.oracle_target, progress=bar)
    bar.done()
    rows = summaries(results)
    if args.json:
        print(json.dumps(_jsonable(rows), indent=2))
    else:
        from autoscaler.sim.report import format_table

        rate = len(trace) / end if end > 0 else float("nan")
        print(
            f"{args.trace.name}: {len(trace)} requests over {end:.0f} s ({rate:.2f} req/s), "
            f"profile {profile.name}, SLO TTFT {args.slo_ttft:g} s, {initial} warm replicas"
        )
        print(format_table(rows))
    if args.plot is not None:
        from autoscaler.sim.plot import plot_runs

        plot_runs(results, args.plot, title=f"{args.trace.name} on {profile.name}")
    return 0
