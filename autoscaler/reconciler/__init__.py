"""The InferenceService reconciler (KServe RawDeployment mode, a subset): pure core, controller.

Given an InferenceService and the ServingRuntimes/ClusterServingRuntimes it may use,
:func:`~autoscaler.reconciler.plan.plan` returns the Deployment, Service and HPA KServe would
create (same names, labels, selectors, container merge, storage layout and HPA shape), what to
delete, or a typed failure for the status condition; :func:`~autoscaler.reconciler.status.
compute_status` turns a Deployment's state into the ISVC status KServe writes. No I/O in
those modules: the watch/apply loop is :mod:`~autoscaler.reconciler.controller` (with
``caches``, ``workqueue`` and the pure ``drift``), the only module here that talks to the API
server, and nothing in the pure modules imports it. ``docs/reconciler.md`` lists the subset and
the deliberate deviations.

Modules, leaves first: ``names`` (every KServe string), ``failures`` (reasons), ``quantity``,
``validate``, ``settings``, ``spec`` (parse the ISVC), ``runtime`` (select a runtime),
``smp`` (strategic merge), ``containers``, ``storage``, ``podspec``, ``hpa``, ``builders``
(``make_deployment``/``make_service``/``make_hpa``), ``plan``, ``status``, ``manifests``
(YAML in, bundled vLLM runtime); then the apply half: ``drift`` (the no-write rule, pure),
``workqueue``, ``caches`` (informers) and ``controller``.
"""

from autoscaler.reconciler.builders import make_deployment, make_hpa, make_service
from autoscaler.reconciler.failures import Failure, PlanError, Reason
from autoscaler.reconciler.plan import Deletion, Plan, RuntimeRef, plan
from autoscaler.reconciler.runtime import Runtime, parse_runtime, select_runtime
from autoscaler.reconciler.settings import Settings
from autoscaler.reconciler.status import compute_status

__all__ = [
    "Deletion",
    "Failure",
    "Plan",
    "PlanError",
    "Reason",
    "Runtime",
    "RuntimeRef",
    "Settings",
    "compute_status",
    "make_deployment",
    "make_hpa",
    "make_service",
    "parse_runtime",
    "plan",
    "select_runtime",
]
