"""``storageUri`` -> the model at ``/mnt/models``, injected into the pod template up front.

KServe validates the URI in the controller (``utils.go`` ``ValidateStorageURI``) and leaves the
injection to its pod mutating webhook (``storage_initializer_injector.go``). Without KServe there
is no webhook, so the reconciler writes the same result straight into the Deployment:

* ``pvc://<claim>/<path>``: volume ``kserve-pvc-source`` (the claim) mounted at ``/mnt/models``
  with ``subPath: <path>`` in ``kserve-container`` (and ``transformer-container``);
* any other supported URI (``hf://``, ``s3://``, ``gs://``, ``http(s)://``, ``hdfs://``,
  ``webhdfs://``, ``file://``, an Azure blob URL or a plain path): init container
  ``storage-initializer`` with args ``[<uri>, /mnt/models]`` writing to the emptyDir
  ``kserve-provision-location``, mounted at ``/mnt/models`` in the serving containers;
* the model mount is read-only unless the ISVC annotates ``storage.kserve.io/readonly: "false"``;
* a ``STORAGE_URI`` env var on a custom ``kserve-container`` is rewritten to ``/mnt/models``.

``oci://`` models need the modelcar sidecar or image volumes, which this reconciler does not
implement: :attr:`~Reason.UNSUPPORTED_STORAGE_URI`. Credentials injection from the service
account is not implemented either (see docs/reconciler.md). Pure; no I/O.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from autoscaler.reconciler import names
from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.settings import Settings

JSON = dict[str, Any]
SUPPORTED_PREFIXES = (
    "gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://",
    "oci://", "oci+native://", "oci+fetch://", "hf://",
)  # fmt: skip
_NOT_IMPLEMENTED = ("oci://", "oci+native://", "oci+fetch://")
_AZURE_HOST = "blob.core.windows.net"
_AZURE_URI = re.compile(r"https://(.+?)\.blob\.core\.windows\.net/(.+)")
_HAS_SCHEME = re.compile(r"\w+?://")
_SERVING_CONTAINERS = (names.KSERVE_CONTAINER, names.TRANSFORMER_CONTAINER)


def check_storage_uri(uri: str) -> None:
    """Raise ``PlanError`` unless KServe (and this reconciler) can provision ``uri``."""
    if uri.startswith(_NOT_IMPLEMENTED):
        raise PlanError(
            Reason.UNSUPPORTED_STORAGE_URI,
            f"storageUri {uri}: OCI model images (modelcar / image volumes) are not implemented "
            "by this reconciler; use hf://, s3://, gs://, http(s):// or pvc://",
        )
    if not _HAS_SCHEME.search(uri):
        return  # a local path, copied by the storage initializer
    if _AZURE_HOST in uri:
        if _AZURE_URI.search(uri):
            return
    elif uri.startswith(SUPPORTED_PREFIXES):
        if uri.startswith("pvc://"):
            parse_pvc_uri(uri)
        return
    raise PlanError(
        Reason.INVALID_STORAGE_URI,
        f"storageUri, must be one of: [{', '.join(SUPPORTED_PREFIXES)}] or match "
        "https://{}.blob.core.windows.net/{}/{} or be an absolute or relative local path. "
        f"StorageUri [{uri}] is not supported",
    )


def parse_pvc_uri(uri: str) -> tuple[str, str]:
    """``pvc://claim/a/b`` -> ``("claim", "a/b")``."""
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    if not claim:
        raise PlanError(
            Reason.INVALID_STORAGE_URI, f"storageUri {uri}: must be pvc://<claim-name>/[path]"
        )
    return claim, path


def inject_storage(pod: JSON, uri: str, *, read_only: bool, settings: Settings) -> JSON:
    """``pod`` (a PodSpec) with the model at ``/mnt/models``, as KServe's pod webhook leaves it."""
    check_storage_uri(uri)
    result = copy.deepcopy(pod)
    mount: JSON = {"mountPath": names.MODEL_MOUNT_PATH}
    if uri.startswith("pvc://"):
        claim, path = parse_pvc_uri(uri)
        volume: JSON = {
            "name": names.PVC_SOURCE_VOLUME,
            "persistentVolumeClaim": {"claimName": claim},
        }
        if path:
            mount["subPath"] = path
    else:
        volume = {"name": names.PROVISION_VOLUME, "emptyDir": {}}
        result.setdefault("initContainers", []).append(_initializer(uri, settings))
    mount = {"name": volume["name"], **mount}
    if read_only:
        mount["readOnly"] = True
    for container in result.get("containers", []):
        if container.get("name") not in _SERVING_CONTAINERS:
            continue
        _add_mount(container, mount)
        if container["name"] == names.KSERVE_CONTAINER:
            for env in container.get("env", []):
                if env.get("name") == names.STORAGE_URI_ENV and env.get("value"):
                    env["value"] = names.MODEL_MOUNT_PATH
    if not any(v.get("name") == volume["name"] for v in result.get("volumes", [])):
        result.setdefault("volumes", []).append(volume)
    return result


def _initializer(uri: str, settings: Settings) -> JSON:
    return {
        "name": names.STORAGE_INITIALIZER_CONTAINER,
        "image": settings.storage_initializer_image,
        "args": [uri, names.MODEL_MOUNT_PATH],
        "resources": {
            "limits": {
                "cpu": settings.storage_initializer_cpu_limit,
                "memory": settings.storage_initializer_memory_limit,
            },
            "requests": {
                "cpu": settings.storage_initializer_cpu_request,
                "memory": settings.storage_initializer_memory_request,
            },
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": names.PROVISION_VOLUME, "mountPath": names.MODEL_MOUNT_PATH}],
    }


def _add_mount(container: JSON, mount: JSON) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("name") == mount["name"] for m in mounts):
        mounts.append(dict(mount))
