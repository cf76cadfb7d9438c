"""Endpoint monitoring: CloudWatch-like time series of invocations, latencies, concurrency,
instances, setup time and replica usage, kept in memory by the control plane and durably in
its SQL store.

- ``series.SeriesStore`` records (router and controller) and answers queries,
- ``shapes`` holds the metric catalog and the answer's shape (shared with the client, so this
  package's ``__init__`` imports only it: the client stays free of the server side),
- ``usage`` samples replica processes' CPU and memory,
- ``sketch`` is the mergeable summary (log histogram) behind percentiles,
- ``rollup`` (pure) a bucket as a stored point, the 1-minute, 5-minute and 1-hour merges, a
  stat as bytes, and which resolution answers a period,
- ``archive`` flushes the series to the SQL store (``store.metrics_sql``) off the hot path,
  reloads them on start and answers what memory no longer holds,
- ``usermetrics`` is PutMetricData: checks, storage, statistics by period.
"""

from __future__ import annotations

from orchestrator.monitoring.shapes import METRICS, Datapoint, MetricInfo, MetricStatistics

__all__ = ["METRICS", "Datapoint", "MetricInfo", "MetricStatistics"]
