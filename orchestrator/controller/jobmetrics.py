"""Training jobs' metric series, read from the job log that every backend serves.

``JobMetrics.series(name, spec)`` reads the job's log from where it stopped last time
(``Backend.read_job_logs``), feeds the new bytes to the job's ``SeriesParser`` and returns
every metric's points. A call when nothing new was written is one empty read. The parsers are
held in memory only (at most ``MAX_JOBS``, least recently used dropped): after a restart, or
for a dropped job, the log is simply read again from 0; the log is the truth.

A line's time is its time mark's where the backend keeps marks (``JobLogTimes``: the process
and Docker backends, the fake); lines no mark covers (Kubernetes pod logs keep none) get the
time this reader first saw them, never later than the first mark.

``JobMetrics.usage(name)`` does the same for the job's resource use (CPU, memory, disk, GPU
per host) from the samples a backend with ``JobUsage`` keeps (``training.usage``); a backend
without it has none.

Shared by the API (``GET /training-jobs/NAME/metrics``) and the reconciler's tuner (early
stopping and Hyperband read the running trials' series each pass): safe between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

from orchestrator.algorithms.hyperparameters import TRAINING_METRICS
from orchestrator.backends.base import Backend, JobLogTimes, JobUsage
from orchestrator.clock import Clock, SystemClock
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.training.contract import builtin_algorithm, metric_patterns
from orchestrator.training.joblog import ListMarks, Marks, mark_at
from orchestrator.training.metricseries import MetricPoint, SeriesParser
from orchestrator.training.usageseries import Key, UsageParser

CHUNK = 1 << 20
MAX_JOBS = 512


def parser_for(spec: CreateTrainingJobRequest) -> SeriesParser:
    """The parser of a job's output: its metric patterns; a built-in's per-epoch lines."""
    per_epoch = TRAINING_METRICS if builtin_algorithm(spec) is not None else ()
    return SeriesParser(metric_patterns(spec), per_epoch=per_epoch)


class JobMetrics:
    def __init__(self, backend: Backend, *, clock: Clock | None = None) -> None:
        self.backend = backend
        self.clock = clock or SystemClock()
        self._parsers: OrderedDict[str, SeriesParser] = OrderedDict()
        self._usage: OrderedDict[str, UsageParser] = OrderedDict()
        self._lock = threading.Lock()

    def series(self, name: str, spec: CreateTrainingJobRequest) -> dict[str, list[MetricPoint]]:
        """Every metric the job has printed so far, each as its points, oldest first."""
        with self._lock:
            parser = self._parsers.get(name)
            if parser is None:
                parser = self._parsers[name] = parser_for(spec)
                while len(self._parsers) > MAX_JOBS:
                    self._parsers.popitem(last=False)
            self._parsers.move_to_end(name)
            self._read(name, parser)
            return parser.series

    def usage(self, name: str) -> dict[Key, list[MetricPoint]]:
        """The job's resource use so far: each (metric, host)'s points, oldest first."""
        with self._lock:
            parser = self._usage_parser(name)
            return parser.series if parser is not None else {}

    def latest_usage(self, name: str) -> dict[Key, MetricPoint]:
        """Each (metric, host)'s latest sample."""
        with self._lock:
            parser = self._usage_parser(name)
            return parser.last() if parser is not None else {}

    def _usage_parser(self, name: str) -> UsageParser | None:
        if not isinstance(self.backend, JobUsage):
            return None
        parser = self._usage.get(name)
        if parser is None:
            parser = self._usage[name] = UsageParser()
            while len(self._usage) > MAX_JOBS:
                self._usage.popitem(last=False)
        self._usage.move_to_end(name)
        while True:
            data, _ = self.backend.read_job_usage(name, parser.offset, CHUNK)
            if not data:
                return parser
            parser.feed(data)

    def forget(self, name: str) -> None:
        """Drop what is held for the job (it was deleted, or its trial is done with)."""
        with self._lock:
            self._parsers.pop(name, None)
            self._usage.pop(name, None)

    def _read(self, name: str, parser: SeriesParser) -> None:
        while True:
            data, _ = self.backend.read_job_logs(name, parser.offset, CHUNK)
            if not data:
                return  # nothing (more) written: when nothing is new, one empty read
            self._feed(name, parser, data)

    def _feed(self, name: str, parser: SeriesParser, data: bytes) -> None:
        # Marks are written before their lines, so marks opened after the read cover it.
        marks: Marks = (
            self.backend.job_log_marks(name)
            if isinstance(self.backend, JobLogTimes)
            else ListMarks()
        )
        try:
            seen = self.clock.now()
            first = _ms_time(marks[0][1]) if len(marks) else None
            fallback = min(seen, first) if first is not None else seen

            parser.feed(data, _MarkCursor(marks, fallback).time_at)
        finally:
            marks.close()


class _MarkCursor:
    """``time_at(offset)`` for offsets that mostly rise (a feed's lines, in order): walks on
    from the last mark found instead of a binary search per line, and makes each mark's
    datetime once. A search per line over a file's marks costs a ``pread`` per step: the
    first read of a job log of 1,000,000 metric lines took 38 s through the API
    (benchmarks/console_load.py); ``python benchmarks/job_metrics_read.py`` compares the two."""

    WALK = 64  # further ahead than this many marks: search

    def __init__(self, marks: Marks, fallback: datetime) -> None:
        self.marks = marks
        self.count = len(marks)
        self.fallback = fallback
        self.k = -2  # not placed yet
        self.at: datetime = fallback

    def time_at(self, offset: int) -> datetime:
        marks, k = self.marks, self.k
        if k == -2 or (k >= 0 and marks[k][0] > offset):
            k = mark_at(marks, offset)  # the first line, or one behind the cursor
        else:
            steps = 0
            while k + 1 < self.count and marks[k + 1][0] <= offset:
                k += 1
                steps += 1
                if steps > self.WALK:
                    k = mark_at(marks, offset)
                    break
            if k == self.k:
                return self.at
        self.k = k
        self.at = _ms_time(marks[k][1]) if k >= 0 else self.fallback
        return self.at


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
