"""A transform job's instances as ``batch/v1`` Jobs, and what those Jobs say. Pure.

One Job per (instance, attempt), named ``<job>-<instance>-<attempt>`` (hashed when long). Its
pod runs, in order:

* ``model`` (an init container): the Model's artifact and source unpacked into ``/opt/ml``,
  the same step an endpoint's pods run (``fleets.fetch_container``);
* ``serve`` (a native sidecar: an init container with ``restartPolicy: Always``): the model
  server an endpoint's fleet runs (``fleets.serve_container``: the Model's own image, or the
  project's serving image), with the instance type's resources and its readiness probe on
  ``GET /ping``; the runner starts beside it and waits for the model to answer;
* ``runner`` (the main container, the orchestrator's image): ``python -m
  orchestrator.kube.transform_step``, configured by one JSON variable (``TransformStepConfig``:
  the instance, the object store, the transform settings), talking to the sidecar at
  ``http://127.0.0.1:<serving_port>``. Only it and the model step see the store's credentials
  and the keyring.

When the runner exits the kubelet stops the sidecar and the pod ends with the runner's code.
Nothing is retried inside the Job (``backoffLimit: 0``): an instance that died without a
result is relaunched by the planner as a new attempt (a new Job), which resumes from the
parts already in the job's scratch space (``orchestrator.transformer``).

``transform_observations`` maps the Jobs and pods back: the latest attempt of each instance,
starting (its runner not started yet), running, or exited with the runner's exit code and
termination message. What the runner said is the outcome: exit code 0 is completed, a reason
it encoded is failed, a runner ended by a stop (its Job suspended) is stopped; one killed or
whose pod is gone, evicted or deleted, said nothing (the planner launches it again), as has one
whose model step or model server cannot start (an image that cannot be pulled). A Model whose
artifact the model step refused fails the job at once (a ``ClientError``). The runners' own
records in the object store (their results, progress) are read beside this, by the backend.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.controller.plan.types import (
    JobOutcome,
    ObservedTransformInstance,
    TransformLaunch,
)
from orchestrator.kube import fleets as f
from orchestrator.kube.objects import (
    CLIENT_ERROR_EXIT,
    KEYRING_DIR,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    PREFIX,
    container_security,
    gpu_placement,
    k8s_name,
    meta,
    pod_security,
)
from orchestrator.kube.observe import STUCK, disruption, parse_time
from orchestrator.resources.failures import CorruptFailureReason, FailureReason, client_error
from orchestrator.settings import KubeSettings, TransformSettings

LABEL_TRANSFORM_JOB = f"{PREFIX}/transform-job"
LABEL_INSTANCE = f"{PREFIX}/instance"
# The TransformJobName as written (a label value is a lowercased DNS label).
ANNOTATION_TRANSFORM_NAME = f"{PREFIX}/transform-job-name"
# On the pods: the job's InstanceCount (their log lines are tagged with the host on several).
ANNOTATION_INSTANCE_COUNT = f"{PREFIX}/instance-count"
RUNNER, SERVE, MODEL = "runner", "serve", "model"
STEP_ENV = "ORCH_TRANSFORM_STEP"
TERMINATION_LOG = "/dev/termination-log"
MESSAGE_LIMIT = 1024
KEYRING_FILE = f"{KEYRING_DIR}/keyring.json"


class TransformStepConfig(BaseModel):
    """What the runner container is given (``STEP_ENV``, JSON; no secret in it)."""

    model_config = ConfigDict(extra="forbid")

    # ``orchestrator.transformer.driver.InstanceConfig`` as JSON.
    instance: dict[str, Any]
    server_url: str
    object_store_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    chunk_size: int = 4 << 20
    transform: TransformSettings = TransformSettings()


def transform_job_name(name: str, instance: int, attempt: int) -> str:
    return k8s_name(name, str(instance), str(attempt))


def transform_labels(
    name: str, instance: int | None = None, attempt: int | None = None
) -> dict[str, str]:
    labels = {LABEL_TRANSFORM_JOB: k8s_name(name)}
    if instance is not None:
        labels[LABEL_INSTANCE] = str(instance)
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


def server_url(s: KubeSettings) -> str:
    return f"http://127.0.0.1:{s.serving_port}"


def instance_config(launch: TransformLaunch) -> dict[str, Any]:
    """``transformer.driver.InstanceConfig`` of one instance attempt, as JSON."""
    return {
        "Name": launch.name,
        "Instance": launch.instance,
        "Attempt": launch.attempt,
        "InstanceCount": launch.spec.TransformResources.InstanceCount,
        "Spec": launch.spec.model_dump(mode="json", exclude_none=True),
        "ModelName": launch.model_name,
    }


def step_config(launch: TransformLaunch, s: KubeSettings, transform: TransformSettings) -> str:
    return TransformStepConfig(
        instance=instance_config(launch),
        server_url=server_url(s),
        object_store_url=s.object_store_url,
        s3_endpoint_url=s.s3_endpoint_url,
        s3_region=s.s3_region,
        chunk_size=s.chunk_size,
        transform=transform,
    ).model_dump_json()


def _runner(
    launch: TransformLaunch, s: KubeSettings, transform: TransformSettings
) -> dict[str, Any]:
    return {
        "name": RUNNER,
        "image": s.training_image,
        "imagePullPolicy": s.image_pull_policy,
        "command": ["python", "-m", "orchestrator.kube.transform_step"],
        "args": ["--keyring", KEYRING_FILE, "--termination-log", TERMINATION_LOG],
        "env": [{"name": STEP_ENV, "value": step_config(launch, s, transform)}],
        "envFrom": [{"secretRef": {"name": s.credentials_secret, "optional": True}}],
        "volumeMounts": [{"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security(),
    }


def transform_job_manifest(
    launch: TransformLaunch,
    namespace: str,
    *,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
    transform: TransformSettings,
) -> dict[str, Any]:
    """One attempt of one instance of a transform job as a ``batch/v1`` Job."""
    s = settings
    labels = transform_labels(launch.name, launch.instance, launch.attempt)
    instance_type = launch.spec.TransformResources.InstanceType
    serve = f.serve_container(
        launch.model,
        s,
        model_name=launch.model_name,
        instance_type=instance_type,
        startup_timeout_seconds=transform.startup_timeout_seconds,
    )
    # A native sidecar: started after the model step, before the runner, stopped after it.
    serve["restartPolicy"] = "Always"
    # The runner waits for GET /ping itself (within the startup timeout, then the instance
    # fails saying so): the kubelet holds nothing back for it, and restarts nothing.
    del serve["startupProbe"], serve["livenessProbe"]
    # The job's Environment reaches the model's container, as on SageMaker.
    env = {e["name"]: e for e in serve["env"]}
    for key, value in sorted(launch.spec.Environment.items()):
        env[key] = {"name": key, "value": value}
    serve["env"] = [env[k] for k in sorted(env)]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": s.termination_grace_seconds,
        "securityContext": pod_security(s.run_as_user),
        "initContainers": [f.fetch_container(launch.model, s), serve],
        "containers": [_runner(launch, s, transform)],
        "volumes": [
            {"name": "ml", "emptyDir": {}},
            {
                "name": "keyring",
                # 0440 + the pod's fsGroup: readable by the orchestrator's containers' user.
                "secret": {"secretName": s.keyring_secret, "defaultMode": 0o440},
            },
        ],
        **gpu_placement(instance_type, s),
    }
    job_meta = meta(
        transform_job_name(launch.name, launch.instance, launch.attempt), namespace, labels, owner
    )
    job_meta["annotations"] = {ANNOTATION_TRANSFORM_NAME: launch.name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {**labels, LABEL_MANAGED: "orchestrator"},
                    "annotations": {
                        ANNOTATION_INSTANCE_COUNT: str(launch.spec.TransformResources.InstanceCount)
                    },
                },
                "spec": pod_spec,
            },
        },
    }


# --- observation ---------------------------------------------------------------------------
def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def instance_attempt(obj: dict[str, Any]) -> tuple[int, int] | None:
    """(instance, attempt) of a transform Job or pod, from its labels (None: not one)."""
    labels = _labels(obj)
    try:
        return int(labels[LABEL_INSTANCE]), int(labels[LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return None


def _created(obj: dict[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return (m.get("creationTimestamp") or "", m.get("name") or "")


def _container(pod: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == name:
            return dict(status)
    return None


def _state(status: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    value = ((status or {}).get("state") or {}).get(key)
    return value if isinstance(value, dict) else None


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c.get("type", ""): c
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }


def _said(state: dict[str, Any]) -> tuple[FailureReason | None, str]:
    """What a terminated runner said in its termination message: a reason it encoded, or (a
    log tail: ``FallbackToLogsOnError``) text to show."""
    text = str(state.get("message") or "").strip()
    if not text:
        return None, ""
    try:
        return FailureReason.decode(text), ""
    except CorruptFailureReason:
        return None, text[-MESSAGE_LIMIT:]


def _ended(code: Any, state: dict[str, Any], text: str) -> str:
    reason = state.get("reason") or ""
    how = f"the runner exited with code {code}" + (f" ({reason})" if reason else "")
    return f"{how}: {text}" if text else how


def _model_step_failure(pod: dict[str, Any]) -> tuple[FailureReason | None, str] | None:
    """The model step's failure (None: it did not fail): a ``ClientError`` when it found the
    Model's artifact or source wrong (its exit code says so), else only what it said."""
    done = _state(_container(pod, "initContainerStatuses", MODEL), "terminated")
    if done is None or done.get("exitCode") in (0, None):
        return None
    said = str(done.get("message") or "").strip()[-MESSAGE_LIMIT:]
    text = f"the model step exited with code {done.get('exitCode')}" + (f": {said}" if said else "")
    if done.get("exitCode") == CLIENT_ERROR_EXIT:
        # Its message is the rendered reason ("ClientError: ...").
        cause = said.removeprefix("ClientError: ") or text
        return client_error(f"the Model's artifact cannot be used: {cause}"), text
    return None, text


