"""The training queue drains through control-plane crashes: a real ``orch server`` (process
backend, 4 job slots) is killed with SIGKILL, twice, while a queue of no-op jobs of mixed
priorities drains, and restarted on the same home each time. Every job runs exactly once, to
completion, and the jobs start in the queue's order (priority first)."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.resources.training import DescribeTrainingJobResponse
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env, source_tarball

pytestmark = [pytest.mark.slow, pytest.mark.faults]

# The figure is 200 (ORCH_TEST_QUEUE_JOBS=200); 80 keep the test near two minutes on
# a small shared machine, where a no-op job costs about a second of CPU (the supervisor's
# start) and the queue drains at about one job a second.
JOBS = int(os.environ.get("ORCH_TEST_QUEUE_JOBS", "80"))
SLOTS = 4
SOURCE = "s3://orchestrator/queue-faults/sourcedir.tar.gz"
# Waits for the gate (while the queue is filled), then appends its name and the time.
NOOP = """\
import os, time
gate = os.environ.get("GATE")
while gate and not os.path.exists(gate):
    time.sleep(0.05)
with open(os.environ["MARKER"], "a") as f:
    f.write("%s %f\\n" % (os.environ["JOB"], time.time()))
"""


def _priority(i: int) -> int | None:
    """A mix: every third job urgent, every third one unhurried, the rest the default."""
    return {0: None, 1: 10, 2: -5}[i % 3]


def _create(c: Client, name: str, marker: Path, priority: int | None, gate: Path | None) -> None:
    env = {"JOB": name, "MARKER": str(marker)}
    if gate is not None:
        env["GATE"] = str(gate)
    spec: dict[str, object] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": "train.py", "sagemaker_submit_directory": SOURCE},
        "Environment": env,
    }
    if priority is not None:
        spec["Priority"] = priority
    c.create_training_job(spec)


def _lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


def _starting(job: DescribeTrainingJobResponse) -> float:
    found = [t.StartTime for t in job.SecondaryStatusTransitions if t.Status == "Starting"]
    assert len(found) == 1, f"{job.TrainingJobName}: Starting transitions {found}"
    return found[0].timestamp()


def test_a_queue_drains_through_control_plane_crashes_each_job_once_in_priority_order(
    tmp_path: Path,
) -> None:
    server = RunningServer(
        root=tmp_path,
        env=server_env(
            tmp_path,
            ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS=str(SLOTS),
            ORCH_CONTROLLER__MAX_QUEUED_TRAINING_JOBS=str(JOBS + SLOTS),
        ),
    )
    marker, gate = tmp_path / "ran.txt", tmp_path / "gate"
    started = time.monotonic()
    server.start()
    try:
        c = server.client()
        c.upload_bytes(source_tarball({"train.py": NOOP}), SOURCE)
        # The slots are held while the queue fills (the gate), so that every queued job is
        # waiting before the first of them may start: the start order is then the queue's.
        holders = [f"hold-{k}" for k in range(SLOTS)]
        for name in holders:
            _create(c, name, marker, 1000, gate)
        names = [f"job-{i:03d}" for i in range(JOBS)]
        priority = {name: _priority(i) or 0 for i, name in enumerate(names)}
        priority.update(dict.fromkeys(holders, 1000))
        with ThreadPoolExecutor(4) as pool:  # the order they are created in: CreationTime
            list(pool.map(lambda i: _create(c, names[i], marker, _priority(i), None), range(JOBS)))
        assert not _lines(marker), "a job ran while the slots were held"
        gate.touch()
        opened = time.monotonic()

        # SIGKILL mid-drain, twice, each time restarted on the same home.
        killed_at, restart_seconds = [], 0.0
        for share in (1, 2):
            deadline = time.monotonic() + 90
            while len(_lines(marker)) < len(names) * share // 3:
                assert time.monotonic() < deadline, f"only {len(_lines(marker))} jobs ran"
                time.sleep(0.05)
            server.kill()
            killed_at.append(len(_lines(marker)))
            down = time.monotonic()
            server.start()
            restart_seconds += time.monotonic() - down
            c = server.client()

        everyone = holders + names
        deadline = time.monotonic() + 120
        while len(_lines(marker)) < len(everyone):
            assert time.monotonic() < deadline, f"{len(_lines(marker))} of {len(everyone)} ran"
            time.sleep(0.2)
        drained = time.monotonic()
        jobs = {name: c.wait_for_training_job(name, timeout=30, poll=0.1) for name in everyone}
    finally:
        server.stop()
        _kill_leftovers(tmp_path / "home")
    took = time.monotonic() - started

    # Exactly once: each name in the marker once, one attempt each, every job Completed.
    ran = Counter(line.split()[0] for line in _lines(marker))
    assert sorted(ran) == sorted(everyone), set(everyone) ^ set(ran)
    assert [n for n, k in ran.items() if k > 1] == []
    work = tmp_path / "home" / "work" / "training-jobs"
    for name, job in jobs.items():
        assert job.TrainingJobStatus == "Completed", (name, job.FailureReason)
        assert job.Attempt == 1, (name, job.Attempt)
        assert [a.name for a in (work / name).glob("attempt-*")] == ["attempt-1"], name

    # The queue's order (priority, then creation): every queued job waited before any of them
    # started (the gate), so a job starts after one ahead of it in the queue only among the 4
    # that may start together.
    queue = sorted(names, key=lambda n: (-priority[n], jobs[n].CreationTime, n))
    ahead = {n: k for k, n in enumerate(queue)}
    by_start = sorted(names, key=lambda n: _starting(jobs[n]))
    rank = {n: k for k, n in enumerate(by_start)}
    late = [
        (later, first)
        for later, first in itertools.permutations(names, 2)
        if ahead[first] < ahead[later] and rank[first] > rank[later] + SLOTS - 1
    ]
    assert late == [], f"{len(late)} jobs started before one ahead of them: {late[:5]}"
    assert [priority[n] for n in by_start[:SLOTS]] == [10] * SLOTS, by_start[:SLOTS]
    print(
        json.dumps(
            {
                "jobs": len(everyone),
                "ran_when_killed": killed_at,
                "seconds": round(took, 1),
                "filling": round(opened - started, 1),
                "draining": round(drained - opened - restart_seconds, 1),
                "restarts": round(restart_seconds, 1),
            }
        )
    )
