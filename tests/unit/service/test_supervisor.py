"""The supervisor restarts crashed tasks, lets finished ones go, and stops everything."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.supervisor import Supervisor


async def test_a_crashing_task_is_restarted_with_backoff_and_others_keep_running() -> None:
    sup = Supervisor(restart_backoff=0.01)
    runs = {"bad": 0, "good": 0}

    async def bad() -> None:
        runs["bad"] += 1
        raise ValueError("bug")

    async def good() -> None:
        while True:
            runs["good"] += 1
            await asyncio.sleep(0.005)

    sup.start("bad", bad)
    sup.start("good", good)
    await asyncio.sleep(0.1)
    assert runs["bad"] >= 3
    assert sup.crashes["bad"] == runs["bad"]
    assert sup.running("good")
    await sup.stop()
    assert not sup.running("good")
    assert sup.tasks == {}


async def test_a_task_that_returns_is_not_restarted() -> None:
    sup = Supervisor(restart_backoff=0.01)
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    sup.start("once", once)
    await asyncio.sleep(0.05)
    assert calls == 1
    assert not sup.running("once")
    await sup.stop()


async def test_starting_a_running_name_twice_is_refused() -> None:
    sup = Supervisor()
    sup.start("t", lambda: asyncio.sleep(10))
    with pytest.raises(RuntimeError, match="already running"):
        sup.start("t", lambda: asyncio.sleep(10))
    await sup.stop()