def _stuck(pod: dict[str, Any]) -> str | None:
    """Why the model step or the model server cannot start by itself (an image that cannot
    be pulled, a container that cannot be made), or None."""
    for name in (MODEL, SERVE):
        waiting = _state(_container(pod, "initContainerStatuses", name), "waiting") or {}
        if waiting.get("reason") in STUCK:
            detail = str(waiting.get("message") or "").strip()
            return f"container {name}: {waiting['reason']}" + (f": {detail}" if detail else "")
    return None


def instance_observation(
    name: str, job: dict[str, Any], pods: list[dict[str, Any]]
) -> ObservedTransformInstance:
    """One instance attempt from its Job and the Job's pods (see the module's text)."""
    instance, attempt = instance_attempt(job) or (0, 0)
    status, spec = job.get("status") or {}, job.get("spec") or {}
    suspended = bool(spec.get("suspend"))
    pod = max(pods, key=_created, default=None)
    conds = _true_conditions(job)
    started = parse_time(status.get("startTime"))
    base: dict[str, Any] = {"name": name, "instance": instance, "attempt": attempt}
    runner = _container(pod, "containerStatuses", RUNNER) if pod is not None else None
    done = _state(runner, "terminated")
    if done is not None:
        reason, text = _said(done)
        code = done.get("exitCode")
        outcome: JobOutcome | None = None
        if code == 0:
            outcome = "completed"  # the runner exits 0 only once its share is written
        elif reason is not None:
            outcome = "failed"
        elif suspended:
            outcome = "stopped"  # SIGTERM from the Job's suspension (a stop)
        return ObservedTransformInstance(
            state="exited",
            started_at=parse_time(done.get("startedAt")) or started,
            ended_at=parse_time(done.get("finishedAt")),
            exit_code=code,
            outcome=outcome,
            failure=reason if code != 0 else None,
            message="" if code == 0 else _ended(code, done, text),
            **base,
        )
    ended = _job_end(conds)
    finished = bool(conds.keys() & {"Complete", "Failed"})
    model_failed = _model_step_failure(pod) if pod is not None else None
    if model_failed is not None and model_failed[0] is not None:
        return ObservedTransformInstance(
            state="exited",
            started_at=started,
            ended_at=ended,
            outcome="failed",
            failure=model_failed[0],
            message=model_failed[1],
            **base,
        )
    if pod is not None and not _ended_pod(pod) and not finished:
        running = _state(runner, "running")
        if running is not None:
            return ObservedTransformInstance(
                state="running", started_at=parse_time(running.get("startedAt")), **base
            )
        stuck = _stuck(pod)
        if stuck is None:
            return ObservedTransformInstance(state="starting", started_at=started, **base)
        # It will not start by itself: given up (the planner launches another attempt, which
        # stops this one, or fails the job saying this).
        return ObservedTransformInstance(state="exited", started_at=started, message=stuck, **base)
    made = pod is not None or finished or status.get("active") or status.get("failed")
    if not made and not suspended:
        return ObservedTransformInstance(state="starting", **base)  # no pod made yet
    return ObservedTransformInstance(
        state="exited",
        started_at=started,
        ended_at=ended,
        outcome="stopped" if suspended else None,
        message=_why_gone(job, pod, conds),
        **base,
    )


