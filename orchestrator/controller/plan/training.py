"""Planning for training jobs: ``plan_training_job(desired, observed, now) -> Plan``. Pure.

The backend reports what one attempt is doing (``ObservedJob``); this function decides what to
do next and what the status is. Nothing here performs I/O, so every transition is tested as a
table of (status, observation, now) -> (actions, new status).

Failures arrive typed (``FailureReason``: SageMaker's category and a message) and become
SageMaker's ``FailureReason`` string only in the status. ``RetryStrategy`` retries the whole
job, as SageMaker does, by the policy of ``plan.retry`` (infrastructure failures and OOM kills;
a user error only for the exit codes listed), after a backoff: the failed attempt is recorded
in ``Attempts``, the status says ``Restarting in N s`` with ``NextAttemptTime``, and the next
attempt launches when that time has come. An attempt the queue preempts (``Admission.preempt``)
is stopped as a stop is (SIGTERM, then SIGKILL after the grace), recorded as Preempted (not a
retry), and the job waits in the queue (Interrupted, then Pending) for its next attempt.
``StoppingCondition.MaxWaitTimeInSeconds`` (spot jobs) bounds the whole job, waits included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.controller.plan.retry import BACKOFF_CAP_SECONDS, backoff_seconds, retry_cause
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
    AttemptOutcome,
    CreateTrainingJobRequest,
    MetricData,
    ModelArtifacts,
    SecondaryStatus,
    SecondaryStatusTransition,
    TrainingAttempt,
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
    retry_backoff_seconds: float = 10.0
    retry_backoff_cap_seconds: float = BACKOFF_CAP_SECONDS


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


def _transition(
    st: TrainingJobState, new: SecondaryStatus, now: datetime, message: str
) -> TrainingJobState:
    """A new transition even when the secondary status stays (a second Restarting)."""
    if st.SecondaryStatus == new:
        st = st.model_copy(update={"SecondaryStatus": SecondaryStatus.STARTING})
    return _secondary(st, new, now, message)


_OUTCOMES = {
    TrainingJobStatus.COMPLETED: AttemptOutcome.COMPLETED,
    TrainingJobStatus.FAILED: AttemptOutcome.FAILED,
    TrainingJobStatus.STOPPED: AttemptOutcome.STOPPED,
}


def _attempt_recorded(st: TrainingJobState) -> bool:
    return bool(st.Attempts) and st.Attempts[-1].AttemptNumber == st.Attempt


def _attempt_start(st: TrainingJobState, observed: ObservedJob | None) -> datetime | None:
    """When the current attempt began: its own record, else its launch's transition."""
    if observed is not None and observed.started_at is not None:
        return observed.started_at
    for t in reversed(st.SecondaryStatusTransitions):
        if t.Status in (SecondaryStatus.STARTING, SecondaryStatus.RESTARTING):
            return t.StartTime
    return st.TrainingStartTime


def _record_attempt(
    st: TrainingJobState,
    observed: ObservedJob | None,
    end: datetime,
    outcome: AttemptOutcome,
    failure: str | None = None,
    *,
    retried: bool = False,
) -> TrainingJobState:
    """The current attempt, ended, into ``Attempts`` (once)."""
    if st.Attempt == 0 or _attempt_recorded(st):
        return st
    start = _attempt_start(st, observed)
    attempt = TrainingAttempt(
        AttemptNumber=st.Attempt,
        StartTime=min(start, end) if start else None,
        EndTime=end,
        Outcome=outcome,
        FailureReason=failure[:FAILURE_REASON_LIMIT] if failure else None,
        Retried=retried,
    )
    return st.model_copy(update={"Attempts": [*st.Attempts, attempt]})


def billable_seconds(st: TrainingJobState) -> int:
    """The time attempts ran (each from its start to its end), summed: backoffs and waits in
    the queue (a preempted spot job's) are not billed."""
    total = sum(
        (a.EndTime - a.StartTime).total_seconds() for a in st.Attempts if a.StartTime is not None
    )
    return max(0, int(total))


