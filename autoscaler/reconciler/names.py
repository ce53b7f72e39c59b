"""Names, labels and well-known keys of the objects KServe's RawDeployment mode creates.

Everything that spells a KServe string lives here, so a reader can check the whole contract
against KServe in one screen (``pkg/constants/constants.go`` at kserve/kserve ``aaac4e29``):

* the predictor Deployment, Service and HPA are all named ``<isvc>-predictor``
  (``<isvc>-<predictor.name>-predictor`` when the post-0.20 ``spec.predictor.name`` is set);
* they carry ``serving.kserve.io/inferenceservice=<isvc>``, ``component=predictor`` and
  ``app=isvc.<isvc>-predictor``; the Deployment selects on ``app`` alone;
* the Ingress host is ``<isvc>-<ns>.<domain>``, the predictor host
  ``<isvc>-predictor-<ns>.<domain>`` and the in-cluster address
  ``<isvc>-predictor.<ns>.svc.<cluster-domain>``.

Pure string functions only; no I/O.
"""

from __future__ import annotations

GROUP = "serving.kserve.io"
ISVC_API_VERSION = f"{GROUP}/v1beta1"
ISVC_KIND = "InferenceService"
RUNTIME_API_VERSION = f"{GROUP}/v1alpha1"
SERVING_RUNTIME_KIND = "ServingRuntime"
CLUSTER_SERVING_RUNTIME_KIND = "ClusterServingRuntime"

# labels
ISVC_LABEL = f"{GROUP}/inferenceservice"
COMPONENT_LABEL = "component"
APP_LABEL = "app"
PREDICTOR_COMPONENT = "predictor"

# annotations read or written by the reconciler
DEPLOYMENT_MODE_ANNOTATION = f"{GROUP}/deploymentMode"
AUTOSCALER_CLASS_ANNOTATION = f"{GROUP}/autoscalerClass"
STOP_ANNOTATION = f"{GROUP}/stop"
SERVER_TYPE_ANNOTATION = f"{GROUP}/server-type"
STORAGE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_READONLY_ANNOTATION = "storage.kserve.io/readonly"

# ISVC annotations KServe never copies onto the child objects (ServiceAnnotationDisallowedList)
DISALLOWED_ANNOTATIONS: tuple[str, ...] = (
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/max-scale",
    STORAGE_URI_ANNOTATION,
    "kubectl.kubernetes.io/last-applied-configuration",
    "modelFormat",
)

# Annotations of ours that stay on the ISVC: scaling knobs and the scaler's decision status
# change at run time, and copying them onto the pod template would roll every pod each time.
NOT_PROPAGATED_PREFIXES: tuple[str, ...] = ("llm-autoscaler.io/", "status.llm-autoscaler.io/")

# containers, volumes, paths, env
KSERVE_CONTAINER = "kserve-container"
TRANSFORMER_CONTAINER = "transformer-container"
STORAGE_INITIALIZER_CONTAINER = "storage-initializer"
MODEL_MOUNT_PATH = "/mnt/models"
PROVISION_VOLUME = "kserve-provision-location"
PVC_SOURCE_VOLUME = "kserve-pvc-source"
ISVC_NAME_ENV = "INFERENCE_SERVICE_NAME"
STORAGE_URI_ENV = "STORAGE_URI"

DEFAULT_HTTP_PORT = 8080
SERVICE_PORT = 80
DEFAULT_CPU_UTILIZATION = 80

# KServe's IsvcNameFmt: what a valid InferenceService name looks like
ISVC_NAME_PATTERN = r"[a-z]([-a-z0-9]*[a-z0-9])?"


def predictor_name(isvc_name: str, predictor: str | None = None) -> str:
    """``<isvc>-predictor``, or ``<isvc>-<predictor>-predictor`` for a named predictor."""
    if predictor:
        return f"{isvc_name}-{predictor}-{PREDICTOR_COMPONENT}"
    return f"{isvc_name}-{PREDICTOR_COMPONENT}"


def app_label_value(component_name: str) -> str:
    """The ``app`` label value KServe selects pods by: ``isvc.<component-name>``."""
    return f"isvc.{component_name}"


def selector(component_name: str) -> dict[str, str]:
    """The Deployment's ``matchLabels`` and the Service's ``selector``."""
    return {APP_LABEL: app_label_value(component_name)}


def fixed_labels(isvc_name: str) -> dict[str, str]:
    """The labels KServe always sets on predictor objects (they win over user labels)."""
    return {ISVC_LABEL: isvc_name, COMPONENT_LABEL: PREDICTOR_COMPONENT}


def ingress_host(name: str, namespace: str, ingress_domain: str) -> str:
    """KServe's default domain template: ``{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}``."""
    return f"{name}-{namespace}.{ingress_domain}"


def service_host(name: str, namespace: str, cluster_domain: str) -> str:
    """The cluster DNS name of Service ``name``: ``<name>.<ns>.svc.<cluster-domain>``."""
    return f"{name}.{namespace}.svc.{cluster_domain}"
