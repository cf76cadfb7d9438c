"""CloudWatch statistics of training jobs' resource use, as SageMaker publishes them: namespace
``/aws/sagemaker/TrainingJobs``, dimension ``Host`` = ``<job>/algo-N``, unit Percent, the
metrics of ``training.usage`` (CPUUtilization, MemoryUtilization, DiskUtilization,
GPUUtilization, GPUMemoryUtilization), computed per period from the job's kept samples
(``JobMetrics.usage``: every sample while the job has fewer than 10,000, evenly thinned past
that).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from orchestrator.monitoring.shapes import Datapoint, percentile_of
from orchestrator.training.metricseries import MetricPoint
from orchestrator.training.usage import METRICS

TRAINING_JOBS = "/aws/sagemaker/TrainingJobs"
UNIT = "Percent"


def job_host(namespace: str, metric: str, dims: list[tuple[str, str | None]]) -> (
    tuple[str, str] | None
):  # fmt: skip
    """(job, host) when the query names a job's usage metric, as SageMaker's dimensions do."""
    if namespace != TRAINING_JOBS or metric not in METRICS or len(dims) != 1:
        return None
    name, value = dims[0]
    if name != "Host" or not value:
        return None
    job, _, host = value.rpartition("/")
    return (job, host) if job and host else None


def datapoints(
    points: list[MetricPoint],
    *,
    start: datetime,
    end: datetime,
    period: int,
    statistics: list[str],
) -> list[Datapoint]:
    """One datapoint per period (from ``start``) that has samples, oldest first."""
    buckets: dict[int, list[float]] = {}
    for p in points:
        if start <= p.timestamp < end:
            k = int((p.timestamp - start).total_seconds() // period)
            buckets.setdefault(k, []).append(p.value)
    out = []
    for k in sorted(buckets):
        values = sorted(buckets[k])
        point = Datapoint(Timestamp=start + timedelta(seconds=k * period), Unit=UNIT)
        extended: dict[str, float] = {}
        for s in statistics:
            if s == "SampleCount":
                point.SampleCount = float(len(values))
            elif s == "Average":
                point.Average = sum(values) / len(values)
            elif s == "Sum":
                point.Sum = sum(values)
            elif s == "Minimum":
                point.Minimum = values[0]
            elif s == "Maximum":
                point.Maximum = values[-1]
            else:
                q = percentile_of(s)
                if q is not None:  # nearest rank
                    extended[s] = values[max(0, math.ceil(q / 100 * len(values)) - 1)]
        if extended:
            point.ExtendedStatistics = extended
        out.append(point)
    return out
