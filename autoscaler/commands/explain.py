"""``llm-autoscaler explain NAMESPACE/ISVC``: the last decisions, readable at 3 a.m.

Asks the running service (its leader) for the decision records of one InferenceService at
``/debug/decisions/<namespace>/<name>`` and prints, per decision: time, replicas before and
after, the rule that decided, the reason, and each signal's observed value against its target
with the replicas it proposed. The endpoint needs a bearer token allowed to ``get`` the
InferenceService (``--token-file``, default the pod's service-account token).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HELP = "print the last scaling decisions of an InferenceService, with inputs and reasons"
SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("isvc", metavar="NAMESPACE/ISVC")
    p.add_argument(
        "--url",
        default="http://localhost:8080",
        help="the service's HTTP address (default: %(default)s)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help=f"bearer token file (default: {SA_TOKEN} when present)",
    )
    p.add_argument("--limit", type=int, default=10, help="how many decisions (default 10)")
    p.add_argument("--json", action="store_true", help="print the raw records")


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def render(body: dict[str, Any]) -> str:
    """The records as text: one block per decision, newest last."""
    lines = [f"decisions of {body['isvc']} (from {body.get('identity', '?')})"]
    if not body["decisions"]:
        lines.append("  none yet (not an external-class ISVC, or no tick has seen it)")
    for r in body["decisions"]:
        arrow = (
            f"{r['current']} → {r['desired']}"
            if r["current"] != r["desired"]
            else (f"{r['current']} (no change)")
        )
        lines.append(f"{r['time']}  {arrow}  [{r['rule']}]")
        lines.append(f"    why: {r['reason']}")
        inputs = r.get("inputs") or {}
        if inputs:
            lines.append("    pods: " + ", ".join(f"{k}={_fmt(v)}" for k, v in inputs.items()))
        for p in r.get("proposals") or []:
            mark = "*" if p.get("signal") == r.get("winner") else " "
            lines.append(
                f"   {mark}{p['signal']:<22} observed {_fmt(p.get('observed')):>7} / target "
                f"{_fmt(p.get('target')):>5} on {p.get('reporting', 0)} pods "
                f"({p.get('missing', 0)} missing) → {_fmt(p.get('replicas'))}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if "/" not in args.isvc:
        print("error: give the InferenceService as NAMESPACE/NAME", file=sys.stderr)
        return 2
    ns, name = args.isvc.split("/", 1)
    token_file = args.token_file or (SA_TOKEN if SA_TOKEN.exists() else None)
    req = urllib.request.Request(
        f"{args.url.rstrip('/')}/debug/decisions/{ns}/{name}?limit={args.limit}"
    )
    if token_file is not None:
        req.add_header("Authorization", f"Bearer {token_file.read_text().strip()}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            detail = json.loads(detail).get("error", detail)
        print(f"error: {args.url} answered {e.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"error: cannot reach the service at {args.url}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else render(body))
    return 0
