"""A training-job attempt as a ``batch/v1`` Job plus the ConfigMap of its step config. Pure.

The pod runs the orchestrator's ``download`` step (an init container), the user's container
(``algo``) and the ``upload`` step beside it (a sidecar that uploads checkpoints while ``algo``
runs and ends after it: both mount the ``ml`` volume at ``/opt/ml``, where any
``CheckpointConfig.LocalPath`` is); see ``orchestrator.kube.steps``.

``InstanceCount`` N > 1: an Indexed Job of N completions run at once, one pod per host
(``algo-<index+1>``), whose pods are ``<job>-<index>.<service>`` in DNS through the attempt's
headless Service (``kube.network``). No pod is retried inside the Job (``backoffLimit: 0``): an
attempt that fails for a reason of ours is retried whole, as a new attempt, by the planner
(``RetryStrategy``, as SageMaker retries the whole job); a single host disrupted by eviction or
preemption is replaced by the Job without counting, while a disrupted host of several fails
the attempt (the others cannot carry on without it).

A distributed job's framework variables (``MASTER_ADDR``, ``RANK``, ``TF_CONFIG``, ...) are in
the user's container's env, its rank being the pod's completion index (``$(ORCH_HOST_INDEX)``).

Every pod's download step writes the hosts file (``algo-1`` ... ``algo-N`` and their
addresses, once each resolves) into a volume that the user's container mounts at
``/etc/hosts``, so SageMaker's host names resolve on Kubernetes too.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.kube.objects import (
    ALGO,
    ANNOTATION_METRICS,
    ANNOTATION_OUTPUT,
    CLIENT_ERROR_EXIT,
    DOWNLOAD,
    FATAL_EXIT,
    INDEX_ANNOTATION,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_TRAINING_JOB,
    ML_ROOT,
    SA_DIR,
    UPLOAD,
    container_security,
    gpu_placement,
    instance_resources,
    k8s_name,
    meta,
    pod_security,
    step_container,
)
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.settings import KubeSettings
from orchestrator.training.contract import (
    ALGORITHM_ENV,
    Host,
    MlPaths,
    Rendezvous,
    builtin_algorithm,
    distributed_environment,
    metric_patterns,
    program_of,
    script_args,
    user_environment,
)
from orchestrator.training.usage import ATTEMPT_ENV, INTERVAL_ENV, VOLUME_ENV

# A pod's hostname is ``<job>-<index>`` (at most 63 characters) with up to 100 hosts.
JOB_NAME_LIMIT = 60
HOST_INDEX_ENV = "ORCH_HOST_INDEX"
POD_IP_ENV = "POD_IP"
HOSTS_VOLUME = "hosts"
HOSTS_DIR = "/etc/orchestrator/hosts"
HOSTS_FILE = "hosts"
# Runs the user's command with this pod's SM_CURRENT_HOST (read from resourceconfig.json).
AS_HOST = ["python", "-m", "orchestrator.kube.hostenv", "--"]


def job_name(name: str, attempt: int) -> str:
    return k8s_name(name, str(attempt), limit=JOB_NAME_LIMIT)


def job_labels(name: str, attempt: int | None = None) -> dict[str, str]:
    labels = {LABEL_TRAINING_JOB: k8s_name(name)}
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


def peer_fqdn(job: str, index: int, namespace: str, domain: str) -> str:
    """The DNS name of host ``index`` of an Indexed Job whose headless Service is named as it."""
    return f"{job}-{index}.{job}.{namespace}.svc.{domain}"


def step_config(
    spec: CreateTrainingJobRequest,
    output_uri: str,
    s: KubeSettings,
    *,
    job: str = "",
    namespace: str = "",
) -> str:
    """What the download and upload steps read (no secret in it)."""
    return json.dumps(
        {
            "spec": spec.model_dump(mode="json", exclude_none=True),
            "output_uri": output_uri,
            "object_store_url": s.object_store_url,
            "s3_endpoint_url": s.s3_endpoint_url,
            "s3_region": s.s3_region,
            "chunk_size": s.chunk_size,
            "peers": [
                peer_fqdn(job, i, namespace, s.cluster_domain)
                for i in range(spec.ResourceConfig.InstanceCount)
            ]
            if spec.ResourceConfig.InstanceCount > 1
            else [],
            "peer_wait_seconds": s.peer_wait_seconds,
            "checkpoint_sync_seconds": s.checkpoint_sync_seconds,
            "checkpoint_upload_mib_per_second": s.checkpoint_upload_mib_per_second,
        },
        sort_keys=True,
    )


def step_config_map(
    name: str,
    namespace: str,
    attempt: int,
    spec: CreateTrainingJobRequest,
    *,
    output_uri: str,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
) -> dict[str, Any]:
    job = job_name(name, attempt)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(job, namespace, job_labels(name, attempt), owner),
        "data": {"job.json": step_config(spec, output_uri, settings, job=job, namespace=namespace)},
    }


def _user_command(spec: CreateTrainingJobRequest, s: KubeSettings) -> dict[str, Any]:
    """Image, command and arguments of the user's container (SageMaker's rules). A command the
    orchestrator's images run is started through ``AS_HOST`` on several hosts, which sets
    ``SM_CURRENT_HOST``; the user's own image reads ``resourceconfig.json``, as on SageMaker."""
    algo = spec.AlgorithmSpecification
    paths = MlPaths(ML_ROOT)
    # Also on one host when usage is sampled: hostenv samples beside the command.
    wrap = AS_HOST if spec.ResourceConfig.InstanceCount > 1 or s.usage_interval_seconds else []
    if algo.own_image:
        out: dict[str, Any] = {"image": algo.own_image}
        if algo.ContainerEntrypoint:
            out["command"] = list(algo.ContainerEntrypoint)
            if algo.ContainerArguments:
                out["args"] = list(algo.ContainerArguments)
        else:
            out["args"] = list(algo.ContainerArguments or ["train"])
        return out
    if algo.ContainerEntrypoint:
        out = {"image": s.training_image, "command": [*wrap, *algo.ContainerEntrypoint]}
        if algo.ContainerArguments:
            out["args"] = list(algo.ContainerArguments)
        return out
    if builtin_algorithm(spec) is not None:
        return {
            "image": s.algorithms_image,
            "command": [*wrap, "python", "-m", "orchestrator.algorithms.train"],
            "workingDir": str(paths.root),
        }
    program = program_of(spec) or "train.py"
    return {
        "image": s.training_image,
        "command": [*wrap, "python", str(paths.code_dir / program), *script_args(spec)],
        "workingDir": str(paths.code_dir),
    }


