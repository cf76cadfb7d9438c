"""A training-job attempt as a ``batch/v1`` Job plus the ConfigMap of its step config. Pure.

The pod runs the orchestrator's ``download`` step (an init container), the user's container
(``algo``) and the ``upload`` step beside it; see ``orchestrator.kube.steps``.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.kube.objects import (
    ALGO,
    ANNOTATION_OUTPUT,
    CLIENT_ERROR_EXIT,
    DOWNLOAD,
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
from orchestrator.training.contract import MlPaths, program_of, script_args, user_environment


def job_name(name: str, attempt: int) -> str:
    return k8s_name(name, str(attempt))


def job_labels(name: str, attempt: int | None = None) -> dict[str, str]:
    labels = {LABEL_TRAINING_JOB: k8s_name(name)}
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


def step_config(spec: CreateTrainingJobRequest, output_uri: str, s: KubeSettings) -> str:
    """What the download and upload steps read (no secret in it)."""
    return json.dumps(
        {
            "spec": spec.model_dump(mode="json", exclude_none=True),
            "output_uri": output_uri,
            "object_store_url": s.object_store_url,
            "s3_endpoint_url": s.s3_endpoint_url,
            "s3_region": s.s3_region,
            "chunk_size": s.chunk_size,
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
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(job_name(name, attempt), namespace, job_labels(name, attempt), owner),
        "data": {"job.json": step_config(spec, output_uri, settings)},
    }


def _user_command(spec: CreateTrainingJobRequest, s: KubeSettings) -> dict[str, Any]:
    """Image, command and arguments of the user's container (SageMaker's rules)."""
    algo = spec.AlgorithmSpecification
    paths = MlPaths(ML_ROOT)
    if algo.ContainerEntrypoint:
        out: dict[str, Any] = {
            "image": algo.TrainingImage or s.training_image,
            "command": list(algo.ContainerEntrypoint),
        }
        if algo.ContainerArguments:
            out["args"] = list(algo.ContainerArguments)
        return out
    if algo.TrainingImage:
        return {"image": algo.TrainingImage, "args": list(algo.ContainerArguments or ["train"])}
    program = program_of(spec) or "train.py"
    return {
        "image": s.training_image,
        "command": ["python", str(paths.code_dir / program), *script_args(spec)],
        "workingDir": str(paths.code_dir),
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
    """One attempt of a training job as a ``batch/v1`` Job (its ConfigMap has the same name)."""
    s = settings
    labels = job_labels(name, attempt)
    retries = spec.RetryStrategy.MaximumRetryAttempts if spec.RetryStrategy else 0
    env = user_environment(MlPaths(ML_ROOT), spec, {})
    algo = {
        "name": ALGO,
        **_user_command(spec, s),
        "imagePullPolicy": s.image_pull_policy,
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "volumeMounts": [{"name": "ml", "mountPath": str(ML_ROOT)}],
        "resources": instance_resources(spec.ResourceConfig.InstanceType),
        # SageMaker's failure file becomes the container's termination message.
        "terminationMessagePath": str(MlPaths(ML_ROOT).failure_file),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security(),
    }
    download = step_container(DOWNLOAD, "download", s)
    upload = step_container(
        UPLOAD, "upload", s, "--pod", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)"
    )
    upload["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
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
            {"name": "step", "configMap": {"name": job_name(name, attempt)}},
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
    job_meta = meta(job_name(name, attempt), namespace, labels, owner)
    job_meta["annotations"] = {ANNOTATION_OUTPUT: output_uri}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": {
            "backoffLimit": retries,
            "activeDeadlineSeconds": spec.StoppingCondition.MaxRuntimeInSeconds,
            "podFailurePolicy": {
                "rules": [
                    # Evictions, preemptions, node drains: not the job's fault, not counted.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                    # The user's code failed: retrying will not help (SageMaker's AlgorithmError).
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": ALGO, "operator": "NotIn", "values": [0]},
                    },
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": DOWNLOAD,
                            "operator": "In",
                            "values": [CLIENT_ERROR_EXIT],
                        },
                    },
                ]
            },
            "template": {
                "metadata": {"labels": {**labels, LABEL_MANAGED: "orchestrator"}},
                "spec": pod_spec,
            },
        },
    }
