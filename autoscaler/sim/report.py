"""Accounting of a simulated run: SLO attainment, TTFT, GPU-hours, scale events, time series.

Definitions (one function each below):

* **TTFT** per request, from arrival to first token. A request with no first token when the
  run stops (``drain_s`` after the last arrival) gets the censored value ``horizon − arrival``
  (a lower bound, always a miss). A request that can never fit the KV cache is refused, as
  vLLM refuses it: a miss, left out of the percentiles.
* **SLO attainment**: the share of *all* requests with TTFT ≤ SLO.
* **GPU-hours**: for every pod, its existence from creation (cold start included) to deletion
  (graceful drain included), clipped to the measured window ``[0, end]``, × the profile's GPUs.
  Pods ready at t = 0 are warm: their time before 0 is not counted for any policy.
* **Scale events**: ticks at which the autoscaler changed the replica count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from autoscaler.sim.fast import Pod

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SimResult:
    """One policy's run. ``ttft`` is NaN for refused requests; per-tick arrays in ``ticks``."""

    name: str
    slo_ttft_s: float
    arrival: Floats
    ttft: Floats
    unserved: int
    refused: int
    gpu_hours: float
    scale_events: int
    pods_created: int
    end: float
    ticks: Floats
    """Columns: time (s), replicas (desired, live), ready pods, waiting requests (all pods)."""

    @property
    def slo_attainment(self) -> float:
        return float(np.mean(self.ttft <= self.slo_ttft_s)) if len(self.ttft) else 1.0

    @property
    def max_replicas(self) -> int:
        return int(self.ticks[:, 1].max()) if len(self.ticks) else 0

    def ttft_percentile(self, q: float) -> float:
        """Percentile ``q`` (0-100) of TTFT over served and censored requests (not refused)."""
        v = self.ttft[~np.isnan(self.ttft)]
        return float(np.percentile(v, q)) if len(v) else math.nan

    def summary(self, oracle_gpu_hours: float | None = None) -> dict[str, Any]:
        """The JSON row of the ``simulate`` command."""
        ratio = None
        if oracle_gpu_hours:
            ratio = self.gpu_hours / oracle_gpu_hours
        return {
            "slo_attainment": self.slo_attainment,
            "ttft_p50_s": self.ttft_percentile(50),
            "ttft_p99_s": self.ttft_percentile(99),
            "gpu_hours": self.gpu_hours,
            "gpu_hours_vs_oracle": ratio,
            "scale_events": self.scale_events,
            "max_replicas": self.max_replicas,
            "requests": len(self.ttft),
            "unserved": self.unserved,
            "refused": self.refused,
            "pods_created": self.pods_created,
        }


def gpu_hours(pods: Sequence[Pod], gpus: int, end: float) -> float:
    """Σ over pods of ``(min(deleted, end) − max(created, 0))⁺ × gpus`` / 3600.

    Example: one warm pod alive all of a 1 h window and one created at 1,800 s, deleted at
    2,700 s, with 1 GPU each → (3600 + 900) / 3600 = 1.25 GPU-hours.
    """
    total = 0.0
    for p in pods:
        stop = end if p.deleted_at is None else min(p.deleted_at, end)
        total += max(0.0, stop - max(p.created_at, 0.0))
    return total * gpus / 3600.0


def censored_ttft(
    arrival: Floats, ttft: Floats, fits: npt.NDArray[np.bool_], horizon: float
) -> Floats:
    """Per-request TTFT: measured; ``horizon − arrival`` when unserved; NaN when refused."""
    out = np.where(np.isnan(ttft), np.maximum(horizon - arrival, 0.0), ttft)
    return np.where(fits, out, np.nan)


def collect(
    *,
    name: str,
    arrival: Floats,
    ttft: Floats,
    fits: npt.NDArray[np.bool_],
    pods: Sequence[Pod],
    gpus: int,
    slo_ttft_s: float,
    end: float,
    horizon: float,
    ticks: list[tuple[float, int, int, int]],
    scale_events: int,
) -> SimResult:
    """Assemble a :class:`SimResult` at the end of a run."""
    served = int(np.sum(fits & ~np.isnan(ttft)))
    return SimResult(
        name=name,
        slo_ttft_s=slo_ttft_s,
        arrival=arrival,
        ttft=censored_ttft(arrival, ttft, fits, horizon),
        unserved=int(fits.sum()) - served,
        refused=int((~fits).sum()),
        gpu_hours=gpu_hours(pods, gpus, end),
        scale_events=scale_events,
        pods_created=len(pods),
        end=end,
        ticks=np.array(ticks, dtype=np.float64).reshape(-1, 4),
    )


def per_minute(result: SimResult, bucket_s: float = 60.0) -> dict[str, Floats]:
    """Series for plots, per bucket of the window ``[0, end]``: load (arrivals/s), mean
    replicas, ready pods and waiting requests over the ticks, p99 TTFT of the arrivals."""
    n = max(1, math.ceil(result.end / bucket_s))
    edges = np.arange(n + 1) * bucket_s
    load = np.histogram(result.arrival, edges)[0] / bucket_s
    ticks = result.ticks[result.ticks[:, 0] <= n * bucket_s]
    which = np.clip((ticks[:, 0] - 1e-9) // bucket_s, 0, n - 1).astype(int)
    counts = np.maximum(np.bincount(which, minlength=n), 1)
    cols = {
        label: np.bincount(which, ticks[:, c], n) / counts
        for c, label in ((1, "replicas"), (2, "ready"), (3, "waiting"))
    }
    p99 = np.full(n, np.nan)
    idx = np.clip(result.arrival // bucket_s, 0, n - 1).astype(int)
    for b in range(n):
        v = result.ttft[(idx == b) & ~np.isnan(result.ttft)]
        if len(v):
            p99[b] = np.percentile(v, 99)
    return {"t": edges[:-1], "load": load, "ttft_p99": p99, **cols}


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """The human table of the ``simulate`` command (one row per policy)."""
    head = ("policy", "SLO att.", "TTFT p50", "TTFT p99", "GPU-h", "vs oracle", "events", "max")
    lines = [head]
    for name, r in rows.items():
        ratio = r["gpu_hours_vs_oracle"]
        lines.append(
            (
                name,
                f"{100 * r['slo_attainment']:.1f}%",
                f"{r['ttft_p50_s']:.2f}s",
                f"{r['ttft_p99_s']:.2f}s",
                f"{r['gpu_hours']:.2f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                str(r["scale_events"]),
                str(r["max_replicas"]),
            )
        )
    widths = [max(len(row[c]) for row in lines) for c in range(len(head))]
    out = []
    for row in lines:
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
    return "\n".join(out)
