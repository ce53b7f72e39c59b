"""The predictor pod template spec: runtime + InferenceService, merged the way KServe does.

Two paths, as in KServe's ``predictor.go`` (``buildPredictorResources`` / ``buildPodSpec``):

* **model** (``predictor.model`` or a framework shorthand): the runtime's pod-level fields
  (``nodeSelector``, ``affinity``, ``tolerations``, ``volumes``, ``imagePullSecrets``,
  ``schedulerName``, ``resourceClaims``) strategically merged with the predictor's PodSpec
  fields; containers are the merged ``kserve-container`` (:mod:`.containers`), a
  ``transformer-container`` if runtime or ISVC has one, the runtime's other containers, then the
  ISVC's other ``predictor.containers`` (sidecars);
* **custom** (``predictor.containers`` with a ``kserve-container``, no runtime): the predictor
  PodSpec as written, ``kserve-container`` first.

Then ``INFERENCE_SERVICE_NAME`` on every container, KServe's pod defaults, and the storage
injection of :mod:`.storage`. Pure; no I/O.
"""

from __future__ import annotations

from typing import Any

from autoscaler.reconciler import containers as ctr
from autoscaler.reconciler import names, smp, storage, validate
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.runtime import Runtime
from autoscaler.reconciler.settings import Settings
from autoscaler.reconciler.spec import Isvc

JSON = dict[str, Any]
RUNTIME_POD_FIELDS = (
    "nodeSelector",
    "affinity",
    "tolerations",
    "volumes",
    "imagePullSecrets",
    "schedulerName",
    "resourceClaims",
)
_POD_DEFAULTS: JSON = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "securityContext": {},
    "schedulerName": "default-scheduler",
}


def build_pod_spec(
    isvc: Isvc, runtime: Runtime | None, annotations: dict[str, str], settings: Settings
) -> JSON:
    """The pod template ``spec`` of the predictor Deployment.

    ``annotations`` are the predictor object's merged annotations (they carry
    ``storage.kserve.io/readonly``).
    """
    if isvc.predictor.model is not None:
        if runtime is None:
            raise ValueError("a model predictor needs a runtime")
        pod, pod_containers = _model_pod(isvc, runtime)
    else:
        pod, pod_containers = _custom_pod(isvc)
    pod_containers = [
        ctr.with_defaults(ctr.set_env(c, names.ISVC_NAME_ENV, isvc.meta.name))
        for c in pod_containers
    ]
    spec: JSON = {"containers": pod_containers, **pod}
    for key, value in _POD_DEFAULTS.items():
        spec.setdefault(key, value)
    uri = isvc.predictor.storage_uri
    if uri:
        read_only = annotations.get(names.STORAGE_READONLY_ANNOTATION) != "false"
        spec = storage.inject_storage(spec, uri, read_only=read_only, settings=settings)
    return spec


def _model_pod(isvc: Isvc, runtime: Runtime) -> tuple[JSON, list[JSON]]:
    model = isvc.predictor.model
    assert model is not None
    runtime_containers = _runtime_containers(runtime)
    base = _named(runtime_containers, names.KSERVE_CONTAINER)
    if base is None:
        raise PlanError(
            Reason.INVALID_RUNTIME,
            f"failed to find {names.KSERVE_CONTAINER} in {runtime.kind} {runtime.name} containers",
        )
    merged = ctr.merge_model_container(base, model.container)
    merged = ctr.render_placeholders(merged, isvc.meta, runtime.name)
    merged = ctr.update_image_tag(merged, model.runtime_version, runtime.name, runtime.annotations)
    out = [merged]

    isvc_containers = list(isvc.predictor.containers)
    runtime_transformer = _named(runtime_containers, names.TRANSFORMER_CONTAINER)
    isvc_transformer = _named(isvc_containers, names.TRANSFORMER_CONTAINER)
    transformer = runtime_transformer or isvc_transformer
    if runtime_transformer is not None and isvc_transformer is not None:
        transformer = ctr.merge_model_container(runtime_transformer, isvc_transformer)
    if transformer is not None:
        out.append(ctr.render_placeholders(smp.prune(transformer), isvc.meta, runtime.name))
    serving = (names.KSERVE_CONTAINER, names.TRANSFORMER_CONTAINER)
    out += [smp.prune(c) for c in runtime_containers if c["name"] not in serving]
    out += [smp.prune(c) for c in isvc_containers if c["name"] != names.TRANSFORMER_CONTAINER]

    runtime_pod = {
        k: runtime.spec[k] for k in RUNTIME_POD_FIELDS if runtime.spec.get(k) is not None
    }
    pod = smp.merge(smp.prune(runtime_pod), smp.prune(isvc.predictor.pod), smp.POD)
    return pod, out


def _custom_pod(isvc: Isvc) -> tuple[JSON, list[JSON]]:
    given = list(isvc.predictor.containers)
    main = _named(given, names.KSERVE_CONTAINER)
    assert main is not None  # spec.parse_predictor guarantees it
    rest = [c for c in given if c is not main]
    return smp.prune(dict(isvc.predictor.pod)), [smp.prune(c) for c in (main, *rest)]


def _runtime_containers(runtime: Runtime) -> list[JSON]:
    try:
        return [
            validate.container(c, f"spec.containers[{i}]")
            for i, c in enumerate(runtime.spec.get("containers") or [])
        ]
    except PlanError as exc:
        raise PlanError(
            Reason.INVALID_RUNTIME, f"{runtime.kind} {runtime.name}: {exc.failure.message}"
        ) from exc


def _named(items: list[JSON], name: str) -> JSON | None:
    return next((c for c in items if c.get("name") == name), None)
