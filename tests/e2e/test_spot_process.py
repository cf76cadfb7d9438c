"""Managed spot on the real process backend: preempted (by request or by a higher-priority
job), stopped with SIGTERM and its grace, back in the queue, resumed from its checkpoint."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer, _kill_leftovers, script_job, server_env, wait_for_log

pytestmark = pytest.mark.slow

# One checkpoint per epoch; resumes after the last one; SIGTERM exits (as a spot job would).
SPOT_SCRIPT = """
import os, signal, sys, time
ckpt = os.environ["SM_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
done = sorted(int(f.split("-")[1]) for f in os.listdir(ckpt) if f.startswith("epoch-"))
start = done[-1] + 1 if done else 1
print("resuming from epoch %d" % start if done else "starting at epoch 1", flush=True)
for epoch in range(start, EPOCHS + 1):
    time.sleep(EPOCH_SECONDS)
    with open(os.path.join(ckpt, "epoch-%d" % epoch), "w") as f:
        f.write(str(epoch))
    print("epoch %d done" % epoch, flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("epochs %d" % EPOCHS)
"""


def spot_script(epochs: int, epoch_seconds: float) -> str:
    return SPOT_SCRIPT.replace("EPOCHS", str(epochs)).replace("EPOCH_SECONDS", str(epoch_seconds))


def spot_job(c: Client, name: str, script: str, max_wait: int = 300, **fields: object) -> None:
    script_job(
        c,
        name,
        script,
        EnableManagedSpotTraining=True,
        StoppingCondition={
            "MaxRuntimeInSeconds": min(120, max_wait),
            "MaxWaitTimeInSeconds": max_wait,
        },
        CheckpointConfig={"S3Uri": f"s3://orchestrator/{name}/checkpoints"},
        **fields,
    )


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.1)


def test_a_preempted_spot_job_resumes_from_its_checkpoint(server: RunningServer) -> None:
    c = server.client()
    spot_job(c, "spot", spot_script(6, 0.5), RetryStrategy={"MaximumRetryAttempts": 1})
    wait_for_log(c, "spot", "epoch 2 done")
    c.preempt_training_job("spot")
    job = c.wait_for_training_job("spot", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert job.PreemptionCount == 1
    assert [(a.AttemptNumber, a.Outcome) for a in job.Attempts] == [
        (1, "Preempted"),
        (2, "Completed"),
    ]
    assert job.Attempts[0].FailureReason == "Preempted: Preempted by request (orch jobs preempt)"
    log = c.training_job_logs("spot").text
    assert "got SIGTERM" in log
    first, second = (c.training_job_logs("spot", attempt=n).text for n in (1, 2))
    resumed = re.search(r"resuming from epoch (\d+)", second)
    assert resumed is not None, second
    # Every epoch the first attempt finished is in place; the rest run once.
    last = max(int(n) for n in re.findall(r"epoch (\d+) done", first))
    assert int(resumed.group(1)) == last + 1
    assert re.findall(r"epoch (\d+) done", second) == [str(n) for n in range(last + 1, 7)]
    statuses = [t.Status for t in job.SecondaryStatusTransitions]
    i = statuses.index("Interrupted")
    assert statuses[i + 1] == "Pending", statuses
    assert "Training" in statuses[i + 2 :] and statuses[-1] == "Completed", statuses
    # Billed: the attempts' run times (the wait in between is not); within the job's span.
    ran = sum((a.EndTime - a.StartTime).total_seconds() for a in job.Attempts)  # type: ignore[operator]
    assert job.BillableTimeInSeconds == int(ran)
    assert job.TrainingTimeInSeconds is not None
    assert job.BillableTimeInSeconds <= job.TrainingTimeInSeconds
    # The preemption did not use up the retry.
    restarts = [t.StatusMessage for t in job.SecondaryStatusTransitions if t.Status == "Restarting"]
    assert restarts == ["Resuming after a preemption: attempt 2"]
    assert job.RetryStrategy is not None and job.RetryStrategy.MaximumRetryAttempts == 1


def test_a_non_spot_job_cannot_be_preempted(server: RunningServer) -> None:
    c = server.client()
    script_job(c, "plain", "import time\ntime.sleep(30)\n")
    with pytest.raises(ValidationError) as e:
        c.preempt_training_job("plain")
    assert e.value.field == "EnableManagedSpotTraining"
    c.stop_training_job("plain")
    assert c.wait_for_training_job("plain", timeout=30, poll=0.1).TrainingJobStatus == "Stopped"


@pytest.fixture
def one_slot(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = RunningServer(
        root=tmp_path,
        env=server_env(tmp_path, ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS="1"),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def test_a_higher_priority_job_preempts_a_spot_job_which_then_resumes(
    one_slot: RunningServer,
) -> None:
    c = one_slot.client()
    spot_job(c, "low", spot_script(5, 0.5), Priority=-10)
    wait_for_log(c, "low", "epoch 1 done")
    script_job(c, "high", "import time\ntime.sleep(1)\nprint('high done')\n", Priority=10)
    high = c.wait_for_training_job("high", timeout=60, poll=0.1)
    assert high.TrainingJobStatus == "Completed", high.FailureReason
    low = c.wait_for_training_job("low", timeout=60, poll=0.1)
    assert low.TrainingJobStatus == "Completed", low.FailureReason
    assert low.PreemptionCount == 1
    assert [a.Outcome for a in low.Attempts] == ["Preempted", "Completed"]
    assert low.Attempts[0].FailureReason is not None
    assert "job 'high' (Priority 10) needs its capacity" in low.Attempts[0].FailureReason
    # One slot: the high job ran between the low job's attempts.
    assert low.Attempts[0].EndTime is not None and low.Attempts[1].StartTime is not None
    assert high.TrainingStartTime is not None and high.TrainingEndTime is not None
    assert low.Attempts[0].EndTime <= high.TrainingStartTime
    assert high.TrainingEndTime <= low.Attempts[1].StartTime
    second = c.training_job_logs("low", attempt=2).text
    assert re.search(r"resuming from epoch [2-5]", second), second


def test_a_running_job_that_is_not_spot_is_never_preempted(one_slot: RunningServer) -> None:
    c = one_slot.client()
    script_job(c, "steady", "import time\nprint('up', flush=True)\ntime.sleep(3)\n", Priority=-10)
    wait_for_log(c, "steady", "up")
    script_job(c, "urgent", "print('urgent done')\n", Priority=10)
    time.sleep(1.0)
    urgent = c.describe_training_job("urgent")
    assert urgent.SecondaryStatus == "Pending"
    steady = c.wait_for_training_job("steady", timeout=60, poll=0.1)
    assert steady.TrainingJobStatus == "Completed"
    assert steady.PreemptionCount == 0 and len(steady.Attempts) <= 1
    urgent = c.wait_for_training_job("urgent", timeout=60, poll=0.1)
    assert urgent.TrainingJobStatus == "Completed"


def test_max_wait_time_exceeded_while_waiting_after_a_preemption(
    one_slot: RunningServer,
) -> None:
    c = one_slot.client()
    spot_job(c, "waits", spot_script(100, 0.5), max_wait=8, Priority=-10)
    wait_for_log(c, "waits", "epoch 1 done")
    script_job(c, "hog", "import time\ntime.sleep(20)\n", Priority=10)
    job = c.wait_for_training_job("waits", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Stopped"
    assert job.SecondaryStatus == "MaxWaitTimeExceeded"
    assert job.PreemptionCount == 1
    assert [a.Outcome for a in job.Attempts] == ["Preempted"]
    assert job.StopReason is not None and "MaxWaitTimeInSeconds=8" in job.StopReason
    statuses = [t.Status for t in job.SecondaryStatusTransitions]
    assert statuses[-3:] == ["Interrupted", "Pending", "MaxWaitTimeExceeded"], statuses
    c.stop_training_job("hog")


def test_a_spot_job_that_ignores_sigterm_is_killed_after_its_grace_and_resumes(
    server: RunningServer,
) -> None:
    """The grace (ORCH_CONTROLLER__STOP_GRACE_SECONDS=2 here) is given in full, then SIGKILL;
    the attempt is still Preempted (not a failure) and the job resumes."""
    c = server.client()
    stubborn = spot_script(12, 0.5).replace(
        "signal.signal(signal.SIGTERM, on_term)",
        "signal.signal(signal.SIGTERM, lambda *_: print('ignoring SIGTERM', flush=True))",
    )
    spot_job(c, "stubborn", stubborn)
    wait_for_log(c, "stubborn", "epoch 1 done")
    c.preempt_training_job("stubborn")
    job = c.wait_for_training_job("stubborn", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert [a.Outcome for a in job.Attempts] == ["Preempted", "Completed"]
    first = c.training_job_logs("stubborn", attempt=1).text
    assert "ignoring SIGTERM" in first
    interrupted = next(t for t in job.SecondaryStatusTransitions if t.Status == "Interrupted")
    end = job.Attempts[0].EndTime
    assert end is not None
    assert (end - interrupted.StartTime).total_seconds() >= 2.0
    second = c.training_job_logs("stubborn", attempt=2).text
    assert "resuming from epoch" in second, first + "\n----\n" + second
