"""Planning for batch transform jobs: ``plan_transform_job(...) -> Plan``. Pure.

A transform job runs on ``TransformResources.InstanceCount`` instances; the backend reports
each one's latest attempt and the progress the runners recorded (``ObservedTransform``), and
this function decides what to do next and what the status is:

- each instance not launched yet is launched (attempt 1); the job's Model must exist;
- an instance whose runner died without a result (killed, its host lost) is launched again,
  attempt + 1, at most ``max_restarts`` times; it resumes from the parts already written;
- an instance whose runner failed fails the job (its ``FailureReason``); the others are
  stopped (SIGTERM, then SIGKILL after the grace);
- every instance completed: the job is Completed;
- a stop (or a delete): Stopping, the instances are stopped (SIGTERM, SIGKILL after the
  grace), then Stopped once none runs.

An ended job whose instances no longer run has its scratch removed (``CleanupTransform``; the
``.out`` objects stay) in the plan that ends it, and is no longer active. A Failed job stays
active while the other instances are being stopped, and is cleaned up once they are gone.
Nothing here performs I/O and the clock is an argument, so every transition is a table row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.controller.plan.types import (
    Action,
    CleanupTransform,
    DeleteRecord,
    LaunchTransformInstance,
    ObservedTransform,
    ObservedTransformInstance,
    Plan,
    StopTransform,
    TransformLaunch,
)
from orchestrator.resources.common import ConditionType, set_condition
from orchestrator.resources.failures import (
    REASON_LIMIT,
    FailureReason,
    client_error,
    internal_error,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    CreateTransformJobRequest,
    TransformInstanceState,
    TransformJobState,
    TransformJobStatus,
)

KIND = "TransformJob"
# While instances run, look again this often: the status's Progress is refreshed as often.
RUNNING_RESYNC = 2.0
# Launched or starting instances (and stops): look again sooner, to see them change.
STARTING_RESYNC = 1.0
# SIGTERM, then SIGKILL after this (the training jobs' default, ``TrainingPolicy``).
STOP_GRACE_SECONDS = 30.0
DEFAULT_MAX_RESTARTS = 3

_FINISHED = frozenset({"Completed", "Failed", "Stopped"})
RELAUNCHED = "Relaunched"


@dataclass(frozen=True)
class _Instance:
    """One instance after this pass's observation: its status entry, and what it needs."""

    state: TransformInstanceState
    running: bool = False  # the backend runs it now (starting or running)
    # It ended without a result, or vanished: how, read after "attempt N" (a relaunch, or
    # the job's end when its restarts are spent).
    died: str = ""
    failure: FailureReason | None = None  # its runner failed the job


def _at(value: datetime | None, now: datetime) -> datetime:
    """A time from the backend, never after ``now`` (two clocks)."""
    return now if value is None else min(value, now)


def _fold(
    record: TransformInstanceState,
    seen: ObservedTransformInstance | None,
    now: datetime,
    *,
    stopping: bool,
) -> _Instance:
    """One instance's status entry and needs from its entry and its latest observed attempt.
    The backend's attempt is the truth: a launch made before a crash and never recorded is
    adopted. ``stopping``: the job stops its instances, so one that ends is Stopped."""
    i = record.Instance
    if seen is not None and seen.attempt > record.Attempt:
        record = record.model_copy(
            update={
                "Attempt": seen.attempt,
                "Status": "Starting",
                "StartTime": seen.started_at or now,
                "EndTime": None,
                "Message": "",
            }
        )
    if seen is None or seen.attempt < record.Attempt:
        if record.Attempt == 0 or record.Status in _FINISHED:
            return _Instance(record)  # not launched yet, or over (the backend may forget it)
        died = "vanished from the backend (its runner and its records are gone)"
        return _ended(record, now, died=died, stopping=stopping)
    if seen.state == "exited" and record.Status in _FINISHED:
        return _Instance(record)  # its end is recorded already (how the job saw it then)
    started = _at(seen.started_at, now) if seen.started_at else record.StartTime
    # Why the attempt was launched again stays in view while it runs.
    note = record.Message if record.Message.startswith(RELAUNCHED) else ""
    if seen.state == "starting":
        message = note or "Waiting for the model server to answer GET /ping"
        st = record.model_copy(
            update={"Status": "Starting", "StartTime": started, "Message": message}
        )
        return _Instance(st, running=True)
    if seen.state == "running":
        st = record.model_copy(update={"Status": "Running", "StartTime": started, "Message": note})
        return _Instance(st, running=True)
    record = record.model_copy(update={"StartTime": started})
    end = _at(seen.ended_at, now)
    if seen.outcome == "completed":
        st = record.model_copy(update={"Status": "Completed", "EndTime": end, "Message": ""})
        return _Instance(st)
    if seen.outcome == "failed":
        failure = seen.failure or internal_error(
            f"instance {i} failed without saying why (exit code {seen.exit_code})"
        )
        st = record.model_copy(
            update={"Status": "Failed", "EndTime": end, "Message": failure.render()}
        )
        return _Instance(st, failure=failure)
    if seen.outcome == "stopped" and not stopping:
        died = f"was stopped (exit code {seen.exit_code}) though no stop was asked"
    else:
        died = f"ended without a result ({seen.message or f'exit code {seen.exit_code}'})"
    return _ended(record, end, died=died, stopping=stopping)


