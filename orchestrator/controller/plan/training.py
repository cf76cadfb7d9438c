"""Planning for training jobs: ``plan_training_job(desired, observed, now) -> Plan``. Pure.

The backend reports what one attempt is doing (``ObservedJob``); this function decides what to
do next and what the status is. Nothing here performs I/O, so every transition is tested as a
table of (status, observation, now) -> (actions, new status).

Failures arrive typed (``FailureReason``: SageMaker's category and a message) and become
SageMaker's ``FailureReason`` string only in the status. ``RetryStrategy`` retries the whole
job, as SageMaker does, when an attempt failed for a reason of ours (``InternalServerError``:
a supervisor that died, a failed upload, an interrupted host of a multi-host job), never for a
``ClientError`` or an ``AlgorithmError``, which a new attempt would only repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.controller.plan.types import (
    Action,
    Admission,
    CleanupJob,
    DeleteRecord,
    JobLaunch,
    LaunchJob,
    ObservedJob,
    Plan,
    StopJob,
)
from orchestrator.resources.common import ConditionType, set_condition
from orchestrator.resources.failures import (
    REASON_LIMIT,
    FailureReason,
    algorithm_error,
    internal_error,
)
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.training import (
    TERMINAL_TRAINING_STATUSES,
    CreateTrainingJobRequest,
    MetricData,
    ModelArtifacts,
    SecondaryStatus,
    SecondaryStatusTransition,
    TrainingJobState,
    TrainingJobStatus,
)

FAILURE_REASON_LIMIT = REASON_LIMIT
RUNNING_RESYNC = 1.0


@dataclass(frozen=True)
class DesiredJob:
    name: str
    spec: CreateTrainingJobRequest
    status: TrainingJobState
    created_at: datetime
    stop_requested: bool = False
    delete_requested: bool = False
    output_uri: str = ""


@dataclass(frozen=True)
class TrainingPolicy:
    stop_grace_seconds: float = 30.0


def _secondary(
    st: TrainingJobState, new: SecondaryStatus, now: datetime, message: str = ""
) -> TrainingJobState:
    """Move the secondary status, closing the open transition (no-op if unchanged)."""
    if st.SecondaryStatus == new and st.SecondaryStatusTransitions:
        return st
    transitions = list(st.SecondaryStatusTransitions)
    if transitions and transitions[-1].EndTime is None:
        transitions[-1] = transitions[-1].model_copy(update={"EndTime": now})
    transitions.append(SecondaryStatusTransition(Status=new, StartTime=now, StatusMessage=message))
    return st.model_copy(update={"SecondaryStatus": new, "SecondaryStatusTransitions": transitions})


def _replay(st: TrainingJobState, observed: ObservedJob, now: datetime) -> TrainingJobState:
    """Record the phases the job reported since the last recorded transition, at their times."""
    last = st.SecondaryStatusTransitions[-1].StartTime if st.SecondaryStatusTransitions else None
    for mark in observed.phases:
        if last is not None and mark.at <= last:
            continue
        if mark.phase != st.SecondaryStatus:
            st = _secondary(st, mark.phase, mark.at, mark.message)
            last = mark.at
    if observed.phase is not None and observed.phase != st.SecondaryStatus and not observed.phases:
        # A backend that reports only where the job is now: record it as seen now.
        st = _secondary(st, observed.phase, now, observed.phase_message)
    return st


def _finish(
    st: TrainingJobState,
    status: TrainingJobStatus,
    secondary: SecondaryStatus,
    now: datetime,
    *,
    message: str,
    failure: FailureReason | str | None = None,
    observed: ObservedJob | None = None,
) -> TrainingJobState:
    # The job's own end time, kept between the last recorded transition and now so that
    # transitions stay in order whatever the two clocks say.
    end = observed.ended_at if observed and observed.ended_at else now
    if st.SecondaryStatusTransitions:
        end = max(end, st.SecondaryStatusTransitions[-1].StartTime)
    end = min(end, now)
    st = _secondary(st, secondary, end, message)
    transitions = list(st.SecondaryStatusTransitions)
    transitions[-1] = transitions[-1].model_copy(update={"EndTime": end})
    start = st.TrainingStartTime
    seconds = max(0, int((end - start).total_seconds())) if start else 0
    # The one place a typed reason becomes SageMaker's string.
    rendered = failure.render() if isinstance(failure, FailureReason) else failure
    update: dict[str, object] = {
        "TrainingJobStatus": status,
        "SecondaryStatusTransitions": transitions,
        "TrainingEndTime": end,
        "TrainingTimeInSeconds": seconds,
        "BillableTimeInSeconds": seconds,
        "FailureReason": rendered[:FAILURE_REASON_LIMIT] if rendered else None,
    }
    if observed is not None:
        if observed.metrics:
            update["FinalMetricDataList"] = [
                MetricData(
                    MetricName=k, Value=v, Timestamp=min(observed.metric_times.get(k, end), end)
                )
                for k, v in sorted(observed.metrics.items())
            ]
        if observed.model_artifact:
            update["ModelArtifacts"] = ModelArtifacts(S3ModelArtifacts=observed.model_artifact)
    st = st.model_copy(update=update)
    conditions = set_condition(
        st.Conditions, ConditionType.RUNNING, "False", reason=status, message=message, now=now
    )
    conditions = set_condition(
        conditions,
        ConditionType.SUCCEEDED,
        "True" if status == TrainingJobStatus.COMPLETED else "False",
        reason=status,
        message=rendered or message,
        now=now,
    )
    return st.model_copy(update={"Conditions": conditions})


def _failed(
    st: TrainingJobState,
    now: datetime,
    reason: FailureReason | str,
    observed: ObservedJob | None = None,
) -> Plan[TrainingJobState]:
    """The job ends Failed with ``reason`` as its FailureReason."""
    return _plan(
        _finish(
            st,
            TrainingJobStatus.FAILED,
            SecondaryStatus.FAILED,
            now,
            message="Job failed",
            failure=reason,
            observed=observed,
        ),
        [],
        None,
    )


def _plan(
    st: TrainingJobState, actions: list[Action], requeue: float | None
) -> Plan[TrainingJobState]:
    terminal = st.TrainingJobStatus in TERMINAL_TRAINING_STATUSES
    return Plan(
        actions=tuple(actions),
        status=st,
        phase=st.TrainingJobStatus.value,
        active=not terminal,
        requeue_after=None if terminal else requeue,
    )


def gpus_needed(spec: CreateTrainingJobRequest) -> int:
    rc = spec.ResourceConfig
    return INSTANCE_TYPES[rc.InstanceType].gpus * rc.InstanceCount


def _launch(
    desired: DesiredJob,
    st: TrainingJobState,
    now: datetime,
    attempt: int,
    admission: Admission | None = None,
    *,
    after: FailureReason | None = None,
) -> Plan[TrainingJobState]:
    """Launch ``attempt`` when the queue admits it (``admission``; None: admitted, nothing
    accounted), else wait as Pending; ``after``: why the previous one failed."""
    gpus: tuple[int, ...] | None = None
    if admission is not None:
        if admission.fail is not None:
            return _failed(st, now, admission.fail)
        if not admission.admitted:
            return _wait(desired, st, now, admission.reason or "Waiting for capacity")
        if admission.gpus is not None:
            gpus = admission.gpus[: gpus_needed(desired.spec)]
    message = "Launching the job" if attempt == 1 else f"Retrying: attempt {attempt}"
    if after is not None:
        message += f" (attempt {attempt - 1} failed: {after.render()})"
    secondary = SecondaryStatus.STARTING if attempt == 1 else SecondaryStatus.RESTARTING
    st = _secondary(st, secondary, now, message).model_copy(
        update={"Attempt": attempt, "AllocatedGpus": list(gpus or ())}
    )
    st = st.model_copy(
        update={
            "Conditions": set_condition(
                st.Conditions,
                ConditionType.RUNNING,
                "True",
                reason=secondary,
                message=message,
                now=now,
            )
        }
    )
    launch = JobLaunch(desired.name, attempt, desired.spec, desired.output_uri, gpus)
    return _plan(st, [LaunchJob(launch)], RUNNING_RESYNC)


def _pending_since(desired: DesiredJob, st: TrainingJobState) -> datetime:
    """When the current wait began: the job's creation for a first attempt, else the start of
    its Pending transition (back in the queue after a retry or a preemption)."""
    if st.Attempt == 0:
        return desired.created_at
    last = st.SecondaryStatusTransitions[-1] if st.SecondaryStatusTransitions else None
    if last is not None and last.Status == SecondaryStatus.PENDING:
        return last.StartTime
    return desired.created_at


def _wait(
    desired: DesiredJob, st: TrainingJobState, now: datetime, reason: str
) -> Plan[TrainingJobState]:
    """Wait in the queue as Pending with ``reason``; the status changes only when the reason
    does (a queued job costs no write per pass). Past MaxPendingTimeInSeconds the job is
    stopped, as SageMaker stops a job that was pending too long."""
    limit = desired.spec.StoppingCondition.MaxPendingTimeInSeconds
    requeue = RUNNING_RESYNC
    if limit is not None:
        waited = (now - _pending_since(desired, st)).total_seconds()
        if waited >= limit:
            why = (
                f"MaxPendingTimeExceeded: the job waited {int(waited)} s for capacity, longer "
                f"than StoppingCondition.MaxPendingTimeInSeconds={limit} ({reason})"
            )
            st = st.model_copy(update={"StopReason": why})
            finished = _finish(
                st, TrainingJobStatus.STOPPED, SecondaryStatus.STOPPED, now, message=why
            )
            return _plan(finished, [], None)
        requeue = min(requeue, max(0.05, limit - waited))
    st = _secondary(st, SecondaryStatus.PENDING, now, reason)
    transitions = list(st.SecondaryStatusTransitions)
    if transitions[-1].StatusMessage != reason:
        # Still Pending, for another reason: the open transition says the current one.
        transitions[-1] = transitions[-1].model_copy(update={"StatusMessage": reason})
    conditions = set_condition(
        st.Conditions, ConditionType.RUNNING, "False", reason="Pending", message=reason, now=now
    )
    st = st.model_copy(update={"SecondaryStatusTransitions": transitions, "Conditions": conditions})
    return _plan(st, [], requeue)


def _adopt(st: TrainingJobState, observed: ObservedJob, now: datetime) -> TrainingJobState:
    """An attempt the backend runs and the status never recorded (the controller died between
    launching it and writing the status): the status its launch would have written (the
    attempt, its Starting or Restarting transition, the Running condition), dated from the
    attempt's own record, then what the attempt has done since."""
    attempt = observed.attempt
    secondary = SecondaryStatus.STARTING if attempt == 1 else SecondaryStatus.RESTARTING
    message = "Launching the job" if attempt == 1 else f"Retrying: attempt {attempt}"
    known = list(st.SecondaryStatusTransitions)
    seen = [m.at for m in observed.phases]
    if observed.started_at is not None:
        seen.append(observed.started_at)
    began = min([now, *seen])
    if known:
        began = max(began, known[-1].StartTime)
        if known[-1].EndTime is None:
            known[-1] = known[-1].model_copy(update={"EndTime": began})
    # Replayed as from the launch, before its transition goes in front of what the replay
    # adds: a phase the attempt entered at the very time it started is still recorded.
    replayed = _replay(st.model_copy(update={"SecondaryStatus": secondary}), observed, now)
    since = replayed.SecondaryStatusTransitions[len(known) :]
    launched = SecondaryStatusTransition(
        Status=secondary,
        StartTime=began,
        EndTime=since[0].StartTime if since else None,
        StatusMessage=message,
    )
    conditions = set_condition(
        st.Conditions, ConditionType.RUNNING, "True", reason=secondary, message=message, now=now
    )
    return replayed.model_copy(
        update={
            "Attempt": attempt,
            "AllocatedGpus": list(observed.gpus),
            "SecondaryStatus": since[-1].Status if since else secondary,
            "SecondaryStatusTransitions": [*known, launched, *since],
            "Conditions": conditions,
        }
    )


