"""The endpoint metrics we keep, the statistics a query may ask for, and the answer's shape.

Shared by the control plane (which answers) and the client (which reads), so it imports
nothing of either: only pydantic and the error tree. The shape is CloudWatch's
``GetMetricStatistics``: ``{"Label", "Datapoints": [{"Timestamp", "Sum", ..., "Unit",
"ExtendedStatistics": {"p99": ...}}]}``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from orchestrator.errors import ValidationError

# How a metric's samples are kept, which decides the statistics it can answer.
#   count:    one sample per invocation (Invocations: 1; the error metrics: 0 or 1)
#   ratio:    Invocations over the mean instance count of the period (Sum only)
#   samples:  values kept in a Stat (latencies, setup time, CPU, memory)
#   level:    a time-weighted level (requests in flight)
Kind = Literal["count", "ratio", "samples", "level"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    kind: Kind
    description: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("Invocations", "None", "count", "requests answered by the endpoint"),
        MetricInfo("Invocation4XXErrors", "None", "count", "requests answered 4xx"),
        MetricInfo("Invocation5XXErrors", "None", "count", "requests answered 5xx"),
        MetricInfo("InvocationsPerInstance", "None", "ratio", "invocations / mean instance count"),
        MetricInfo("ModelLatency", "Microseconds", "samples", "time the model took"),
        MetricInfo("OverheadLatency", "Microseconds", "samples", "time added by routing"),
        MetricInfo("ConcurrentRequests", "None", "level", "requests in flight"),
        MetricInfo("ModelSetupTime", "Microseconds", "samples", "replica start to ready"),
        MetricInfo("CPUUtilization", "Percent", "samples", "replica CPU (100 = one core)"),
        MetricInfo("MemoryUtilization", "Percent", "samples", "replica RSS of host memory"),
    )
}

BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^p(\d{1,3}(?:\.\d{1,6})?)$")
MAX_DATAPOINTS = 1440
RESOLUTION_SECONDS = 1


def metric_info(name: str) -> MetricInfo:
    info = METRICS.get(name)
    if info is None:
        raise ValidationError(
            f"MetricName: unknown metric {name!r}; use one of {', '.join(METRICS)}",
            field="MetricName",
        )
    return info


@lru_cache(maxsize=256)
def percentile_of(statistic: str) -> float | None:
    """``"p99"`` -> 99.0, ``"p99.9"`` -> 99.9; None for a basic statistic or a bad name.
    Cached: a query asks it once per datapoint (1,440 for a day at period 60)."""
    m = _PERCENTILE.match(statistic)
    if m is None:
        return None
    q = float(m.group(1))
    return q if 0.0 <= q <= 100.0 else None


def check_statistics(info: MetricInfo, statistics: list[str]) -> list[str]:
    """The statistics, validated against the metric; errors name ``Statistics`` and the fix."""
    if not statistics:
        raise ValidationError(
            "Statistics: ask for at least one statistic, e.g. Statistics=Sum", field="Statistics"
        )
    for s in statistics:
        if s in BASIC_STATISTICS:
            if info.kind == "ratio" and s != "Sum":
                raise ValidationError(
                    f"Statistics: {info.name} supports only Sum (got {s!r})", field="Statistics"
                )
            continue
        if percentile_of(s) is None:
            raise ValidationError(
                f"Statistics: unknown statistic {s!r}; use {', '.join(BASIC_STATISTICS)} or a "
                "percentile p0..p100 such as p99 or p99.9",
                field="Statistics",
            )
        if info.kind in ("count", "ratio"):
            raise ValidationError(
                f"Statistics: percentiles ({s}) apply to latencies, setup time, concurrency, "
                f"CPU and memory, not to {info.name}; use Sum or Average",
                field="Statistics",
            )
    return list(dict.fromkeys(statistics))


def periods(period: int, start: datetime, end: datetime) -> tuple[int, int]:
    """(first period's start in epoch seconds, number of periods) for a query; periods are
    aligned to multiples of ``period`` since the epoch, so 60 s periods start on the minute.
    Errors name ``Period`` or ``StartTime`` and say the fix."""
    if period <= 0 or period % RESOLUTION_SECONDS:
        raise ValidationError(
            f"Period: must be a positive multiple of {RESOLUTION_SECONDS} s (got {period})",
            field="Period",
        )
    if start >= end:
        raise ValidationError(
            f"StartTime: {start.isoformat()} is not before EndTime {end.isoformat()}",
            field="StartTime",
        )
    first = math.floor(start.timestamp() / period) * period
    count = math.ceil((end.timestamp() - first) / period)
    if count > MAX_DATAPOINTS:
        span = end.timestamp() - start.timestamp()
        raise ValidationError(
            f"Period: {span:g} s in periods of {period} s is {count} datapoints, over the "
            f"{MAX_DATAPOINTS} one query may return; use a Period of at least "
            f"{math.ceil(span / (MAX_DATAPOINTS - 1))} s or a shorter StartTime..EndTime",
            field="Period",
        )
    return first, count


class Datapoint(BaseModel):
    Timestamp: datetime
    SampleCount: float | None = None
    Average: float | None = None
    Sum: float | None = None
    Minimum: float | None = None
    Maximum: float | None = None
    ExtendedStatistics: dict[str, float] | None = None
    Unit: str


class MetricStatistics(BaseModel):
    """GetMetricStatistics' answer: one datapoint per period that has samples, oldest first."""

    Label: str
    Datapoints: list[Datapoint]