def _ended(
    record: TransformInstanceState, end: datetime, *, died: str, stopping: bool
) -> _Instance:
    if stopping:
        st = record.model_copy(update={"Status": "Stopped", "EndTime": end, "Message": "Stopped"})
        return _Instance(st)
    return _Instance(record.model_copy(update={"EndTime": end}), died=died)


def _instances(
    desired: CreateTransformJobRequest,
    status: TransformJobState,
    observed: ObservedTransform,
    now: datetime,
    *,
    stopping: bool,
) -> list[_Instance]:
    count = desired.TransformResources.InstanceCount
    recorded = {s.Instance: s for s in status.Instances}
    seen = {o.instance: o for o in observed.instances}
    return [
        _fold(
            recorded.get(i) or TransformInstanceState(Instance=i),
            seen.get(i),
            now,
            stopping=stopping,
        )
        for i in range(count)
    ]


def _with(st: TransformJobState, instances: list[_Instance], **update: object) -> TransformJobState:
    return st.model_copy(update={"Instances": [x.state for x in instances], **update})


def _conditions(
    st: TransformJobState, now: datetime, *, running: bool, reason: str, message: str
) -> TransformJobState:
    conditions = set_condition(
        st.Conditions,
        ConditionType.RUNNING,
        "True" if running else "False",
        reason=reason,
        message=message,
        now=now,
    )
    if st.TransformJobStatus in TERMINAL_TRANSFORM_STATUSES:
        done = st.TransformJobStatus == TransformJobStatus.COMPLETED
        conditions = set_condition(
            conditions,
            ConditionType.SUCCEEDED,
            "True" if done else "False",
            reason=st.TransformJobStatus.value,
            message=st.FailureReason or message,
            now=now,
        )
    return st.model_copy(update={"Conditions": conditions})


def _plan(
    st: TransformJobState, actions: list[Action], requeue: float | None, *, active: bool
) -> Plan[TransformJobState]:
    return Plan(
        actions=tuple(actions),
        status=st,
        phase=st.TransformJobStatus.value,
        active=active,
        requeue_after=requeue if active else None,
    )


def _over(name: str, delete_requested: bool) -> list[Action]:
    """What an ended job with nothing running gets: its scratch removed (and its record let
    go, when it is deleted)."""
    actions: list[Action] = [CleanupTransform(name)]
    if delete_requested:
        actions.append(DeleteRecord(KIND, name))
    return actions


def _failing(x: _Instance) -> _Instance:
    """An instance of a job that fails now: one never launched will not be; one that died
    is not launched again."""
    if x.state.Attempt == 0:
        message = "Not launched: the job failed"
        return _Instance(x.state.model_copy(update={"Status": "Stopped", "Message": message}))
    if x.died:
        message = f"attempt {x.state.Attempt} {x.died}"[:REASON_LIMIT]
        return _Instance(x.state.model_copy(update={"Status": "Failed", "Message": message}))
    return x


