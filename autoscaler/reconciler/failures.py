"""Typed reconcile failures: why an InferenceService cannot be planned, as a condition reason.

Every way :func:`autoscaler.reconciler.plan.plan` can refuse an InferenceService is one
:class:`Reason`. The reason becomes the ``reason`` of the ``PredictorReady`` and ``Ready``
conditions (CamelCase, like KServe's own ``NoSupportingRuntime`` or ``RuntimeNotRecognized``),
and the message says what to change. Reasons that KServe itself uses keep KServe's spelling;
the others name the problem the same way.

Inside the pure layer, code raises :class:`PlanError`; ``plan`` is the one place that turns it
into a :class:`Failure` value, so nothing escapes to the caller as an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Condition reasons for an InferenceService the reconciler refuses or leaves alone."""

    # the object itself
    INVALID_NAME = "InvalidName"
    NO_PREDICTOR = "NoPredictor"
    INVALID_PREDICTOR_SPEC = "InvalidPredictorSpec"  # KServe's spelling
    INVALID_ARGS = "InvalidArgs"
    INVALID_ENV = "InvalidEnv"
    INVALID_RESOURCES = "InvalidResources"
    INVALID_STORAGE_URI = "InvalidStorageURI"
    INVALID_PLACEHOLDER = "InvalidPlaceholder"
    INVALID_AUTOSCALING = "InvalidAutoscalingSpec"
    # runtime resolution (KServe's spellings except AmbiguousRuntime / InvalidRuntime)
    RUNTIME_NOT_RECOGNIZED = "RuntimeNotRecognized"
    RUNTIME_DISABLED = "RuntimeDisabled"
    NO_SUPPORTING_RUNTIME = "NoSupportingRuntime"
    AMBIGUOUS_RUNTIME = "AmbiguousRuntime"
    INVALID_RUNTIME = "InvalidRuntime"
    # outside the subset this reconciler implements
    DEPLOYMENT_MODE_NOT_SUPPORTED = "DeploymentModeNotSupported"
    INVALID_DEPLOYMENT_MODE = "InvalidDeploymentMode"
    UNSUPPORTED_AUTOSCALER_CLASS = "UnsupportedAutoscalerClass"
    TRANSFORMER_NOT_SUPPORTED = "TransformerNotSupported"
    EXPLAINER_NOT_SUPPORTED = "ExplainerNotSupported"
    MULTI_NODE_NOT_SUPPORTED = "MultiNodeNotSupported"
    CANARY_NOT_SUPPORTED = "CanaryNotSupported"
    UNSUPPORTED_STORAGE_URI = "UnsupportedStorageURI"
    UNSUPPORTED_FEATURE = "UnsupportedFeature"
    # a bug, or an input shape nobody anticipated (plan() still returns a Failure)
    INTERNAL_ERROR = "InternalError"
    # set by the apply layer, never by plan()
    RECONCILE_FAILED = "ReconcileFailed"  # KServe's spelling
    STOPPED = "Stopped"  # KServe's spelling


# Reasons that mean "not ours to reconcile" rather than "the spec is wrong": the objects of such
# an InferenceService are left exactly as they are and no model status is written.
LEFT_ALONE: frozenset[Reason] = frozenset(
    {Reason.DEPLOYMENT_MODE_NOT_SUPPORTED, Reason.INVALID_DEPLOYMENT_MODE}
)


@dataclass(frozen=True)
class Failure:
    """Why an InferenceService was not planned: a condition ``reason`` and a one-line message."""

    reason: Reason
    message: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


class PlanError(Exception):
    """Raised inside the pure layer; :func:`~autoscaler.reconciler.plan.plan` converts it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(reason, message)
