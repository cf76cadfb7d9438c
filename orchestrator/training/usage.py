"""A running job's resource use, sampled per host by the side that runs beside it.

SageMaker publishes these per instance (CloudWatch namespace ``/aws/sagemaker/TrainingJobs``,
dimension ``Host`` = ``<job>/algo-N``), and so does every backend here, under the same names:

- ``CPUUtilization``: each core's busy percent, summed (0-100 x vCPUs; 250 = two and a half
  cores busy);
- ``MemoryUtilization``: memory in use, percent of the instance type's memory (the host's
  where the type is ``local``);
- ``DiskUtilization``: bytes under the attempt's ``/opt/ml``, percent of ``VolumeSizeInGB``;
- ``GPUUtilization``, ``GPUMemoryUtilization``: each held device's percent, summed
  (0-100 x GPUs), through ``orchestrator.gpus`` (NVML), only for instance types with GPUs.

Where the numbers come from is a ``Probe`` per host: ``TreeProbe`` (the user's process and
its descendants from ``/proc``; their cgroup's counters instead when they are in a cgroup v2 of
their own), ``CgroupProbe`` (the cgroup this process is in: a container's, read from inside
it), or the Docker engine's stats (``backends.docker.stats``). ``UsageSampler`` asks every
probe every ``interval`` seconds on a thread of its own and appends one JSON line per host to
the usage file (``usage_path``: beside the job log, all attempts appended, each line one
``write`` on an ``O_APPEND`` descriptor, so a reader never sees half a line past a newline)::

    {"Timestamp": 1712345678901, "Host": "algo-1", "Attempt": 1,
     "Metrics": {"CPUUtilization": 187.5, "MemoryUtilization": 12.25, "DiskUtilization": 0.5}}

CPU needs two readings: a host's first sample has no ``CPUUtilization``. ``UsageParser``
(``training.usageseries``) reads the file back as series.

Where no file beside the log can reach the control plane (a pod on Kubernetes: the pod's log
is all it reads), the same lines go into the log, each behind ``USAGE_MARK`` and written in
one ``write``; ``split_usage`` takes them out again, so the log readers never show them and
the usage reader sees only them. A mark written into the middle of a line the user's code had
not finished is cut out with its newline, and that line is whole again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orchestrator import gpus as host_gpus
from orchestrator.gpus import GpuInventory
from orchestrator.monitoring.usage import read_stat
from orchestrator.resources.instances import INSTANCE_TYPES

if TYPE_CHECKING:
    from orchestrator.resources.training import CreateTrainingJobRequest
    from orchestrator.training.files import JobFile

USAGE_SUFFIX = ".usage.jsonl"
CPU = "CPUUtilization"
MEMORY = "MemoryUtilization"
DISK = "DiskUtilization"
GPU = "GPUUtilization"
GPU_MEMORY = "GPUMemoryUtilization"
METRICS = (CPU, MEMORY, DISK, GPU, GPU_MEMORY)

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CGROUP_ROOT = Path("/sys/fs/cgroup")


USAGE_MARK = b"\x1e[orchestrator:usage] "
# The pod's sampling interval and volume size (Kubernetes: kube/hostenv.py reads them).
INTERVAL_ENV = "ORCH_USAGE_INTERVAL_SECONDS"
VOLUME_ENV = "ORCH_USAGE_VOLUME_GB"
ATTEMPT_ENV = "ORCH_USAGE_ATTEMPT"


def split_usage(data: bytes) -> tuple[bytes, bytes]:
    """(the log without the marked usage lines, those lines without their mark)."""
    if USAGE_MARK not in data:
        return data, b""
    log, usage = bytearray(), bytearray()
    start = 0
    while True:
        at = data.find(USAGE_MARK, start)
        if at < 0:
            log += data[start:]
            break
        log += data[start:at]
        end = data.find(b"\n", at)
        if end < 0:  # a mark whose line is not written yet: neither log nor sample
            break
        usage += data[at + len(USAGE_MARK) : end + 1]
        start = end + 1
    return bytes(log), bytes(usage)


def usage_path(log: Path) -> Path:
    """The usage file of the job whose log is ``log``."""
    return log.with_name(log.name.removesuffix(".log") + USAGE_SUFFIX)


@dataclass(frozen=True)
class Reading:
    """What a probe saw at one instant: CPU time so far (any origin) and memory in use."""

    cpu_seconds: float
    memory_bytes: int


class Probe(Protocol):
    def read(self) -> Reading | None:
        """Now; None when there is nothing to read (not started, or gone)."""


# --- /proc ---------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds of it and its reaped children, RSS bytes) of ``pid``."""
    read = read_stat(pid)
    if read is None:
        return None
    fields, rss = read
    # utime, stime, cutime, cstime: a reaped child's time moves to its parent's c*time.
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return int(fields[1]), ticks / _TICKS, rss


def descendants(root: int) -> list[int]:
    """``root`` and every live process under it (one pass over ``/proc``)."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, ()))
    return out


def own_cgroup(pid: int | str) -> str | None:
    """The cgroup v2 path of ``pid`` ("0::/path"), None on cgroup v1 only or without /proc."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


