"""Fakes at the metrics API's seams: the snapshot view, authentication, authorization, reviews."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoscaler.metrics_api.auth import (
    Attributes,
    AuthenticationError,
    Credentials,
    Decision,
    UserInfo,
)
from policies.signals import MetricsSnapshot, PodSignals, Sample, TargetKey, TargetSignals

NOW = 1_700_000_000.0


class FakeView:
    def __init__(
        self,
        snapshot: MetricsSnapshot | None = None,
        labels: Mapping[TargetKey, Mapping[str, str]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.label_map = dict(labels or {})
        self.label_calls = 0

    def latest(self) -> MetricsSnapshot | None:
        return self.snapshot

    def labels(self) -> Mapping[TargetKey, Mapping[str, str]]:
        self.label_calls += 1
        return self.label_map


class TokenAuthenticator:
    """``Authorization: Bearer <user>`` authenticates ``<user>`` when known; else 401."""

    def __init__(self, users: Mapping[str, UserInfo]) -> None:
        self.users = dict(users)

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        header = credentials.headers.get("Authorization")
        if header is None:
            return None
        user = self.users.get(header.removeprefix("Bearer "))
        if user is None:
            raise AuthenticationError("unknown token")
        return user


class AllowList:
    """Allows the listed user names; records every question."""

    def __init__(self, *allowed: str, fail: bool = False) -> None:
        self.allowed = set(allowed)
        self.fail = fail
        self.asked: list[Attributes] = []

    async def authorize(self, attributes: Attributes) -> Decision:
        self.asked.append(attributes)
        if self.fail:
            raise ConnectionError("apiserver unreachable")
        return Decision(attributes.user.name in self.allowed, "fake")


class FakeReviews:
    """A ReviewClient answering from tables; counts calls."""

    def __init__(
        self,
        tokens: Mapping[str, dict[str, Any]] | None = None,
        allowed: set[tuple[str, str]] | None = None,
        fail: bool = False,
    ) -> None:
        self.tokens = dict(tokens or {})
        self.allowed = allowed or set()
        self.fail = fail
        self.token_reviews: list[dict[str, Any]] = []
        self.access_reviews: list[dict[str, Any]] = []

    async def token_review(self, body: dict[str, Any]) -> dict[str, Any]:
        self.token_reviews.append(body)
        if self.fail:
            raise ConnectionError("apiserver unreachable")
        user = self.tokens.get(body["spec"]["token"])
        status = {"authenticated": True, "user": user} if user else {"authenticated": False}
        return {**body, "status": status}

    async def subject_access_review(self, body: dict[str, Any]) -> dict[str, Any]:
        self.access_reviews.append(body)
        spec = body["spec"]
        what = (spec.get("resourceAttributes") or {}).get("resource") or spec.get(
            "nonResourceAttributes", {}
        ).get("path")
        ok = (spec["user"], what) in self.allowed
        return {**body, "status": {"allowed": ok, "reason": "table"}}


def pod(name: str, ready: bool = True, at: float = NOW, **values: float) -> PodSignals:
    """A pod with the given signal values (field names of PodSignals), all sampled ``at``."""
    return PodSignals(
        namespace="ns", pod=name, ready=ready, **{k: Sample(v, at) for k, v in values.items()}
    )


def snapshot(
    *targets: tuple[str, list[PodSignals]], ns: str = "ns", at: float = NOW
) -> MetricsSnapshot:
    out = {}
    for name, pods in targets:
        key = TargetKey(ns, name)
        out[key] = TargetSignals(key=key, pods=tuple(pods))
    return MetricsSnapshot(taken_at=at, source="fake", targets=out)
