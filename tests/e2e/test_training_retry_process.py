"""Retries on the real process backend: out-of-memory attempts retried, exit-code policy,
every attempt recorded with its own log."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer, script_job

pytestmark = pytest.mark.slow

# Counts its runs in a file outside the job (each attempt has a fresh /opt/ml).
COUNTED = """
import os, signal, sys
path = os.environ["COUNT_FILE"]
n = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(n))
print("run %d" % n, flush=True)
{body}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("run %d" % n)
"""

# Past the heap limit of ml.m5.large (8 GiB, RLIMIT_DATA): the allocation fails at once.
OOM_TWICE = COUNTED.format(body="if n <= 2:\n    big = bytearray(64 << 30)")


def test_an_attempt_out_of_memory_twice_then_completing_has_three_attempts(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    script_job(
        c,
        "oom-twice",
        OOM_TWICE,
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        RetryStrategy={"MaximumRetryAttempts": 2},
        Environment={"COUNT_FILE": str(tmp_path / "count")},
    )
    job = c.wait_for_training_job("oom-twice", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert job.FailureReason is None
    assert [(a.AttemptNumber, a.Outcome, a.Retried) for a in job.Attempts] == [
        (1, "Failed", True),
        (2, "Failed", True),
        (3, "Completed", False),
    ]
    for a in job.Attempts[:2]:
        assert a.FailureReason is not None
        assert a.FailureReason.startswith(
            "AlgorithmError: OutOfMemory: the training process raised MemoryError at the "
            "memory limit of ml.m5.large (8192 MiB"
        ), a.FailureReason
    restarts = [t.StatusMessage for t in job.SecondaryStatusTransitions if t.Status == "Restarting"]
    assert restarts[0].startswith(
        "Restarting in 0.2 s (attempt 2 of 3; retried for an out-of-memory"
    )
    assert restarts[1].startswith("Restarting in 0.4 s (attempt 3 of 3;")
    assert job.BillableTimeInSeconds is not None and job.TrainingTimeInSeconds is not None
    assert job.BillableTimeInSeconds <= job.TrainingTimeInSeconds
    # One log, every attempt marked; each attempt's part on its own.
    whole = c.training_job_logs("oom-twice").text
    for n in (1, 2, 3):
        assert f"[orchestrator] === attempt {n} ===\n" in whole
    parts = [c.training_job_logs("oom-twice", attempt=n).text for n in (1, 2, 3)]
    for n, part in enumerate(parts, start=1):
        assert part.startswith(f"[orchestrator] === attempt {n} ===\n"), part
        assert f"run {n}\n" in part
        assert all(f"run {m}\n" not in part for m in (1, 2, 3) if m != n)
    assert "MemoryError" in parts[0] and "MemoryError" not in parts[2]
    assert "".join(parts) == whole
    with pytest.raises(ValidationError) as e:
        c.training_job_logs("oom-twice", attempt=4)
    assert "has attempts 1..3" in str(e.value)


def test_a_sigkill_the_orchestrator_did_not_send_is_retried_as_out_of_memory(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    body = "if n == 1:\n    os.kill(os.getpid(), signal.SIGKILL)"
    script_job(
        c,
        "killed-once",
        COUNTED.format(body=body),
        RetryStrategy={"MaximumRetryAttempts": 1},
        Environment={"COUNT_FILE": str(tmp_path / "count")},
    )
    job = c.wait_for_training_job("killed-once", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    first = job.Attempts[0]
    assert first.FailureReason is not None
    assert first.FailureReason.startswith("AlgorithmError: OutOfMemory: the training process was")
    assert "SIGKILL" in first.FailureReason


def test_exit_codes_are_retried_only_when_listed(server: RunningServer, tmp_path: Path) -> None:
    c = server.client()
    body = "sys.exit(3 if n == 1 else 4)"
    script_job(
        c,
        "exit-codes",
        COUNTED.format(body=body),
        RetryStrategy={"MaximumRetryAttempts": 2, "RetryableExitCodes": ["3"]},
        Environment={"COUNT_FILE": str(tmp_path / "count")},
    )
    job = c.wait_for_training_job("exit-codes", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason is not None
    assert job.FailureReason.startswith(
        "AlgorithmError: attempt 2 of 3: ExecuteUserScriptError: exit code 4"
    ), job.FailureReason
    assert [(a.Outcome, a.Retried) for a in job.Attempts] == [("Failed", True), ("Failed", False)]
    assert "retried for exit code 3 is in RetryStrategy.RetryableExitCodes" in "".join(
        t.StatusMessage for t in job.SecondaryStatusTransitions
    )