class CgroupProbe:
    """A cgroup's counters: v2 (``cpu.stat`` usage_usec, ``memory.current`` less inactive
    file cache) or v1 (``cpuacct.usage``, ``memory.usage_in_bytes`` less ``total_inactive_file``),
    as ``docker stats`` and the kubelet count memory."""

    def __init__(self, path: Path | None = None, *, root: Path = CGROUP_ROOT) -> None:
        self.v2 = root / str(path or "/").lstrip("/") if path is not None else root
        self.root = root

    def read(self) -> Reading | None:
        try:
            return self._v2()
        except (OSError, ValueError, KeyError):
            pass
        try:
            return self._v1()
        except (OSError, ValueError, KeyError):
            return None

    def _v2(self) -> Reading:
        cpu = _keyed(self.v2 / "cpu.stat")["usage_usec"] / 1e6
        memory = int((self.v2 / "memory.current").read_text())
        inactive = _keyed(self.v2 / "memory.stat").get("inactive_file", 0)
        return Reading(cpu, max(0, memory - inactive))

    def _v1(self) -> Reading:
        cpu = int((self.root / "cpuacct" / "cpuacct.usage").read_text()) / 1e9
        memory = int((self.root / "memory" / "memory.usage_in_bytes").read_text())
        inactive = _keyed(self.root / "memory" / "memory.stat").get("total_inactive_file", 0)
        return Reading(cpu, max(0, memory - inactive))