def _user_env(spec: CreateTrainingJobRequest) -> list[dict[str, Any]]:
    count = spec.ResourceConfig.InstanceCount
    # One pod template for every host: which one this is, is only known in the pod. Its
    # framework variables use its completion index through ``$(ORCH_HOST_INDEX)``, which the
    # kubelet expands (defined first, from the downward API), so any image gets them.
    rank = f"$({HOST_INDEX_ENV})" if count > 1 else "0"
    distributed = distributed_environment(spec, count, rank, Rendezvous.by_name(count))
    env = user_environment(
        MlPaths(ML_ROOT),
        spec,
        {},
        host=Host() if count == 1 else None,
        distributed=distributed,
    )
    builtin = builtin_algorithm(spec)
    if builtin is not None:
        env[ALGORITHM_ENV] = builtin
    first = [_index_env()] if count > 1 and distributed else []
    return first + [{"name": k, "value": v} for k, v in sorted(env.items())]


def _index_env() -> dict[str, Any]:
    return _downward(HOST_INDEX_ENV, f"metadata.annotations['{INDEX_ANNOTATION}']")


def _usage_env(
    spec: CreateTrainingJobRequest, attempt: int, s: KubeSettings
) -> list[dict[str, Any]]:
    """What ``kube.hostenv`` needs to sample this pod's usage (none: not sampled)."""
    if not s.usage_interval_seconds or spec.AlgorithmSpecification.own_image:
        return []
    return [
        {"name": ATTEMPT_ENV, "value": str(attempt)},
        {"name": INTERVAL_ENV, "value": f"{s.usage_interval_seconds:g}"},
        {"name": VOLUME_ENV, "value": str(spec.ResourceConfig.VolumeSizeInGB)},
    ]


