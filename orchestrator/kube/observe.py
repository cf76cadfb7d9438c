"""What Jobs, Pods and Deployments say, as the planners' observations (pure).

Training: the Job's conditions decide the outcome (``Complete``, on several hosts only with
every index succeeded; ``Failed`` with reason ``DeadlineExceeded`` -> stopped at
MaxRuntimeExceeded, any other reason -> failed with the reason of the first container that
failed, on whichever host). The kind of failure comes from where it happened, never from the
text: the user's container is an ``AlgorithmError`` (its termination message is SageMaker's
failure file); the orchestrator's steps write their ``FailureReason`` encoded in their
termination message, read back exactly (anything else there is an ``InternalServerError``
saying so). The pods' container timestamps give the secondary phases (Downloading = the
download step, Training = the user's container, Uploading = after it, on every host); a lone
pod disrupted by eviction or preemption is Interrupted, not failed: the Job's
podFailurePolicy ignores it and starts a new pod. Endpoints: every slot of a fleet variant is
a replica of its Deployment; ready pods fill slots first, a crash-looping pod is a dead slot.

Metrics: a Job that carries metric definitions (``MetricDefinitions``, or a built-in
algorithm's) gets its final metrics from algo-1's ``algo`` log once it has ended; the backend
reads the log, ``metrics_of`` reads its lines as the local supervisors read a job's output.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from orchestrator.controller.plan.types import ObservedJob, ObservedReplica, PhaseMark
from orchestrator.kube import objects as o
from orchestrator.resources.failures import (
    CorruptFailureReason,
    FailureReason,
    algorithm_error,
    internal_error,
)
from orchestrator.resources.training import SecondaryStatus
from orchestrator.training.contract import read_metrics
from orchestrator.training.usage import split_usage

MESSAGE_LIMIT = 1024
# Waiting reasons of a container that will not come up by itself.
STUCK = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
_RANGES = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c.get("type", ""): c
        for c in obj.get("status", {}).get("conditions") or []
        if c.get("status") == "True"
    }


def _statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    st = pod.get("status", {})
    every = (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])
    return {c.get("name", ""): c for c in every}


def _state(status: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if status is None:
        return None
    value = (status.get("state") or {}).get(key)
    return value if isinstance(value, dict) else None


def _created(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def _pod_name(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", ""))


# --- training ------------------------------------------------------------------------------
def job_hosts(job: dict[str, Any]) -> int:
    """How many hosts the attempt runs on (an Indexed Job's completions; else one)."""
    spec = job.get("spec") or {}
    if spec.get("completionMode") != "Indexed":
        return 1
    try:
        return max(1, int(spec.get("completions") or 1))
    except (TypeError, ValueError):
        return 1


def pod_host(pod: dict[str, Any], hosts: int) -> str:
    """The host a pod is, ``algo-<index+1>``; a pod whose index is missing or outside the
    job's hosts is named as a pod (and by what its index says)."""
    if hosts == 1:
        return "algo-1"
    meta = pod.get("metadata", {})
    raw = (meta.get("annotations") or {}).get(o.INDEX_ANNOTATION)
    if raw is None:
        raw = (meta.get("labels") or {}).get(o.INDEX_ANNOTATION)
    try:
        index = int(str(raw))
    except ValueError:
        index = -1
    if 0 <= index < hosts:
        return f"algo-{index + 1}"
    return (
        f"pod {_pod_name(pod)} (completion index {raw!r}, not one of 0..{hosts - 1} of a job "
        f"on {hosts} hosts)"
    )


def disruption(pod: dict[str, Any]) -> str | None:
    """Why the pod was evicted or preempted (None if it was not)."""
    cond = _true_conditions(pod).get("DisruptionTarget")
    st = pod.get("status", {})
    if cond is None and st.get("reason") != "Evicted":
        return None
    reason = (cond or {}).get("reason") or st.get("reason") or "Disrupted"
    detail = (cond or {}).get("message") or st.get("message") or ""
    return f"pod {_pod_name(pod)} was interrupted ({reason}{': ' + detail if detail else ''})"


def _single_host_phases(pods: list[dict[str, Any]]) -> tuple[PhaseMark, ...]:
    """Each pod in turn (a disrupted pod is followed by the Job's replacement)."""
    marks: list[PhaseMark] = []
    for pod in pods:
        statuses = _statuses(pod)
        download, algo = statuses.get(o.DOWNLOAD), statuses.get(o.ALGO)
        for status, phase, message in (
            (download, SecondaryStatus.DOWNLOADING, "Downloading input data"),
            (algo, SecondaryStatus.TRAINING, "Training in progress"),
        ):
            state = _state(status, "running") or _state(status, "terminated") or {}
            at = parse_time(state.get("startedAt"))
            if at is not None:
                marks.append(PhaseMark(phase, at, message))
        done = _state(algo, "terminated") or {}
        finished = parse_time(done.get("finishedAt"))
        if finished is not None and done.get("exitCode") == 0:
            marks.append(
                PhaseMark(SecondaryStatus.UPLOADING, finished, "Uploading generated training model")
            )
        why = disruption(pod)
        cond = _true_conditions(pod).get("DisruptionTarget") or {}
        at = parse_time(cond.get("lastTransitionTime")) or finished
        if why is not None and at is not None:
            why += "; the Job starts a new pod (disruptions do not count against RetryStrategy)"
            marks.append(PhaseMark(SecondaryStatus.INTERRUPTED, at, why))
    return tuple(sorted(marks, key=lambda m: m.at))


def _started(pod: dict[str, Any], container: str) -> datetime | None:
    status = _statuses(pod).get(container)
    state = _state(status, "running") or _state(status, "terminated") or {}
    return parse_time(state.get("startedAt"))


def _multi_host_phases(pods: list[dict[str, Any]], hosts: int) -> tuple[PhaseMark, ...]:
    """The job as a whole: Downloading from the first host's download, Training from the
    first host's training, Uploading once every host's training ended well."""
    marks: list[PhaseMark] = []
    downloads = [t for p in pods if (t := _started(p, o.DOWNLOAD)) is not None]
    if downloads:
        marks.append(
            PhaseMark(SecondaryStatus.DOWNLOADING, min(downloads), "Downloading input data")
        )
    trainings = [t for p in pods if (t := _started(p, o.ALGO)) is not None]
    if trainings:
        at = max([min(trainings), *(m.at for m in marks)])
        marks.append(
            PhaseMark(SecondaryStatus.TRAINING, at, f"Training in progress on {hosts} hosts")
        )
    ended = [_state(_statuses(p).get(o.ALGO), "terminated") or {} for p in pods]
    finished = [parse_time(d.get("finishedAt")) for d in ended if d.get("exitCode") == 0]
    done = [t for t in finished if t is not None]
    if len(done) >= hosts and marks:
        at = max([*done, marks[-1].at])
        marks.append(PhaseMark(SecondaryStatus.UPLOADING, at, "Uploading generated training model"))
    return tuple(marks)


def _container_failure(name: str, status: dict[str, Any], state: dict[str, Any]) -> FailureReason:
    """Why one container failed, by which container it is."""
    if name == o.ALGO:
        return algorithm_error(_message(status, state))
    text = str(state.get("message") or "").strip()
    if not text:
        return internal_error(f"the {name} step failed: {_message(status, state)}")
    try:
        return FailureReason.decode(text)
    except CorruptFailureReason as e:
        return internal_error(
            f"the {name} step exited with code {state.get('exitCode')} and an unreadable "
            f"termination message ({e}): {text[:200]!r}"
        )


def _pod_failure(
    pod: dict[str, Any], hosts: int
) -> tuple[tuple[bool, str, str], FailureReason] | None:
    """Why this pod failed, with a key that orders failures by when they happened (those
    with no time last), or None when it did not fail (or its failure did not count)."""
    host = pod_host(pod, hosts)
    why = disruption(pod)
    if why is not None:
        if hosts == 1:
            return None  # ignored by the Job's podFailurePolicy: a new pod replaced it
        cond = _true_conditions(pod).get("DisruptionTarget") or {}
        at = str(cond.get("lastTransitionTime") or "")
        reason = internal_error(
            f"{host}: {why}; a job on several hosts cannot go on without one of them"
        )
        return (not at, at, _created(pod)[0]), reason
    statuses = _statuses(pod)
    for name in (o.DOWNLOAD, o.ALGO, o.UPLOAD):
        status = statuses.get(name)
        state = _state(status, "terminated")
        if status is None or state is None or state.get("exitCode") in (0, None):
            continue
        reason = _container_failure(name, status, state)
        if hosts > 1:
            reason = reason.model_copy(update={"message": f"{host}: {reason.message}"})
        at = str(state.get("finishedAt") or "")
        return (not at, at, _created(pod)[0]), reason
    return None


def job_failure(job: dict[str, Any], pods: list[dict[str, Any]]) -> FailureReason:
    """SageMaker's FailureReason of a failed Job: the first container to fail, on any host."""
    hosts = job_hosts(job)
    found = [f for pod in pods if (f := _pod_failure(pod, hosts)) is not None]
    if found:
        return min(found, key=lambda f: f[0])[1]
    cond = _true_conditions(job).get("Failed") or {}
    return internal_error(
        f"the Job failed ({cond.get('reason') or 'unknown reason'}): "
        f"{cond.get('message') or 'no pod reported a reason'}"
    )


def completed_indexes(text: str) -> set[int] | None:
    """``status.completedIndexes`` ("0-2,5") as a set; None when it is not in that form."""
    if not text:
        return set()
    if not _RANGES.match(text):
        return None
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def _unfinished_hosts(job: dict[str, Any], hosts: int) -> str | None:
    """On several hosts, which did not succeed though the Job says Complete (None: all did)."""
    if hosts == 1:
        return None
    status = job.get("status") or {}
    raw = status.get("completedIndexes")
    if raw is None:
        succeeded = int(status.get("succeeded") or 0)
        return None if succeeded >= hosts else f"{succeeded} of {hosts} hosts succeeded"
    done = completed_indexes(str(raw))
    if done is None:
        return f"completedIndexes is {raw!r}, not a list of index ranges"
    missing = [f"algo-{i + 1}" for i in range(hosts) if i not in done]
    return f"{', '.join(missing)} did not succeed" if missing else None


def job_observation(name: str, job: dict[str, Any], pods: list[dict[str, Any]]) -> ObservedJob:
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status", {})
    attempt = int((meta.get("labels") or {}).get(o.LABEL_ATTEMPT, "1"))
    hosts = job_hosts(job)
    pods = sorted(pods, key=_created)
    phases = _single_host_phases(pods) if hosts == 1 else _multi_host_phases(pods, hosts)
    algo = _statuses(pods[-1]).get(o.ALGO) if pods else None
    done = _state(algo, "terminated") or {}
    conds = _true_conditions(job)
    base: dict[str, Any] = {
        "name": name,
        "attempt": attempt,
        "started_at": parse_time(status.get("startTime")),
        "exit_code": done.get("exitCode"),
        "phases": phases,
        "phase": phases[-1].phase if phases else None,
        "phase_message": phases[-1].message if phases else "",
    }
    if "Complete" in conds:
        ended = parse_time(status.get("completionTime")) or parse_time(
            conds["Complete"].get("lastTransitionTime")
        )
        unfinished = _unfinished_hosts(job, hosts)
        if unfinished is not None:
            why = internal_error(f"the Job says Complete, but {unfinished}")
            return ObservedJob(
                state="exited", outcome="failed", ended_at=ended, failure=why, **base
            )
        artifact = (meta.get("annotations") or {}).get(o.ANNOTATION_OUTPUT)
        return ObservedJob(
            state="exited", outcome="completed", ended_at=ended, model_artifact=artifact, **base
        )
    if "Failed" in conds:
        cond = conds["Failed"]
        ended = parse_time(cond.get("lastTransitionTime"))
        if cond.get("reason") == "DeadlineExceeded":
            why_text = (
                "MaxRuntimeExceeded: the job ran longer than StoppingCondition."
                f"MaxRuntimeInSeconds={spec.get('activeDeadlineSeconds')}"
            )
            mark = (
                (PhaseMark(SecondaryStatus.MAX_RUNTIME_EXCEEDED, ended, why_text),) if ended else ()
            )
            base.update(
                phases=phases + mark,
                phase=SecondaryStatus.MAX_RUNTIME_EXCEEDED,
                phase_message=why_text,
            )
            return ObservedJob(state="exited", outcome="stopped", ended_at=ended, **base)
        return ObservedJob(
            state="exited",
            outcome="failed",
            ended_at=ended,
            failure=job_failure(job, pods),
            **base,
        )
    if spec.get("suspend") and not status.get("active"):
        ended = parse_time((conds.get("Suspended") or {}).get("lastTransitionTime"))
        return ObservedJob(state="exited", outcome="stopped", ended_at=ended, **base)
    return ObservedJob(state="running", **base)


def metric_patterns_of(job: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    """The metric definitions a Job carries (its annotation); none when it has none or they
    do not read back (the API checked them before the Job existed)."""
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(o.ANNOTATION_METRICS)
    if not raw:
        return []
    try:
        return [(str(name), re.compile(str(regex))) for name, regex in json.loads(raw)]
    except (ValueError, TypeError, re.error):
        return []


def metrics_pod(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod whose ``algo`` log holds the job's metrics: algo-1's, the latest one made."""
    hosts = job_hosts(job)
    first = [p for p in pods if pod_host(p, hosts) == "algo-1"]
    return max(first, key=_created, default=None)


def metrics_of(log: str, patterns: list[tuple[str, re.Pattern[str]]]) -> dict[str, float]:
    """Each metric's last value in the log, as the local supervisors read a job's output."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        read_metrics(line, patterns, found)
    return found


def _message(status: dict[str, Any], state: dict[str, Any]) -> str:
    # FallbackToLogsOnError: the log's tail, without the usage samples hostenv wrote in it.
    raw = str(state.get("message") or "")
    text = split_usage(raw.encode())[0].decode(errors="replace").strip()
    if text:
        return text
    code = state.get("exitCode")
    reason = state.get("reason") or ""
    hint = " (out of memory)" if reason == "OOMKilled" else ""
    return f"container {status.get('name')} exited with code {code}{hint}".strip()


# --- endpoints -----------------------------------------------------------------------------
def pod_ready(pod: dict[str, Any]) -> bool:
    return "Ready" in _true_conditions(pod)


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a serving pod is not coming up by itself (crash loop, image), or None."""
    for status in _statuses(pod).values():
        waiting = _state(status, "waiting") or {}
        if waiting.get("reason") in STUCK:
            last = (status.get("lastState") or {}).get("terminated")
            if isinstance(last, dict):
                return f"{waiting['reason']}: {_message(status, last)}"[:MESSAGE_LIMIT]
            return f"{waiting['reason']}: {waiting.get('message') or ''}".strip()[:MESSAGE_LIMIT]
        done = _state(status, "terminated")
        if done is not None and done.get("exitCode") not in (0, None):
            return _message(status, done)[:MESSAGE_LIMIT]
    return None


def pod_ready_at(pod: dict[str, Any]) -> datetime | None:
    cond = _true_conditions(pod).get("Ready") or {}
    return parse_time(cond.get("lastTransitionTime"))


def fleet_observations(
    endpoint: str, deployment: dict[str, Any], pods: list[dict[str, Any]], url: str
) -> list[ObservedReplica]:
    """The slots of one fleet variant (its Deployment's ``spec.replicas``) filled from its pods:
    ready pods first, then a crash-looping pod as a dead slot (its id names the pod, so that
    removing it deletes that pod and the Deployment starts another), then starting ones."""
    meta = deployment.get("metadata", {})
    annotations = meta.get("annotations") or {}
    variant = str(annotations.get(o.ANNOTATION_VARIANT_NAME, ""))
    config = str(annotations.get(o.ANNOTATION_CONFIG_NAME, ""))
    name = str(meta.get("name", ""))
    count = int((deployment.get("spec") or {}).get("replicas") or 0)
    live = sorted((p for p in pods if not p["metadata"].get("deletionTimestamp")), key=_created)
    ready = [p for p in live if pod_ready(p)]
    dead = [(p, why) for p in live for why in [pod_problem(p)] if why is not None]
    starting = [p for p in live if pod_problem(p) is None and not pod_ready(p)]
    created = parse_time(meta.get("creationTimestamp"))
    out: list[ObservedReplica] = []
    for slot in range(count):
        if ready:
            pod = ready.pop(0)
            out.append(
                ObservedReplica(
                    endpoint,
                    variant,
                    slot,
                    f"{name}/{slot}",
                    "ready",
                    url=url,
                    started_at=parse_time(pod["metadata"].get("creationTimestamp")),
                    config=config,
                    ready_at=pod_ready_at(pod),
                )
            )
        elif dead:
            pod, why = dead.pop(0)
            pod_name = pod["metadata"].get("name", "")
            out.append(
                ObservedReplica(
                    endpoint,
                    variant,
                    slot,
                    f"{name}/{slot}/{pod_name}",
                    "dead",
                    message=f"pod {pod_name}: {why}",
                    config=config,
                )
            )
        else:
            pod_time = (
                parse_time(starting.pop(0)["metadata"].get("creationTimestamp"))
                if starting
                else None
            )
            out.append(
                ObservedReplica(
                    endpoint,
                    variant,
                    slot,
                    f"{name}/{slot}",
                    "starting",
                    started_at=pod_time or created,
                    config=config,
                )
            )
    return out
