"""The aggregated external metrics API, ``external.metrics.k8s.io/v1beta1``, served from cache.

Modules, from the outside in:

* :mod:`.app` — the aiohttp application (:func:`build_app`) and the :class:`SnapshotView` it
  reads; :mod:`.status` — errors as Kubernetes ``Status``;
* :mod:`.auth` — authentication (front proxy, TokenReview) and authorization
  (SubjectAccessReview) behind Protocols; :mod:`.delegation` — their apiserver side;
  :mod:`.tls` — serving certificate and client-certificate verification;
* :mod:`.catalog` — the metric names and what each form means to an HPA;
  :mod:`.selectors` — label selectors; :mod:`.values` — snapshot to
  ``ExternalMetricValueList``; :mod:`.discovery` — discovery and OpenAPI documents (all pure);
* :mod:`.cache` — the snapshot cache and a refresher; :mod:`.runner` and ``__main__`` — the
  API as a standalone process.
"""

from autoscaler.metrics_api.app import PUBLIC_PATHS, SnapshotView, build_app
from autoscaler.metrics_api.cache import Refresher, SnapshotCache
from autoscaler.metrics_api.catalog import METRICS, Form, MetricSpec

__all__ = [
    "METRICS",
    "PUBLIC_PATHS",
    "Form",
    "MetricSpec",
    "Refresher",
    "SnapshotCache",
    "SnapshotView",
    "build_app",
]
