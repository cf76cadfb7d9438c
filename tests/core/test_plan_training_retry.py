"""Retries, backoff, the attempts history, preemption and MaxWaitTime in plan_training_job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from core_builders import NOW, at, desired_job, exited, job_state, running, training_spec

from orchestrator.controller.plan.retry import backoff_seconds, retry_cause, shell_exit_code
from orchestrator.controller.plan.training import DesiredJob, TrainingPolicy, plan_training_job
from orchestrator.controller.plan.types import Admission, LaunchJob, ObservedJob, StopJob
from orchestrator.resources.failures import FailureReason
from orchestrator.resources.training import RetryStrategy, TrainingJobState

POLICY = TrainingPolicy(stop_grace_seconds=30.0, retry_backoff_seconds=10.0)
LAUNCHED = job_state(Attempt=1, TrainingStartTime=NOW)


def spec(**fields: Any) -> Any:
    return training_spec(**fields)


def step(
    desired: DesiredJob,
    observed: ObservedJob | None,
    now: datetime,
    admission: Admission | None = None,
) -> tuple[Any, TrainingJobState]:
    plan = plan_training_job(desired, observed, now, POLICY, admission=admission)
    return plan, TrainingJobState.model_validate(plan.status)


def ended(kind: str | None, exit_code: int | None, exit_kind: Any = None, **kw: Any) -> ObservedJob:
    failure = FailureReason(kind=kind, message="it broke") if kind else None  # type: ignore[arg-type]
    outcome = kw.pop("outcome", "failed")
    return exited(outcome=outcome, exit_code=exit_code, failure=failure, exit_kind=exit_kind, **kw)


RETRY = {"MaximumRetryAttempts": 2}
CODES = {"MaximumRetryAttempts": 2, "RetryableExitCodes": ["3", "137-143"]}

# (id, RetryStrategy, observation) -> retried?
KINDS = [
    ("user exit, no strategy", None, ended("AlgorithmError", 3, "exit"), False),
    ("user exit, strategy", RETRY, ended("AlgorithmError", 3, "exit"), False),
    ("user exit listed", CODES, ended("AlgorithmError", 3, "exit"), True),
    ("user exit not listed", CODES, ended("AlgorithmError", 4, "exit"), False),
    ("signal 9 is 137, listed", CODES, ended("AlgorithmError", -9, "signal"), True),
    ("signal 9, not listed", RETRY, ended("AlgorithmError", -9, "signal"), False),
    ("container 143 listed", CODES, ended("AlgorithmError", 143, "signal"), True),
    ("oom, no strategy", None, ended("AlgorithmError", -9, "oom"), False),
    ("oom, strategy", RETRY, ended("AlgorithmError", -9, "oom"), True),
    ("oom in a container", RETRY, ended("AlgorithmError", 137, "oom"), True),
    ("internal error", RETRY, ended("InternalServerError", None), True),
    ("internal error, no strategy", None, ended("InternalServerError", None), False),
    ("supervisor died", RETRY, ended(None, -9, outcome=None), True),
    ("supervisor died, no strategy", None, ended(None, -9, outcome=None), False),
    ("client error", CODES, ended("ClientError", 3, "exit"), False),
    ("capacity error", CODES, ended("CapacityError", None), False),
]


@pytest.mark.parametrize(
    ("strategy", "observed", "retried"), [k[1:] for k in KINDS], ids=[k[0] for k in KINDS]
)
def test_what_is_retried(strategy: Any, observed: ObservedJob, retried: bool) -> None:
    extra = {"RetryStrategy": strategy} if strategy else {}
    plan, st = step(desired_job(spec=spec(**extra), status=LAUNCHED), observed, at(101))
    assert plan.actions == ()
    if retried:
        assert (st.TrainingJobStatus, st.SecondaryStatus) == ("InProgress", "Restarting")
        assert st.NextAttemptTime == at(111)
        assert plan.requeue_after == pytest.approx(10)
        assert [(a.AttemptNumber, a.Outcome, a.Retried) for a in st.Attempts] == [
            (1, "Failed", True)
        ]
    else:
        assert st.TrainingJobStatus == "Failed"
        assert st.NextAttemptTime is None
        assert [(a.AttemptNumber, a.Outcome, a.Retried) for a in st.Attempts] == [
            (1, "Failed", False)
        ]


def test_retry_cause_says_why() -> None:
    oom = FailureReason(kind="AlgorithmError", message="OutOfMemory: killed")
    strategy = RetryStrategy(MaximumRetryAttempts=1, RetryableExitCodes=["1-2"])
    assert retry_cause(strategy, oom, "oom", -9) == "an out-of-memory kill"
    assert retry_cause(strategy, oom, "exit", 2) == (
        "exit code 2 is in RetryStrategy.RetryableExitCodes"
    )
    assert retry_cause(None, oom, "oom", -9) is None
    assert (shell_exit_code(-9), shell_exit_code(3), shell_exit_code(None)) == (137, 3, None)


@pytest.mark.parametrize(
    ("retries_done", "seconds"),
    [(0, 10), (1, 20), (2, 40), (3, 80), (4, 160), (5, 320), (6, 360), (20, 360)],
)
def test_backoff_doubles_and_caps_at_six_minutes(retries_done: int, seconds: float) -> None:
    assert backoff_seconds(10, retries_done) == seconds


def run_to_end(
    strategy: dict[str, Any], outcomes: list[ObservedJob], *, base: float = 10.0
) -> tuple[TrainingJobState, list[float]]:
    """Drive a job through attempts that end as ``outcomes`` say; returns the final status
    and the backoffs waited."""
    policy = TrainingPolicy(stop_grace_seconds=30.0, retry_backoff_seconds=base)
    job_spec = spec(RetryStrategy=strategy)
    now = NOW
    st = plan_training_job(desired_job(spec=job_spec), None, now, policy).status
    waits: list[float] = []
    for observed in outcomes:
        attempt = st.Attempt
        started = now
        now = started + (observed.ended_at - NOW if observed.ended_at else at(0) - NOW)  # type: ignore[operator]
        seen = ObservedJob(
            **{**observed.__dict__, "attempt": attempt, "started_at": started, "ended_at": now}
        )
        plan = plan_training_job(desired_job(spec=job_spec, status=st), seen, now, policy)
        st = plan.status
        if not plan.active:
            return st, waits
        assert st.NextAttemptTime is not None
        wait = (st.NextAttemptTime - now).total_seconds()
        waits.append(wait)
        # Early: nothing launches; due: the next attempt does.
        early = plan_training_job(desired_job(spec=job_spec, status=st), seen, now, policy)
        assert early.actions == ()
        now = st.NextAttemptTime
        plan = plan_training_job(desired_job(spec=job_spec, status=st), seen, now, policy)
        assert [type(a) for a in plan.actions] == [LaunchJob]
        st = plan.status
        assert st.NextAttemptTime is None
        assert st.Attempt == attempt + 1
    raise AssertionError("the job did not end")


def test_oom_twice_then_completes_with_three_attempts_recorded() -> None:
    oom = ended("AlgorithmError", -9, "oom", ended_at=at(30))
    done = exited(outcome="completed", ended_at=at(50))
    st, waits = run_to_end(RETRY, [oom, oom, done])
    assert st.TrainingJobStatus == "Completed"
    assert waits == [10, 20]
    assert [(a.AttemptNumber, a.Outcome, a.Retried) for a in st.Attempts] == [
        (1, "Failed", True),
        (2, "Failed", True),
        (3, "Completed", False),
    ]
    assert st.Attempts[0].FailureReason == "AlgorithmError: it broke"
    # Billable: the attempts' own time (30 + 30 + 50), not the backoffs between them.
    assert st.BillableTimeInSeconds == 110
    assert st.TrainingTimeInSeconds == 110 + 10 + 20
    messages = [t.StatusMessage for t in st.SecondaryStatusTransitions if t.Status == "Restarting"]
    assert messages[0].startswith(
        "Restarting in 10 s (attempt 2 of 3; retried for an out-of-memory kill)"
    )
    assert messages[1].startswith("Restarting in 20 s (attempt 3 of 3;")


def test_failure_after_retries_names_the_attempt() -> None:
    oom = ended("AlgorithmError", -9, "oom", ended_at=at(5))
    st, waits = run_to_end(RETRY, [oom, oom, oom], base=1.0)
    assert waits == [1, 2]
    assert st.TrainingJobStatus == "Failed"
    assert st.FailureReason == "AlgorithmError: attempt 3 of 3: it broke"
    assert [a.Retried for a in st.Attempts] == [True, True, False]


def test_a_user_error_after_a_retry_is_final() -> None:
    oom = ended("AlgorithmError", -9, "oom", ended_at=at(5))
    user = ended("AlgorithmError", 1, "exit", ended_at=at(5))
    st, _ = run_to_end({"MaximumRetryAttempts": 5}, [oom, user])
    assert st.FailureReason == "AlgorithmError: attempt 2 of 6: it broke"
    assert len(st.Attempts) == 2


def test_stop_during_backoff_ends_the_job_stopped() -> None:
    job = spec(RetryStrategy=RETRY)
    observed = ended("InternalServerError", None)
    _, st = step(desired_job(spec=job, status=LAUNCHED), observed, at(101))
    desired = DesiredJob(**{**desired_job(spec=job, status=st).__dict__, "stop_requested": True})
    plan, st = step(desired, observed, at(105))
    assert (st.TrainingJobStatus, st.SecondaryStatus, plan.actions) == ("Stopped", "Stopped", ())
    assert [a.Outcome for a in st.Attempts] == ["Failed"]  # not recorded twice


def test_backoff_releases_the_attempts_gpus() -> None:
    held = job_state(Attempt=1, TrainingStartTime=NOW, AllocatedGpus=[0, 1])
    _, st = step(
        desired_job(spec=spec(RetryStrategy=RETRY), status=held),
        ended("InternalServerError", None),
        at(101),
    )
    assert st.AllocatedGpus == []


# --- preemption -----------------------------------------------------------------------------
SPOT = spec(
    EnableManagedSpotTraining=True,
    RetryStrategy={"MaximumRetryAttempts": 1},
    StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
)
PREEMPT = Admission(preempt="job hi-prio (priority 100) needs its GPUs")


def test_preemption_stops_requeues_and_relaunches_without_counting() -> None:
    plan, st = step(desired_job(spec=SPOT, status=LAUNCHED), running(), at(10), PREEMPT)
    assert plan.actions == (StopJob("job-1", force=False),)
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("InProgress", "Interrupted")
    assert st.SecondaryStatusTransitions[-1].StatusMessage == f"Preempted: {PREEMPT.preempt}"
    # Within the grace: nothing more; after it: SIGKILL, as a stop.
    plan, st = step(desired_job(spec=SPOT, status=st), running(), at(20))
    assert plan.actions == ()
    plan, st = step(desired_job(spec=SPOT, status=st), running(), at(40))
    assert plan.actions == (StopJob("job-1", force=True),)
    # It exits (the supervisor reports stopped): recorded Preempted, back in the queue.
    gone = exited(outcome="stopped", exit_code=143, ended_at=at(41))
    plan, st = step(desired_job(spec=SPOT, status=st), gone, at(42))
    assert plan.actions == ()
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("InProgress", "Pending")
    assert [t.Status for t in st.SecondaryStatusTransitions][-2:] == ["Interrupted", "Pending"]
    assert [(a.Outcome, a.Retried) for a in st.Attempts] == [("Preempted", True)]
    assert st.PreemptionCount == 1
    # While the queue still wants the capacity, it waits; once admitted, attempt 2 launches.
    plan, st = step(desired_job(spec=SPOT, status=st), gone, at(43), PREEMPT)
    assert plan.actions == ()
    plan, st = step(desired_job(spec=SPOT, status=st), gone, at(50), Admission())
    assert [a.launch.attempt for a in plan.actions if isinstance(a, LaunchJob)] == [2]
    # It resumes (no retry was used), and says so rather than "Retrying".
    assert st.SecondaryStatusTransitions[-1].StatusMessage == (
        "Resuming after a preemption: attempt 2"
    )
    # Attempt 2 fails for an infrastructure reason: the one retry is still there.
    broke = ended("InternalServerError", None, attempt=2, started_at=at(50), ended_at=at(60))
    plan, st = step(desired_job(spec=SPOT, status=st), broke, at(60))
    assert st.SecondaryStatus == "Restarting"
    assert "attempt 3 of 3" in st.SecondaryStatusTransitions[-1].StatusMessage
    # Billable: 41 s of attempt 1 and 10 s of attempt 2 so far.
    done = exited(attempt=3, outcome="completed", started_at=at(70), ended_at=at(100))
    plan, st = step(desired_job(spec=SPOT, status=st), broke, at(70))
    plan, st = step(desired_job(spec=SPOT, status=st), done, at(100))
    assert st.TrainingJobStatus == "Completed"
    assert [a.Outcome for a in st.Attempts] == ["Preempted", "Failed", "Completed"]
    assert st.BillableTimeInSeconds == 41 + 10 + 30
    assert st.TrainingTimeInSeconds == 100


def test_a_stop_during_the_preemption_grace_stops_the_job() -> None:
    _, st = step(desired_job(spec=SPOT, status=LAUNCHED), running(), at(10), PREEMPT)
    _, st = step(desired_job(spec=SPOT, status=st, stop=True), running(), at(12))
    assert st.TrainingJobStatus == "Stopping"
    _, st = step(desired_job(spec=SPOT, status=st, stop=True), exited(outcome="stopped"), at(15))
    assert (st.TrainingJobStatus, st.PreemptionCount) == ("Stopped", 0)
    assert [a.Outcome for a in st.Attempts] == ["Stopped"]


def test_an_attempt_that_completed_before_the_signal_completes() -> None:
    _, st = step(desired_job(spec=SPOT, status=LAUNCHED), running(), at(10), PREEMPT)
    _, st = step(desired_job(spec=SPOT, status=st), exited(outcome="completed"), at(101))
    assert st.TrainingJobStatus == "Completed"


# --- MaxWaitTimeInSeconds -------------------------------------------------------------------
WAIT = spec(
    EnableManagedSpotTraining=True,
    RetryStrategy={"MaximumRetryAttempts": 3},
    StoppingCondition={"MaxRuntimeInSeconds": 100, "MaxWaitTimeInSeconds": 150},
)


def test_max_wait_stops_a_running_attempt() -> None:
    long_run = job_state(Attempt=2, TrainingStartTime=at(100))
    plan, st = step(desired_job(spec=WAIT, status=long_run), running(attempt=2), at(150))
    assert plan.actions == (StopJob("job-1", force=False),)
    assert st.SecondaryStatus == "MaxWaitTimeExceeded"
    _, st = step(desired_job(spec=WAIT, status=st), exited(attempt=2, outcome="stopped"), at(152))
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("Stopped", "MaxWaitTimeExceeded")
    assert st.StopReason is not None
    assert "MaxWaitTimeInSeconds=150" in st.StopReason


def test_max_wait_ends_a_job_waiting_between_attempts() -> None:
    observed = ended("InternalServerError", None, ended_at=at(140))
    _, st = step(desired_job(spec=WAIT, status=LAUNCHED), observed, at(145))
    assert st.SecondaryStatus == "Restarting"
    plan, st = step(desired_job(spec=WAIT, status=st), observed, at(150))
    assert (plan.actions, st.TrainingJobStatus, st.SecondaryStatus) == (
        (),
        "Stopped",
        "MaxWaitTimeExceeded",
    )
    assert not plan.active


def test_max_wait_ends_a_job_that_never_started() -> None:
    plan, st = step(desired_job(spec=WAIT), None, at(150))
    assert (plan.actions, st.TrainingJobStatus, st.SecondaryStatus) == (
        (),
        "Stopped",
        "MaxWaitTimeExceeded",
    )


def test_max_runtime_counts_the_attempts_run_time_not_the_waits_between() -> None:
    job = spec(
        RetryStrategy={"MaximumRetryAttempts": 3}, StoppingCondition={"MaxRuntimeInSeconds": 100}
    )
    # Attempt 1 ran 60 s, then the job waited 1000 s; attempt 2 started at 1060.
    first = {"AttemptNumber": 1, "StartTime": NOW, "EndTime": at(60), "Outcome": "Failed"}
    st = job_state(Attempt=2, TrainingStartTime=NOW, Attempts=[first])
    plan, _ = step(
        desired_job(spec=job, status=st), running(attempt=2, started_at=at(1060)), at(1099)
    )
    assert plan.actions == ()
    plan, after = step(
        desired_job(spec=job, status=st), running(attempt=2, started_at=at(1060)), at(1100)
    )
    assert plan.actions == (StopJob("job-1", force=False),)
    assert after.SecondaryStatus == "MaxRuntimeExceeded"
