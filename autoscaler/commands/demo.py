"""``llm-autoscaler demo``: the whole stack locally, replaying a real trace, with live output."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from autoscaler.demo import REPO, DemoConfig, run_demo
from autoscaler.sim.loadgen import azure_arrivals
from autoscaler.stack.binaries import cache_dir
from autoscaler.stack.stack import StackError

HELP = (
    "run the demo: local stack, an InferenceService, a replayed trace, live output, summary + plot"
)
DEFAULT_TRACE = REPO.parent / "shared" / "traces" / "azure_llm_2023_conv.csv.gz"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trace",
        type=Path,
        default=DEFAULT_TRACE,
        help="Azure LLM trace CSV (default: %(default)s)",
    )
    p.add_argument(
        "--start", type=float, default=600.0, help="trace offset, seconds (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds of trace to replay (default: %(default)s)",
    )
    p.add_argument("--speedup", type=float, default=1.0, help="replay this many times faster")
    p.add_argument(
        "--results", type=Path, default=None, help="results folder (default: results/demo-<time>)"
    )
    p.add_argument("--state-dir", type=Path, default=cache_dir() / "demo-stack")
    p.add_argument("--keep-stack", action="store_true", help="leave the stack running at the end")


def run(args: argparse.Namespace) -> int:
    try:
        arrivals = azure_arrivals(
            args.trace, start=args.start, duration=args.duration, speedup=args.speedup
        )
    except (OSError, ValueError) as e:
        print(f"error: cannot read trace {args.trace}: {e}", file=sys.stderr)
        return 2
    results = args.results or REPO / "results" / time.strftime("demo-%Y%m%d-%H%M%S")
    cfg = DemoConfig(
        results=results,
        state_dir=args.state_dir,
        arrivals=arrivals,
        duration=args.duration / args.speedup,
        keep_stack=args.keep_stack,
    )
    try:
        summary = asyncio.run(run_demo(cfg))
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if summary["requests"]["ok"] else 1