def _fail(
    name: str,
    st: TransformJobState,
    instances: list[_Instance],
    reason: FailureReason,
    now: datetime,
    *,
    delete_requested: bool,
) -> Plan[TransformJobState]:
    """The job ends Failed for ``reason``; instances still running are told to stop (the
    job stays active until they are gone), those never launched will not be."""
    rendered = reason.render(REASON_LIMIT)
    instances = [_failing(x) for x in instances]
    running = any(x.running for x in instances)
    st = _with(
        st,
        instances,
        TransformJobStatus=TransformJobStatus.FAILED,
        FailureReason=rendered,
        TransformEndTime=now,
        StoppingSince=now if running else None,
    )
    message = "Stopping the other instances" if running else "Transform job failed"
    st = _conditions(st, now, running=False, reason="Failed", message=message)
    if running:
        return _plan(st, [StopTransform(name, force=False)], STARTING_RESYNC, active=True)
    return _plan(st, _over(name, delete_requested), None, active=False)


def _stop_flow(
    name: str,
    st: TransformJobState,
    instances: list[_Instance],
    now: datetime,
    grace: float,
    *,
    delete_requested: bool,
    final: TransformJobStatus | None,
) -> Plan[TransformJobState]:
    """Instances still running after a stop (or a failure): SIGTERM once (``StoppingSince``
    says when), SIGKILL after the grace. None running: the job ends (``final``; None: it has
    already ended) and its scratch goes."""
    if any(x.running for x in instances):
        since = st.StoppingSince
        if since is None:
            st = _with(st, instances, StoppingSince=now)
            return _plan(st, [StopTransform(name, force=False)], STARTING_RESYNC, active=True)
        st = _with(st, instances)
        waited = (now - since).total_seconds()
        if waited >= grace:
            return _plan(st, [StopTransform(name, force=True)], STARTING_RESYNC, active=True)
        return _plan(st, [], min(STARTING_RESYNC, max(0.05, grace - waited)), active=True)
    if final is None:
        return _plan(_with(st, instances), _over(name, delete_requested), None, active=False)
    st = _with(st, instances, TransformJobStatus=final, TransformEndTime=now)
    st = _conditions(st, now, running=False, reason=final.value, message="Transform job stopped")
    return _plan(st, _over(name, delete_requested), None, active=False)


def _missing_model(name: str, model_error: str | None) -> FailureReason:
    if model_error:
        return client_error(f"ModelName: model {name!r} cannot be used: {model_error}")
    return client_error(
        f"ModelName: model {name!r} does not exist; create the Model first (CreateModel), "
        "then the transform job"
    )


def _launch(
    desired: CreateTransformJobRequest,
    model: CreateModelRequest,
    x: _Instance,
    *,
    attempt: int,
    now: datetime,
    message: str,
) -> tuple[_Instance, Action]:
    st = x.state.model_copy(
        update={
            "Attempt": attempt,
            "Status": "Starting",
            "StartTime": now,
            "EndTime": None,
            "Message": message[:REASON_LIMIT],
        }
    )
    launch = TransformLaunch(
        name=desired.TransformJobName,
        instance=x.state.Instance,
        attempt=attempt,
        spec=desired,
        model_name=desired.ModelName,
        model=model,
    )
    return _Instance(st, running=True), LaunchTransformInstance(launch)


def _launches(
    desired: CreateTransformJobRequest,
    model: CreateModelRequest,
    instances: list[_Instance],
    now: datetime,
    allowed: int,
) -> tuple[list[_Instance], list[Action]]:
    """Attempt 1 of each instance not launched yet, the next attempt of each that died."""
    actions: list[Action] = []
    out: list[_Instance] = []
    for x in instances:
        launched = x
        if x.state.Attempt == 0:
            launched, action = _launch(desired, model, x, attempt=1, now=now, message="Launched")
            actions.append(action)
        elif x.died:
            n = x.state.Attempt + 1
            why = f"{RELAUNCHED} as attempt {n} of {allowed}: attempt {n - 1} {x.died}"
            launched, action = _launch(desired, model, x, attempt=n, now=now, message=why)
            actions.append(action)
        out.append(launched)
    return out, actions


