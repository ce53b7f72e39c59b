"""Who is asking, and may they: delegated authentication and authorization.

Like every aggregated API server, this one trusts the kube-apiserver to have authenticated the
user, and asks it again for anything it cannot check itself:

* :class:`RequestHeaderAuthenticator` — the aggregator's *front-proxy* request. The TLS layer
  has already verified the client certificate against the ``requestheader-client-ca-file``
  (:mod:`~autoscaler.metrics_api.tls`); this checks its common name against
  ``requestheader-allowed-names`` and reads the user from ``X-Remote-User``,
  ``X-Remote-Group`` and ``X-Remote-Extra-*``. These headers are ignored on any request
  without such a certificate.
* :class:`TokenReviewAuthenticator` — a bearer token, reviewed by the apiserver
  (``TokenReview``), results cached briefly.
* :class:`SubjectAccessReviewAuthorizer` — every request is authorized by the apiserver
  (``SubjectAccessReview``), decisions cached briefly; members of ``system:masters`` are
  allowed without asking, as Go's delegating authorizer does.

No anonymous access: a request no authenticator accepts is 401. The I/O (the two reviews) is
behind :class:`ReviewClient`, so tests use fakes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from multidict import MultiMapping

__all__ = [
    "Attributes",
    "AuthenticationError",
    "Authenticator",
    "Authorizer",
    "Credentials",
    "Decision",
    "RequestHeaderAuthenticator",
    "RequestHeaderConfig",
    "ReviewClient",
    "SubjectAccessReviewAuthorizer",
    "TokenReviewAuthenticator",
    "UnionAuthenticator",
    "UserInfo",
]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PeerCert = Mapping[str, Any]
"""A verified peer certificate as :meth:`ssl.SSLSocket.getpeercert` returns it."""


class AuthenticationError(Exception):
    """Credentials were presented and are not valid (the API answers 401)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request offers to prove who sent it."""

    headers: MultiMapping[str]
    """Request headers (case-insensitive, repeated headers kept)."""
    peer_cert: PeerCert | None = None
    """The client certificate, already verified by TLS against the front-proxy CA."""


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request wants to do, in SubjectAccessReview terms."""

    user: UserInfo
    verb: str
    path: str
    namespace: str | None = None
    resource: str | None = None
    """The metric name, for a metric request; ``None`` for a non-resource path."""
    group: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authenticator(Protocol):
    """``None``: these credentials are not for me; raise :class:`AuthenticationError`:
    they are, and they are invalid."""

    async def authenticate(self, credentials: Credentials) -> UserInfo | None: ...


class Authorizer(Protocol):
    async def authorize(self, attributes: Attributes) -> Decision: ...


class ReviewClient(Protocol):
    """Creates authentication/authorization review objects on the apiserver; returns the
    created object (with its ``status``) as JSON."""

    async def token_review(self, body: JSON) -> JSON: ...

    async def subject_access_review(self, body: JSON) -> JSON: ...


def _json_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    parsed = json.loads(value)
    return tuple(str(v) for v in parsed) if isinstance(parsed, list) else ()


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    """The front-proxy settings the apiserver publishes in
    ``kube-system/extension-apiserver-authentication``."""

    client_ca: str
    """PEM bundle that signs the front-proxy client certificate."""
    allowed_names: tuple[str, ...] = ()
    """Common names allowed to assert a user; empty: any certificate the CA signed."""
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)
    uid_headers: tuple[str, ...] = ()

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> RequestHeaderConfig:
        """From the ConfigMap's ``data``; ``ValueError`` when it has no front-proxy CA."""
        ca = data.get("requestheader-client-ca-file", "").strip()
        if not ca:
            raise ValueError(
                "extension-apiserver-authentication has no requestheader-client-ca-file: "
                "start kube-apiserver with --requestheader-client-ca-file"
            )
        return cls(
            client_ca=ca,
            allowed_names=_json_list(data.get("requestheader-allowed-names")),
            username_headers=_json_list(data.get("requestheader-username-headers"))
            or ("X-Remote-User",),
            group_headers=_json_list(data.get("requestheader-group-headers"))
            or ("X-Remote-Group",),
            extra_prefixes=_json_list(data.get("requestheader-extra-headers-prefix"))
            or ("X-Remote-Extra-",),
            uid_headers=_json_list(data.get("requestheader-uid-headers")),
        )


def common_name(cert: PeerCert) -> str | None:
    """The subject CN of a certificate dict from :meth:`ssl.SSLSocket.getpeercert`."""
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _unescape_extra_key(key: str) -> str:
    """Extra keys are percent-encoded in header names (``X-Remote-Extra-Scopes%2fa``)."""
    from urllib.parse import unquote

    return unquote(key).lower()


class RequestHeaderAuthenticator:
    """The aggregator's front-proxy identity: verified cert, then ``X-Remote-*`` headers."""

    def __init__(self, config: RequestHeaderConfig) -> None:
        self.config = config

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        cert = credentials.peer_cert
        if not cert:
            return None
        allowed = self.config.allowed_names
        cn = common_name(cert)
        if allowed and cn not in allowed:
            raise AuthenticationError(f"client certificate CN {cn!r} is not an allowed front proxy")
        h = credentials.headers
        name = next((v for k in self.config.username_headers if (v := h.get(k, ""))), "")
        if not name:
            return None
        groups = tuple(g for k in self.config.group_headers for g in h.getall(k, ()))
        uid = next((v for k in self.config.uid_headers if (v := h.get(k, ""))), "")
        extra: dict[str, list[str]] = {}
        for header, value in h.items():
            for prefix in self.config.extra_prefixes:
                if header.lower().startswith(prefix.lower()) and len(header) > len(prefix):
                    extra.setdefault(_unescape_extra_key(header[len(prefix) :]), []).append(value)
        return UserInfo(name, groups, uid, {k: tuple(v) for k, v in extra.items()})


