"""The first read of a training job's metric series from its log: the API's ``GET
/api/v1/training-jobs/NAME/metrics`` (and the console's job page) after a restart, or for a
job nobody has asked about yet.

``JobMetrics`` reads the job log as the process backend keeps it (the log and its times file
of marks, ``training.joblog``) and times each metric line by its mark. Side by side in one
run: each line's time found by a binary search over the marks file (what was done before,
a ``pread`` per step) and by the cursor that walks on from the last mark
(``jobmetrics._MarkCursor``), with a mark every 2,000 lines (as a job printing in bursts
gets) and a mark per line (a job printing one line at a time).

    python benchmarks/job_metrics_read.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.controller import jobmetrics
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.training.joblog import MARK, FileMarks, Marks, mark_at

SPEC = CreateTrainingJobRequest.model_validate(
    {
        "TrainingJobName": "bench",
        "RoleArn": "arn:aws:iam::000000000000:role/r",
        "AlgorithmSpecification": {
            "TrainingImage": "example/train:1",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
        },
        "OutputDataConfig": {"S3OutputPath": "s3://bench/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
)


class LogOnDisk:
    """The two files of a job log, and the backend calls JobMetrics makes."""

    def __init__(self, root: Path, lines: int, every: int) -> None:
        self.log, self.times = root / f"job-{every}.log", root / f"job-{every}.log.times"
        data, marks, t0 = bytearray(), bytearray(), 1_700_000_000_000
        for i in range(lines):
            if i % every == 0:
                marks += MARK.pack(len(data), t0 + i)
            data += b"step=%d loss=%.6f\n" % (i, 1 / (i + 1))
        self.log.write_bytes(data)
        self.times.write_bytes(marks)
        self.size = len(data)

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        with open(self.log, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
        return data, offset + len(data)

    def job_log_marks(self, name: str) -> Marks:
        return FileMarks(self.times)


class SearchPerLine:
    """The time of each line by a binary search over the marks (the way before the cursor)."""

    def __init__(self, marks: Marks, fallback: datetime) -> None:
        self.marks, self.fallback = marks, fallback

    def time_at(self, offset: int) -> datetime:
        k = mark_at(self.marks, offset)
        if k < 0:
            return self.fallback
        return datetime.fromtimestamp(self.marks[k][1] / 1000, tz=UTC)


def first_read(backend: Any, how: Any) -> tuple[float, int]:
    saved = jobmetrics._MarkCursor
    jobmetrics._MarkCursor = how  # type: ignore[misc]
    try:
        started = time.perf_counter()
        series = JobMetrics(backend).series("bench", SPEC)
        return time.perf_counter() - started, len(series["loss"])
    finally:
        jobmetrics._MarkCursor = saved  # type: ignore[misc]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    print(f"first read of a job log of {args.lines:,} metric lines (JobMetrics.series)\n")
    print(f"{'marks':<22} {'MB':>6} {'search per line s':>18} {'cursor s':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for every, label in ((2000, "one per 2,000 lines"), (1, "one per line")):
            log = LogOnDisk(Path(tmp), args.lines, every)
            old, kept = first_read(log, SearchPerLine)
            new, kept_new = first_read(log, jobmetrics._MarkCursor)
            assert kept == kept_new
            print(f"{label:<22} {log.size / 1e6:>6.1f} {old:>18.2f} {new:>9.2f} {old / new:>6.1f}")


if __name__ == "__main__":
    main()
