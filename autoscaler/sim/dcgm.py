"""A simulated dcgm-exporter for one fake GPU node: the real metric names and label layout
(``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``, ``Hostname``,
``DCGM_FI_DRIVER_VERSION``, then ``container``/``namespace``/``pod`` on GPUs assigned to a pod),
values read from the simulated vLLM pods that hold each GPU.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

DRIVER = "580.105.08"
FB_TOTAL_MIB = 81559


@dataclass(frozen=True)
class GpuHolder:
    """Who holds a GPU: the pod's identity and a function giving its utilization (0-100)."""

    namespace: str
    pod: str
    container: str
    utilization: Callable[[], float]


def gpu_uuid(node: str, index: int) -> str:
    h = hashlib.sha1(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_FAMILIES = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
)


def render(node: str, gpus: int, model: str, holders: dict[int, GpuHolder]) -> str:
    """The exposition text for ``node``'s ``gpus`` GPUs; ``holders`` maps GPU index to pod."""
    rows: list[tuple[str, dict[str, float]]] = []
    for i in range(gpus):
        labels = (
            f'gpu="{i}",UUID="{gpu_uuid(node, i)}",'
            f'pci_bus_id="00000000:{0x18 + i * 0x10:02X}:00.0",'
            f'device="nvidia{i}",modelName="{_esc(model)}",Hostname="{_esc(node)}",DCGM_FI_DRIVER_VERSION="{DRIVER}"'
        )
        h = holders.get(i)
        if h is None:
            util, used = 0.0, 0.0
        else:
            util = h.utilization()
            used = round(FB_TOTAL_MIB * 0.9)  # vLLM preallocates gpu_memory_utilization=0.9
            labels += (
                f',container="{_esc(h.container)}",namespace="{_esc(h.namespace)}",'
                f'pod="{_esc(h.pod)}",pod_uid=""'
            )
        values = {
            "DCGM_FI_DEV_GPU_UTIL": float(round(util)),
            "DCGM_FI_DEV_FB_FREE": float(FB_TOTAL_MIB - used),
            "DCGM_FI_DEV_FB_USED": float(used),
            "DCGM_FI_DEV_GPU_TEMP": float(round(32 + 0.4 * util)),
            "DCGM_FI_DEV_POWER_USAGE": round(70.0 + 6.3 * util, 3),
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE": round(util / 100.0, 6),
        }
        rows.append((labels, values))
    out: list[str] = []
    for name, kind, doc in _FAMILIES:
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for labels, values in rows:
            v = values[name]
            out.append(f"{name}{{{labels}}} {_fmt(name, v)}\n")
    return "".join(out)


def _fmt(name: str, v: float) -> str:
    """Integers as dcgm-exporter prints them, ratios with 6 decimals."""
    if v.is_integer() and not name.startswith("DCGM_FI_PROF_"):
        return str(int(v))
    return f"{v:.6f}"


def app(
    node: str, gpus: int, model: str, holders: Callable[[], dict[int, GpuHolder]]
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render(node, gpus, model, holders()), content_type="text/plain")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    a = web.Application()
    a.router.add_get("/metrics", metrics)
    a.router.add_get("/health", health)
    return a
