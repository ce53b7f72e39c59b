"""Cluster-wide settings of the reconciler: the subset of KServe's ``inferenceservice-config``.

The defaults are KServe's shipped defaults (``config/configmap/inferenceservice.yaml``) except
``default_deployment_mode``: KServe ships ``Serverless``, but this reconciler only implements
raw mode, so an InferenceService without a ``deploymentMode`` annotation is ``Standard`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.reconciler import names


@dataclass(frozen=True)
class Settings:
    """Resolved, immutable reconciler settings (pure data; no I/O)."""

    default_deployment_mode: str = "Standard"
    """Mode of an InferenceService with neither ``status.deploymentMode`` nor the annotation."""

    ingress_domain: str = "example.com"
    """``ingress.ingressDomain``: the domain of ``status.url`` and ``components.predictor.url``."""

    url_scheme: str = "http"
    """``ingress.urlScheme``: scheme of ``status.url`` (the predictor URL is always http)."""

    cluster_domain: str = "cluster.local"
    """Cluster DNS domain used in ``status.address.url``."""

    service_cluster_ip_none: bool = False
    """``service.serviceClusterIPNone``: make the predictor Service headless."""

    storage_initializer_image: str = "kserve/storage-initializer:latest"
    """``storageInitializer.image``: the init container that downloads ``storageUri``."""

    storage_initializer_cpu_request: str = "100m"
    storage_initializer_cpu_limit: str = "1"
    storage_initializer_memory_request: str = "100Mi"
    storage_initializer_memory_limit: str = "1Gi"

    disallowed_annotations: tuple[str, ...] = names.DISALLOWED_ANNOTATIONS
    """ISVC annotations never copied to the child objects (``serviceAnnotationDisallowedList``)."""

    default_namespace: str = "default"
    """Namespace assumed for an InferenceService manifest that names none (render only)."""
