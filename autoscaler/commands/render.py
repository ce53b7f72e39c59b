"""``llm-autoscaler render``: print what the reconciler would create, without a cluster.

Reads InferenceServices, ServingRuntimes and ClusterServingRuntimes from ``-f`` files (each
may hold several YAML documents, kinds mixed), plans every InferenceService with
:func:`autoscaler.reconciler.plan` and prints the Deployment, Service and HPA as one
multi-document YAML stream, plus a comment per object the reconciler would delete. Operators
diff this against the cluster or against a KServe install.

The bundled vLLM ClusterServingRuntime (``kserve-vllmserver``) is always available unless a
file defines a runtime of the same name or ``--no-bundled-runtime`` is given.

Exit status: 0 when every InferenceService planned; 1 with one line per problem on stderr
(invalid YAML, no InferenceService, a plan failure); 2 for bad command-line usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "print the Deployment/Service/HPA the ISVC reconciler would create (dry run, no cluster)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML with InferenceServices and/or (Cluster)ServingRuntimes; repeatable; - = stdin",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for manifests that name none (default: %(default)s)",
    )
    parser.add_argument(
        "--no-bundled-runtime",
        action="store_true",
        help="do not add the bundled kserve-vllmserver ClusterServingRuntime",
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    from autoscaler.reconciler import Settings, plan
    from autoscaler.reconciler.manifests import (
        ManifestError,
        Manifests,
        bundled_runtimes,
        classify,
        merge,
        parse_documents,
    )

    found = Manifests()
    try:
        for name in args.files:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
            found = merge(found, classify(parse_documents(text, name), name))
    except (OSError, ManifestError) as exc:
        return _fail(str(exc))
    if not found.isvcs:
        ignored = f" ({'; '.join(found.ignored)})" if found.ignored else ""
        return _fail(f"no InferenceService in {', '.join(args.files)}{ignored}")

    cluster_runtimes = list(found.cluster_runtimes)
    if not args.no_bundled_runtime:
        given = {_name(r) for r in cluster_runtimes}
        cluster_runtimes += [r for r in bundled_runtimes() if _name(r) not in given]
    settings = Settings(default_namespace=args.namespace)

    documents: list[str] = []
    problems: list[str] = []
    for isvc in found.isvcs:
        label = f"InferenceService {_name(isvc) or '<unnamed>'}"
        result = plan(isvc, found.runtimes, cluster_runtimes, settings)
        if result.failure is not None:
            problems.append(f"{label}: {result.failure}")
            continue
        notes = [f"# {label}: autoscalerClass {result.autoscaler_class}"]
        if result.runtime is not None:
            notes[0] += f", runtime {result.runtime.kind}/{result.runtime.name}"
        if result.replicas_owned_by_scaler:
            notes.append("# spec.replicas is applied only when the Deployment is created")
        notes += [
            f"# would delete {d.kind} {d.namespace}/{d.name} if its controller is this ISVC"
            for d in result.deletes
        ]
        for index, obj in enumerate(result.objects):
            head = "\n".join(notes) + "\n" if index == 0 else ""
            documents.append(head + yaml.safe_dump(obj, sort_keys=False))
        if not result.objects:
            documents.append("\n".join(notes) + "\n")
    if documents:
        sys.stdout.write("---\n".join(documents))
    for problem in problems:
        print(f"render: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _name(obj: dict[str, object]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""


def _fail(message: str) -> int:
    print(f"render: {message}", file=sys.stderr)
    return 1