def _retry_allowed(desired: DesiredJob, st: TrainingJobState) -> bool:
    """MaximumRetryAttempts counts retries (SageMaker), so attempts may reach it plus one."""
    strategy = desired.spec.RetryStrategy
    return strategy is not None and st.Attempt <= strategy.MaximumRetryAttempts


def fail_training_job(
    status: TrainingJobState, reason: FailureReason | str, now: datetime
) -> Plan[TrainingJobState]:
    """A job the backend refused for good (e.g. it cannot run this kind of code). ``reason``
    is typed, or a string already in SageMaker's form (``"ClientError: ..."``), kept as is."""
    return _failed(status, now, reason)


def plan_training_job(
    desired: DesiredJob,
    observed: ObservedJob | None,
    now: datetime,
    policy: TrainingPolicy | None = None,
    admission: Admission | None = None,
) -> Plan[TrainingJobState]:
    """``admission``: the queue's word on the job this pass (``plan.admission``; None:
    admitted with nothing accounted)."""
    policy = policy or TrainingPolicy()
    st = desired.status

    if st.TrainingJobStatus in TERMINAL_TRAINING_STATUSES:
        if desired.delete_requested:
            return _plan(
                st, [CleanupJob(desired.name), DeleteRecord("TrainingJob", desired.name)], None
            )
        return _plan(st, [], None)

    # The backend's attempt is the truth: a launch that happened before a crash is adopted.
    if observed is not None and observed.attempt > st.Attempt:
        st = _adopt(st, observed, now)

    if observed is None:
        if st.Attempt == 0:
            if desired.stop_requested:
                return _plan(
                    _finish(
                        st,
                        TrainingJobStatus.STOPPED,
                        SecondaryStatus.STOPPED,
                        now,
                        message="Stopped before it started",
                    ),
                    [],
                    None,
                )
            return _launch(desired, st, now, 1, admission)
        # Launched and recorded, but the backend knows nothing of it any more.
        reason = internal_error(
            f"attempt {st.Attempt} of the job vanished from the backend "
            "(its process and its working directory are gone; was the host restarted?)"
        )
        if desired.stop_requested or st.TrainingJobStatus == TrainingJobStatus.STOPPING:
            return _plan(
                _finish(
                    st,
                    TrainingJobStatus.STOPPED,
                    SecondaryStatus.STOPPED,
                    now,
                    message=reason.render(),
                ),
                [],
                None,
            )
        if _retry_allowed(desired, st):
            return _launch(desired, st, now, st.Attempt + 1, admission, after=reason)
        return _failed(st, now, reason)

    if observed.started_at and st.TrainingStartTime is None:
        st = st.model_copy(update={"TrainingStartTime": observed.started_at})

    if observed.state == "running":
        return _plan_running(desired, st, observed, now, policy)
    return _plan_exited(desired, st, observed, now, admission)


