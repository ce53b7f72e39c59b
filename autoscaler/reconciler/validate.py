"""Small type checks for raw Kubernetes JSON, each raising a ``PlanError`` that names the field.

The reconciler cannot rely on an API-server schema (``render`` reads files; the minimal CRDs
preserve unknown fields), so :mod:`autoscaler.reconciler.spec` runs every field it uses through
one of these. Each returns the checked value, normalised where Kubernetes would normalise it
(quantities become strings, ``null`` lists become empty).
"""

from __future__ import annotations

from typing import Any

from autoscaler.reconciler.failures import PlanError, Reason
from autoscaler.reconciler.quantity import canonical, parse_quantity

JSON = dict[str, Any]
_INVALID = Reason.INVALID_PREDICTOR_SPEC


def _fail(path: str, what: str, value: object, reason: Reason = _INVALID) -> PlanError:
    return PlanError(reason, f"{path} must be {what}, got {type(value).__name__} {value!r:.60}")


def mapping(value: object, path: str) -> JSON:
    """A mapping; ``None`` is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, "a mapping", value)
    return value


def optional_mapping(value: object, path: str) -> JSON | None:
    return None if value is None else mapping(value, path)


def sequence(value: object, path: str, reason: Reason = _INVALID) -> list[Any]:
    """A list; ``None`` is an empty one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, "a list", value, reason)
    return value


def string(value: object, path: str, reason: Reason = _INVALID) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a string", value, reason)
    return value


def optional_string(value: object, path: str) -> str | None:
    return None if value is None else string(value, path)


def optional_int(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    return value


def str_map(value: object, path: str) -> dict[str, str]:
    """A ``map[string]string`` such as labels, annotations or a nodeSelector."""
    result = mapping(value, path)
    for key, item in result.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _fail(f"{path}[{key!r}]", "a string (quote numbers and booleans)", item)
    return result


def replicas(minimum: object, maximum: object) -> tuple[int | None, int]:
    """``minReplicas``/``maxReplicas`` with KServe's ``validateReplicas`` rules and messages."""
    low = optional_int(minimum, "spec.predictor.minReplicas")
    high = optional_int(maximum, "spec.predictor.maxReplicas") or 0
    if low is not None and low < 0:
        raise PlanError(_INVALID, "'MinReplicas' cannot be less than 0")
    if high < 0:
        raise PlanError(_INVALID, "'MaxReplicas' cannot be less than 0")
    if high != 0 and (1 if low is None else low) > high:
        raise PlanError(_INVALID, "'MinReplicas' cannot be greater than MaxReplicas")
    return low, high


def resources(value: object, path: str) -> JSON:
    """``resources`` with every quantity parsed, canonicalised, and requests <= limits."""
    body = mapping(value, path)
    out: JSON = {k: v for k, v in body.items() if k not in ("limits", "requests")}
    parsed: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        if body.get(part) is None:
            continue
        section = mapping(body[part], f"{path}.{part}")
        parsed[part] = {}
        out[part] = {}
        for name, quantity in section.items():
            try:
                parsed[part][name] = parse_quantity(quantity)
            except ValueError as exc:
                raise PlanError(Reason.INVALID_RESOURCES, f"{path}.{part}.{name}: {exc}") from exc
            out[part][name] = canonical(quantity)
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and request > limit:
            raise PlanError(
                Reason.INVALID_RESOURCES,
                f"{path}: requests.{name} {out['requests'][name]} exceeds limits.{name} "
                f"{out['limits'][name]}",
            )
    return out


def container(value: object, path: str, *, named: bool = True) -> JSON:
    """A corev1.Container's fields the reconciler reads or merges, checked and normalised."""
    body = dict(mapping(value, path))
    if named and (not isinstance(body.get("name"), str) or not body["name"]):
        raise _fail(f"{path}.name", "a non-empty string", body.get("name"))
    if body.get("image") is not None:
        string(body["image"], f"{path}.image")
    for key in ("command", "args"):
        if body.get(key) is not None:
            items = sequence(body[key], f"{path}.{key}", Reason.INVALID_ARGS)
            for i, item in enumerate(items):
                string(item, f"{path}.{key}[{i}]", Reason.INVALID_ARGS)
    if body.get("env") is not None:
        body["env"] = [
            _env(e, f"{path}.env[{i}]")
            for i, e in enumerate(sequence(body["env"], f"{path}.env", Reason.INVALID_ENV))
        ]
    if body.get("resources") is not None:
        body["resources"] = resources(body["resources"], f"{path}.resources")
    for i, port in enumerate(sequence(body.get("ports"), f"{path}.ports")):
        number = mapping(port, f"{path}.ports[{i}]").get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int):
            raise _fail(f"{path}.ports[{i}].containerPort", "an integer", number)
    for key in ("volumeMounts", "envFrom"):
        for i, item in enumerate(sequence(body.get(key), f"{path}.{key}")):
            mapping(item, f"{path}.{key}[{i}]")
    return body


def _env(value: object, path: str) -> JSON:
    item = mapping(value, path)
    string(item.get("name"), f"{path}.name", Reason.INVALID_ENV)
    if item.get("value") is not None:
        string(item["value"], f"{path}.value (quote numbers and booleans)", Reason.INVALID_ENV)
    if item.get("valueFrom") is not None and not isinstance(item["valueFrom"], dict):
        raise _fail(f"{path}.valueFrom", "a mapping", item["valueFrom"], Reason.INVALID_ENV)
    return {k: v for k, v in item.items() if v is not None}


def pod_fields(pod: JSON, path: str) -> None:
    """The PodSpec fields the builders pass through keep their Kubernetes types."""
    str_map(pod.get("nodeSelector"), f"{path}.nodeSelector")
    mapping(pod.get("affinity"), f"{path}.affinity")
    for key in ("serviceAccountName", "serviceAccount", "schedulerName"):
        if pod.get(key) is not None:
            string(pod[key], f"{path}.{key}")
    for key in ("tolerations", "imagePullSecrets", "volumes", "initContainers"):
        for i, item in enumerate(sequence(pod.get(key), f"{path}.{key}")):
            mapping(item, f"{path}.{key}[{i}]")


def submap(obj: object, key: str) -> JSON:
    """``obj[key]`` if both are mappings, else an empty mapping (lenient: never raises)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}