def _downward(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _pod_failure_policy(hosts: int) -> dict[str, Any]:
    # Evictions, preemptions, node drains: not the job's fault. One host: the Job starts a
    # new pod, not counted. Several: the others cannot go on without it, so the attempt fails
    # (InternalServerError) and RetryStrategy decides.
    disrupted = "Ignore" if hosts == 1 else "FailJob"
    return {
        "rules": [
            {
                "action": disrupted,
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            # The user's code failed: retrying will not help (SageMaker's AlgorithmError).
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": ALGO, "operator": "NotIn", "values": [0]},
            },
            # The input is wrong, or the pod is not what the step expected: no retry.
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": DOWNLOAD,
                    "operator": "In",
                    "values": [CLIENT_ERROR_EXIT, FATAL_EXIT],
                },
            },
        ]
    }


def training_job_manifest(
    name: str,
    namespace: str,
    attempt: int,
    spec: CreateTrainingJobRequest,
    *,
    output_uri: str,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
) -> dict[str, Any]:
    """One attempt of a training job as a ``batch/v1`` Job (its ConfigMap has the same name,
    and so, on several hosts, its headless Service)."""
    s = settings
    labels = job_labels(name, attempt)
    hosts = spec.ResourceConfig.InstanceCount
    job = job_name(name, attempt)
    host_env = [_index_env()]
    index_args = ["--host-index", f"$({HOST_INDEX_ENV})"] if hosts > 1 else []
    algo = {
        "name": ALGO,
        **_user_command(spec, s),
        "imagePullPolicy": s.image_pull_policy,
        "env": _user_env(spec) + _usage_env(spec, attempt, s),
        "volumeMounts": [
            {"name": "ml", "mountPath": str(ML_ROOT)},
            # The hosts file the download step wrote: algo-1..N resolve (kubelet leaves a
            # container's /etc/hosts alone when the container mounts its own).
            {
                "name": HOSTS_VOLUME,
                "mountPath": "/etc/hosts",
                "subPath": HOSTS_FILE,
                "readOnly": True,
            },
        ],
        "resources": instance_resources(spec.ResourceConfig.InstanceType),
        # SageMaker's failure file becomes the container's termination message.
        "terminationMessagePath": str(MlPaths(ML_ROOT).failure_file),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security(),
    }
    download = step_container(DOWNLOAD, "download", s, *index_args)
    download["env"] = [*(host_env if hosts > 1 else []), _downward(POD_IP_ENV, "status.podIP")]
    download["volumeMounts"].append({"name": HOSTS_VOLUME, "mountPath": HOSTS_DIR})
    upload = step_container(
        UPLOAD, "upload", s, "--pod", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)", *index_args
    )
    upload["env"] = [
        *(host_env if hosts > 1 else []),
        _downward("POD_NAME", "metadata.name"),
        _downward("POD_NAMESPACE", "metadata.namespace"),
    ]
    upload["volumeMounts"].append({"name": "kube-api", "mountPath": SA_DIR, "readOnly": True})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": s.training_service_account,
        # Only the upload step gets an API token (projected below), not the user's code.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": s.termination_grace_seconds,
        "securityContext": pod_security(s.run_as_user),
        "initContainers": [download],
        "containers": [algo, upload],
        "volumes": [
            {"name": "ml", "emptyDir": {"sizeLimit": f"{spec.ResourceConfig.VolumeSizeInGB}Gi"}},
            {"name": HOSTS_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": "step", "configMap": {"name": job}},
            {
                "name": "keyring",
                # 0440 + the pod's fsGroup: readable by the step containers' user only.
                "secret": {"secretName": s.keyring_secret, "defaultMode": 0o440},
            },
            {
                "name": "kube-api",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ]
                },
            },
        ],
        **gpu_placement(spec.ResourceConfig.InstanceType, s),
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": spec.StoppingCondition.MaxRuntimeInSeconds,
        "podFailurePolicy": _pod_failure_policy(hosts),
        "template": {
            "metadata": {"labels": {**labels, LABEL_MANAGED: "orchestrator"}},
            "spec": pod_spec,
        },
    }
    if hosts > 1:
        job_spec.update(completionMode="Indexed", completions=hosts, parallelism=hosts)
        # <job>-<index>.<job>.<namespace>.svc: the headless Service of the same name.
        pod_spec["subdomain"] = job
    job_meta = meta(job, namespace, labels, owner)
    job_meta["annotations"] = {ANNOTATION_OUTPUT: output_uri}
    patterns = metric_patterns(spec)
    if patterns:
        job_meta["annotations"][ANNOTATION_METRICS] = json.dumps(
            [[name, p.pattern] for name, p in patterns]
        )
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": job_spec}
