"""Discovery and OpenAPI documents of ``external.metrics.k8s.io/v1beta1``. Pure, static.

The aggregator reads ``/apis`` and ``/apis/external.metrics.k8s.io/v1beta1`` to mark the
APIService Available and to serve discovery to clients (kubectl, the HPA controller's REST
mapper); it downloads ``/openapi/v2`` and ``/openapi/v3`` to merge into the cluster's OpenAPI.
Every served metric is listed as a namespaced resource whose kind is
``ExternalMetricValueList``, as custom-metrics-apiserver based adapters list theirs.
Documents are legacy (``application/json``) discovery; the aggregator falls back to it for
servers that do not speak aggregated discovery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from autoscaler.metrics_api.catalog import MetricSpec
from autoscaler.metrics_api.values import GROUP, VERSION

__all__ = [
    "api_group",
    "api_group_list",
    "api_resource_list",
    "etag",
    "openapi_v2",
    "openapi_v3",
    "openapi_v3_index",
]

GROUP_VERSION = f"{GROUP}/{VERSION}"
_VERSION_FOR_DISCOVERY = {"groupVersion": GROUP_VERSION, "version": VERSION}
_LIST_KIND = "ExternalMetricValueList"
_GVK = [{"group": GROUP, "version": VERSION, "kind": _LIST_KIND}]


def api_group() -> dict[str, Any]:
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [_VERSION_FOR_DISCOVERY],
        "preferredVersion": _VERSION_FOR_DISCOVERY,
    }


def api_group_list() -> dict[str, Any]:
    group = api_group()
    del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}


def api_resource_list(metrics: Iterable[MetricSpec]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": m.name,
                "singularName": "",
                "namespaced": True,
                "kind": _LIST_KIND,
                "verbs": ["get"],
            }
            for m in metrics
        ],
    }


def _schemas(ref: str) -> dict[str, Any]:
    """The list and item schemas; ``ref`` is where definitions live in the document."""
    item = f"{GROUP}.{VERSION}.ExternalMetricValue"
    return {
        f"{GROUP}.{VERSION}.{_LIST_KIND}": {
            "description": "Values of one external metric for the series a selector matched.",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "items": {"type": "array", "items": {"$ref": f"{ref}{item}"}},
            },
            "x-kubernetes-group-version-kind": _GVK,
        },
        item: {
            "description": "One value of an external metric.",
            "type": "object",
            "required": ["metricName", "metricLabels", "timestamp", "value"],
            "properties": {
                "metricName": {"type": "string"},
                "metricLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "timestamp": {"type": "string", "format": "date-time"},
                "window": {"type": "integer", "format": "int64"},
                "value": {"type": "string", "description": "a Kubernetes quantity"},
            },
        },
    }


_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{{metric}}"
_PARAMS_V2 = [
    {"name": "namespace", "in": "path", "required": True, "type": "string"},
    {"name": "metric", "in": "path", "required": True, "type": "string"},
    {"name": "labelSelector", "in": "query", "type": "string", "uniqueItems": True},
]


def openapi_v2() -> dict[str, Any]:
    """A Swagger 2.0 document of the one path and its types."""
    ref = "#/definitions/"
    return {
        "swagger": "2.0",
        "info": {"title": "llm-autoscaler external metrics", "version": VERSION},
        "paths": {
            _PATH: {
                "get": {
                    "description": "list the values of an external metric",
                    "operationId": "listExternalMetricValue",
                    "produces": ["application/json"],
                    "parameters": _PARAMS_V2,
                    "responses": {
                        "200": {
                            "description": "OK",
                            "schema": {"$ref": f"{ref}{GROUP}.{VERSION}.{_LIST_KIND}"},
                        }
                    },
                    "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": _GVK[0],
                }
            }
        },
        "definitions": _schemas(ref),
    }


def openapi_v3() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the group version."""
    ref = "#/components/schemas/"
    params = [
        {
            "name": p["name"],
            "in": p["in"],
            "required": p.get("required", False),
            "schema": {"type": "string"},
        }
        for p in _PARAMS_V2
    ]
    return {
        "openapi": "3.0.0",
        "info": {"title": "llm-autoscaler external metrics", "version": VERSION},
        "paths": {
            _PATH: {
                "get": {
                    "description": "list the values of an external metric",
                    "operationId": "listExternalMetricValue",
                    "parameters": params,
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": f"{ref}{GROUP}.{VERSION}.{_LIST_KIND}"}
                                }
                            },
                        }
                    },
                    "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": _GVK[0],
                }
            }
        },
        "components": {"schemas": _schemas(ref)},
    }


def etag(doc: dict[str, Any]) -> str:
    """A strong ETag of a JSON document (the aggregator revalidates with If-None-Match)."""
    digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f'"{digest[:32].upper()}"'


def openapi_v3_index(v3_etag: str) -> dict[str, Any]:
    """``/openapi/v3``: where the document of each group version is, with its hash."""
    digest = v3_etag.strip('"')
    url = f"/openapi/v3/apis/{GROUP}/{VERSION}?hash={digest}"
    return {"paths": {f"apis/{GROUP}/{VERSION}": {"serverRelativeURL": url}}}