def _ended_pod(pod: dict[str, Any]) -> bool:
    """The pod ended though its runner did not (evicted, its model step failed). A pod being
    deleted has not ended: its runner may still be finishing a range."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def pod_going(pod: dict[str, Any]) -> bool:
    """The pod has not ended and its runner has not either (a forced stop kills it; one that
    has ended is left, with its logs)."""
    runner = _container(pod, "containerStatuses", RUNNER)
    return not _ended_pod(pod) and _state(runner, "terminated") is None


def _job_end(conds: dict[str, dict[str, Any]]) -> datetime | None:
    for kind in ("Complete", "Failed", "Suspended"):
        if kind in conds:
            return parse_time(conds[kind].get("lastTransitionTime"))
    return None


def _why_gone(job: dict[str, Any], pod: dict[str, Any] | None, conds: dict[str, Any]) -> str:
    if pod is not None:
        model = _model_step_failure(pod)
        why = disruption(pod) or (model[1] if model is not None else None)
        if why is not None:
            return why
        st = pod.get("status") or {}
        if st.get("reason") or st.get("message"):
            return f"pod {pod['metadata'].get('name')}: {st.get('reason')}: {st.get('message')}"
    if (job.get("spec") or {}).get("suspend"):
        return "stopped: the Job was suspended and its pod ended"
    cond = conds.get("Failed") or {}
    if cond:
        return f"the Job failed ({cond.get('reason')}): {cond.get('message') or 'its pod ended'}"
    return "its pod is gone (deleted or evicted) before the runner ended"


def latest_jobs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest attempt's Job of each instance, by instance."""
    latest: dict[int, tuple[int, dict[str, Any]]] = {}
    for job in jobs:
        key = instance_attempt(job)
        if key is not None and key[1] > latest.get(key[0], (0, {}))[0]:
            latest[key[0]] = (key[1], job)
    return [job for _, (_, job) in sorted(latest.items())]


