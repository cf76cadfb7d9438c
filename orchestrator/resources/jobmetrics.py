"""A training job's metrics as time series (``GET /training-jobs/NAME/metrics``).

Every value each metric took, in the order the job printed them: when the line was written,
the 0-based occurrence index of the metric (``Step``) and the epoch the line names (or, for a
built-in algorithm's per-epoch lines, the epoch it is), as ``training.metricseries`` reads
them from the job log.

Beside them, the job's resource use per instance, sampled while it runs (CPUUtilization,
MemoryUtilization, DiskUtilization, GPUUtilization, GPUMemoryUtilization, SageMaker's names and
meanings; ``training.usage``): those series carry the ``Host`` they were sampled on
(``algo-1``, ...) and no epoch; the algorithm's metrics have no ``Host``.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.resources.common import Output

MIN_SERIES_POINTS = 2
MAX_SERIES_POINTS = 10_000
"""The bounds of ``MaxPoints``: each series thinned to at most that many points."""


class MetricPointOut(Output):
    Timestamp: datetime
    Value: float
    Step: int
    Epoch: int | None = None


class MetricSeriesOut(Output):
    MetricName: str
    # The instance a resource-usage series was sampled on; None for the algorithm's metrics.
    Host: str | None = None
    Points: list[MetricPointOut] = []


class TrainingJobMetricsResponse(Output):
    TrainingJobName: str
    Metrics: list[MetricSeriesOut] = []