def _keyed(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


class TreeProbe:
    """A process and its descendants. When the process is in a cgroup v2 other than ours (a
    systemd scope, a container), that cgroup's counters are exact (they keep the CPU of
    children that exited); otherwise the live tree's times and resident sets from ``/proc``."""

    def __init__(self, pid: int, *, root: Path = CGROUP_ROOT) -> None:
        self.pid = pid
        self.cgroup: CgroupProbe | None = None
        path = own_cgroup(pid)
        if path is not None and path != own_cgroup("self") and (root / path.lstrip("/")).is_dir():
            self.cgroup = CgroupProbe(Path(path), root=root)

    def read(self) -> Reading | None:
        if self.cgroup is not None:
            reading = self.cgroup.read()
            if reading is not None:
                return reading
        cpu, rss, alive = 0.0, 0, False
        for pid in descendants(self.pid):
            stat = _stat(pid)
            if stat is None:
                continue
            alive = True
            cpu += stat[1]
            rss += stat[2]
        return Reading(cpu, rss) if alive else None


# --- disk, memory size, GPUs ----------------------------------------------------------------


def bytes_under(top: Path) -> int:
    """Bytes allocated to the files under ``top`` (blocks, as ``du``), links not followed."""
    total = 0
    todo = [str(top)]
    while todo:
        try:
            it = os.scandir(todo.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
    return total


def host_memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * _PAGE) if hasattr(os, "sysconf") else 0


def memory_size(instance_type: str) -> int:
    """The memory a job's instance has: the type's size, the host's for ``local``."""
    mib = INSTANCE_TYPES[instance_type].memory_mib
    return mib * 1024 * 1024 if mib else host_memory_bytes()


def gpu_percents(inventory: GpuInventory, devices: list[int] | None) -> tuple[float, float] | None:
    """(utilization, memory) summed over the devices (all the inventory shows when None),
    each 0-100; None when there are none to read."""
    usage = {u.index: u for u in inventory.usage()}
    totals = {d.index: d.memory_total_bytes for d in inventory.devices()}
    wanted = sorted(usage) if devices is None else [i for i in devices if i in usage]
    if not wanted:
        return None
    utilization = sum(usage[i].utilization_percent for i in wanted)
    memory = sum(100.0 * usage[i].memory_used_bytes / totals[i] for i in wanted if totals.get(i))
    return utilization, memory


# --- the sampler ----------------------------------------------------------------------------


def usage_line(at_ms: int, host: str, attempt: int, values: Mapping[str, float]) -> bytes:
    """One sample as the usage file (or, behind ``USAGE_MARK``, the pod's log) holds it."""
    doc = {
        "Timestamp": at_ms,
        "Host": host,
        "Attempt": attempt,
        "Metrics": {k: round(v, 3) for k, v in values.items()},
    }
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class UsageFile:
    """Appends sample lines to the usage file; one ``write`` per line (see the docstring).
    ``UsageFile.on_fd(1, USAGE_MARK)``: marked lines on standard output instead."""

    def __init__(self, path: Path | None, *, fd: int | None = None, prefix: bytes = b"") -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        assert fd is not None
        self._fd = fd
        self._owned = path is not None
        self._prefix = prefix

    @classmethod
    def on_fd(cls, fd: int, prefix: bytes) -> UsageFile:
        return cls(None, fd=fd, prefix=prefix)

    def write(self, at_ms: int, host: str, attempt: int, values: Mapping[str, float]) -> None:
        os.write(self._fd, self._prefix + usage_line(at_ms, host, attempt, values))

    def close(self) -> None:
        if self._owned:
            os.close(self._fd)


@dataclass(frozen=True)
class Sizes:
    """What the percentages are of."""

    memory_bytes: int
    disk_bytes: int


class HostSampler:
    """One host's successive readings turned into SageMaker's percentages."""

    def __init__(
        self,
        probe: Probe,
        sizes: Sizes,
        *,
        disk: Callable[[], int] | None = None,
        gpus: Callable[[], tuple[float, float] | None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.sizes = sizes
        self._disk = disk
        self._gpus = gpus
        self._monotonic = monotonic
        self._last: tuple[float, float] | None = None  # (monotonic, cpu seconds)

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        reading = self.probe.read()
        now = self._monotonic()
        if reading is None:
            return values  # not running (yet, or any more): no sample of this host
        if self._last is not None and now > self._last[0]:
            busy = max(0.0, reading.cpu_seconds - self._last[1])
            values[CPU] = 100.0 * busy / (now - self._last[0])
        self._last = (now, reading.cpu_seconds)
        if self.sizes.memory_bytes > 0:
            values[MEMORY] = 100.0 * reading.memory_bytes / self.sizes.memory_bytes
        if self._disk is not None and self.sizes.disk_bytes > 0:
            values[DISK] = 100.0 * self._disk() / self.sizes.disk_bytes
        if self._gpus is not None:
            gpu = self._gpus()
            if gpu is not None:
                values[GPU], values[GPU_MEMORY] = gpu
        return values


class DiskProbe:
    """Bytes under a directory, walked at most every ``interval`` seconds and never more than
    5% of the time (a tree of many files is walked less often; the last size is reused)."""

    def __init__(
        self, top: Path, *, interval: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.top = top
        self.interval = interval
        self._monotonic = monotonic
        self._next = 0.0
        self._last = 0

    def __call__(self) -> int:
        now = self._monotonic()
        if now >= self._next:
            self._last = bytes_under(self.top)
            took = self._monotonic() - now
            self._next = now + max(self.interval * 0.9, 20 * took)
        return self._last


class UsageSampler:
    """Samples every host in ``targets`` (host -> probe; the caller adds hosts as they start)
    every ``interval`` seconds into ``out``, on a daemon thread between ``start()`` and
    ``stop()``. ``make(probe)`` builds a host's sampler the first time its probe is seen."""

    def __init__(
        self,
        out: UsageFile,
        attempt: int,
        targets: Mapping[str, Probe],
        make: Callable[[Probe], HostSampler],
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.out = out
        self.attempt = attempt
        self.targets = targets
        self.make = make
        self.interval = interval
        self.clock = clock
        self.on_error = on_error
        self._samplers: dict[str, HostSampler] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> int:
        """One sample of every host; returns how many lines were written."""
        written = 0
        for host, probe in list(self.targets.items()):
            sampler = self._samplers.get(host)
            if sampler is None or sampler.probe is not probe:
                sampler = self._samplers[host] = self.make(probe)
            values = sampler.sample()
            if values:
                self.out.write(int(self.clock() * 1000), host, self.attempt, values)
                written += 1
        return written

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="usage", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        failed = False
        while not self._stop.wait(self.interval):
            try:
                self.sample_once()
            except Exception as e:  # a failed sample must never end the job; the next tries
                if not failed and self.on_error is not None:
                    self.on_error(e)  # said once, not every interval
                failed = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        self.out.close()


def sizes_of(spec: CreateTrainingJobRequest) -> Sizes:
    rc = spec.ResourceConfig
    return Sizes(memory_size(rc.InstanceType), rc.VolumeSizeInGB * (1 << 30))


def gpu_reader(
    instance_type: str,
    devices: list[int] | None,
    inventory: GpuInventory | None = None,
) -> Callable[[], tuple[float, float] | None] | None:
    """The GPU reading of a job's devices (None: every device this process sees, as in a
    container given only its own); None for an instance type without GPUs (NVML is not even
    loaded)."""
    if not INSTANCE_TYPES[instance_type].gpus:
        return None
    found = inventory if inventory is not None else host_gpus.detect()
    return lambda: gpu_percents(found, devices)


def job_sampler(
    job: JobFile,
    ml_root: Path,
    targets: Mapping[str, Probe],
    *,
    on_error: Callable[[Exception], None] | None = None,
    inventory: GpuInventory | None = None,
) -> UsageSampler:
    """The sampler a supervisor runs beside one attempt (hosts share the attempt's /opt/ml
    and, on one machine, the devices it was given)."""
    sizes = sizes_of(job.spec)
    disk = DiskProbe(ml_root, interval=job.usage_interval_seconds)
    gpu = gpu_reader(job.spec.ResourceConfig.InstanceType, job.gpus, inventory)

    def make(probe: Probe) -> HostSampler:
        return HostSampler(probe, sizes, disk=disk, gpus=gpu)

    return UsageSampler(
        UsageFile(usage_path(Path(job.log_path))),
        job.attempt,
        targets,
        make,
        interval=job.usage_interval_seconds,
        on_error=on_error,
    )
