"""The apiserver side of delegated auth: the front-proxy ConfigMap and the two reviews.

Needs, for the server's own identity, the RBAC every aggregated server has: the
``system:auth-delegator`` ClusterRole (create TokenReviews and SubjectAccessReviews) and the
``kube-system/extension-apiserver-authentication-reader`` Role (read the ConfigMap).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from autoscaler.metrics_api.auth import RequestHeaderConfig

__all__ = ["KubeReviewClient", "load_requestheader_config"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"


class KubeReviewClient:
    """:class:`~autoscaler.metrics_api.auth.ReviewClient` over a kubernetes-asyncio client."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes_asyncio import client

        self._authn = client.AuthenticationV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)

    async def token_review(self, body: JSON) -> JSON:
        resp = await self._authn.create_token_review(body, _preload_content=False)
        result: JSON = json.loads(await resp.read())
        return result

    async def subject_access_review(self, body: JSON) -> JSON:
        resp = await self._authz.create_subject_access_review(body, _preload_content=False)
        result: JSON = json.loads(await resp.read())
        return result


async def load_requestheader_config(
    api_client: Any, *, attempts: int = 30, delay: float = 1.0
) -> RequestHeaderConfig:
    """Read the front-proxy settings, retrying while the apiserver has not published them."""
    from kubernetes_asyncio import client

    core = client.CoreV1Api(api_client)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            cm = await core.read_namespaced_config_map(
                CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, _preload_content=False
            )
            data = json.loads(await cm.read()).get("data") or {}
            return RequestHeaderConfig.from_configmap(data)
        except Exception as e:
            last = e
            log.info("waiting for %s/%s: %s", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME, e)
            await asyncio.sleep(delay)
    raise RuntimeError(
        f"cannot read {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {last}; the server needs the "
        "extension-apiserver-authentication-reader Role in kube-system"
    )
