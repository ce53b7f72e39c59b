"""``llm-autoscaler stack up|down|status``: the real local Kubernetes + Prometheus stack."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from autoscaler.stack import process
from autoscaler.stack.stack import (
    Stack,
    StackConfig,
    StackError,
    StackState,
    default_state_dir,
    down,
)

HELP = "run the local stack (kube-apiserver, controllers, kwok, Prometheus, fleet simulator)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="where state, PKI and logs live (default: %(default)s)",
    )
    p.add_argument("--nodes", type=int, default=2, help="fake GPU nodes (up)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per fake node (up)")
    p.add_argument(
        "--pod-net",
        type=int,
        default=1,
        help="pods get 127.<pod-net>.<node>.x addresses (up; two stacks need two values)",
    )
    p.add_argument("--scrape-interval", default="2s", help="Prometheus scrape interval (up)")
    p.add_argument(
        "--profile", default="tiny-test", help="default replica profile of simulated pods (up)"
    )
    p.add_argument(
        "--cold-start",
        type=float,
        default=None,
        help="cold start of simulated pods, seconds (up; default: the profile's)",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "down":
        down(args.state_dir, log=print)
        return 0
    if args.action == "status":
        return status(args.state_dir)
    fleet_args = [f"--profile={args.profile}"]
    if args.cold_start is not None:
        fleet_args.append(f"--cold-start={args.cold_start}")
    cfg = StackConfig(
        state_dir=args.state_dir,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        pod_net=args.pod_net,
        scrape_interval=args.scrape_interval,
        fleet_args=fleet_args,
    )
    try:
        asyncio.run(Stack(cfg).up())
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return status(args.state_dir)


def status(state_dir: Path) -> int:
    state = StackState.load(state_dir)
    if state is None:
        print(f"no stack in {state_dir} (start one with 'llm-autoscaler stack up')")
        return 1
    print(f"kubeconfig:  {state.kubeconfig}")
    print(f"apiserver:   {state.api_url}")
    print(f"prometheus:  {state.prometheus_url}")
    print(f"fleet:       {state.fleet_url}")
    print(
        "versions:    "
        + ", ".join(f"{k.removesuffix('_VERSION').lower()} {v}" for k, v in state.versions.items())
    )
    dead = []
    for name, pid in state.pids.items():
        alive = process.pid_alive(pid)
        dead += [] if alive else [name]
        print(f"  {name:<24} pid {pid:<8} {'running' if alive else 'NOT RUNNING'}")
    print(f"logs:        {Path(state.state_dir) / 'logs'}")
    print(f"try:         KUBECONFIG={state.kubeconfig} kubectl get nodes,pods -A")
    return 1 if dead else 0
