"""plan_training_job as a table: (status, observation, now) -> (actions, new status). No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from core_builders import NOW, at, desired_job, exited, job_state, running, training_spec

from orchestrator.controller.plan.training import DesiredJob, TrainingPolicy, plan_training_job
from orchestrator.controller.plan.types import (
    Action,
    CleanupJob,
    DeleteRecord,
    LaunchJob,
    ObservedJob,
    PhaseMark,
    Plan,
    StopJob,
)
from orchestrator.resources.failures import FailureReason
from orchestrator.resources.training import SecondaryStatus, TrainingJobState

POLICY = TrainingPolicy(stop_grace_seconds=30.0)
RETRY3 = training_spec(RetryStrategy={"MaximumRetryAttempts": 3})
SHORT = training_spec(StoppingCondition={"MaxRuntimeInSeconds": 60})

LAUNCHED = job_state(Attempt=1, TrainingStartTime=NOW)
STOPPING = job_state(
    Attempt=1,
    TrainingStartTime=NOW,
    TrainingJobStatus="Stopping",
    SecondaryStatus="Stopping",
    StoppingSince=at(0),
    StopReason="Stopped by request (StopTrainingJob)",
)
COMPLETED = job_state(Attempt=1, TrainingJobStatus="Completed", SecondaryStatus="Completed")


def failed(kind: str, message: str, attempt: int = 1, **fields: Any) -> ObservedJob:
    """An attempt that ended failed for a typed reason."""
    reason = FailureReason(kind=kind, message=message)  # type: ignore[arg-type]
    return exited(attempt=attempt, outcome="failed", exit_code=1, failure=reason, **fields)


def brief(action: Action) -> tuple[Any, ...]:
    """An action reduced to what a table can state."""
    if isinstance(action, LaunchJob):
        return ("launch", action.launch.attempt)
    if isinstance(action, StopJob):
        return ("stop", action.force)
    if isinstance(action, CleanupJob):
        return ("cleanup", action.name)
    if isinstance(action, DeleteRecord):
        return ("delete", action.kind, action.name)
    raise AssertionError(action)


def step(desired: DesiredJob, observed: ObservedJob | None, now: datetime) -> tuple[Plan, Any]:
    plan = plan_training_job(desired, observed, now, POLICY)
    return plan, TrainingJobState.model_validate(plan.status)


@dataclass(frozen=True)
class Case:
    id: str
    desired: DesiredJob
    observed: ObservedJob | None
    now: datetime
    actions: list[tuple[Any, ...]]
    phase: str
    secondary: str
    active: bool = True
    status: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("new job launches attempt 1", desired_job(), None, NOW,
         [("launch", 1)], "InProgress", "Starting", status={"Attempt": 1}),
    Case("stop before launch", desired_job(stop=True), None, NOW,
         [], "Stopped", "Stopped", active=False, status={"Attempt": 0, "FailureReason": None}),
    Case("running reports Training", desired_job(status=LAUNCHED), running(phase=SecondaryStatus.TRAINING),
         at(10), [], "InProgress", "Training"),
    Case("stop requested while running", desired_job(status=LAUNCHED, stop=True), running(), at(10),
         [("stop", False)], "Stopping", "Stopping",
         status={"StoppingSince": at(10), "StopReason": "Stopped by request (StopTrainingJob)"}),
    Case("still running within grace", desired_job(status=STOPPING, stop=True), running(), at(29),
         [], "Stopping", "Stopping"),
    Case("still running after grace", desired_job(status=STOPPING, stop=True), running(), at(30),
         [("stop", True)], "Stopping", "Stopping"),
    Case("MaxRuntime not yet", desired_job(spec=SHORT, status=LAUNCHED), running(), at(59),
         [], "InProgress", "Starting"),
    Case("MaxRuntime passed", desired_job(spec=SHORT, status=LAUNCHED), running(), at(60),
         [("stop", False)], "Stopping", "MaxRuntimeExceeded", status={"StoppingSince": at(60)}),
    Case("exited after SIGTERM", desired_job(status=STOPPING, stop=True),
         exited(outcome="stopped", exit_code=143), at(5), [], "Stopped", "Stopped", active=False),
    Case("completed while stop asked", desired_job(status=LAUNCHED, stop=True),
         exited(outcome="completed"), at(5), [], "Stopped", "Stopped", active=False),
    Case("exited completed", desired_job(status=LAUNCHED), exited(outcome="completed"), at(101),
         [], "Completed", "Completed", active=False, status={"FailureReason": None}),
    Case("exited failed", desired_job(status=LAUNCHED), failed("AlgorithmError", "boom"), at(101),
         [], "Failed", "Failed", active=False, status={"FailureReason": "AlgorithmError: boom"}),
    # RetryStrategy retries the whole job for a reason of ours, never for the user's; the
    # next attempt waits out a backoff (test_plan_training_retry.py has the rest).
    Case("internal error, retry allowed", desired_job(spec=RETRY3, status=LAUNCHED),
         failed("InternalServerError", "upload failed"), at(101), [],
         "InProgress", "Restarting",
         status={"Attempt": 1, "FailureReason": None, "NextAttemptTime": at(111)}),
    Case("internal error, no retry strategy", desired_job(status=LAUNCHED),
         failed("InternalServerError", "upload failed"), at(101), [], "Failed", "Failed",
         active=False, status={"FailureReason": "InternalServerError: upload failed"}),
    Case("internal error, retries used up", desired_job(spec=RETRY3, status=job_state(Attempt=4)),
         failed("InternalServerError", "algo-2: pod p was interrupted", attempt=4), at(101), [],
         "Failed", "Failed", active=False,
         status={"FailureReason": "InternalServerError: attempt 4 of 4: algo-2: pod p was interrupted"}),
    Case("algorithm error is not retried", desired_job(spec=RETRY3, status=LAUNCHED),
         failed("AlgorithmError", "ValueError: bad"), at(101), [], "Failed", "Failed",
         active=False, status={"FailureReason": "AlgorithmError: ValueError: bad"}),
    Case("client error is not retried", desired_job(spec=RETRY3, status=LAUNCHED),
         failed("ClientError", "channel 'train': no objects"), at(101), [], "Failed", "Failed",
         active=False, status={"FailureReason": "ClientError: channel 'train': no objects"}),
    Case("capacity error is not retried", desired_job(spec=RETRY3, status=LAUNCHED),
         failed("CapacityError", "no room"), at(101), [], "Failed", "Failed",
         active=False, status={"FailureReason": "CapacityError: no room"}),
    Case("failed without a reason", desired_job(status=LAUNCHED),
         exited(outcome="failed", exit_code=3), at(101),
         [], "Failed", "Failed", active=False, status={"FailureReason": "AlgorithmError: exit code 3"}),
    Case("supervisor killed, no retry", desired_job(status=LAUNCHED),
         exited(outcome=None, exit_code=-9), at(101), [], "Failed", "Failed", active=False),
    Case("supervisor killed, retry allowed", desired_job(spec=RETRY3, status=LAUNCHED),
         exited(outcome=None, exit_code=-9), at(101), [], "InProgress", "Restarting",
         status={"Attempt": 1, "NextAttemptTime": at(111)}),
    Case("supervisor killed, retries used up", desired_job(spec=RETRY3, status=job_state(Attempt=4)),
         exited(attempt=4, outcome=None, exit_code=-9), at(101), [], "Failed", "Failed", active=False),
    Case("vanished after launch", desired_job(status=LAUNCHED), None, at(10),
         [], "Failed", "Failed", active=False),
    Case("vanished while stopping", desired_job(status=STOPPING, stop=True), None, at(10),
         [], "Stopped", "Stopped", active=False, status={"FailureReason": None}),
    Case("vanished, retry allowed", desired_job(spec=RETRY3, status=LAUNCHED), None, at(10),
         [], "InProgress", "Restarting", status={"Attempt": 1, "NextAttemptTime": at(20)}),
    Case("adopts a launch it did not record", desired_job(), running(attempt=1), at(1),
         [], "InProgress", "Starting", status={"Attempt": 1, "TrainingStartTime": NOW}),
    Case("terminal and delete requested", desired_job(status=COMPLETED, delete=True), None, at(1),
         [("cleanup", "job-1"), ("delete", "TrainingJob", "job-1")], "Completed", "Completed",
         active=False),
    Case("terminal, nothing to do", desired_job(status=COMPLETED), exited(outcome="completed"), at(1),
         [], "Completed", "Completed", active=False),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case) -> None:
    plan, st = step(case.desired, case.observed, case.now)
    assert [brief(a) for a in plan.actions] == case.actions
    assert plan.phase == case.phase
    assert st.TrainingJobStatus == case.phase
    assert st.SecondaryStatus == case.secondary
    assert plan.active is case.active
    assert (plan.requeue_after is None) is (not case.active)
    for name, value in case.status.items():
        assert getattr(st, name) == value, name


def conditions(st: TrainingJobState) -> dict[str, tuple[str, str]]:
    return {c.Type: (c.Status, c.Reason) for c in st.Conditions}


def test_launch_carries_spec_and_output_and_sets_running_condition() -> None:
    desired = desired_job()
    plan, st = step(desired, None, NOW)
    (launch,) = plan.actions
    assert isinstance(launch, LaunchJob)
    assert launch.launch.spec == desired.spec
    assert launch.launch.output_uri == desired.output_uri
    assert conditions(st) == {"Running": ("True", "Starting")}
    assert [(t.Status, t.StartTime, t.EndTime) for t in st.SecondaryStatusTransitions] == [
        ("Starting", NOW, None)
    ]


def test_phase_change_closes_the_previous_transition() -> None:
    _, st = step(desired_job(), None, NOW)
    observed = running(phase=SecondaryStatus.TRAINING, phase_message="epoch 1")
    _, st = step(desired_job(status=st), observed, at(10))
    assert [(t.Status, t.StartTime, t.EndTime, t.StatusMessage) for t in st.SecondaryStatusTransitions] == [
        ("Starting", NOW, at(10), "Launching the job"),
        ("Training", at(10), None, "epoch 1"),
    ]  # fmt: skip
    # The same phase again records nothing new.
    _, again = step(desired_job(status=st), observed, at(20))
    assert again.SecondaryStatusTransitions == st.SecondaryStatusTransitions


def test_completed_reports_artifacts_metrics_and_times() -> None:
    observed = exited(
        outcome="completed",
        model_artifact="s3://b/out/model.tar.gz",
        metrics={"loss": 0.5, "acc": 0.9},
    )
    _, st = step(desired_job(status=LAUNCHED), observed, at(101))
    assert st.ModelArtifacts.S3ModelArtifacts == "s3://b/out/model.tar.gz"
    assert [(m.MetricName, m.Value, m.Timestamp) for m in st.FinalMetricDataList] == [
        ("acc", 0.9, at(100)),
        ("loss", 0.5, at(100)),
    ]
    assert st.TrainingEndTime == at(100)
    assert st.TrainingTimeInSeconds == 100
    assert st.BillableTimeInSeconds == 100
    assert conditions(st) == {
        "Running": ("False", "Completed"),
        "Succeeded": ("True", "Completed"),
    }
    # The last transition ends when the job itself ended, not when the controller noticed.
    assert st.SecondaryStatusTransitions[-1].EndTime == at(100)


def test_failure_reason_is_truncated_to_1024_characters() -> None:
    observed = failed("AlgorithmError", "E" * 5000)
    _, st = step(desired_job(status=LAUNCHED), observed, at(101))
    assert st.FailureReason == ("AlgorithmError: " + "E" * 5000)[:1024]
    assert conditions(st)["Succeeded"] == ("False", "Failed")
    message = {c.Type: c.Message for c in st.Conditions}["Succeeded"]
    assert message == st.FailureReason


def test_a_retry_says_why_the_previous_attempt_failed() -> None:
    observed = failed("InternalServerError", "upload failed: store unreachable")
    _, st = step(desired_job(spec=RETRY3, status=LAUNCHED), observed, at(101))
    last = st.SecondaryStatusTransitions[-1]
    assert (last.Status, last.StatusMessage) == (
        "Restarting",
        "Restarting in 10 s (attempt 2 of 4; retried for an infrastructure failure): "
        "InternalServerError: upload failed: store unreachable",
    )


def test_the_reason_is_rendered_from_its_kind_not_parsed_from_its_text() -> None:
    # A message that itself looks like another category stays what it was reported as.
    observed = failed("AlgorithmError", "ClientError: my script says so")
    _, st = step(desired_job(spec=RETRY3, status=LAUNCHED), observed, at(101))
    assert st.FailureReason == "AlgorithmError: ClientError: my script says so"
    assert st.TrainingJobStatus == "Failed"  # an AlgorithmError: not retried


def test_a_rendered_reason_from_the_host_is_kept_as_it_is() -> None:
    from orchestrator.controller.plan.training import fail_training_job

    plan = fail_training_job(LAUNCHED, "ClientError: refused by the backend", at(5))
    assert plan.status.FailureReason == "ClientError: refused by the backend"
    plan = fail_training_job(LAUNCHED, FailureReason(kind="ClientError", message="typed"), at(5))
    assert plan.status.FailureReason == "ClientError: typed"


def test_supervisor_killed_fails_as_internal_error_naming_exit_code() -> None:
    _, st = step(desired_job(status=LAUNCHED), exited(outcome=None, exit_code=-9), at(101))
    assert st.FailureReason is not None
    assert st.FailureReason.startswith("InternalServerError:")
    assert "exit code -9" in st.FailureReason


def test_what_a_dead_supervisor_left_is_in_the_reason() -> None:
    left = FailureReason(kind="InternalServerError", message="MemoryError in the supervisor")
    observed = exited(outcome=None, exit_code=1, failure=left)
    _, st = step(desired_job(status=LAUNCHED), observed, at(101))
    assert st.FailureReason is not None
    assert st.FailureReason.startswith("InternalServerError: the job's supervisor process")
    assert st.FailureReason.endswith(": MemoryError in the supervisor")


def test_vanished_job_fails_saying_so() -> None:
    _, st = step(desired_job(status=LAUNCHED), None, at(10))
    assert st.FailureReason is not None
    assert st.FailureReason.startswith("InternalServerError: attempt 1")
    assert "vanished" in st.FailureReason
    assert conditions(st) == {"Running": ("False", "Failed"), "Succeeded": ("False", "Failed")}


def test_stop_flow_records_the_stop_reason_in_the_last_transition() -> None:
    _, st = step(desired_job(status=LAUNCHED, stop=True), running(), at(10))
    _, st = step(desired_job(status=st, stop=True), exited(outcome="stopped"), at(12))
    assert st.TrainingJobStatus == "Stopped"
    last = st.SecondaryStatusTransitions[-1]
    assert (last.Status, last.StatusMessage, last.EndTime) == (
        "Stopped",
        "Stopped by request (StopTrainingJob)",
        at(12),
    )
    assert conditions(st)["Succeeded"] == ("False", "Stopped")


def test_max_runtime_stop_then_exit_is_stopped_with_reason() -> None:
    plan, st = step(desired_job(spec=SHORT, status=LAUNCHED), running(), at(60))
    assert st.StopReason is not None
    assert "MaxRuntimeInSeconds=60" in st.StopReason
    # The job ignores SIGTERM: after the grace it is killed, then reported without an outcome.
    plan, st2 = step(desired_job(spec=SHORT, status=st), running(), at(90))
    assert [brief(a) for a in plan.actions] == [("stop", True)]
    _, end = step(desired_job(spec=SHORT, status=st2), exited(outcome=None, exit_code=-9), at(91))
    assert (end.TrainingJobStatus, end.SecondaryStatus) == ("Stopped", "MaxRuntimeExceeded")
    assert end.SecondaryStatusTransitions[-1].StatusMessage == st.StopReason
    assert end.FailureReason is None


def test_a_deadline_the_backend_enforced_is_the_stop_reason_too() -> None:
    """A Kubernetes Job's activeDeadlineSeconds can end the job before our own deadline does
    (it counts from the Job's start): the job is stopped at MaxRuntimeExceeded with the
    backend's reason as its StopReason, as when the planner stops it."""
    why = "MaxRuntimeExceeded: the job ran longer than StoppingCondition.MaxRuntimeInSeconds=60"
    observed = exited(
        outcome="stopped", phase=SecondaryStatus.MAX_RUNTIME_EXCEEDED, phase_message=why
    )
    _, st = step(desired_job(spec=SHORT, status=LAUNCHED), observed, at(59))
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("Stopped", "MaxRuntimeExceeded")
    assert st.StopReason == why
    assert st.SecondaryStatusTransitions[-1].StatusMessage == why


def test_requeue_is_bounded_by_the_grace_left() -> None:
    plan = plan_training_job(desired_job(status=STOPPING, stop=True), running(), at(29.5), POLICY)
    assert plan.requeue_after == pytest.approx(0.5)


def test_retry_attempts_of_one_allows_one_retry() -> None:
    spec = training_spec(RetryStrategy={"MaximumRetryAttempts": 1})
    plan, st = step(desired_job(spec=spec, status=LAUNCHED), exited(outcome=None), at(10))
    assert plan.actions == ()
    plan, st = step(desired_job(spec=spec, status=st), exited(outcome=None), at(20))
    assert [brief(a) for a in plan.actions] == [("launch", 2)]
    assert st.Attempt == 2


def test_phases_shorter_than_a_pass_are_recorded_at_the_jobs_own_times() -> None:
    from orchestrator.controller.plan.types import PhaseMark

    phases = (
        PhaseMark(SecondaryStatus.DOWNLOADING, at(1), "Downloading input data"),
        PhaseMark(SecondaryStatus.TRAINING, at(2), "Training"),
        PhaseMark(SecondaryStatus.UPLOADING, at(40), "Uploading"),
    )
    observed = exited(outcome="completed", phases=phases, ended_at=at(41))
    plan, st = step(desired_job(status=LAUNCHED), observed, at(60))
    got = [(t.Status, t.StartTime, t.EndTime) for t in st.SecondaryStatusTransitions]
    assert got == [
        ("Downloading", at(1), at(2)),
        ("Training", at(2), at(40)),
        ("Uploading", at(40), at(41)),
        ("Completed", at(41), at(41)),
    ]
    # Replaying the same observation again adds nothing.
    again = plan_training_job(
        desired_job(status=TrainingJobState.model_validate(plan.status)), observed, at(61)
    )
    assert again.status == plan.status


def test_an_adopted_launch_gets_the_status_its_launch_would_have_written() -> None:
    """The controller died between launching attempt 1 and writing the status: the next one
    records the launch's transition and Running condition, dated from the attempt, then what
    the attempt did since (a phase entered in the second the attempt started included)."""
    phases = (
        PhaseMark(SecondaryStatus.DOWNLOADING, NOW, "Downloading input data"),
        PhaseMark(SecondaryStatus.TRAINING, at(2), "Training"),
    )
    observed = running(phases=phases, phase=SecondaryStatus.TRAINING)
    plan, st = step(desired_job(), observed, at(5))
    assert plan.actions == ()
    got = [(t.Status, t.StartTime, t.EndTime) for t in st.SecondaryStatusTransitions]
    assert got == [
        ("Starting", NOW, NOW),
        ("Downloading", NOW, at(2)),
        ("Training", at(2), None),
    ]
    assert (st.Attempt, st.SecondaryStatus) == (1, "Training")
    assert conditions(st) == {"Running": ("True", "Starting")}
    # The next pass, with the status written, adds nothing.
    again = plan_training_job(desired_job(status=st), observed, at(6))
    assert again.status == plan.status


def test_an_adopted_retry_closes_the_attempt_before_and_says_restarting() -> None:
    before = job_state(
        Attempt=1,
        SecondaryStatus="Training",
        SecondaryStatusTransitions=[
            {"Status": "Starting", "StartTime": NOW, "EndTime": at(1)},
            {"Status": "Training", "StartTime": at(1)},
        ],
    )
    phases = (PhaseMark(SecondaryStatus.TRAINING, at(30), "Training"),)
    observed = running(attempt=2, started_at=at(20), phases=phases)
    _, st = step(desired_job(spec=RETRY3, status=before), observed, at(40))
    got = [(t.Status, t.StartTime, t.EndTime) for t in st.SecondaryStatusTransitions]
    assert got == [
        ("Starting", NOW, at(1)),
        ("Training", at(1), at(20)),
        ("Restarting", at(20), at(30)),
        ("Training", at(30), None),
    ]
    assert st.Attempt == 2
    assert st.SecondaryStatusTransitions[2].StatusMessage == "Retrying: attempt 2"