def _plan_running(
    desired: DesiredJob,
    st: TrainingJobState,
    observed: ObservedJob,
    now: datetime,
    policy: TrainingPolicy,
) -> Plan[TrainingJobState]:
    stopping = st.TrainingJobStatus == TrainingJobStatus.STOPPING
    if stopping and st.StoppingSince is not None:
        waited = (now - st.StoppingSince).total_seconds()
        if waited >= policy.stop_grace_seconds:
            return _plan(st, [StopJob(desired.name, force=True)], RUNNING_RESYNC)
        return _plan(st, [], min(RUNNING_RESYNC, policy.stop_grace_seconds - waited))

    limit = desired.spec.StoppingCondition.MaxRuntimeInSeconds
    started = st.TrainingStartTime or desired.created_at
    deadline = started + timedelta(seconds=limit)
    reason: str | None = None
    secondary = SecondaryStatus.STOPPING
    if desired.stop_requested:
        reason = "Stopped by request (StopTrainingJob)"
    elif now >= deadline:
        reason = (
            f"MaxRuntimeExceeded: the job ran longer than "
            f"StoppingCondition.MaxRuntimeInSeconds={limit}"
        )
        secondary = SecondaryStatus.MAX_RUNTIME_EXCEEDED
    if reason is not None:
        st = _secondary(st, secondary, now, reason).model_copy(
            update={
                "TrainingJobStatus": TrainingJobStatus.STOPPING,
                "StoppingSince": now,
                "StopReason": reason,
            }
        )
        return _plan(st, [StopJob(desired.name, force=False)], RUNNING_RESYNC)

    st = _replay(st, observed, now)
    until_deadline = max(0.05, (deadline - now).total_seconds())
    return _plan(st, [], min(RUNNING_RESYNC, until_deadline))


