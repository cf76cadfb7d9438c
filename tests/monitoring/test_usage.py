"""Replica CPU and memory: percent between two samples, reused pids, gone processes, /proc."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from orchestrator import metrics
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.usage import (
    ProcessSample,
    ReplicaProcess,
    UsageSampler,
    read_process,
    record_replica_usage,
)
from orchestrator.testing import FakeClock


class FakeProcesses:
    def __init__(self) -> None:
        self.table: dict[int, ProcessSample] = {}
        self.now = 100.0

    def read(self, pid: int) -> ProcessSample | None:
        return self.table.get(pid)

    def monotonic(self) -> float:
        return self.now


def test_cpu_percent_between_two_samples() -> None:
    procs = FakeProcesses()
    sampler = UsageSampler(read=procs.read, monotonic=procs.monotonic)
    r = ReplicaProcess("ep", "v1", "r1", pid=42)
    procs.table[42] = ProcessSample(cpu_seconds=10.0, rss_bytes=1000, started=7)
    assert sampler.sample([r]) == []  # one sample says nothing about CPU yet
    procs.now += 2.0
    procs.table[42] = ProcessSample(cpu_seconds=13.0, rss_bytes=2000, started=7)
    [usage] = sampler.sample([r])
    assert (usage.cpu_percent, usage.memory_bytes, usage.replica_id) == (150.0, 2000, "r1")


def test_a_reused_pid_or_a_gone_process_starts_over() -> None:
    procs = FakeProcesses()
    sampler = UsageSampler(read=procs.read, monotonic=procs.monotonic)
    r = ReplicaProcess("ep", "v1", "r1", pid=42)
    procs.table[42] = ProcessSample(cpu_seconds=10.0, rss_bytes=1000, started=7)
    sampler.sample([r])
    procs.now += 1.0
    procs.table[42] = ProcessSample(cpu_seconds=0.5, rss_bytes=1000, started=99)  # new process
    assert sampler.sample([r]) == []
    del procs.table[42]
    procs.now += 1.0
    assert sampler.sample([r]) == []  # gone: skipped, forgotten
    procs.table[42] = ProcessSample(cpu_seconds=1.0, rss_bytes=1000, started=99)
    assert sampler.sample([r]) == []


def test_replicas_not_listed_are_forgotten() -> None:
    procs = FakeProcesses()
    sampler = UsageSampler(read=procs.read, monotonic=procs.monotonic)
    procs.table[1] = ProcessSample(cpu_seconds=1.0, rss_bytes=1, started=1)
    sampler.sample([ReplicaProcess("ep", "v1", "r1", pid=1)])
    sampler.sample([])
    procs.now += 1
    assert sampler.sample([ReplicaProcess("ep", "v1", "r1", pid=1)]) == []


def test_reads_this_process_from_proc() -> None:
    first = read_process(os.getpid())
    assert first is not None and first.rss_bytes > 1 << 20
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # burn CPU until the tick counter moves
        sum(range(10_000))
        later = read_process(os.getpid())
        assert later is not None
        if later.cpu_seconds > first.cpu_seconds:
            break
    else:
        raise AssertionError("CPU time of this process never moved")
    assert later.started == first.started
    assert read_process(2**22 + 12345) is None  # above the kernel's pid limit: no such process


def test_one_pass_records_into_series_and_prometheus() -> None:
    procs = FakeProcesses()
    sampler = UsageSampler(read=procs.read, monotonic=procs.monotonic)
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    series = SeriesStore(clock=clock, memory_total_bytes=10_000)
    replicas = [ReplicaProcess("ep", "v1", "r1", 1), ReplicaProcess("ep", "v1", "r2", 2)]
    for pid in (1, 2):
        procs.table[pid] = ProcessSample(cpu_seconds=0.0, rss_bytes=1000 * pid, started=pid)
    record_replica_usage(sampler, series, replicas, clock.now().timestamp())
    procs.now += 1
    procs.table[1] = ProcessSample(cpu_seconds=0.25, rss_bytes=1000, started=1)
    procs.table[2] = ProcessSample(cpu_seconds=0.75, rss_bytes=2000, started=2)
    t = clock.advance(1)
    assert len(record_replica_usage(sampler, series, replicas, t.timestamp())) == 2
    cpu = series.query("ep", "CPUUtilization", start=t, end=clock.advance(1), period=60,
                       statistics=["Average", "Maximum"]).Datapoints  # fmt: skip
    assert (cpu[0].Average, cpu[0].Maximum) == (50.0, 75.0)
    gauge = metrics.REGISTRY.get_sample_value(
        "orch_replica_memory_bytes", {"endpoint": "ep", "variant": "v1", "replica": "r2"}
    )
    assert gauge == 2000.0
    record_replica_usage(sampler, series, replicas[:1], t.timestamp())
    assert (
        metrics.REGISTRY.get_sample_value(
            "orch_replica_cpu_percent", {"endpoint": "ep", "variant": "v1", "replica": "r2"}
        )
        is None
    )
