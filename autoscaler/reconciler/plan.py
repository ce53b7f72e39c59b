"""``plan``: one InferenceService -> the desired child objects, what to delete, or a failure.

The pure heart of the reconciler. ``plan`` runs a fixed list of steps, each of which may
refuse with a typed :class:`~autoscaler.reconciler.failures.Failure`:

1. metadata, and the deployment mode (``status.deploymentMode`` -> the
   ``serving.kserve.io/deploymentMode`` annotation -> the settings default). ``Standard`` and
   its legacy alias ``RawDeployment`` are reconciled; ``Serverless``/``Knative`` and
   ``ModelMesh`` are left alone with a condition saying so;
2. ``serving.kserve.io/stop: "true"``: no objects, delete ours;
3. features outside the subset (transformer, explainer, canaries, multi-node, logger,
   batcher, ``storageUris``) and the autoscaler class (``hpa``, ``external``, ``none``);
4. the predictor (:mod:`.spec`), its ``storageUri`` (:mod:`.storage`) and runtime
   (:mod:`.runtime`);
5. the Deployment, the Service, and for class ``hpa`` the HPA (:mod:`.builders`); for
   ``external``/``none`` our HPA is deleted instead.

The apply layer then server-side-applies ``objects`` in order, deletes ``deletes`` (only when
the object's controller is this InferenceService), and leaves ``spec.replicas`` out of the
Deployment apply once it exists when ``replicas_owned_by_scaler``. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.reconciler import builders, names, validate
from autoscaler.reconciler.failures import Failure, PlanError, Reason
from autoscaler.reconciler.runtime import Runtime, select_runtime
from autoscaler.reconciler.settings import Settings
from autoscaler.reconciler.spec import FRAMEWORKS, Isvc, Meta, parse_meta, parse_predictor
from autoscaler.reconciler.storage import check_storage_uri

JSON = dict[str, Any]
_MODE_ALIASES = {"RawDeployment": "Standard", "Serverless": "Knative"}


@dataclass(frozen=True)
class Deletion:
    """An object to delete if it exists *and* its controller reference is this InferenceService."""

    api_version: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class RuntimeRef:
    """The runtime chosen for the model: ``status.servingRuntimeName`` or its cluster twin."""

    kind: str
    name: str


@dataclass(frozen=True)
class Plan:
    """What to make true for one InferenceService, or why not (``failure``)."""

    objects: tuple[JSON, ...] = ()
    """Deployment, Service and (class ``hpa``) HPA, in apply order."""
    deletes: tuple[Deletion, ...] = ()
    replicas_owned_by_scaler: bool = False
    """Omit ``Deployment.spec.replicas`` from applies once the Deployment exists."""
    autoscaler_class: str | None = None
    runtime: RuntimeRef | None = None
    stopped: bool = False
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def get(self, kind: str) -> JSON | None:
        """The planned object of ``kind`` (``Deployment``, ``Service``, ...), if any."""
        return next((o for o in self.objects if o["kind"] == kind), None)


def plan(
    isvc: JSON,
    runtimes: Sequence[JSON],
    cluster_runtimes: Sequence[JSON],
    settings: Settings,
) -> Plan:
    """The plan for ``isvc`` given the namespace's ServingRuntimes and the ClusterServingRuntimes.

    Never raises: every refusal comes back as ``Plan(failure=...)``.
    """
    try:
        return _plan(isvc, runtimes, cluster_runtimes, settings)
    except PlanError as exc:
        return Plan(failure=exc.failure)
    except Exception as exc:  # a bug or an input shape nobody anticipated: still a status
        return Plan(failure=Failure(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))


def deployment_mode(meta: Meta, settings: Settings) -> str:
    """``Standard``, or ``PlanError`` for the modes this reconciler leaves alone."""
    status_mode = meta.status.get("deploymentMode")
    raw = (
        status_mode
        if isinstance(status_mode, str) and status_mode
        else meta.annotations.get(names.DEPLOYMENT_MODE_ANNOTATION)
        or settings.default_deployment_mode
    )
    mode = _MODE_ALIASES.get(raw, raw)
    if mode == "Standard":
        return mode
    if mode in ("Knative", "ModelMesh"):
        raise PlanError(
            Reason.DEPLOYMENT_MODE_NOT_SUPPORTED,
            f"deploymentMode {raw} is not reconciled here: this reconciler implements only "
            "Standard (RawDeployment); the InferenceService is left alone",
        )
    raise PlanError(
        Reason.INVALID_DEPLOYMENT_MODE,
        f"deploymentMode {raw!r} is unknown (Standard, RawDeployment, Serverless, Knative or "
        "ModelMesh); the InferenceService is left alone",
    )


def _plan(
    obj: JSON, runtimes: Sequence[JSON], cluster_runtimes: Sequence[JSON], settings: Settings
) -> Plan:
    meta = parse_meta(obj, settings.default_namespace)
    deployment_mode(meta, settings)
    raw_predictor = _raw_predictor(obj)
    component = names.predictor_name(meta.name, _str_or_none(raw_predictor.get("name")))
    if meta.annotations.get(names.STOP_ANNOTATION) == "true":
        return Plan(deletes=_children(meta.namespace, component), stopped=True)
    _check_subset(obj, raw_predictor)
    requested = _requested_class(meta, raw_predictor)
    if requested is not None:
        builders.check_autoscaler_class(requested)

    isvc = Isvc(meta=meta, predictor=parse_predictor(obj))
    if isvc.predictor.storage_uri:
        check_storage_uri(isvc.predictor.storage_uri)
    runtime: Runtime | None = None
    if isvc.predictor.model is not None:
        runtime = select_runtime(isvc.predictor.model, meta.namespace, runtimes, cluster_runtimes)
    scaling = builders.scaling(isvc, runtime, settings)

    objects = [
        builders.make_deployment(obj, runtime, settings),
        builders.make_service(obj, runtime, settings),
    ]
    deletes: tuple[Deletion, ...] = ()
    if scaling.autoscaler_class == "hpa":
        objects.append(builders.make_hpa(obj, runtime, settings))
    else:
        deletes = (_hpa(meta.namespace, component),)
    return Plan(
        objects=tuple(objects),
        deletes=deletes,
        replicas_owned_by_scaler=scaling.owned_by_scaler,
        autoscaler_class=scaling.autoscaler_class,
        runtime=RuntimeRef(runtime.kind, runtime.name) if runtime is not None else None,
    )


def _check_subset(obj: JSON, predictor: JSON) -> None:
    """Refuse the KServe features this reconciler does not implement, naming each."""
    spec = validate.submap(obj, "spec")
    if spec.get("transformer") is not None:
        raise PlanError(
            Reason.TRANSFORMER_NOT_SUPPORTED,
            "spec.transformer is not supported (only the predictor is reconciled); collocate "
            f"it as a '{names.TRANSFORMER_CONTAINER}' in spec.predictor.containers instead",
        )
    if spec.get("explainer") is not None:
        raise PlanError(Reason.EXPLAINER_NOT_SUPPORTED, "spec.explainer is not supported")
    if spec.get("canary"):
        raise PlanError(
            Reason.CANARY_NOT_SUPPORTED, "spec.canary (canary predictors) is not supported"
        )
    percent = predictor.get("canaryTrafficPercent")
    if percent is not None and percent != 100:
        raise PlanError(
            Reason.CANARY_NOT_SUPPORTED,
            f"spec.predictor.canaryTrafficPercent {percent} needs Knative revisions; raw mode "
            "rolls the single Deployment out to 100%, so remove the field to accept that",
        )
    if predictor.get("workerSpec") is not None:
        raise PlanError(
            Reason.MULTI_NODE_NOT_SUPPORTED,
            "spec.predictor.workerSpec (multi-node Ray serving) is not supported",
        )
    for key in ("logger", "batcher", "storageUris"):
        if predictor.get(key):
            raise PlanError(Reason.UNSUPPORTED_FEATURE, f"spec.predictor.{key} is not supported")
    for key in (*FRAMEWORKS, "model"):
        body = predictor.get(key)
        if isinstance(body, dict) and body.get("storage") is not None:
            raise PlanError(
                Reason.UNSUPPORTED_FEATURE,
                f"spec.predictor.{key}.storage (storage spec) is not supported; use storageUri",
            )


def _raw_predictor(obj: JSON) -> JSON:
    spec = obj.get("spec")
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    return predictor if isinstance(predictor, dict) else {}


def _requested_class(meta: Meta, predictor: JSON) -> str | None:
    own = predictor.get("annotations")
    if isinstance(own, dict) and isinstance(own.get(names.AUTOSCALER_CLASS_ANNOTATION), str):
        value: str = own[names.AUTOSCALER_CLASS_ANNOTATION]
        return value
    return meta.annotations.get(names.AUTOSCALER_CLASS_ANNOTATION)


def _children(namespace: str, name: str) -> tuple[Deletion, ...]:
    return (
        Deletion("apps/v1", "Deployment", namespace, name),
        Deletion("v1", "Service", namespace, name),
        _hpa(namespace, name),
    )


def _hpa(namespace: str, name: str) -> Deletion:
    return Deletion("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