def _attempts_allowed(desired: DesiredJob, st: TrainingJobState) -> int:
    """Attempts the job may make: one, plus its retries, plus those preempted (not counted)."""
    strategy = desired.spec.RetryStrategy
    return 1 + (strategy.MaximumRetryAttempts if strategy else 0) + st.PreemptionCount


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
    attempts_allowed: int | None = None,
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
    st = _record_attempt(st, observed, end, _OUTCOMES[status], rendered)
    if rendered and status == TrainingJobStatus.FAILED and st.Attempt > 1 and attempts_allowed:
        # After retries: which attempt failed, and of how many the job could make; SageMaker's
        # category stays first (``"AlgorithmError: attempt 3 of 3: ..."``).
        which = f"attempt {st.Attempt} of {max(attempts_allowed, st.Attempt)}"
        kind, sep, rest = rendered.partition(": ")
        rendered = f"{kind}: {which}: {rest}" if sep else f"{which}: {rendered}"
    update: dict[str, object] = {
        "TrainingJobStatus": status,
        "SecondaryStatusTransitions": transitions,
        "TrainingEndTime": end,
        "TrainingTimeInSeconds": seconds,
        "BillableTimeInSeconds": billable_seconds(st) if st.Attempts else seconds,
        "FailureReason": rendered[:FAILURE_REASON_LIMIT] if rendered else None,
        "NextAttemptTime": None,
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
    attempts_allowed: int | None = None,
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
            attempts_allowed=attempts_allowed,
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


def _relaunch_message(st: TrainingJobState, attempt: int) -> str:
    """The Starting/Restarting transition's message: a preempted attempt's successor resumes
    (no retry was used), a failed one's is a retry."""
    if attempt == 1:
        return "Launching the job"
    if st.Attempts and st.Attempts[-1].Outcome == AttemptOutcome.PREEMPTED:
        return f"Resuming after a preemption: attempt {attempt}"
    return f"Retrying: attempt {attempt}"


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
    message = _relaunch_message(st, attempt)
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
    message = _relaunch_message(st, attempt)
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
    """MaximumRetryAttempts counts retries (SageMaker), so attempts may reach it plus one;
    preempted attempts do not count."""
    strategy = desired.spec.RetryStrategy
    return strategy is not None and st.Attempt - st.PreemptionCount <= strategy.MaximumRetryAttempts


def _max_wait_exceeded(desired: DesiredJob, now: datetime) -> str | None:
    """SageMaker's MaxWaitTimeExceeded: a spot job not done within MaxWaitTimeInSeconds of
    its creation (time waiting for capacity included), or None."""
    limit = desired.spec.StoppingCondition.MaxWaitTimeInSeconds
    if limit is None or not desired.spec.EnableManagedSpotTraining:
        return None
    if now < desired.created_at + timedelta(seconds=limit):
        return None
    return (
        f"MaxWaitTimeExceeded: the job did not complete within "
        f"StoppingCondition.MaxWaitTimeInSeconds={limit} (waits for capacity included)"
    )


def _retry_later(
    desired: DesiredJob,
    st: TrainingJobState,
    observed: ObservedJob | None,
    now: datetime,
    policy: TrainingPolicy,
    *,
    reason: FailureReason,
    cause: str,
) -> Plan[TrainingJobState]:
    """Record the failed attempt and wait out the backoff before the next one."""
    end = min(observed.ended_at or now, now) if observed is not None else now
    st = _record_attempt(st, observed, end, AttemptOutcome.FAILED, reason.render(), retried=True)
    retries_done = st.Attempt - st.PreemptionCount - 1
    delay = backoff_seconds(
        policy.retry_backoff_seconds, retries_done, policy.retry_backoff_cap_seconds
    )
    message = (
        f"Restarting in {delay:g} s (attempt {st.Attempt + 1} of "
        f"{_attempts_allowed(desired, st)}; retried for {cause}): {reason.render()}"
    )
    st = _transition(st, SecondaryStatus.RESTARTING, now, message[:FAILURE_REASON_LIMIT])
    conditions = set_condition(
        st.Conditions, ConditionType.RUNNING, "False", reason="Restarting", message=message, now=now
    )
    st = st.model_copy(
        update={
            "NextAttemptTime": now + timedelta(seconds=delay),
            "AllocatedGpus": [],
            "Conditions": conditions,
        }
    )
    return _plan(st, [], max(0.05, delay))


def _waited_out(
    desired: DesiredJob, st: TrainingJobState, now: datetime
) -> Plan[TrainingJobState] | None:
    """A spot job not running now whose ``MaxWaitTimeInSeconds`` is spent ends Stopped
    (MaxWaitTimeExceeded); None while it may still wait."""
    waited_out = _max_wait_exceeded(desired, now)
    if waited_out is None:
        return None
    st = st.model_copy(update={"StopReason": waited_out})
    stopped = _finish(
        st,
        TrainingJobStatus.STOPPED,
        SecondaryStatus.MAX_WAIT_TIME_EXCEEDED,
        now,
        message=waited_out,
    )
    return _plan(stopped, [], None)


def _plan_next(
    desired: DesiredJob,
    st: TrainingJobState,
    now: datetime,
    admission: Admission | None,
) -> Plan[TrainingJobState]:
    """Between attempts (the last one's end is recorded): stop, give up, wait, or launch."""
    if desired.stop_requested:
        message = "Stopped by request (StopTrainingJob) between attempts"
        st = st.model_copy(update={"StopReason": message})
        return _plan(
            _finish(st, TrainingJobStatus.STOPPED, SecondaryStatus.STOPPED, now, message=message),
            [],
            None,
        )
    waited_out = _waited_out(desired, st, now)
    if waited_out is not None:
        return waited_out
    if st.NextAttemptTime is not None and now < st.NextAttemptTime:
        return _plan(st, [], max(0.05, (st.NextAttemptTime - now).total_seconds()))
    if admission is not None and admission.preempt:
        return _plan(st, [], RUNNING_RESYNC)  # the queue still wants the capacity back
    plan = _launch(desired, st, now, st.Attempt + 1, admission)
    if any(isinstance(a, LaunchJob) for a in plan.actions):
        return _plan(
            plan.status.model_copy(update={"NextAttemptTime": None}),
            list(plan.actions),
            plan.requeue_after,
        )
    return plan


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
    admitted with nothing accounted): whether an attempt may launch, with which GPUs, and
    whether the running one is to be preempted."""
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
        st = _adopt(st, observed, now).model_copy(update={"NextAttemptTime": None})

    # Between attempts (a backoff, or back in the queue after a preemption).
    if _attempt_recorded(st) and (observed is None or observed.attempt <= st.Attempt):
        return _plan_next(desired, st, now, admission)

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
            waited_out = _waited_out(desired, st, now)
            if waited_out is not None:
                return waited_out
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
        cause = retry_cause(desired.spec.RetryStrategy, reason, None, None)
        if cause is not None and _retry_allowed(desired, st):
            return _retry_later(desired, st, None, now, policy, reason=reason, cause=cause)
        return _failed(st, now, reason, attempts_allowed=_attempts_allowed(desired, st))

    if observed.started_at and st.TrainingStartTime is None:
        st = st.model_copy(update={"TrainingStartTime": observed.started_at})

    if observed.state == "running":
        return _plan_running(desired, st, observed, now, policy, admission=admission)
    return _plan_exited(desired, st, observed, now, policy)


def _preempting(st: TrainingJobState) -> bool:
    """The running attempt was told to stop for a preemption (and the user did not stop it)."""
    return (
        st.TrainingJobStatus == TrainingJobStatus.IN_PROGRESS
        and st.SecondaryStatus == SecondaryStatus.INTERRUPTED
        and st.StoppingSince is not None
    )


def _plan_running(
    desired: DesiredJob,
    st: TrainingJobState,
    observed: ObservedJob,
    now: datetime,
    policy: TrainingPolicy,
    *,
    admission: Admission | None = None,
) -> Plan[TrainingJobState]:
    if _preempting(st) and desired.stop_requested:
        # A user's stop during a preemption's grace: the job stops for good (same grace).
        asked = "Stopped by request (StopTrainingJob)"
        st = _secondary(st, SecondaryStatus.STOPPING, now, asked).model_copy(
            update={"TrainingJobStatus": TrainingJobStatus.STOPPING, "StopReason": asked}
        )
    stopping = st.TrainingJobStatus == TrainingJobStatus.STOPPING or _preempting(st)
    if stopping and st.StoppingSince is not None:
        waited = (now - st.StoppingSince).total_seconds()
        if waited >= policy.stop_grace_seconds:
            return _plan(st, [StopJob(desired.name, force=True)], RUNNING_RESYNC)
        return _plan(st, [], min(RUNNING_RESYNC, policy.stop_grace_seconds - waited))

    limit = desired.spec.StoppingCondition.MaxRuntimeInSeconds
    started = st.TrainingStartTime or desired.created_at
    deadline = started + timedelta(seconds=limit)
    if st.Attempts:
        # The limit is for all the attempts together (SageMaker): the time the ended ones
        # ran is spent, the backoffs and waits in the queue between them are not.
        began = _attempt_start(st, observed) or now
        deadline = began + timedelta(seconds=limit - billable_seconds(st))
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
    elif (waited_out := _max_wait_exceeded(desired, now)) is not None:
        reason, secondary = waited_out, SecondaryStatus.MAX_WAIT_TIME_EXCEEDED
    if reason is None and admission is not None and admission.preempt:
        # Stopped as a stop is (SIGTERM, the grace, then SIGKILL); the job stays InProgress.
        st = _transition(
            st, SecondaryStatus.INTERRUPTED, now, f"Preempted: {admission.preempt}"
        ).model_copy(update={"StoppingSince": now})
        return _plan(st, [StopJob(desired.name, force=False)], RUNNING_RESYNC)
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
    policy: TrainingPolicy,
) -> Plan[TrainingJobState]:
    if _preempting(st) and observed.outcome != "completed" and not desired.stop_requested:
        return _requeue_preempted(st, observed, now)
    if _preempting(st):
        st = st.model_copy(update={"StoppingSince": None})
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
            else SecondaryStatus.MAX_WAIT_TIME_EXCEEDED
            if st.SecondaryStatus == SecondaryStatus.MAX_WAIT_TIME_EXCEEDED
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
    cause = retry_cause(
        desired.spec.RetryStrategy,
        reason,
        None if observed.outcome is None else observed.exit_kind,
        observed.exit_code,
    )
    if cause is not None and _retry_allowed(desired, st):
        return _retry_later(desired, st, observed, now, policy, reason=reason, cause=cause)
    return _failed(st, now, reason, observed, attempts_allowed=_attempts_allowed(desired, st))


def _requeue_preempted(
    st: TrainingJobState, observed: ObservedJob, now: datetime
) -> Plan[TrainingJobState]:
    """The preempted attempt has exited: record it (not a failure), back to the queue."""
    end = min(observed.ended_at or now, now)
    why = next(
        (
            t.StatusMessage
            for t in reversed(st.SecondaryStatusTransitions)
            if t.Status == SecondaryStatus.INTERRUPTED
        ),
        "Preempted",
    )
    st = _record_attempt(st, observed, end, AttemptOutcome.PREEMPTED, why, retried=True)
    message = f"Waiting in the queue for capacity after attempt {st.Attempt} was preempted"
    st = _secondary(st, SecondaryStatus.PENDING, now, message)
    conditions = set_condition(
        st.Conditions, ConditionType.RUNNING, "False", reason="Pending", message=message, now=now
    )
    st = st.model_copy(
        update={
            "StoppingSince": None,
            "PreemptionCount": st.PreemptionCount + 1,
            "AllocatedGpus": [],
            "Conditions": conditions,
        }
    )
    return _plan(st, [], RUNNING_RESYNC)
