"""``llm-autoscaler run``: the service (metrics API, scaling loop, reconciler).

Every setting of :class:`autoscaler.settings.Settings` is a flag (``--tick-seconds 0.5``) and
an environment variable (``LLM_AUTOSCALER_TICK_SECONDS``); flags win. Lists are
comma-separated, booleans are ``true``/``false``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pydantic import ValidationError

from autoscaler.settings import Settings

HELP = "run the service: external metrics API, scaling loop, InferenceService reconciler"


def configure(p: argparse.ArgumentParser) -> None:
    for name, f in Settings.model_fields.items():
        default = "" if f.default_factory else f" (default: {f.default})"
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"{f.description or ''}{default}".strip(),
        )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name, f in Settings.model_fields.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if f.annotation is not None and "tuple" in str(f.annotation):
            overrides[name] = tuple(v.strip() for v in value.split(",") if v.strip())
        else:
            overrides[name] = value
    return Settings(**overrides)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"]) or "settings"
            print(f"error: {where}: {err['msg']}", file=sys.stderr)
        return 2
    from autoscaler.service import serve

    tune_gc()
    asyncio.run(serve(settings))
    return 0


GC_THRESHOLDS = (50_000, 20, 100)
"""Python's default first threshold (700 allocations) makes the collector walk every young
object dozens of times per tick when a snapshot of thousands of pods is built: a third of a
10k-pod direct-scrape snapshot went to GC pauses (``bench/results/snapshot.md``). Raised, the
young generation is collected about 70× less often; the objects are short-lived either way."""


def tune_gc() -> None:
    """Freeze what start-up allocated (imports, settings: never garbage) and raise the
    collector's thresholds (:data:`GC_THRESHOLDS`)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
