"""A training job's metrics as time series, read from its log: every value, not only the last.

``SeriesParser`` is fed the job log's bytes in order, in chunks cut anywhere (a line split
across two chunks is held until its newline arrives), and searches each complete line with the
job's metric patterns (``training.contract.metric_patterns``: its ``MetricDefinitions`` and a
built-in algorithm's own). Each match is a ``MetricPoint``:

- ``timestamp``: when the line was written (the caller's ``time_at(offset)``, from the log's
  time marks where the backend keeps them);
- ``step``: the 0-based occurrence index of that metric in the job's output (a value that does
  not parse as a finite number is no point and takes no step);
- ``epoch``: the epoch the same line names (``epoch=3``, ``Epoch 3/10``, ``#epoch: 3``,
  ``epoch 3``), else, for the metrics named ``per_epoch`` (the built-in algorithms print
  ``train:loss=...`` and ``validation:loss=...`` once per epoch, with no number), ``step + 1``;
  else None.

A multi-host job's log tags each host's lines (``[algo-2] ...``): the series are algo-1's
lines and the supervisor's untagged ones (as Kubernetes reads algo-1's log for the metrics),
the tag removed, so they are the same on every backend.

Memory is bounded whatever the job prints: at most ``max_points`` points are kept per metric
(and ``MAX_METRICS`` metrics). When a metric reaches the cap, every other kept point is dropped
and the stride doubles: what is kept is every k-th occurrence (steps 0, k, 2k, ... for the
smallest power of two k that fits), evenly spread over the whole run, plus the latest point,
which is always kept (the final value and early stopping need it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.training.joblog import HOST_TAG

MAX_POINTS = 10_000
MAX_METRICS = 200  # a job defines at most 40 MetricDefinitions; built-ins add a few dozen
MAX_LINE = 64 << 10  # a longer "line" is not a metric line: it is dropped, not buffered
EPOCH = re.compile(r"(?i)\bepoch\b\s*[:=#]?\s*#?\s*(\d+)")
FIRST_HOST = "algo-1"


@dataclass(frozen=True)
class MetricPoint:
    timestamp: datetime
    value: float
    step: int
    epoch: int | None


@dataclass
class _Series:
    """One metric's kept points: every ``stride``-th occurrence, and the latest one."""

    max_points: int
    stride: int = 1
    count: int = 0
    kept: list[MetricPoint] = field(default_factory=list)
    last: MetricPoint | None = None

    def add(self, point: MetricPoint) -> None:
        self.count += 1
        self.last = point
        if point.step % self.stride:
            return
        self.kept.append(point)
        if len(self.kept) >= self.max_points:
            # Kept steps are multiples of the stride; keep the multiples of twice the stride.
            self.stride *= 2
            self.kept = [p for p in self.kept if p.step % self.stride == 0]

    def points(self) -> list[MetricPoint]:
        if self.last is not None and (not self.kept or self.kept[-1] is not self.last):
            return [*self.kept, self.last]
        return list(self.kept)


def epoch_of(line: str) -> int | None:
    """The epoch number a line names, if any."""
    m = EPOCH.search(line)
    return int(m.group(1)) if m else None


class SeriesParser:
    """Reads metric points from a log fed in order (see the module docstring)."""

    def __init__(
        self,
        patterns: Sequence[tuple[str, re.Pattern[str]]],
        *,
        per_epoch: Iterable[str] = (),
        max_points: int = MAX_POINTS,
    ) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self._patterns = list(patterns)
        self._per_epoch = frozenset(per_epoch)
        self._max_points = max_points
        self._series: dict[str, _Series] = {}
        self._pending = bytearray()
        self._pending_at = 0  # the offset where the held (incomplete) line starts
        self._skipping = False  # inside an over-long line: dropped up to its newline
        self.offset = 0  # bytes fed so far

    def feed(self, data: bytes, time_at: Callable[[int], datetime]) -> None:
        """The next bytes of the log; ``time_at(offset)`` is when the line starting at that
        byte offset was written."""
        start = 0
        base = self.offset
        self.offset += len(data)
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self._skipping:
                self._skipping = False
            elif self._pending:
                self._pending += data[start:nl]
                self._line(bytes(self._pending), self._pending_at, time_at)
            else:
                self._line(data[start:nl], base + start, time_at)
            self._pending.clear()
            start = nl + 1
        rest = data[start:]
        if not rest or self._skipping:
            return
        if not self._pending:
            self._pending_at = base + start
        self._pending += rest
        if len(self._pending) > MAX_LINE:
            self._pending.clear()
            self._skipping = True

    def _line(self, raw: bytes, offset: int, time_at: Callable[[int], datetime]) -> None:
        if len(raw) > MAX_LINE:
            return
        line = raw.decode("utf-8", "replace").removesuffix("\r")
        tag = HOST_TAG.match(line) if line[:1] == "[" else None
        if tag is not None:
            if tag.group(1) != FIRST_HOST:
                return
            line = line[tag.end() :]
        when: datetime | None = None
        epoch: int | None = -1  # not read yet: only lines with a metric are searched for it
        for name, pattern in self._patterns:
            m = pattern.search(line)
            if m is None:
                continue
            try:
                value = float(m.group(1))
            except (ValueError, IndexError):
                continue
            if not math.isfinite(value):
                continue
            series = self._series.get(name)
            if series is None:
                if len(self._series) >= MAX_METRICS:
                    continue
                series = self._series[name] = _Series(self._max_points)
            if when is None:
                when = time_at(offset)
                epoch = epoch_of(line)
            step = series.count
            if epoch is None and name in self._per_epoch:
                point_epoch: int | None = step + 1
            else:
                point_epoch = epoch
            series.add(MetricPoint(when, value, step, point_epoch))

    @property
    def series(self) -> dict[str, list[MetricPoint]]:
        """Each metric's points, oldest first (metrics in the order first seen)."""
        return {name: s.points() for name, s in self._series.items()}

    def last(self) -> dict[str, MetricPoint]:
        """Each metric's latest point (SageMaker's final metric value)."""
        return {name: s.last for name, s in self._series.items() if s.last is not None}


def downsample(points: Sequence[MetricPoint], max_points: int) -> list[MetricPoint]:
    """At most ``max_points`` (>= 2) of ``points``, for drawing: the first and the last, and
    from each of ``(max_points - 2) // 2`` equal buckets of those between, its smallest and
    its largest value (in their order), so a spike survives. Fewer points come back whole."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return list(points)
    inner = points[1:-1]
    buckets = (max_points - 2) // 2
    kept: list[MetricPoint] = [points[0]]
    for b in range(buckets):
        part = inner[b * len(inner) // buckets : (b + 1) * len(inner) // buckets]
        if not part:
            continue
        low = min(range(len(part)), key=lambda i: part[i].value)
        high = max(range(len(part)), key=lambda i: part[i].value)
        kept.extend(part[i] for i in sorted({low, high}))
    kept.append(points[-1])
    return kept
