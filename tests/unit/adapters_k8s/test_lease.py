"""Leader election: the pure rule table, and the elector against a fake Lease API."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from adapters.lease import Action, LeaderElector, LeaseRecord, decide


def rec(holder: str | None, rv: str = "1", duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration_s=duration, transitions=0, resource_version=rv)


@pytest.mark.parametrize(
    ("record", "now", "observed_at", "want"),
    [
        pytest.param(None, 0, 0, Action.CREATE, id="no-lease-yet"),
        pytest.param(rec("me"), 100, 0, Action.RENEW, id="ours-even-if-old"),
        pytest.param(rec(None), 1, 0, Action.ACQUIRE, id="released"),
        pytest.param(rec("b"), 110, 100, Action.WAIT, id="held-and-fresh"),
        pytest.param(rec("b"), 114.9, 100, Action.WAIT, id="just-before-expiry"),
        pytest.param(rec("b"), 115, 100, Action.ACQUIRE, id="expired-by-our-clock"),
    ],
)
def test_decide(record: LeaseRecord | None, now: float, observed_at: float, want: Action) -> None:
    assert decide(record, "me", now, observed_at) is want


class FakeLeases:
    """An in-memory Lease store with resourceVersion checks, like the apiserver."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.fail = False

    def _obj(self) -> Any:
        assert self.lease is not None
        spec = self.lease["spec"]
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.rv)),
            spec=SimpleNamespace(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                lease_transitions=spec.get("leaseTransitions", 0),
            ),
        )

    async def read_namespaced_lease(self, name: str, ns: str) -> Any:
        if self.fail:
            raise OSError("apiserver down")
        if self.lease is None:
            raise ApiException(status=404)
        return self._obj()

    async def create_namespaced_lease(self, ns: str, body: dict[str, Any]) -> None:
        if self.lease is not None:
            raise ApiException(status=409)
        self.lease, self.rv = body, self.rv + 1

    async def replace_namespaced_lease(self, name: str, ns: str, body: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("apiserver down")
        if body["metadata"].get("resourceVersion") != str(self.rv):
            raise ApiException(status=409)
        self.lease, self.rv = body, self.rv + 1


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(api: FakeLeases, who: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api, namespace="ns", name="l", identity=who, clock=clock)


async def test_one_of_two_candidates_leads_the_other_takes_over_once_the_lease_expires() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert await a.try_once() is True
    assert await b.try_once() is False
    clock.t += 10  # a keeps renewing
    assert await a.try_once() is True
    assert await b.try_once() is False
    # a dies; b must wait a full lease duration from when it last saw the record change.
    clock.t += 14
    assert await b.try_once() is False
    clock.t += 1.5
    assert await b.try_once() is True
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


async def test_a_stale_write_loses_the_race() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert await a.try_once()
    clock.t += 20
    rec_b = await b._read()  # b reads, then a renews before b writes
    assert await a.try_once()
    with pytest.raises(ApiException):
        await api.replace_namespaced_lease("l", "ns", b._body(rec_b, True))


async def test_leader_steps_down_after_the_renew_deadline_before_anyone_may_take_over() -> None:
    api, clock = FakeLeases(), Clock()
    changes: list[bool] = []
    a = LeaderElector(
        api, namespace="ns", name="l", identity="a", clock=clock, on_change=changes.append
    )
    await a.step()
    assert a.is_leader
    api.fail = True
    clock.t += 9
    await a.step()
    assert a.is_leader  # renewals failing, but still within the renew deadline
    clock.t += 1
    await a.step()
    assert not a.is_leader
    assert changes == [True, False]
    assert a.renew_deadline < a.lease_duration  # others wait the full lease duration


def test_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElector(FakeLeases(), namespace="n", name="l", identity="a", renew_deadline=20)
