"""What Jobs, Pods and Deployments say, as the planners' observations (pure).

Training: the Job's conditions decide the outcome (``Complete``; ``Failed`` with reason
``DeadlineExceeded`` -> stopped at MaxRuntimeExceeded, any other reason -> failed with the
failing container's termination message); the pods' container timestamps give the secondary
phases (Downloading = the download step, Training = the user's container, Uploading = after
it); a pod disrupted by eviction or preemption is Interrupted, not failed: the Job's
podFailurePolicy ignores it and starts a new pod. Endpoints: every slot of a fleet variant is
a replica of its Deployment; ready pods fill slots first, a crash-looping pod is a dead slot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.controller.plan.types import ObservedJob, ObservedReplica, PhaseMark
from orchestrator.kube import objects as o
from orchestrator.resources.training import SecondaryStatus

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


def disruption(pod: dict[str, Any]) -> str | None:
    """Why the pod was evicted or preempted (None if it was not)."""
    cond = _true_conditions(pod).get("DisruptionTarget")
    st = pod.get("status", {})
    if cond is None and st.get("reason") != "Evicted":
        return None
    name = pod.get("metadata", {}).get("name", "")
    reason = (cond or {}).get("reason") or st.get("reason") or "Disrupted"
    detail = (cond or {}).get("message") or st.get("message") or ""
    return (
        f"pod {name} was interrupted ({reason}{': ' + detail if detail else ''}); "
        "the Job starts a new pod (disruptions do not count against RetryStrategy)"
    )


def _phases(pods: list[dict[str, Any]]) -> tuple[PhaseMark, ...]:
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
            marks.append(PhaseMark(SecondaryStatus.INTERRUPTED, at, why))
    return tuple(sorted(marks, key=lambda m: m.at))


def _message(status: dict[str, Any], state: dict[str, Any]) -> str:
    text = str(state.get("message") or "").strip()
    if text:
        return text
    code = state.get("exitCode")
    reason = state.get("reason") or ""
    hint = " (out of memory)" if reason == "OOMKilled" else ""
    return f"container {status.get('name')} exited with code {code}{hint}".strip()


def failure_reason(job: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    """SageMaker's FailureReason from the failing container of the newest failed pod."""
    for pod in sorted(pods, key=_created, reverse=True):
        statuses = _statuses(pod)
        for name, prefix in (
            (o.DOWNLOAD, "ClientError"),
            (o.ALGO, "AlgorithmError"),
            (o.UPLOAD, "InternalServerError"),
        ):
            status = statuses.get(name)
            state = _state(status, "terminated")
            if status is None or state is None or state.get("exitCode") in (0, None):
                continue
            text = _message(status, state)
            if name != o.ALGO and text.split(":", 1)[0] in {"ClientError", "InternalServerError"}:
                return text[:MESSAGE_LIMIT]  # our own steps already name the kind of error
            return f"{prefix}: {text}"[:MESSAGE_LIMIT]
    cond = _true_conditions(job).get("Failed") or {}
    return (
        f"InternalServerError: the Job failed ({cond.get('reason') or 'unknown reason'}): "
        f"{cond.get('message') or 'no pod reported a reason'}"
    )[:MESSAGE_LIMIT]


def job_observation(name: str, job: dict[str, Any], pods: list[dict[str, Any]]) -> ObservedJob:
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status", {})
    attempt = int((meta.get("labels") or {}).get(o.LABEL_ATTEMPT, "1"))
    pods = sorted(pods, key=_created)
    phases = _phases(pods)
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
        artifact = (meta.get("annotations") or {}).get(o.ANNOTATION_OUTPUT)
        return ObservedJob(
            state="exited", outcome="completed", ended_at=ended, model_artifact=artifact, **base
        )
    if "Failed" in conds:
        cond = conds["Failed"]
        ended = parse_time(cond.get("lastTransitionTime"))
        if cond.get("reason") == "DeadlineExceeded":
            why = (
                "MaxRuntimeExceeded: the job ran longer than StoppingCondition."
                f"MaxRuntimeInSeconds={spec.get('activeDeadlineSeconds')}"
            )
            mark = (PhaseMark(SecondaryStatus.MAX_RUNTIME_EXCEEDED, ended, why),) if ended else ()
            base.update(
                phases=phases + mark, phase=SecondaryStatus.MAX_RUNTIME_EXCEEDED, phase_message=why
            )
            return ObservedJob(state="exited", outcome="stopped", ended_at=ended, **base)
        return ObservedJob(
            state="exited",
            outcome="failed",
            ended_at=ended,
            failure_reason=failure_reason(job, pods),
            **base,
        )
    if spec.get("suspend") and not status.get("active"):
        ended = parse_time((conds.get("Suspended") or {}).get("lastTransitionTime"))
        return ObservedJob(state="exited", outcome="stopped", ended_at=ended, **base)
    return ObservedJob(state="running", **base)


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
