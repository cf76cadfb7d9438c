"""training.usageseries: the usage file read back as bounded series per (metric, host)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from orchestrator.training.usageseries import UsageParser


def line(ms: int, host: str, **values: float) -> bytes:
    doc = {"Timestamp": ms, "Host": host, "Attempt": 1, "Metrics": values}
    return json.dumps(doc).encode() + b"\n"


def test_lines_cut_anywhere_make_one_series_per_metric_and_host() -> None:
    data = (
        line(1000, "algo-2", CPUUtilization=10.0)
        + line(2000, "algo-1", CPUUtilization=20.0, MemoryUtilization=1.0)
        + line(3000, "algo-10", GPUUtilization=30.0)
    )
    p = UsageParser()
    for i in range(0, len(data), 7):
        p.feed(data[i : i + 7])
    assert p.offset == len(data)
    assert list(p.series) == [
        ("CPUUtilization", "algo-1"),
        ("MemoryUtilization", "algo-1"),
        ("CPUUtilization", "algo-2"),
        ("GPUUtilization", "algo-10"),
    ]
    point = p.series[("CPUUtilization", "algo-1")][0]
    assert (point.value, point.step, point.epoch) == (20.0, 0, None)
    assert point.timestamp == datetime.fromtimestamp(2, tz=UTC)


def test_foreign_torn_and_odd_values_are_skipped() -> None:
    p = UsageParser()
    p.feed(b'not json\n{"Timestamp": 1}\n')
    p.feed(line(1, "algo-1", CPUUtilization=float("nan"), Unknown=3.0, MemoryUtilization=2.0))
    p.feed(b'{"Timestamp": 2, "Host": "algo-1", "Metrics": [1]}\n')
    p.feed(b'{"Timestamp": 3, "Host": "algo-1", "Metrics": {"CPUUtilization": "x"}}\n')
    assert {k: [x.value for x in v] for k, v in p.series.items()} == {
        ("MemoryUtilization", "algo-1"): [2.0]
    }
    p.feed(b"x" * (70 << 10))  # a line without end is dropped, never held without bound
    p.feed(b"\n" + line(4, "algo-1", MemoryUtilization=3.0))
    assert [x.value for x in p.series[("MemoryUtilization", "algo-1")]] == [2.0, 3.0]


def test_memory_is_bounded_every_kth_sample_and_the_latest() -> None:
    p = UsageParser(max_points=8)
    p.feed(b"".join(line(i, "algo-1", CPUUtilization=float(i)) for i in range(1001)))
    points = p.series[("CPUUtilization", "algo-1")]
    assert len(points) <= 9
    assert points[-1].value == 1000.0 and points[-1].step == 1000
    steps = [x.step for x in points[:-1]]
    stride = steps[1] - steps[0]
    assert steps == list(range(0, stride * len(steps), stride))
    assert p.last()[("CPUUtilization", "algo-1")].value == 1000.0