def plan_transform_job(
    desired: CreateTransformJobRequest,
    status: TransformJobState,
    observed: ObservedTransform,
    model: CreateModelRequest | None,
    *,
    now: datetime,
    stop_requested: bool = False,
    delete_requested: bool = False,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    stop_grace_seconds: float = STOP_GRACE_SECONDS,
    model_error: str | None = None,
) -> Plan[TransformJobState]:
    """The next step of the job. ``model``: its Model's spec (None: there is none, or it
    cannot be used: ``model_error`` says why); a delete stops the job first, then lets its
    record go; ``max_restarts``: relaunches allowed per instance after its runner died."""
    name = desired.TransformJobName
    st = status
    if observed.progress is not None:
        st = st.model_copy(update={"Progress": observed.progress})
    ended = st.TransformJobStatus in TERMINAL_TRANSFORM_STATUSES
    stop = stop_requested or delete_requested
    stopping = ended or st.TransformJobStatus == TransformJobStatus.STOPPING
    instances = _instances(desired, st, observed, now, stopping=stopping or stop)

    if ended:  # what is left: instances still stopping after a failure, the cleanup
        return _stop_flow(
            name, st, instances, now, stop_grace_seconds, delete_requested=delete_requested,
            final=None,
        )  # fmt: skip

    if not stopping:
        if all(x.state.Status == "Completed" for x in instances):
            ends = [x.state.EndTime for x in instances if x.state.EndTime is not None]
            end = min(max(ends, default=now), now)
            st = _with(
                st,
                instances,
                TransformJobStatus=TransformJobStatus.COMPLETED,
                TransformEndTime=max(end, st.TransformStartTime or end),
            )
            st = _conditions(
                st, now, running=False, reason="Completed", message="Transform job completed"
            )
            return _plan(st, _over(name, delete_requested), None, active=False)
        failed = next((x for x in instances if x.failure is not None), None)
        if failed is not None and failed.failure is not None:
            return _fail(
                name, st, instances, failed.failure, now, delete_requested=delete_requested
            )

    if stop or stopping:
        if st.TransformJobStatus != TransformJobStatus.STOPPING:
            st = st.model_copy(
                update={"TransformJobStatus": TransformJobStatus.STOPPING, "StoppingSince": None}
            )
            st = _conditions(
                st, now, running=False, reason="Stopping", message="Stopped by request"
            )
        instances = [
            _Instance(x.state.model_copy(update={"Status": "Stopped", "Message": "Not launched"}))
            if x.state.Attempt == 0
            else x
            for x in instances
        ]
        return _stop_flow(
            name, st, instances, now, stop_grace_seconds, delete_requested=delete_requested,
            final=TransformJobStatus.STOPPED,
        )  # fmt: skip

    # Deaths first: one past its restarts fails the job.
    allowed = 1 + max_restarts
    for x in instances:
        if x.died and x.state.Attempt >= allowed:
            i, n = x.state.Instance, x.state.Attempt
            reason = internal_error(f"instance {i} died {n} times: attempt {n} {x.died}")
            return _fail(name, st, instances, reason, now, delete_requested=delete_requested)
    needs_launch = any(x.died or x.state.Attempt == 0 for x in instances)
    if needs_launch and model is None:
        reason = _missing_model(desired.ModelName, model_error)
        return _fail(name, st, instances, reason, now, delete_requested=delete_requested)

    out, actions = (
        (instances, []) if model is None else _launches(desired, model, instances, now, allowed)
    )
    start = st.TransformStartTime
    if start is None:
        starts = [x.state.StartTime for x in out if x.state.StartTime is not None]
        start = min(starts, default=None)
    st = _with(st, out, TransformStartTime=start)
    running = sum(1 for x in out if x.state.Status == "Running")
    done = sum(1 for x in out if x.state.Status == "Completed")
    count = len(out)
    message = f"{running} of {count} instances running, {done} completed"
    st = _conditions(
        st, now, running=True, reason="Running" if running else "Starting", message=message
    )
    busy = actions or any(x.state.Status == "Starting" for x in out)
    return _plan(st, actions, STARTING_RESYNC if busy else RUNNING_RESYNC, active=True)


def fail_transform_job(
    desired: CreateTransformJobRequest,
    status: TransformJobState,
    observed: ObservedTransform,
    reason: FailureReason,
    *,
    now: datetime,
    delete_requested: bool = False,
) -> Plan[TransformJobState]:
    """A job the backend refused for good (an action's permanent error): Failed with
    ``reason``, its running instances stopped."""
    instances = _instances(desired, status, observed, now, stopping=True)
    return _fail(
        desired.TransformJobName,
        status,
        instances,
        reason,
        now,
        delete_requested=delete_requested,
    )
