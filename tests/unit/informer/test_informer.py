"""Informer recovery rules, against a fake list/watch endpoint at our own seam."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.informer import Informer, WatchExpiredError, key_of


def pod(name: str, rv: int, ns: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)}}


class FakeResponse:
    def __init__(
        self, body: dict[str, Any] | None = None, lines: list[dict[str, Any]] | None = None
    ) -> None:
        self.body, self.lines, self.released = body, lines or [], False

    async def read(self) -> bytes:
        return json.dumps(self.body).encode()

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for ev in self.lines:
                yield json.dumps(ev).encode() + b"\n"

        return gen()

    def release(self) -> None:
        self.released = True


class FakeApi:
    """Answers lists from ``objects`` and watches from a script of event batches."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 10
        self.watches: list[list[dict[str, Any]] | Exception] = []
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, *args: Any, **kw: Any) -> FakeResponse:
        self.calls.append(kw)
        if not kw.get("watch"):
            return FakeResponse(
                {
                    "items": list(self.objects.values()),
                    "metadata": {"resourceVersion": str(self.rv)},
                }
            )
        if not self.watches:
            await asyncio.sleep(3600)
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return FakeResponse(lines=step)


async def run_until(inf: Informer, cond: Any, timeout: float = 2.0) -> None:
    task = asyncio.get_running_loop().create_task(inf.run())
    try:
        async with asyncio.timeout(timeout):
            while not cond():  # noqa: ASYNC110 - polling a plain predicate
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_list_then_watch_applies_added_modified_deleted_and_bookmarks() -> None:
    api = FakeApi()
    api.objects = {"a/p1": pod("p1", 5)}
    api.watches = [
        [
            {"type": "ADDED", "object": pod("p2", 11)},
            {"type": "MODIFIED", "object": pod("p1", 12)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}},
            {"type": "DELETED", "object": pod("p2", 14)},
        ]
    ]
    seen: list[tuple[str, str]] = []
    inf = Informer(api, name="pods", on_event=lambda k, o: seen.append((k, key_of(o))))
    await run_until(inf, lambda: inf.resource_version == "14")
    assert seen == [("ADDED", "a/p1"), ("ADDED", "a/p2"), ("MODIFIED", "a/p1"), ("DELETED", "a/p2")]
    assert set(inf.store) == {"a/p1"}
    assert inf.store["a/p1"]["metadata"]["resourceVersion"] == "12"
    # The watch resumed from the list's version, asked for bookmarks, and skipped model decoding.
    watch_call = api.calls[1]
    assert watch_call["resource_version"] == "10"
    assert watch_call["allow_watch_bookmarks"] is True
    assert watch_call["_preload_content"] is False


async def test_410_gone_relists_and_reports_deletions_missed_while_away() -> None:
    api = FakeApi()
    api.objects = {"a/p1": pod("p1", 5), "a/p2": pod("p2", 6)}
    api.watches = [
        [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]
    ]
    seen: list[tuple[str, str]] = []
    inf = Informer(api, name="pods", on_event=lambda k, o: seen.append((k, key_of(o))))

    lists_before = 0

    async def drop_p2_then_list(*a: Any, **kw: Any) -> FakeResponse:
        nonlocal lists_before
        if not kw.get("watch"):
            lists_before += 1
            if lists_before == 2:  # p2 was deleted and p1 changed while the watch was expired
                api.objects = {"a/p1": pod("p1", 20)}
                api.rv = 21
        return await api(*a, **kw)

    inf.list_fn = drop_p2_then_list
    await run_until(inf, lambda: inf.stats.lists == 2)
    assert seen[-2:] == [("DELETED", "a/p2"), ("MODIFIED", "a/p1")]
    assert set(inf.store) == {"a/p1"}
    assert inf.resource_version == "21"


async def test_connection_errors_back_off_and_resume_from_last_version_without_relisting() -> None:
    api = FakeApi()
    api.objects = {"a/p1": pod("p1", 5)}
    api.watches = [
        [{"type": "MODIFIED", "object": pod("p1", 30)}],
        ConnectionResetError("apiserver restarted"),
        [],
    ]
    inf = Informer(api, name="pods", backoff=0.01)
    await run_until(inf, lambda: len([c for c in api.calls if c.get("watch")]) >= 3)
    watch_versions = [c["resource_version"] for c in api.calls if c.get("watch")]
    assert watch_versions[:3] == ["10", "30", "30"]
    assert inf.stats.lists == 1
    assert inf.stats.errors == 1


async def test_a_failing_handler_does_not_stop_the_cache() -> None:
    api = FakeApi()
    api.objects = {"a/p1": pod("p1", 5)}

    def boom(kind: str, obj: dict[str, Any]) -> None:
        raise ValueError("consumer bug")

    inf = Informer(api, name="pods", on_event=boom)
    await run_until(inf, inf.synced.is_set)
    assert set(inf.store) == {"a/p1"}


def test_watch_error_other_than_410_is_not_treated_as_expiry() -> None:
    inf = Informer(FakeApi(), name="pods")
    with pytest.raises(WatchExpiredError):
        inf._apply({"type": "ERROR", "object": {"code": 410}})
    with pytest.raises(RuntimeError, match="watch error"):
        inf._apply({"type": "ERROR", "object": {"code": 500, "message": "boom"}})
