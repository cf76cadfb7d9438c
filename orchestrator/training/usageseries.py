"""A job's resource usage as series, read back from its usage file (``training.usage``).

``UsageParser`` is fed the file's bytes in order, in chunks cut anywhere (a line is held until
its newline arrives), and keeps each (metric, host) pair's points as ``MetricPoint``s: the
sample's time, its 0-based index in that series (``Step``), no epoch. Memory is bounded as
the algorithm's metrics are (``training.metricseries``): at most ``max_points`` points per
series, every k-th sample and the latest; at most ``MAX_SERIES`` series. A line that is not a
sample (a torn or foreign line) is skipped.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from orchestrator.training.metricseries import MAX_LINE, MAX_POINTS, MetricPoint, _Series
from orchestrator.training.usage import METRICS

MAX_SERIES = 5 * 256  # five metrics on up to 256 hosts

Key = tuple[str, str]  # (metric name, host)


class UsageParser:
    def __init__(self, *, max_points: int = MAX_POINTS) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self._max_points = max_points
        self._series: dict[Key, _Series] = {}
        self._pending = bytearray()
        self.offset = 0  # bytes fed so far

    def feed(self, data: bytes) -> None:
        self.offset += len(data)
        lines = (bytes(self._pending) + data).split(b"\n")
        self._pending = bytearray(lines.pop())
        if len(self._pending) > MAX_LINE:
            self._pending.clear()  # not a sample line: dropped, never buffered without end
        for raw in lines:
            self._line(raw)

    def _line(self, raw: bytes) -> None:
        try:
            doc = json.loads(raw)
            at = datetime.fromtimestamp(int(doc["Timestamp"]) / 1000, tz=UTC)
            host = str(doc["Host"])
            values = doc["Metrics"]
            if not isinstance(values, dict):
                return
        except (ValueError, KeyError, TypeError, OverflowError):
            return
        for name in METRICS:
            value = values.get(name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            key = (name, host)
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= MAX_SERIES:
                    continue
                series = self._series[key] = _Series(self._max_points)
            series.add(MetricPoint(at, float(value), series.count, None))

    @property
    def series(self) -> dict[Key, list[MetricPoint]]:
        """Each (metric, host)'s points, oldest first, by host then in METRICS order."""
        order = {name: i for i, name in enumerate(METRICS)}
        keys = sorted(self._series, key=lambda k: (_host_order(k[1]), order[k[0]]))
        return {k: self._series[k].points() for k in keys}

    def last(self) -> dict[Key, MetricPoint]:
        return {k: s.last for k, s in self._series.items() if s.last is not None}


def _host_order(host: str) -> tuple[int, str]:
    _, _, n = host.rpartition("-")
    return (int(n), host) if n.isdigit() else (1 << 30, host)
