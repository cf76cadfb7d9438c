"""What reading a training job's metric series from its log costs (``JobMetrics.series``).

A job log written by ``training.joblog.JobLog`` (the supervisor's format, time marks beside
it) with ``--lines`` metric lines of two metrics; then: the first read (from 0: a new reader,
or a restarted control plane), a call when nothing new was written (what the tuner pays per
running trial per pass), and a call after 100 new lines.

    python benchmarks/job_metrics.py [--lines 200000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from orchestrator.backends.base import Backend
from orchestrator.backends.process.jobs import read_log
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.training.joblog import FileMarks, JobLog, Marks, times_path

SPEC = CreateTrainingJobRequest.model_validate(
    {
        "TrainingJobName": "bench",
        "AlgorithmSpecification": {
            "TrainingImage": "example/train:1",
            "MetricDefinitions": [
                {"Name": "loss", "Regex": r"loss=(\S+)"},
                {"Name": "acc", "Regex": r"acc=(\S+)"},
            ],
        },
    }
)


class FileBackend:
    """The process backend's two log reads, over one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        return read_log(self.path, offset, limit)

    def job_log_marks(self, name: str) -> Marks:
        return FileMarks(times_path(self.path))


def timed(fn: Any, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.log"
        log = JobLog(path)
        for i in range(args.lines):
            log.write(f"epoch={i // 100} loss={1 / (i + 1):.6f} acc={i / args.lines:.4f}\n")
        backend = cast(Backend, FileBackend(path))
        jm = JobMetrics(backend)
        first = timed(lambda: JobMetrics(backend).series("bench", SPEC), 3)
        jm.series("bench", SPEC)
        idle = timed(lambda: jm.series("bench", SPEC), 200)

        def append_and_read() -> None:
            for _ in range(100):
                log.write("loss=0.1 acc=0.9\n")
            jm.series("bench", SPEC)

        more = timed(append_and_read, 20)
        kept = {k: len(v) for k, v in jm.series("bench", SPEC).items()}
        log.close()
    print(f"{args.lines} lines, 2 metrics; points kept: {kept}")
    print(f"{'read':<34}{'median':>12}")
    print(f"{'first read (from 0)':<34}{first * 1e3:>10.1f}ms")
    print(f"{'nothing new (one empty read)':<34}{idle * 1e6:>10.1f}us")
    print(f"{'100 new lines (write + read)':<34}{more * 1e3:>10.2f}ms")


if __name__ == "__main__":
    main()
