"""Endpoint monitoring: CloudWatch-like time series of invocations, latencies, concurrency,
instances, setup time and replica usage, kept in memory by the control plane.

- ``series.SeriesStore`` records (router and controller) and answers queries,
- ``shapes`` holds the metric catalog and the answer's shape (shared with the client, so this
  package's ``__init__`` imports only it: the client stays free of the server side),
- ``usage`` samples replica processes' CPU and memory,
- ``sketch`` is the mergeable summary (log histogram) behind percentiles.
"""

from __future__ import annotations

from orchestrator.monitoring.shapes import METRICS, Datapoint, MetricInfo, MetricStatistics

__all__ = ["METRICS", "Datapoint", "MetricInfo", "MetricStatistics"]
