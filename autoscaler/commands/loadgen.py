"""``llm-autoscaler loadgen``: send requests to an InferenceService's pods at a rate or a trace."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from autoscaler.sim.loadgen import LoadGenerator, poisson_arrivals, summarize
from autoscaler.stack.stack import StackState, default_state_dir

HELP = "send OpenAI-style load to an InferenceService's pods (rate or trace replay)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig", type=Path, default=None, help="default: the local stack's admin kubeconfig"
    )
    p.add_argument("--state-dir", type=Path, default=default_state_dir())
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument(
        "--isvc",
        required=True,
        help="InferenceService name (pods labelled serving.kserve.io/inferenceservice)",
    )
    p.add_argument("--rate", type=float, default=2.0, help="requests per second (Poisson)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds")
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--trace", type=Path, default=None, help="replay a trace file instead of --rate")
    p.add_argument(
        "--format", default="azure", help="trace format (see 'llm-autoscaler simulate --help')"
    )
    p.add_argument("--speedup", type=float, default=1.0, help="trace time compression")
    p.add_argument("--start", type=float, default=0.0, help="trace offset, seconds")
    p.add_argument("--policy", choices=("least-loaded", "round-robin"), default="least-loaded")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--slo-ttft",
        type=float,
        default=None,
        help="report the share of requests with TTFT <= this",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        state = StackState.load(args.state_dir)
        if state is None:
            print(
                f"error: no --kubeconfig and no local stack in {args.state_dir} "
                "(start one with 'llm-autoscaler stack up')",
                file=sys.stderr,
            )
            return 2
        kubeconfig = Path(state.kubeconfig)
    if args.trace is not None:
        from autoscaler.sim.traces import load_arrivals

        try:
            arrivals = load_arrivals(
                args.trace,
                fmt=args.format,
                speedup=args.speedup,
                start=args.start,
                duration=args.duration,
                seed=args.seed,
            )
        except (OSError, ValueError) as e:
            print(f"error: cannot read trace {args.trace}: {e}", file=sys.stderr)
            return 2
    else:
        arrivals = poisson_arrivals(
            args.rate, args.duration, args.prompt_tokens, args.output_tokens, args.seed
        )
    gen = LoadGenerator(kubeconfig, args.namespace, args.isvc, policy=args.policy)
    results = asyncio.run(gen.run(arrivals))
    summary = summarize(results, args.slo_ttft)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            print(f"{k:>16}: {v}")
    return 0 if summary["ok"] else 1
