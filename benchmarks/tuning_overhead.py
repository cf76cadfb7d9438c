"""Tuner overhead on the process backend: a tuning job of trials that exit at once.

A real control plane (``orch server`` in a subprocess: process backend, SQLite, its own
controller thread; ``benchmarks/_server.py``) runs a Random tuning job whose trials are a
script-mode ``train.py`` that prints ``loss=<x>`` and exits. Reported: wall time from the
create call to Completed (polled every 20 ms), the create call's own latency, the sum of the
trials' run times (TrainingStartTime -> TrainingEndTime from each trial's Describe: the
supervisor's own times), the goal bound 1.3 x (sum / parallel) + submit latency, and where
the rest went: how long each finished trial's slot stayed empty before the next trial was
created, and the tuning job's pass cadence.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
from _server import control_plane

from orchestrator.client import Client
from orchestrator.testing import tarball

TUNING = "/api/v1/hyper-parameter-tuning-jobs"
SCRIPT = "import os\nprint(f\"loss={os.environ.get('SM_HP_X', '0')}\")\n"


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _spec(name: str, uri: str, trials: int, parallel: int) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": trials,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
            },
            "RandomSeed": 0,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
            },
            "StaticHyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": uri,
            },
        },
    }


def _cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat (0, 0 where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _trials(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"MaxResults": 100}
        if token:
            params["NextToken"] = token
        page = http.get(f"{TUNING}/{name}/training-jobs", params=params).json()
        out += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return out


def overhead(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="tuning.py overhead")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=8)
    args = ap.parse_args(argv)
    with control_plane() as (url, key, _root):
        client = Client(url, key)
        http = client._http
        uri = "s3://orchestrator/overhead/source/sourcedir.tar.gz"
        client.upload_bytes(tarball({"train.py": SCRIPT}), uri)
        name = "overhead"
        cpu0 = _cpu()
        t0 = time.perf_counter()
        r = http.post(TUNING, json=_spec(name, uri, args.trials, args.parallel))
        submit = time.perf_counter() - t0
        r.raise_for_status()
        while True:
            described = http.get(f"{TUNING}/{name}").json()
            if described["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        cpu1 = _cpu()
        scraped = http.get("/metrics").text
        rows = _trials(http, name)
        runs = []
        for row in rows:
            d = client.describe_training_job(row["TrainingJobName"]).model_dump(mode="json")
            runs.append((row["TrainingJobName"], d))
        client.close()
    durations, created, ended, waits = [], [], [], []
    for _, d in runs:
        made = _at(d["CreationTime"])
        start, end = _at(d.get("TrainingStartTime")), _at(d.get("TrainingEndTime"))
        if start and end:
            durations.append((end - start).total_seconds())
            ended.append(end)
        if start and made:
            waits.append((start - made).total_seconds())
        created.append(made)
    total = sum(durations)
    bound = 1.3 * total / args.parallel + submit
    # A slot's gap: from a trial's end to the creation of the trial that took its place.
    ends = sorted(ended)
    news = sorted(c for c in created if c is not None)[args.parallel :]
    gaps = [(n - e).total_seconds() for e, n in zip(ends, news, strict=False)]
    counters = described["TrainingJobStatusCounters"]
    print(
        f"Tuner overhead: {args.trials} trials (a script that prints loss= and exits), "
        f"MaxParallelTrainingJobs {args.parallel}, Random, process backend"
    )
    print(f"  status {described['HyperParameterTuningJobStatus']}, counters {counters}")
    print(f"  submit latency (create call)      {submit * 1000:8.1f} ms")
    print(f"  wall, submit -> Completed         {wall:8.2f} s")
    print(
        f"  sum of trial run times            {total:8.2f} s  (mean {statistics.mean(durations):.3f}"
        f" s, n={len(durations)})"
    )
    print(f"  bound 1.3 x sum/{args.parallel} + submit      {bound:8.2f} s")
    print(f"  wall / bound                      {wall / bound:8.2f}  (goal <= 1.00)")
    if gaps:
        print(
            f"  slot idle, trial end -> next create: mean {statistics.mean(gaps):.3f} s, "
            f"median {statistics.median(gaps):.3f} s, max {max(gaps):.3f} s"
        )
    if waits:
        print(f"  trial create -> TrainingStartTime: mean {statistics.mean(waits):.3f} s")
    print(
        f"  wall / ceil(trials / parallel) = {wall / -(-args.trials // args.parallel):.3f} s a wave"
    )
    if cpu1[1] > cpu0[1]:
        busy = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
        print(f"  machine CPU busy during the run: {busy:.0%} of {os.cpu_count()} cores")
    for kind in ("HyperParameterTuningJob", "TrainingJob"):
        count, seconds = _reconciles(scraped, kind)
        if count:
            print(
                f"  {kind} reconciles: {count:.0f} ({count / wall:.1f}/s), "
                f"mean {seconds / count * 1000:.1f} ms, {seconds:.2f} s in all"
            )
    return 0


def _reconciles(text: str, kind: str) -> tuple[float, float]:
    """(count, sum of seconds) of orch_reconcile_seconds for ``kind`` from /metrics."""
    count = total = 0.0
    for line in text.splitlines():
        if f'kind="{kind}"' not in line:
            continue
        if line.startswith("orch_reconcile_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith("orch_reconcile_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
    return count, total
