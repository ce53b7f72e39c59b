"""Sort YAML manifests into InferenceServices and runtimes; load the bundled vLLM runtime.

Used by ``llm-autoscaler render`` and the tests. Parsing text is pure; only
:func:`bundled_runtimes` reads a file (package data, via ``importlib.resources``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePath
from typing import Any

import yaml

from autoscaler.reconciler import names

JSON = dict[str, Any]
BUNDLED_RUNTIME = "vllm-runtime.yaml"


class ManifestError(ValueError):
    """A document that is not valid YAML."""


@dataclass
class Manifests:
    """The KServe objects found in a set of documents, in document order."""

    isvcs: list[JSON] = field(default_factory=list)
    runtimes: list[JSON] = field(default_factory=list)
    cluster_runtimes: list[JSON] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    """One line per document that is none of the three (a ConfigMap, a fragment, ...)."""


def parse_documents(text: str, source: str = "<input>") -> list[JSON | None]:
    """Every document of a (multi-document) YAML text; ``None`` for empty ones."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{source}{where}: invalid YAML: {problem}") from exc
    return [d if isinstance(d, dict) or d is None else {"__scalar__": d} for d in documents]


def classify(documents: list[JSON | None], source: str = "<input>") -> Manifests:
    """Split documents by kind (``serving.kserve.io`` InferenceService / runtimes)."""
    found = Manifests()
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        kind, api_version = doc.get("kind"), str(doc.get("apiVersion", ""))
        if api_version.startswith(f"{names.GROUP}/") and kind == names.ISVC_KIND:
            found.isvcs.append(doc)
        elif api_version.startswith(f"{names.GROUP}/") and kind == names.SERVING_RUNTIME_KIND:
            found.runtimes.append(doc)
        elif (
            api_version.startswith(f"{names.GROUP}/") and kind == names.CLUSTER_SERVING_RUNTIME_KIND
        ):
            found.cluster_runtimes.append(doc)
        else:
            what = f"kind {kind}" if kind else "no apiVersion/kind (a fragment?)"
            found.ignored.append(f"{PurePath(source).name} document {index}: {what}")
    return found


def merge(into: Manifests, more: Manifests) -> Manifests:
    """Both sets of manifests, ``into``'s first."""
    return Manifests(
        isvcs=into.isvcs + more.isvcs,
        runtimes=into.runtimes + more.runtimes,
        cluster_runtimes=into.cluster_runtimes + more.cluster_runtimes,
        ignored=into.ignored + more.ignored,
    )


def bundled_runtimes() -> list[JSON]:
    """The ClusterServingRuntime(s) shipped with the package (``kserve-vllmserver``)."""
    text = resources.files("autoscaler.reconciler").joinpath("data", BUNDLED_RUNTIME).read_text()
    return classify(parse_documents(text, BUNDLED_RUNTIME), BUNDLED_RUNTIME).cluster_runtimes