def job_finished(job: dict[str, Any]) -> bool:
    return bool(_true_conditions(job).keys() & {"Complete", "Failed"})


def transform_observations(
    name: str, jobs: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> list[ObservedTransformInstance]:
    """The latest attempt of each instance of the job, by instance."""
    by_attempt: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for pod in pods:
        key = instance_attempt(pod)
        if key is not None:
            by_attempt.setdefault(key, []).append(pod)
    return [
        instance_observation(name, job, by_attempt.get(instance_attempt(job) or (0, 0), []))
        for job in latest_jobs(jobs)
    ]


# --- logs ----------------------------------------------------------------------------------
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


def pod_order(pod: dict[str, Any]) -> tuple[tuple[int, int], tuple[str, str]]:
    return instance_attempt(pod) or (-1, -1), _created(pod)


def host_tag(pod: dict[str, Any]) -> bytes:
    """``[algo-<instance+1>] `` for a pod of a job on several instances; else nothing."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_INSTANCE_COUNT)
    key = instance_attempt(pod)
    try:
        several = int(str(raw)) > 1
    except ValueError:
        several = True  # no count on the pod: name the host
    return f"[algo-{key[0] + 1}] ".encode() if several and key is not None else b""


def merge_logs(sources: list[tuple[bytes, bytes]]) -> bytes:
    """Container logs read with the kubelet's timestamps (``timestamps=true``), as one log in
    time order without them (a stable sort: lines of one time keep their sources' order),
    each line prefixed with its source's tag. A line without a stamp goes with the last one."""
    lines: list[tuple[bytes, int, bytes]] = []
    for order, (tag, log) in enumerate(sources):
        when = b""
        for raw in log.splitlines():
            m = _STAMP.match(raw)
            if m is not None:
                # RFC 3339 with its fraction padded (the kubelet trims trailing zeros).
                when = m[1] + b"." + (m[2] or b"").ljust(9, b"0") + m[3]
            text = raw[m.end() :] if m is not None else raw
            lines.append((when, order, tag + text + b"\n"))
    lines.sort(key=lambda x: (x[0], x[1]))
    return b"".join(line for _, _, line in lines)
