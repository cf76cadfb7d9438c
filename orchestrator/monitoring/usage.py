"""CPU and memory of replica processes, sampled by the controller once per pass.

Read from ``/proc`` (Linux): ``/proc/PID/stat`` for user + system CPU time and the start time
(so a reused pid is not taken for the same process) and ``/proc/PID/statm`` for the resident
set. That is two small reads per replica and no new dependency; where there is no ``/proc``
(macOS) nothing is reported. CPU percent needs two samples: the first pass after a replica
starts reports nothing for it, the next ones report its CPU time over the wall time between
passes (100 = one core busy; more with several threads on several cores).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orchestrator import metrics
from orchestrator.monitoring.series import SeriesStore


@dataclass(frozen=True)
class ReplicaProcess:
    """A replica the backend runs as a local process."""

    endpoint: str
    variant: str
    replica_id: str
    pid: int


@dataclass(frozen=True)
class ProcessSample:
    cpu_seconds: float  # user + system since the process started
    rss_bytes: int
    started: int  # start time in clock ticks since boot: tells a reused pid apart


@dataclass(frozen=True)
class ReplicaUsage:
    endpoint: str
    variant: str
    replica_id: str
    cpu_percent: float
    memory_bytes: int


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_stat(pid: int) -> tuple[list[bytes], int] | None:
    """``/proc/PID/stat``'s fields after the command name (``fields[0]`` is the state) and
    the RSS in bytes (``statm``); None when the process is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", "rb") as f:
            statm = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rindex(b")") + 2 :].split(), int(statm.split()[1]) * _PAGE


def read_process(pid: int) -> ProcessSample | None:
    """CPU time, RSS and start of ``pid``; None when it is gone (or there is no /proc)."""
    read = read_stat(pid)
    if read is None:
        return None
    fields, rss = read
    utime, stime, started = int(fields[11]), int(fields[12]), int(fields[19])
    return ProcessSample(cpu_seconds=(utime + stime) / _TICKS, rss_bytes=rss, started=started)


class UsageSampler:
    """Keeps each replica's previous sample to turn CPU time into a percentage."""

    def __init__(
        self,
        *,
        read: Callable[[int], ProcessSample | None] = read_process,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._monotonic = monotonic
        self._last: dict[str, tuple[int, ProcessSample, float]] = {}

    def sample(self, replicas: Iterable[ReplicaProcess]) -> list[ReplicaUsage]:
        """Usage of every replica sampled before as the same process; replicas not listed
        (gone) are forgotten."""
        out: list[ReplicaUsage] = []
        seen: dict[str, tuple[int, ProcessSample, float]] = {}
        for r in replicas:
            now = self._monotonic()
            current = self._read(r.pid)
            if current is None:
                continue
            seen[r.replica_id] = (r.pid, current, now)
            previous = self._last.get(r.replica_id)
            if previous is None:
                continue
            pid, before, then = previous
            if pid != r.pid or before.started != current.started or now <= then:
                continue  # another process now: start over
            cpu = max(0.0, current.cpu_seconds - before.cpu_seconds) / (now - then)
            out.append(
                ReplicaUsage(r.endpoint, r.variant, r.replica_id, 100.0 * cpu, current.rss_bytes)
            )
        self._last = seen
        return out


def record_replica_usage(
    sampler: UsageSampler, series: SeriesStore, replicas: Iterable[ReplicaProcess], at: float
) -> list[ReplicaUsage]:
    """One controller pass: sample every replica process, record each into the series store
    (CPUUtilization, MemoryUtilization) and Prometheus (``orch_replica_cpu_percent``,
    ``orch_replica_memory_bytes``; replicas that went away drop out)."""
    usage = sampler.sample(replicas)
    for u in usage:
        series.record_replica_usage(
            u.endpoint,
            u.variant,
            u.replica_id,
            cpu_percent=u.cpu_percent,
            memory_bytes=u.memory_bytes,
            at=at,
        )
    metrics.record_replica_usage(
        [(u.endpoint, u.variant, u.replica_id, u.cpu_percent, u.memory_bytes) for u in usage]
    )
    return usage
