"""plan_transform_job as tables and timelines: (status, observation, model, now) -> (actions,
new status). No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from core_builders import (
    NOW,
    TRANSFORM,
    at,
    instance,
    model_spec,
    transform_seen,
    transform_spec,
)

from orchestrator.controller.plan.transform import fail_transform_job, plan_transform_job
from orchestrator.controller.plan.types import (
    Action,
    CleanupTransform,
    DeleteRecord,
    LaunchTransformInstance,
    ObservedTransform,
    Plan,
    StopTransform,
)
from orchestrator.resources.common import ConditionType
from orchestrator.resources.failures import FailureReason, client_error
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.transform import (
    CreateTransformJobRequest,
    TransformInstanceState,
    TransformJobState,
    TransformProgress,
)

MODEL = model_spec()
TWO = transform_spec(instances=2)
THREE = transform_spec(instances=3)
NOTHING = transform_seen()


def brief(action: Action) -> tuple[Any, ...]:
    """An action reduced to what a table can state."""
    if isinstance(action, LaunchTransformInstance):
        return ("launch", action.launch.instance, action.launch.attempt)
    if isinstance(action, StopTransform):
        return ("stop", action.force)
    if isinstance(action, CleanupTransform):
        return ("cleanup",)
    if isinstance(action, DeleteRecord):
        return ("delete", action.kind, action.name)
    raise AssertionError(action)


def step(
    status: TransformJobState,
    observed: ObservedTransform,
    now: datetime,
    *,
    spec: CreateTransformJobRequest = TWO,
    model: CreateModelRequest | None = MODEL,
    **kw: Any,
) -> Plan[TransformJobState]:
    return plan_transform_job(spec, status, observed, model, now=now, **kw)


def actions(plan: Plan[TransformJobState]) -> list[tuple[Any, ...]]:
    return [brief(a) for a in plan.actions]


def statuses(plan: Plan[TransformJobState]) -> list[tuple[int, int, str]]:
    return [(s.Instance, s.Attempt, s.Status) for s in plan.status.Instances]


def entries(*rows: tuple[int, int, str]) -> list[TransformInstanceState]:
    return [
        TransformInstanceState(Instance=i, Attempt=a, Status=s, StartTime=NOW)  # type: ignore[arg-type]
        for i, a, s in rows
    ]


def state(*rows: tuple[int, int, str], **fields: Any) -> TransformJobState:
    base: dict[str, Any] = {"TransformStartTime": NOW, "Instances": entries(*rows)}
    return TransformJobState.model_validate({**base, **fields})


RUNNING2 = state((0, 1, "Running"), (1, 1, "Running"))
BOTH_RUN = transform_seen(instance(0), instance(1))


def condition(plan: Plan[TransformJobState], type_: str) -> tuple[str, str]:
    found = next(c for c in plan.status.Conditions if c.Type == type_)
    return found.Status, found.Reason


@dataclass(frozen=True)
class Case:
    id: str
    status: TransformJobState
    observed: ObservedTransform
    now: datetime
    actions: list[tuple[Any, ...]]
    phase: str
    instances: list[tuple[int, int, str]]
    active: bool = True
    kw: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("a new job launches every instance", TransformJobState(), NOTHING, NOW,
         [("launch", 0, 1), ("launch", 1, 1)], "InProgress", [(0, 1, "Starting"), (1, 1, "Starting")]),
    Case("a launch made before a crash is adopted, the other launched",
         TransformJobState(), transform_seen(instance(0)), NOW,
         [("launch", 1, 1)], "InProgress", [(0, 1, "Running"), (1, 1, "Starting")]),
    Case("running instances: nothing to do", RUNNING2, BOTH_RUN, at(5),
         [], "InProgress", [(0, 1, "Running"), (1, 1, "Running")]),
    Case("one done, one running", RUNNING2,
         transform_seen(instance(0, state="exited", outcome="completed", ended_at=at(4)), instance(1)),
         at(5), [], "InProgress", [(0, 1, "Completed"), (1, 1, "Running")]),
    Case("all completed", RUNNING2,
         transform_seen(instance(0, state="exited", outcome="completed", ended_at=at(4)),
                        instance(1, state="exited", outcome="completed", ended_at=at(6))),
         at(7), [("cleanup",)], "Completed", [(0, 1, "Completed"), (1, 1, "Completed")], active=False),
    Case("a stop that comes after every instance completed changes nothing", RUNNING2,
         transform_seen(instance(0, state="exited", outcome="completed"),
                        instance(1, state="exited", outcome="completed")),
         at(7), [("cleanup",)], "Completed", [(0, 1, "Completed"), (1, 1, "Completed")],
         active=False, kw={"stop_requested": True}),
    Case("killed: relaunched as the next attempt", RUNNING2,
         transform_seen(instance(0), instance(1, state="exited", exit_code=-9, message="SIGKILL")),
         at(5), [("launch", 1, 2)], "InProgress", [(0, 1, "Running"), (1, 2, "Starting")]),
    Case("stopped by someone else: relaunched", RUNNING2,
         transform_seen(instance(0), instance(1, state="exited", outcome="stopped", exit_code=143)),
         at(5), [("launch", 1, 2)], "InProgress", [(0, 1, "Running"), (1, 2, "Starting")]),
    Case("vanished from the backend: relaunched", RUNNING2, transform_seen(instance(0)),
         at(5), [("launch", 1, 2)], "InProgress", [(0, 1, "Running"), (1, 2, "Starting")]),
    Case("no restarts allowed: the first death fails the job", RUNNING2,
         transform_seen(instance(0), instance(1, state="exited", exit_code=-9)),
         at(5), [("stop", False)], "Failed", [(0, 1, "Running"), (1, 1, "Failed")],
         kw={"max_restarts": 0}),
    Case("stop before anything launched", TransformJobState(), NOTHING, NOW,
         [("cleanup",)], "Stopped", [(0, 0, "Stopped"), (1, 0, "Stopped")], active=False,
         kw={"stop_requested": True}),
    Case("delete while running stops first", RUNNING2, BOTH_RUN, at(5),
         [("stop", False)], "Stopping", [(0, 1, "Running"), (1, 1, "Running")],
         kw={"delete_requested": True}),
    Case("delete of an ended job: cleanup, then the record goes",
         state((0, 1, "Completed"), (1, 1, "Completed"), TransformJobStatus="Completed"),
         NOTHING, at(50), [("cleanup",), ("delete", "TransformJob", TRANSFORM)], "Completed",
         [(0, 1, "Completed"), (1, 1, "Completed")], active=False, kw={"delete_requested": True}),
    Case("starting: waiting for the model server", state((0, 1, "Starting"), (1, 1, "Starting")),
         transform_seen(instance(0, state="starting"), instance(1)), at(1),
         [], "InProgress", [(0, 1, "Starting"), (1, 1, "Running")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case) -> None:
    plan = step(case.status, case.observed, case.now, **case.kw)
    assert actions(plan) == case.actions
    assert plan.phase == case.phase
    assert statuses(plan) == case.instances
    assert plan.active is case.active
    assert (plan.requeue_after is None) is (not case.active)


def test_a_launch_carries_the_spec_and_the_model_and_starts_the_clock() -> None:
    plan = step(TransformJobState(), NOTHING, at(3))
    launch = plan.actions[0]
    assert isinstance(launch, LaunchTransformInstance)
    assert launch.launch.spec == TWO and launch.launch.model == MODEL
    assert (launch.launch.name, launch.launch.model_name) == (TRANSFORM, "model-1")
    assert plan.status.TransformStartTime == at(3)
    assert [s.StartTime for s in plan.status.Instances] == [at(3), at(3)]
    assert [s.Message for s in plan.status.Instances] == ["Launched", "Launched"]
    assert condition(plan, ConditionType.RUNNING) == ("True", "Starting")
    assert plan.requeue_after == 1.0  # see them start soon
    # Running: progress is refreshed every couple of seconds.
    again = step(plan.status, BOTH_RUN, at(4))
    assert again.actions == () and again.requeue_after == 2.0
    assert again.status.TransformStartTime == at(3)
    assert condition(again, ConditionType.RUNNING) == ("True", "Running")


def test_an_instance_is_relaunched_up_to_the_limit_then_the_job_fails() -> None:
    st = step(TransformJobState(), NOTHING, NOW, spec=THREE).status
    attempts = []
    for n in range(1, 5):
        killed = instance(2, attempt=n, state="exited", exit_code=-9, message=f"killed {n}")
        plan = step(st, transform_seen(instance(0), instance(1), killed), at(n), spec=THREE)
        attempts.append(actions(plan))
        st = plan.status
        if n < 4:
            entry = st.Instances[2]
            assert (entry.Attempt, entry.Status) == (n + 1, "Starting")
            assert entry.Message == (
                f"Relaunched as attempt {n + 1} of 4: attempt {n} ended without a result "
                f"(killed {n})"
            )
        if n == 1:  # the reason stays in view once the new attempt runs
            seen = transform_seen(instance(0), instance(1), instance(2, attempt=2))
            assert step(st, seen, at(1.5), spec=THREE).status.Instances[2].Message == (
                "Relaunched as attempt 2 of 4: attempt 1 ended without a result (killed 1)"
            )
    assert attempts == [
        [("launch", 2, 2)],
        [("launch", 2, 3)],
        [("launch", 2, 4)],
        [("stop", False)],
    ]
    assert st.TransformJobStatus == "Failed"
    assert st.FailureReason == (
        "InternalServerError: instance 2 died 4 times: attempt 4 ended without a result (killed 4)"
    )
    assert st.TransformEndTime == at(4) and st.StoppingSince == at(4)
    assert [(s.Attempt, s.Status) for s in st.Instances] == [
        (1, "Running"),
        (1, "Running"),
        (4, "Failed"),
    ]
    assert condition(plan, ConditionType.SUCCEEDED) == ("False", "Failed")
    assert plan.active  # until the other two are gone
    # They go; the one that died keeps its Failed entry (it is not "stopped" by the stop).
    gone = transform_seen(
        instance(0, state="exited", outcome="stopped"),
        instance(1, state="exited", outcome="stopped"),
        instance(2, attempt=4, state="exited", exit_code=-9, message="killed 4"),
    )
    done = step(st, gone, at(5), spec=THREE)
    assert actions(done) == [("cleanup",)] and not done.active
    assert statuses(done) == [(0, 1, "Stopped"), (1, 1, "Stopped"), (2, 4, "Failed")]
    assert done.status.Instances[2].Message == "attempt 4 ended without a result (killed 4)"


def test_a_failed_instance_fails_the_job_and_the_others_are_stopped_then_killed() -> None:
    why = client_error("a.csv: record 3: the model answered 400: bad input")
    failed = instance(0, state="exited", outcome="failed", exit_code=1, failure=why, ended_at=at(9))
    plan = step(RUNNING2, transform_seen(failed, instance(1)), at(10))
    assert actions(plan) == [("stop", False)]
    st = plan.status
    assert (st.TransformJobStatus, st.FailureReason) == (
        "Failed",
        "ClientError: a.csv: record 3: the model answered 400: bad input",
    )
    assert (st.TransformEndTime, st.StoppingSince) == (at(10), at(10))
    assert st.Instances[0].Message == why.render() and st.Instances[0].EndTime == at(9)
    assert (plan.phase, plan.active) == ("Failed", True)
    # Within the grace: wait; after it: SIGKILL; the instance gone: the scratch goes, once.
    ignoring = transform_seen(failed, instance(1))
    waiting = step(st, ignoring, at(39))
    assert actions(waiting) == [] and waiting.requeue_after == 1.0
    assert actions(step(st, ignoring, at(40))) == [("stop", True)]
    gone = transform_seen(failed, instance(1, state="exited", exit_code=-9, ended_at=at(40)))
    done = step(st, gone, at(41))
    assert actions(done) == [("cleanup",)]
    assert (done.phase, done.active, done.requeue_after) == ("Failed", False, None)
    assert statuses(done) == [(0, 1, "Failed"), (1, 1, "Stopped")]
    assert done.status.FailureReason == st.FailureReason  # kept


def test_a_failure_with_nothing_else_running_ends_at_once() -> None:
    why = client_error("b.csv: bad")
    plan = step(
        RUNNING2,
        transform_seen(
            instance(0, state="exited", outcome="completed"),
            instance(1, state="exited", outcome="failed", failure=why),
        ),
        at(5),
    )
    assert actions(plan) == [("cleanup",)]
    assert (plan.phase, plan.active, plan.status.FailureReason) == (
        "Failed",
        False,
        "ClientError: b.csv: bad",
    )


def test_a_runner_that_failed_without_a_reason_is_named() -> None:
    plan = step(
        RUNNING2,
        transform_seen(instance(0, state="exited", outcome="failed", exit_code=3), instance(1)),
        at(5),
    )
    assert plan.status.FailureReason == (
        "InternalServerError: instance 0 failed without saying why (exit code 3)"
    )


def test_stop_sigterm_then_sigkill_after_the_grace_then_stopped() -> None:
    plan = step(RUNNING2, BOTH_RUN, at(10), stop_requested=True)
    assert actions(plan) == [("stop", False)]
    st = plan.status
    assert (st.TransformJobStatus, st.StoppingSince) == ("Stopping", at(10))
    assert condition(plan, ConditionType.RUNNING) == ("False", "Stopping")
    assert actions(step(st, BOTH_RUN, at(20), stop_requested=True)) == []
    assert step(st, BOTH_RUN, at(20), stop_requested=True).requeue_after == 1.0
    assert actions(step(st, BOTH_RUN, at(40), stop_requested=True)) == [("stop", True)]
    # The grace is the policy's.
    assert actions(step(st, BOTH_RUN, at(15), stop_requested=True, stop_grace_seconds=5)) == [
        ("stop", True)
    ]
    # One ended on SIGTERM, one was killed: the job is Stopped, nothing relaunched.
    ended = transform_seen(
        instance(0, state="exited", outcome="stopped", exit_code=143),
        instance(1, state="exited", exit_code=-9),
    )
    done = step(st, ended, at(41), stop_requested=True)
    assert actions(done) == [("cleanup",)]
    assert (done.phase, done.active) == ("Stopped", False)
    assert statuses(done) == [(0, 1, "Stopped"), (1, 1, "Stopped")]
    assert done.status.TransformEndTime == at(41) and done.status.FailureReason is None
    assert condition(done, ConditionType.SUCCEEDED) == ("False", "Stopped")


def test_a_stopping_job_launches_nothing_and_a_failure_while_stopping_ends_it_stopped() -> None:
    stopping = state((0, 1, "Running"), (1, 1, "Running"), TransformJobStatus="Stopping",
                     StoppingSince=at(1))  # fmt: skip
    why = client_error("x")
    seen = transform_seen(
        instance(0, state="exited", exit_code=-9),
        instance(1, state="exited", outcome="failed", failure=why),
    )
    plan = step(stopping, seen, at(2))
    assert actions(plan) == [("cleanup",)]
    assert (plan.phase, plan.status.FailureReason) == ("Stopped", None)


def test_a_deleted_job_stops_then_its_record_goes() -> None:
    stopping = step(RUNNING2, BOTH_RUN, at(1), delete_requested=True).status
    ended = transform_seen(
        instance(0, state="exited", outcome="stopped"),
        instance(1, state="exited", outcome="stopped"),
    )
    plan = step(stopping, ended, at(2), delete_requested=True)
    assert actions(plan) == [("cleanup",), ("delete", "TransformJob", TRANSFORM)]


def test_completion_time_is_the_last_instance_end() -> None:
    seen = transform_seen(
        instance(0, state="exited", outcome="completed", ended_at=at(4)),
        instance(1, state="exited", outcome="completed", ended_at=at(6)),
    )
    plan = step(RUNNING2, seen, at(9))
    assert plan.status.TransformEndTime == at(6)
    assert [s.EndTime for s in plan.status.Instances] == [at(4), at(6)]
    assert condition(plan, ConditionType.SUCCEEDED) == ("True", "Completed")
    assert condition(plan, ConditionType.RUNNING) == ("False", "Completed")


def test_a_missing_model_fails_the_job_before_anything_runs() -> None:
    plan = step(TransformJobState(), NOTHING, NOW, model=None)
    assert actions(plan) == [("cleanup",)]
    assert plan.status.FailureReason == (
        "ClientError: ModelName: model 'model-1' does not exist; create the Model first "
        "(CreateModel), then the transform job"
    )
    assert statuses(plan) == [(0, 0, "Stopped"), (1, 0, "Stopped")]
    refused = step(TransformJobState(), NOTHING, NOW, model=None, model_error="Image: no")
    assert refused.status.FailureReason == (
        "ClientError: ModelName: model 'model-1' cannot be used: Image: no"
    )


def test_a_model_deleted_while_running_matters_only_for_a_relaunch() -> None:
    assert actions(step(RUNNING2, BOTH_RUN, at(5), model=None)) == []
    killed = transform_seen(instance(0), instance(1, state="exited", exit_code=-9))
    plan = step(RUNNING2, killed, at(5), model=None)
    assert actions(plan) == [("stop", False)]
    assert plan.phase == "Failed"
    assert plan.status.FailureReason is not None
    assert "does not exist" in plan.status.FailureReason


def test_an_ended_job_is_cleaned_up_once_then_left_alone() -> None:
    done = transform_seen(
        instance(0, state="exited", outcome="completed"),
        instance(1, state="exited", outcome="completed"),
    )
    plan = step(RUNNING2, done, at(5))
    assert [a for a in plan.actions if isinstance(a, CleanupTransform)] == [
        CleanupTransform(TRANSFORM)
    ]
    assert not plan.active  # never planned again (until a delete), so never cleaned again
    # After the cleanup the backend knows nothing of the instances: their status stands.
    again = step(plan.status, NOTHING, at(6))
    assert statuses(again) == statuses(plan) and again.phase == "Completed"


def test_progress_is_copied_and_the_last_known_kept() -> None:
    progress = TransformProgress(
        FilesTotal=3,
        FilesCompleted=1,
        BytesTotal=300,
        BytesProcessed=120,
        RecordsProcessed=40,
        RecordsPerSecond=8.0,
        ModelLatencyMicroseconds=1500.0,
    )
    plan = step(RUNNING2, transform_seen(instance(0), instance(1), progress=progress), at(5))
    assert plan.status.Progress == progress
    kept = step(plan.status, BOTH_RUN, at(7))
    assert kept.status.Progress == progress


def test_fail_transform_job_stops_whatever_runs() -> None:
    reason = FailureReason(kind="ClientError", message="the backend refused it")
    plan = fail_transform_job(TWO, RUNNING2, BOTH_RUN, reason, now=at(5))
    assert actions(plan) == [("stop", False)]
    assert (plan.phase, plan.status.FailureReason) == (
        "Failed",
        "ClientError: the backend refused it",
    )
    idle = fail_transform_job(TWO, TransformJobState(), NOTHING, reason, now=at(5))
    assert actions(idle) == [("cleanup",)] and not idle.active


def test_a_newer_attempt_the_backend_runs_is_adopted() -> None:
    plan = step(RUNNING2, transform_seen(instance(0), instance(1, attempt=3)), at(5))
    assert actions(plan) == []
    assert statuses(plan) == [(0, 1, "Running"), (1, 3, "Running")]


def test_the_plan_is_a_function_of_its_inputs() -> None:
    seen = transform_seen(instance(0), instance(1, state="exited", exit_code=-9))
    assert step(RUNNING2, seen, at(5)) == step(RUNNING2, seen, at(5))