K = TypeVar("K")
V = TypeVar("V")


class _TtlCache(Generic[K, V]):
    """A small time-bounded cache (entries expire ``ttl`` seconds after they were put)."""

    def __init__(self, ttl: float, clock: Callable[[], float], max_size: int = 4096) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_size = max_size
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] <= self.clock():
            del self._items[key]
            return None
        return hit[1]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        if len(self._items) >= self.max_size:
            self._items.clear()  # crude, and bounded: a flood of keys cannot grow memory
        self._items[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)


class TokenReviewAuthenticator:
    """``Authorization: Bearer <token>``, reviewed by the apiserver; cached ``ttl`` seconds
    (authenticated) or ``negative_ttl`` (rejected). Tokens are cached by their SHA-256."""

    def __init__(
        self,
        client: ReviewClient,
        *,
        audiences: Sequence[str] = (),
        ttl: float = 10.0,
        negative_ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.audiences = tuple(audiences)
        self.negative_ttl = negative_ttl
        self.cache: _TtlCache[str, tuple[UserInfo | None]] = _TtlCache(ttl, clock)
        """Review outcomes by token digest (a 1-tuple, so that "rejected" can be cached)."""
        self.reviews = 0
        """Reviews sent to the apiserver (cache misses)."""

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        scheme, _, token = credentials.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self.cache.get(key)
        if cached is None:
            cached = (await self._review(token),)
            self.cache.put(key, cached, None if cached[0] else self.negative_ttl)
        if cached[0] is None:
            raise AuthenticationError("the bearer token was not accepted")
        return cached[0]

    async def _review(self, token: str) -> UserInfo | None:
        self.reviews += 1
        spec: JSON = {"token": token}
        if self.audiences:
            spec["audiences"] = list(self.audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            status = (await self.client.token_review(body)).get("status") or {}
        except Exception as e:
            log.warning("TokenReview failed: %s", e)
            raise AuthenticationError("the bearer token could not be reviewed") from e
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        return UserInfo(
            name=str(user.get("username", "")),
            groups=tuple(user.get("groups") or ()),
            uid=str(user.get("uid", "")),
            extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
        )


class UnionAuthenticator:
    """The first authenticator that recognises the credentials decides; if none does, the
    request is unauthenticated (an :class:`AuthenticationError` when one rejected them)."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self.authenticators = authenticators

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        error: AuthenticationError | None = None
        for a in self.authenticators:
            try:
                user = await a.authenticate(credentials)
            except AuthenticationError as e:
                error = error or e
                continue
            if user is not None:
                return user
        if error is not None:
            raise error
        return None


def _sar_body(a: Attributes) -> JSON:
    spec: JSON = {
        "user": a.user.name,
        "groups": list(a.user.groups),
        "uid": a.user.uid,
        "extra": {k: list(v) for k, v in a.user.extra.items()},
    }
    if a.resource is not None:
        spec["resourceAttributes"] = {
            "namespace": a.namespace or "",
            "verb": a.verb,
            "group": a.group,
            "version": a.version,
            "resource": a.resource,
        }
    else:
        spec["nonResourceAttributes"] = {"path": a.path, "verb": a.verb}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def _cache_key(a: Attributes) -> str:
    u = a.user
    extra = sorted((k, tuple(v)) for k, v in u.extra.items())
    parts = (u.name, u.uid, tuple(sorted(u.groups)), extra, a.verb, a.path, a.namespace,
             a.resource, a.group, a.version)  # fmt: skip
    return json.dumps(parts)


class SubjectAccessReviewAuthorizer:
    """Ask the apiserver (``SubjectAccessReview``); cache allowed decisions ``ttl`` seconds
    and denied ones ``negative_ttl`` seconds (Go's webhook defaults are 10 s each)."""

    def __init__(
        self,
        client: ReviewClient,
        *,
        always_allow_groups: Sequence[str] = ("system:masters",),
        ttl: float = 10.0,
        negative_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.always_allow_groups = frozenset(always_allow_groups)
        self.negative_ttl = negative_ttl
        self.cache: _TtlCache[str, Decision] = _TtlCache(ttl, clock)
        self.reviews = 0
        """Reviews sent to the apiserver (cache misses)."""

    async def authorize(self, attributes: Attributes) -> Decision:
        if self.always_allow_groups.intersection(attributes.user.groups):
            return Decision(True, "privileged group")
        key = _cache_key(attributes)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        self.reviews += 1
        status = (await self.client.subject_access_review(_sar_body(attributes))).get("status")
        status = status or {}
        decision = Decision(
            bool(status.get("allowed")) and not status.get("denied"),
            str(status.get("reason") or status.get("evaluationError") or ""),
        )
        self.cache.put(key, decision, None if decision.allowed else self.negative_ttl)
        return decision
