"""Serve ``N`` simulated vLLM replicas on loopback, exactly as the live fleet does for its pods
(:class:`~autoscaler.sim.vllm_server.SimulatedVllm` + ``aiohttp`` ``AppRunner``/``TCPSite`` in
one event loop, see ``Fleet._bring_up``), without the apiserver, kwok or cold starts.

``python -m tests.unit.sim_live.serve_replicas --profile llama-3.1-8b-h100 --replicas 2``
prints one JSON line ``{"urls": [...]}`` once every replica listens, then serves until its
stdin closes (the parent exits or closes the pipe) or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from aiohttp import web

from autoscaler.sim.profiles import get_profile
from autoscaler.sim.vllm_server import SimulatedVllm


async def serve(profile_name: str, replicas: int, host: str) -> None:
    profile = get_profile(profile_name)
    sims: list[SimulatedVllm] = []
    runners: list[web.AppRunner] = []
    urls: list[str] = []
    for _ in range(replicas):
        sim = SimulatedVllm(profile, "sim")
        sim.start()
        runner = web.AppRunner(sim.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        port = runner.addresses[0][1]
        sims.append(sim)
        runners.append(runner)
        urls.append(f"http://{host}:{port}")
    print(json.dumps({"urls": urls}), flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # stdin reaching EOF means the parent is gone: never outlive it.
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: None if os.read(fd, 4096) else stop.set())
    await stop.wait()
    for sim, runner in zip(sims, runners, strict=True):
        await sim.stop()
        with contextlib.suppress(Exception):
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="llama-3.1-8b-h100")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args()
    asyncio.run(serve(args.profile, args.replicas, args.host))


if __name__ == "__main__":
    main()
