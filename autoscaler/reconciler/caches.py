"""The informer caches the InferenceService controller reads: what it watches, and how.

Six resources, each kept by :class:`adapters.informer.Informer` (list, then watch; relist on
``410 Gone``; resume after an apiserver restart):

* ``serving.kserve.io/v1beta1`` InferenceServices, ``v1alpha1`` ServingRuntimes and
  ClusterServingRuntimes;
* the children: ``apps/v1`` Deployments, ``v1`` Services and ``autoscaling/v2`` HPAs, only
  those labelled ``serving.kserve.io/inferenceservice`` (every object the reconciler creates
  carries it; KServe's do too).

With ``namespaces`` given, each namespaced resource gets one informer per namespace and a
:class:`Cache` reads across them; ClusterServingRuntimes are cluster-scoped either way.
The controller never lists or gets through the API: it reads these stores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.informer import Handler, Informer
from autoscaler.reconciler import names

JSON = dict[str, Any]
ISVC_RESOURCE = (names.GROUP, "v1beta1", "inferenceservices")
RUNTIME_RESOURCE = (names.GROUP, "v1alpha1", "servingruntimes")
CLUSTER_RUNTIME_RESOURCE = (names.GROUP, "v1alpha1", "clusterservingruntimes")


class Cache:
    """One resource's objects across the watched namespaces, keyed ``namespace/name``."""

    def __init__(self, informers: Sequence[Informer]) -> None:
        self.informers = list(informers)

    def get(self, key: str) -> JSON | None:
        for informer in self.informers:
            found = informer.get(key)
            if found is not None:
                return found
        return None

    def list(self, namespace: str | None = None) -> list[JSON]:
        """Every object, or those of ``namespace``."""
        out: list[JSON] = []
        for informer in self.informers:
            for obj in informer.list():
                if namespace is None or (obj.get("metadata") or {}).get("namespace") == namespace:
                    out.append(obj)
        return out

    def add_handler(self, handler: Handler) -> None:
        for informer in self.informers:
            informer.add_handler(handler)


@dataclass
class Caches:
    """Everything the controller reads."""

    isvcs: Cache
    runtimes: Cache
    cluster_runtimes: Cache
    deployments: Cache
    services: Cache
    hpas: Cache

    def __iter__(self) -> Iterator[Informer]:
        for cache in (
            self.isvcs,
            self.runtimes,
            self.cluster_runtimes,
            self.deployments,
            self.services,
            self.hpas,
        ):
            yield from cache.informers

    def for_kind(self, kind: str) -> Cache:
        """The cache of a child kind (``Deployment``, ``Service``, ``HorizontalPodAutoscaler``)."""
        by_kind = {
            "Deployment": self.deployments,
            "Service": self.services,
            "HorizontalPodAutoscaler": self.hpas,
        }
        return by_kind[kind]

    @classmethod
    def from_api(cls, api_client: Any, namespaces: Sequence[str] = ()) -> Caches:
        """Informers over a kubernetes-asyncio ``ApiClient`` (nothing starts until ``run``)."""
        from kubernetes_asyncio import client

        custom = client.CustomObjectsApi(api_client)
        apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
        autoscaling = client.AutoscalingV2Api(api_client)
        child = names.ISVC_LABEL

        def custom_cache(resource: tuple[str, str, str], name: str) -> Cache:
            group, version, plural = resource
            if not namespaces:
                everywhere = custom.list_cluster_custom_object
                return Cache([Informer(everywhere, name=name, args=resource)])
            return Cache(
                [
                    Informer(
                        custom.list_namespaced_custom_object,
                        name=f"{name}/{ns}",
                        args=(group, version, ns, plural),
                    )
                    for ns in namespaces
                ]
            )

        def child_cache(all_fn: Any, ns_fn: Any, name: str) -> Cache:
            if not namespaces:
                return Cache([Informer(all_fn, name=name, label_selector=child)])
            return Cache(
                [
                    Informer(ns_fn, name=f"{name}/{ns}", args=(ns,), label_selector=child)
                    for ns in namespaces
                ]
            )

        return cls(
            isvcs=custom_cache(ISVC_RESOURCE, "inferenceservices"),
            runtimes=custom_cache(RUNTIME_RESOURCE, "servingruntimes"),
            cluster_runtimes=Cache(
                [
                    Informer(
                        custom.list_cluster_custom_object,
                        name="clusterservingruntimes",
                        args=CLUSTER_RUNTIME_RESOURCE,
                    )
                ]
            ),
            deployments=child_cache(
                apps.list_deployment_for_all_namespaces,
                apps.list_namespaced_deployment,
                "isvc-deployments",
            ),
            services=child_cache(
                core.list_service_for_all_namespaces, core.list_namespaced_service, "isvc-services"
            ),
            hpas=child_cache(
                autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces,
                autoscaling.list_namespaced_horizontal_pod_autoscaler,
                "isvc-hpas",
            ),
        )

    @classmethod
    def in_memory(cls) -> Caches:
        """Caches that never talk to an API server: fill ``informer.store`` by hand (tests)."""

        async def no_api(*_: Any, **__: Any) -> Any:
            raise RuntimeError("in-memory cache: there is no API server to list from")

        def one(name: str) -> Cache:
            informer = Informer(no_api, name=name)
            informer.synced.set()
            return Cache([informer])

        return cls(
            isvcs=one("inferenceservices"),
            runtimes=one("servingruntimes"),
            cluster_runtimes=one("clusterservingruntimes"),
            deployments=one("isvc-deployments"),
            services=one("isvc-services"),
            hpas=one("isvc-hpas"),
        )
