"""Build the ``kserve-container``: runtime container + ISVC model fields, as KServe merges them.

In order (``predictor.go`` ``buildPodSpec``, ``utils.go`` ``MergeRuntimeContainers``,
``ReplacePlaceholders``, ``UpdateImageTag``; ``deployment_reconciler.go`` ``setDefaultPodSpec``):

1. strategic merge of the ISVC ``model`` container onto the runtime's ``kserve-container``
   (:mod:`~autoscaler.reconciler.smp`), except ``args``: runtime args first, then the ISVC's,
   never deduplicated; an env var set both ways keeps only the ISVC's ``value``/``valueFrom``;
2. ``{{.Name}}``-style placeholders anywhere in the container filled from the ISVC metadata;
3. the image tag rewritten for ``runtimeVersion``, GPU builds (``-gpu`` tag for
   huggingfaceserver / torchserve / tensorflow-serving) and CPU-only vLLM (``<repo>-cpu``);
4. ``INFERENCE_SERVICE_NAME=<isvc>`` on every container;
5. the container defaults KServe writes (pull policy, termination message, and a TCP readiness
   probe on the first port for ``kserve-container``/``transformer-container`` without one).

One deliberate difference: when the ISVC gives a probe its own handler (``httpGet``, ``exec``,
``tcpSocket``, ``grpc``), the runtime's handler is dropped instead of merged next to it (a merge
of both is a pod the API server rejects). Pure; no I/O.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from autoscaler.reconciler import names, smp, validate
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.spec import Meta

JSON = dict[str, Any]
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_META_FIELD = re.compile(r"^\.(Name|Namespace)$")
_MAP_DOT = re.compile(r"^\.(Labels|Annotations)\.([A-Za-z_]\w*)$")
_MAP_INDEX = re.compile(r'^index\s+\.(Labels|Annotations)\s+"([^"]*)"$')
_TAG = re.compile(r":[\w.\-]*$")
# KServe GetServerTypeFromRuntimeName: the fallback when a runtime has no server-type annotation
_SERVER_TYPE_BY_RUNTIME = {
    "kserve-mlserver": "mlserver",
    "kserve-torchserve": "torchserve",
    "kserve-tritonserver": "tritonserver",
    "kserve-tensorflow-serving": "tensorflow-serving",
    "kserve-huggingfaceserver": "huggingfaceserver",
    "kserve-vllmserver": "vllmserver",
}
_GPU_TAGGED = frozenset({"tensorflow-serving", "torchserve", "huggingfaceserver"})


def merge_model_container(runtime_container: JSON, model_container: JSON) -> JSON:
    """The ISVC ``model`` container fields merged onto the runtime's ``kserve-container``."""
    base = smp.prune(runtime_container)
    overlay = smp.prune(model_container)
    for probe in _PROBES:
        given = overlay.get(probe)
        if isinstance(given, dict) and any(h in given for h in _HANDLERS) and probe in base:
            base[probe] = {k: v for k, v in base[probe].items() if k not in _HANDLERS}
    merged = smp.merge(base, overlay, smp.CONTAINER)
    args = [*base.get("args", []), *overlay.get("args", [])]
    if args:
        merged["args"] = args
    overlay_env = {e["name"]: e for e in overlay.get("env", [])}
    for env in merged.get("env", []):
        given = overlay_env.get(env["name"])
        if given is None or not env.get("value") or "valueFrom" not in env:
            continue
        if "valueFrom" in given:
            del env["value"]
        elif given.get("value"):
            del env["valueFrom"]
    merged["name"] = merged.get("name") or runtime_container.get("name", names.KSERVE_CONTAINER)
    if merged.get("resources") is not None:  # e.g. an ISVC limit below the runtime's request
        merged["resources"] = validate.resources(
            merged["resources"], f"{merged['name']}.resources (runtime merged with the ISVC)"
        )
    return merged


