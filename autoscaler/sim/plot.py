"""Plots of simulated runs: load, replicas and TTFT over time, one line per policy.

matplotlib (the ``plot`` extra) is imported only here, with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autoscaler.sim.report import SimResult, per_minute


def plot_runs(results: Mapping[str, SimResult], out: Path, title: str = "") -> Path:
    """Write a 3-panel PNG to ``out``: offered load, replicas (solid) and ready pods
    (dotted), and p99 TTFT per minute on a log scale with the SLO as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_load, ax_rep, ax_ttft) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    slo = None
    for i, (name, r) in enumerate(results.items()):
        m = per_minute(r)
        minutes = m["t"] / 60.0
        color = f"C{i}"
        if i == 0:
            ax_load.step(minutes, m["load"], where="post", color="black")
        ax_rep.step(minutes, m["replicas"], where="post", color=color, label=name)
        ax_rep.step(minutes, m["ready"], where="post", color=color, linestyle=":", alpha=0.7)
        ax_ttft.step(minutes, m["ttft_p99"], where="post", color=color, label=name)
        slo = r.slo_ttft_s
    if slo is not None:
        ax_ttft.axhline(slo, color="grey", linestyle="--", label=f"SLO {slo:g} s")
    ax_load.set_ylabel("load (req/s)")
    ax_rep.set_ylabel("replicas (: ready)")
    ax_ttft.set_ylabel("p99 TTFT (s)")
    ax_ttft.set_yscale("log")
    ax_ttft.set_xlabel("minutes")
    ax_rep.legend(loc="upper left", fontsize="small", ncol=3)
    ax_ttft.legend(loc="upper left", fontsize="small", ncol=3)
    if title:
        ax_load.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
