"""Authentication and authorization: front-proxy headers, TokenReview, SubjectAccessReview."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from autoscaler.metrics_api.auth import (
    Attributes,
    AuthenticationError,
    Credentials,
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
    SubjectAccessReviewAuthorizer,
    TokenReviewAuthenticator,
    UnionAuthenticator,
    UserInfo,
)
from tests.unit.metrics_api.fakes import FakeReviews

FRONT_PROXY = {"subject": ((("commonName", "front-proxy-client"),),)}
CONFIGMAP = {
    "requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\n...",
    "requestheader-allowed-names": '["front-proxy-client"]',
    "requestheader-username-headers": '["X-Remote-User"]',
    "requestheader-group-headers": '["X-Remote-Group"]',
    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
}


def creds(headers: list[tuple[str, str]], cert: object = None) -> Credentials:
    return Credentials(CIMultiDictProxy(CIMultiDict(headers)), cert)  # type: ignore[arg-type]


def test_configmap_is_read_as_the_apiserver_publishes_it() -> None:
    cfg = RequestHeaderConfig.from_configmap(CONFIGMAP)
    assert cfg.allowed_names == ("front-proxy-client",)
    assert cfg.username_headers == ("X-Remote-User",)
    assert cfg.extra_prefixes == ("X-Remote-Extra-",)
    with pytest.raises(ValueError, match="requestheader-client-ca-file"):
        RequestHeaderConfig.from_configmap({"client-ca-file": "x"})


async def test_front_proxy_user_groups_and_extra() -> None:
    a = RequestHeaderAuthenticator(RequestHeaderConfig.from_configmap(CONFIGMAP))
    user = await a.authenticate(
        creds(
            [
                ("x-remote-user", "system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
                ("X-Remote-Group", "system:serviceaccounts"),
                ("X-Remote-Group", "system:authenticated"),
                ("X-Remote-Extra-Scopes%2Fa", "one"),
                ("X-Remote-Extra-Scopes%2Fa", "two"),
            ],
            FRONT_PROXY,
        )
    )
    assert user == UserInfo(
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ("system:serviceaccounts", "system:authenticated"),
        "",
        {"scopes/a": ("one", "two")},
    )


async def test_headers_without_a_verified_certificate_are_ignored() -> None:
    a = RequestHeaderAuthenticator(RequestHeaderConfig.from_configmap(CONFIGMAP))
    forged = [("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters")]
    assert await a.authenticate(creds(forged)) is None
    assert await a.authenticate(creds(forged, {})) is None  # getpeercert() of no cert


async def test_a_certificate_with_another_name_is_rejected() -> None:
    a = RequestHeaderAuthenticator(RequestHeaderConfig.from_configmap(CONFIGMAP))
    other = {"subject": ((("commonName", "someone-else"),),)}
    with pytest.raises(AuthenticationError, match="someone-else"):
        await a.authenticate(creds([("X-Remote-User", "admin")], other))


async def test_empty_allowed_names_accept_any_certificate_of_the_ca() -> None:
    cfg = RequestHeaderConfig.from_configmap({**CONFIGMAP, "requestheader-allowed-names": "[]"})
    other = {"subject": ((("commonName", "someone-else"),),)}
    user = await RequestHeaderAuthenticator(cfg).authenticate(
        creds([("X-Remote-User", "u")], other)
    )
    assert user is not None
    assert user.name == "u"


async def test_token_review_is_cached_and_rejections_are_401() -> None:
    clock = [0.0]
    reviews = FakeReviews(tokens={"good": {"username": "alice", "groups": ["dev"], "uid": "1"}})
    a = TokenReviewAuthenticator(
        reviews, audiences=("api",), ttl=10, negative_ttl=2, clock=lambda: clock[0]
    )
    for _ in range(3):
        user = await a.authenticate(creds([("Authorization", "Bearer good")]))
        assert user == UserInfo("alice", ("dev",), "1", {})
    assert len(reviews.token_reviews) == 1
    assert reviews.token_reviews[0]["spec"] == {"token": "good", "audiences": ["api"]}
    clock[0] = 11
    await a.authenticate(creds([("Authorization", "Bearer good")]))
    assert len(reviews.token_reviews) == 2
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await a.authenticate(creds([("Authorization", "Bearer bad")]))
    assert len(reviews.token_reviews) == 3  # the rejection was cached too
    assert await a.authenticate(creds([("Authorization", "Basic Zm9vOmJhcg==")])) is None
    assert await a.authenticate(creds([])) is None


async def test_token_review_failure_is_an_authentication_error() -> None:
    a = TokenReviewAuthenticator(FakeReviews(fail=True))
    with pytest.raises(AuthenticationError, match="could not be reviewed"):
        await a.authenticate(creds([("Authorization", "Bearer x")]))


async def test_union_takes_the_first_that_knows_and_reports_rejections() -> None:
    cfg = RequestHeaderConfig.from_configmap(CONFIGMAP)
    tokens = TokenReviewAuthenticator(FakeReviews(tokens={"t": {"username": "bob"}}))
    union = UnionAuthenticator(RequestHeaderAuthenticator(cfg), tokens)
    proxied = await union.authenticate(creds([("X-Remote-User", "amy")], FRONT_PROXY))
    assert proxied is not None
    assert proxied.name == "amy"
    token = await union.authenticate(creds([("Authorization", "Bearer t")]))
    assert token is not None
    assert token.name == "bob"
    assert await union.authenticate(creds([])) is None
    with pytest.raises(AuthenticationError):
        await union.authenticate(creds([("Authorization", "Bearer nope")]))


def attrs(
    user: str, groups: tuple[str, ...] = (), resource: str | None = "llm-running"
) -> Attributes:
    u = UserInfo(user, groups)
    if resource is None:
        return Attributes(u, "get", "/apis")
    return Attributes(
        u, "list", f"/x/{resource}", "ns", resource, "external.metrics.k8s.io", "v1beta1"
    )


async def test_subject_access_review_body_and_cache() -> None:
    clock = [0.0]
    reviews = FakeReviews(allowed={("hpa", "llm-running"), ("hpa", "/apis")})
    z = SubjectAccessReviewAuthorizer(reviews, ttl=10, negative_ttl=5, clock=lambda: clock[0])
    assert (await z.authorize(attrs("hpa", ("g",)))).allowed
    assert (await z.authorize(attrs("hpa", ("g",)))).allowed
    assert len(reviews.access_reviews) == 1
    assert reviews.access_reviews[0]["spec"] == {
        "user": "hpa",
        "groups": ["g"],
        "uid": "",
        "extra": {},
        "resourceAttributes": {
            "namespace": "ns",
            "verb": "list",
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "resource": "llm-running",
        },
    }
    assert (await z.authorize(attrs("hpa", resource=None))).allowed
    assert reviews.access_reviews[-1]["spec"]["nonResourceAttributes"] == {
        "path": "/apis",
        "verb": "get",
    }
    denied = await z.authorize(attrs("eve"))
    assert not denied.allowed
    assert denied.reason == "table"
    await z.authorize(attrs("eve"))
    assert len(reviews.access_reviews) == 3
    clock[0] = 6  # the denial expired, the allowance has not
    await z.authorize(attrs("eve"))
    await z.authorize(attrs("hpa", ("g",)))
    assert len(reviews.access_reviews) == 4


async def test_system_masters_need_no_review() -> None:
    reviews = FakeReviews()
    z = SubjectAccessReviewAuthorizer(reviews)
    assert (await z.authorize(attrs("system:kube-aggregator", ("system:masters",)))).allowed
    assert reviews.access_reviews == []