def render_placeholders(container: JSON, meta: Meta, runtime_name: str) -> JSON:
    """Fill ``{{.Name}}``, ``{{.Namespace}}``, ``{{.Labels.x}}``, ``{{index .Annotations "k"}}``.

    KServe renders the container JSON as a Go template with the ISVC ``ObjectMeta`` as data;
    these are the forms that make sense for a container. Anything else is refused with
    KServe's error text rather than passed through half-rendered.
    """

    def fill(match: re.Match[str]) -> str:
        action = match.group(1)
        if field := _META_FIELD.match(action):
            return meta.name if field.group(1) == "Name" else meta.namespace
        lookup = _MAP_DOT.match(action) or _MAP_INDEX.match(action)
        if lookup is None:
            raise PlanError(
                Reason.INVALID_PLACEHOLDER,
                f"failed to replace placeholders in serving runtime {runtime_name} Container "
                f"{container.get('name')}: unsupported template action {match.group(0)!r} "
                '(supported: {{.Name}}, {{.Namespace}}, {{.Labels.key}}, {{index .Labels "k"}}, '
                "and the same for .Annotations)",
            )
        source = meta.labels if lookup.group(1) == "Labels" else meta.annotations
        return source.get(lookup.group(2), "")

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            rendered = _ACTION.sub(fill, value)
            if "{{" in rendered:
                raise PlanError(
                    Reason.INVALID_PLACEHOLDER,
                    f"failed to replace placeholders in serving runtime {runtime_name} Container "
                    f"{container.get('name')}: unclosed action in {value!r:.80}",
                )
            return rendered
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    result: JSON = walk(container)
    return result


def is_gpu_enabled(container: JSON) -> bool:
    """KServe ``IsGPUEnabled``: an ``nvidia.com/gpu`` or ``nvidia.com/mig*`` limit."""
    limits = (container.get("resources") or {}).get("limits") or {}
    return any(k == "nvidia.com/gpu" or k.startswith("nvidia.com/mig") for k in limits)


def update_image_tag(
    container: JSON, runtime_version: str | None, runtime_name: str, annotations: dict[str, str]
) -> JSON:
    """KServe ``UpdateImageTag``: ``runtimeVersion`` wins, then the GPU/CPU image variants."""
    image = container.get("image")
    if not isinstance(image, str) or "@sha256:" in image:
        return container
    result = dict(container)
    tag = _TAG.search(image)
    if runtime_version is not None:
        stem = image[: tag.start()] if tag else image
        result["image"] = f"{stem}:{runtime_version}"
        return result
    server_type = annotations.get(names.SERVER_TYPE_ANNOTATION) or _SERVER_TYPE_BY_RUNTIME.get(
        runtime_name, ""
    )
    if not server_type or tag is None:
        return result
    stem = image[: tag.start()]
    if is_gpu_enabled(container):
        if server_type in _GPU_TAGGED and not image.endswith("-gpu"):
            result["image"] = f"{image}-gpu"
    elif server_type == "vllmserver" and not stem.endswith("-cpu"):
        result["image"] = f"{stem}-cpu{tag.group(0)}"
    return result


def set_env(container: JSON, name: str, value: str) -> JSON:
    """``container`` with env ``name=value``, replacing an existing entry in place."""
    result = copy.deepcopy(container)
    env = result.setdefault("env", [])
    for item in env:
        if item.get("name") == name:
            item.pop("valueFrom", None)
            item["value"] = value
            return result
    env.append({"name": name, "value": value})
    return result


def with_defaults(container: JSON) -> JSON:
    """The per-container defaults of KServe's ``setDefaultPodSpec``."""
    result = dict(container)
    result.setdefault("terminationMessagePath", "/dev/termination-log")
    result.setdefault("terminationMessagePolicy", "File")
    result.setdefault("imagePullPolicy", "IfNotPresent")
    if result.get("name") in (names.KSERVE_CONTAINER, names.TRANSFORMER_CONTAINER) and not (
        result.get("readinessProbe")
    ):
        ports = result.get("ports") or []
        port = ports[0]["containerPort"] if ports else names.DEFAULT_HTTP_PORT
        result["readinessProbe"] = {
            "tcpSocket": {"port": port},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    return result