def _plan_exited(
    desired: DesiredJob,
    st: TrainingJobState,
    observed: ObservedJob,
    now: datetime,
    admission: Admission | None = None,
) -> Plan[TrainingJobState]:
    if st.TrainingJobStatus != TrainingJobStatus.STOPPING:
        st = _replay(st, observed, now)
    we_stopped = st.TrainingJobStatus == TrainingJobStatus.STOPPING or desired.stop_requested
    if observed.outcome == "completed" and not we_stopped:
        return _plan(
            _finish(
                st,
                TrainingJobStatus.COMPLETED,
                SecondaryStatus.COMPLETED,
                now,
                message="Training job completed",
                observed=observed,
            ),
            [],
            None,
        )
    if we_stopped or observed.outcome == "stopped":
        # A backend that enforces the deadline itself (a Kubernetes Job's activeDeadlineSeconds)
        # says so with its last phase.
        deadline = observed.phase == SecondaryStatus.MAX_RUNTIME_EXCEEDED
        secondary = (
            SecondaryStatus.MAX_RUNTIME_EXCEEDED
            if deadline or st.SecondaryStatus == SecondaryStatus.MAX_RUNTIME_EXCEEDED
            else SecondaryStatus.STOPPED
        )
        message = (
            st.StopReason or (observed.phase_message if deadline else "") or "Training job stopped"
        )
        if deadline and st.StopReason is None:
            # The backend's deadline came before ours: its reason is the job's stop reason.
            st = st.model_copy(update={"StopReason": message})
        return _plan(
            _finish(
                st, TrainingJobStatus.STOPPED, secondary, now, message=message, observed=observed
            ),
            [],
            None,
        )
    if observed.outcome is None:
        # The job's supervisor died without writing its result: not the user's fault.
        said = f": {observed.failure.message}" if observed.failure else ""
        reason = internal_error(
            f"the job's supervisor process exited unexpectedly "
            f"(exit code {observed.exit_code}) before reporting a result{said}"
        )
    else:
        reason = observed.failure or algorithm_error(f"exit code {observed.exit_code}")
    if reason.kind == "InternalServerError" and _retry_allowed(desired, st):
        return _launch(desired, st, now, st.Attempt + 1, admission, after=reason)
    return _failed(st, now, reason, observed)
