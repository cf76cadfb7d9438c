"""A training container's CPU and memory from the engine's stats (``docker stats``' numbers).

One ``GET /containers/ID/stats?stream=false&one-shot=true`` per sample (one-shot: the engine
answers at once instead of waiting a second for a second reading; the sampler keeps the
previous reading itself). CPU is ``cpu_stats.cpu_usage.total_usage`` (nanoseconds, all cores);
memory is ``memory_stats.usage`` less the inactive file cache (``inactive_file`` on cgroup v2,
``total_inactive_file`` on v1), as the Docker CLI shows it.
"""

from __future__ import annotations

from typing import Any

from docker.errors import DockerException
from docker.models.containers import Container

from orchestrator.training.usage import Reading


def parse_stats(doc: dict[str, Any]) -> Reading | None:
    """The reading in one stats document; None when the container is not running (the engine
    answers zeros and no ``memory_stats.usage`` then)."""
    try:
        cpu_ns = int(doc["cpu_stats"]["cpu_usage"]["total_usage"])
        memory = doc["memory_stats"]
        usage = int(memory["usage"])
    except (KeyError, TypeError, ValueError):
        return None
    stats = memory.get("stats") or {}
    inactive = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return Reading(cpu_seconds=cpu_ns / 1e9, memory_bytes=max(0, usage - int(inactive)))


class StatsProbe:
    """One container's readings through the engine (``training.usage.Probe``)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def read(self) -> Reading | None:
        try:
            doc = self.container.stats(stream=False, one_shot=True)
        except DockerException:
            return None  # removed, or the engine is gone: the supervisor says so elsewhere
        return parse_stats(doc) if isinstance(doc, dict) else None
