"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's timing rules.

Two replicas of the service both serve the metrics API; only the Lease holder reconciles and
scales. The rules (client-go ``leaderelection``):

* a candidate takes the Lease when nobody holds it, or when the holder has not renewed it for
  ``lease_duration`` *as observed on our own clock* (the time we last saw the record change),
  so clock skew between nodes does not matter;
* the leader renews every ``retry_period``; if it cannot renew for ``renew_deadline``
  (< ``lease_duration``), it steps down *before* anyone else may take over;
* every write carries the ``resourceVersion`` it read: two candidates never both win.

:func:`decide` is the pure part (tested with an injected clock); :class:`LeaderElector` does
the I/O. Defaults: 15 s lease, 10 s renew deadline, 2 s retry (client-go's).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str | None
    lease_duration_s: int
    transitions: int
    resource_version: str


class Action(StrEnum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # free or expired: take it
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else holds a live Lease


def decide(record: LeaseRecord | None, me: str, now: float, observed_at: float) -> Action:
    """What a candidate does with the Lease it just read.

    ``observed_at`` is our monotonic time when the record last changed (holder or version).
    Example: holder "b" with a 15 s lease, last seen changing at t=100: at t=110 → WAIT;
    at t=116 → ACQUIRE (b has not renewed for 16 s ≥ 15 s by our clock).
    """
    if record is None:
        return Action.CREATE
    if record.holder == me:
        return Action.RENEW
    if not record.holder or now - observed_at >= record.lease_duration_s:
        return Action.ACQUIRE
    return Action.WAIT


def _micro_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs the election loop; ``is_leader`` is True only while we hold a renewed Lease."""

    def __init__(
        self,
        coordination_api: Any,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.api = coordination_api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self.clock = clock
        self.on_change = on_change
        self.is_leader = False
        self._observed: tuple[str | None, str] | None = None
        self._observed_at = clock()
        self._last_renew = 0.0

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            log.info(
                "%s %s leadership of lease %s/%s",
                self.identity,
                "acquired" if value else "lost",
                self.namespace,
                self.name,
            )
            if self.on_change:
                self.on_change(value)

    async def _read(self) -> LeaseRecord | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            lease = await self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        spec = lease.spec
        rec = LeaseRecord(
            holder=spec.holder_identity,
            lease_duration_s=int(spec.lease_duration_seconds or self.lease_duration),
            transitions=int(spec.lease_transitions or 0),
            resource_version=str(lease.metadata.resource_version),
        )
        key = (rec.holder, rec.resource_version)
        if key != self._observed:
            self._observed, self._observed_at = key, self.clock()
        return rec

    def _body(self, rec: LeaseRecord | None, acquire: bool) -> dict[str, Any]:
        now = _micro_time(time.time())
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "renewTime": now,
        }
        md: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if rec is not None:
            md["resourceVersion"] = rec.resource_version
            spec["leaseTransitions"] = rec.transitions + (1 if acquire else 0)
        if acquire or rec is None:
            spec["acquireTime"] = now
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": md,
            "spec": spec,
        }

    async def try_once(self) -> bool:
        """One round: read, decide, write. Returns whether we hold the Lease afterwards."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            rec = await self._read()
            action = decide(rec, self.identity, self.clock(), self._observed_at)
            if action is Action.WAIT:
                return False
            if action is Action.CREATE:
                await self.api.create_namespaced_lease(self.namespace, self._body(None, True))
            else:
                await self.api.replace_namespaced_lease(
                    self.name, self.namespace, self._body(rec, action is Action.ACQUIRE)
                )
            self._last_renew = self.clock()
            return True
        except ApiException as e:
            if e.status not in (409, 404):
                log.warning(
                    "lease %s/%s: HTTP %s %s", self.namespace, self.name, e.status, e.reason
                )
            return False
        except (TimeoutError, OSError) as e:
            log.warning("lease %s/%s: apiserver unreachable: %s", self.namespace, self.name, e)
            return False

    async def step(self) -> None:
        """One election round and its effect on ``is_leader``."""
        if await self.try_once():
            self._set_leader(True)
        elif self.is_leader and self.clock() - self._last_renew >= self.renew_deadline:
            self._set_leader(False)

    async def run(self) -> None:
        """Elect and renew until cancelled; steps down when renewals fail for renew_deadline."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.retry_period)
        finally:
            self._set_leader(False)

    async def release(self) -> None:
        """Give the Lease up on shutdown so a peer takes over at once."""
        if not self.is_leader:
            return
        from kubernetes_asyncio.client.exceptions import ApiException

        self._set_leader(False)
        try:
            rec = await self._read()
            if rec and rec.holder == self.identity:
                body = self._body(rec, False)
                body["spec"]["holderIdentity"] = None
                await self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except (ApiException, OSError) as e:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, e)
