"""The host's GPUs: an inventory (NVML through nvidia-ml-py when present; none otherwise).

The controller allocates whole devices to jobs from it (two jobs never share one) and reads
utilization and memory per device for the per-job GPU metrics. Tests use ``FakeGpus``
(``orchestrator.testing``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("orchestrator.gpus")


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int


@dataclass(frozen=True)
class GpuUsage:
    index: int
    utilization_percent: float
    memory_used_bytes: int


class GpuInventory(Protocol):
    def devices(self) -> list[Gpu]: ...

    def usage(self) -> list[GpuUsage]: ...


class NoGpus:
    def devices(self) -> list[Gpu]:
        return []

    def usage(self) -> list[GpuUsage]:
        return []


class NvmlGpus:
    """NVIDIA's management library, through the ``nvidia-ml-py`` package (``pynvml``)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml

    def devices(self) -> list[Gpu]:
        n = self._nvml
        out = []
        for i in range(n.nvmlDeviceGetCount()):
            h = n.nvmlDeviceGetHandleByIndex(i)
            name = n.nvmlDeviceGetName(h)
            uuid = n.nvmlDeviceGetUUID(h)
            out.append(
                Gpu(
                    index=i,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_bytes=int(n.nvmlDeviceGetMemoryInfo(h).total),
                )
            )
        return out

    def usage(self) -> list[GpuUsage]:
        n = self._nvml
        out = []
        for i in range(n.nvmlDeviceGetCount()):
            h = n.nvmlDeviceGetHandleByIndex(i)
            out.append(
                GpuUsage(
                    index=i,
                    utilization_percent=float(n.nvmlDeviceGetUtilizationRates(h).gpu),
                    memory_used_bytes=int(n.nvmlDeviceGetMemoryInfo(h).used),
                )
            )
        return out


class Restricted:
    """Another inventory limited to the listed device indexes (``ORCH_GPU_DEVICES``); indexes
    NVML does not report are still handed out (utilization unknown), for hosts where NVML is
    missing but the devices are there."""

    def __init__(self, inner: GpuInventory, indexes: list[int]) -> None:
        self.inner = inner
        self.indexes = sorted(set(indexes))

    def devices(self) -> list[Gpu]:
        known = {d.index: d for d in self.inner.devices()}
        return [known.get(i, Gpu(i, f"index-{i}", "unknown", 0)) for i in self.indexes]

    def usage(self) -> list[GpuUsage]:
        return [u for u in self.inner.usage() if u.index in self.indexes]


def inventory(devices: list[int] | None = None) -> GpuInventory:
    """The inventory the controller allocates from: detected, or restricted by settings."""
    found = detect()
    return found if devices is None else Restricted(found, devices)


def detect() -> GpuInventory:
    """NVML's view when the library and a driver are there; otherwise no GPUs."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # no package, no driver, no device: all mean "no GPUs here"
        log.info("no GPU inventory (%s: %s)", type(e).__name__, e)
        return NoGpus()
    return NvmlGpus(pynvml)
