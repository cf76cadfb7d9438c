"""The Kubernetes objects the operator owns, built as plain dicts. Pure: no client, no I/O.

A training-job attempt is a ``batch/v1`` Job (plus a ConfigMap holding its step config); a
production variant of an endpoint is a Deployment, a Service, a HorizontalPodAutoscaler and a
PodDisruptionBudget. Every pod runs at the restricted Pod Security profile; secrets (the
object-store credentials and the keyring) are mounted only into the orchestrator's own step
containers, never into the user's container.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ValidationError
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.resources.endpoints import INVOCATIONS_PER_INSTANCE, ProductionVariant
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.models import (
    PROGRAM_ENV,
    SUBMIT_DIR_ENV,
    ContainerDefinition,
    CreateModelRequest,
)
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.validation import parse_spec
from orchestrator.settings import KubeSettings
from orchestrator.training.contract import MlPaths, program_of, script_args, user_environment

PREFIX = "orchestrator.dev"
LABEL_TRAINING_JOB = f"{PREFIX}/training-job"
LABEL_ATTEMPT = f"{PREFIX}/attempt"
LABEL_ENDPOINT = f"{PREFIX}/endpoint"
LABEL_VARIANT = f"{PREFIX}/variant"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
ANNOTATION_OUTPUT = f"{PREFIX}/output-uri"
ANNOTATION_INSTANCES = f"{PREFIX}/initial-instance-count"
# Names as the user wrote them (object names and label values are lowercased DNS labels).
ANNOTATION_ENDPOINT_NAME = f"{PREFIX}/endpoint-name"
ANNOTATION_VARIANT_NAME = f"{PREFIX}/variant-name"

DOWNLOAD, ALGO, UPLOAD = "download", "algo", "upload"
STEP_DIR = "/etc/orchestrator/step"
KEYRING_DIR = "/etc/orchestrator/keyring"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ML_ROOT = Path("/opt/ml")
# Exit code of a step that found the user's input wrong (a missing channel): fail the Job.
CLIENT_ERROR_EXIT = 2


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from resource names (lowercased; hashed when it had to change)."""
    raw = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-") or "x"
    if not name[0].isalpha():
        name = f"x{name}"
    if name != raw or len(name) > limit:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
        name = f"{name[: limit - 7].rstrip('-')}-{digest}"
    return name


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(
    name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**labels, LABEL_MANAGED: "orchestrator"},
    }
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


# --- pods ----------------------------------------------------------------------------------
def pod_security(uid: int) -> dict[str, Any]:
    """The pod half of the restricted Pod Security profile (images built to run as root run
    as ``uid``; ``fsGroup`` makes the shared volume writable)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def instance_resources(instance_type: str) -> dict[str, Any]:
    """Requests and limits of one instance type; GPUs as ``nvidia.com/gpu``."""
    itype = INSTANCE_TYPES[instance_type]
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if itype.vcpus:
        requests["cpu"] = str(itype.vcpus)
    if itype.memory_mib:
        requests["memory"] = limits["memory"] = f"{itype.memory_mib}Mi"
    if itype.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(itype.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def gpu_placement(instance_type: str, s: KubeSettings) -> dict[str, Any]:
    if not INSTANCE_TYPES[instance_type].gpus:
        return {}
    out: dict[str, Any] = {"tolerations": [dict(t) for t in s.gpu_tolerations]}
    if s.gpu_node_selector:
        out["nodeSelector"] = dict(s.gpu_node_selector)
    if s.gpu_runtime_class_name:
        out["runtimeClassName"] = s.gpu_runtime_class_name
    return out


# --- training ------------------------------------------------------------------------------
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
        "metadata": _meta(job_name(name, attempt), namespace, job_labels(name, attempt), owner),
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


def _step(name: str, command: str, s: KubeSettings, *extra: str) -> dict[str, Any]:
    """One of our own step containers: the only ones that see the secrets."""
    return {
        "name": name,
        "image": s.training_image,
        "imagePullPolicy": s.image_pull_policy,
        "command": ["python", "-m", "orchestrator.kube.steps", command],
        "args": [
            "--config",
            f"{STEP_DIR}/job.json",
            "--keyring",
            f"{KEYRING_DIR}/keyring.json",
            "--ml-root",
            str(ML_ROOT),
            *extra,
        ],
        "envFrom": [{"secretRef": {"name": s.credentials_secret, "optional": True}}],
        "volumeMounts": [
            {"name": "ml", "mountPath": str(ML_ROOT)},
            {"name": "step", "mountPath": STEP_DIR, "readOnly": True},
            {"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "securityContext": container_security(),
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
    download = _step(DOWNLOAD, "download", s)
    upload = _step(UPLOAD, "upload", s, "--pod", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)")
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
    meta = _meta(job_name(name, attempt), namespace, labels, owner)
    meta["annotations"] = {ANNOTATION_OUTPUT: output_uri}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
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


# --- endpoints -----------------------------------------------------------------------------
ANNOTATION_AUTOSCALING = f"{PREFIX}/autoscaling"
# A per-pod custom metric (served by a metrics adapter over the replicas' Prometheus counters).
INVOCATIONS_METRIC = "orch_invocations_per_minute"
CONCURRENCY_METRIC = "orch_concurrent_requests"


class _ScalingAnnotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minInstances: int | None = Field(default=None, ge=1, le=1000)
    maxInstances: int | None = Field(default=None, ge=1, le=1000)
    targetInvocationsPerInstance: float | None = Field(default=None, gt=0)


class ScalingPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_instances: int | None = None  # None: the variant's InitialInstanceCount
    max_instances: int | None = None
    target_invocations_per_instance: float | None = None
    metric: str = INVOCATIONS_METRIC
    scale_out_cooldown: int = 0
    scale_in_cooldown: int = 300
    disable_scale_in: bool = False

    def bounds(self, initial: int) -> tuple[int, int]:
        low = self.min_instances or initial
        return low, max(self.max_instances or initial, low)

    def scale_up_policy(self) -> dict[str, Any]:
        if not self.scale_out_cooldown:
            return {}
        return {
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": self.scale_out_cooldown},
                {"type": "Pods", "value": 4, "periodSeconds": self.scale_out_cooldown},
            ],
            "selectPolicy": "Max",
        }


def scaling_of(variant: ProductionVariant, annotation: ScalingPolicy | None) -> ScalingPolicy:
    """The variant's ManagedInstanceScaling when enabled (it wins over the annotation), as an
    HPA: the same target tracking as the local autoscaler (desired = ceil(total / target)).
    A Kubernetes HPA cannot go below one pod (scale to zero needs an alpha feature gate), so
    ``MinInstanceCount: 0`` keeps one pod here."""
    m = variant.scaling
    if m is None:
        return annotation or ScalingPolicy()
    t = m.TargetTracking
    per_minute = t is not None and t.PredefinedMetricType == INVOCATIONS_PER_INSTANCE
    return ScalingPolicy(
        min_instances=max(1, m.MinInstanceCount),
        max_instances=m.MaxInstanceCount,
        target_invocations_per_instance=t.TargetValue if t is not None else None,
        metric=INVOCATIONS_METRIC if per_minute or t is None else CONCURRENCY_METRIC,
        scale_out_cooldown=t.ScaleOutCooldown if t is not None else 0,
        scale_in_cooldown=t.ScaleInCooldown if t is not None else 300,
        disable_scale_in=t.DisableScaleIn if t is not None else False,
    )


def parse_scaling(raw: str | None) -> ScalingPolicy:
    """The ``orchestrator.dev/autoscaling`` annotation (JSON); errors name the field."""
    where = f"metadata.annotations[{ANNOTATION_AUTOSCALING}]"
    if not raw:
        return ScalingPolicy()
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValidationError(f"{where}: not valid JSON ({e.msg})", field=where) from e
    try:
        a = parse_spec(_ScalingAnnotation, doc)
    except ValidationError as e:
        raise ValidationError(f"{where}.{e.message}", field=f"{where}.{e.field}") from e
    if a.minInstances and a.maxInstances and a.minInstances > a.maxInstances:
        raise ValidationError(
            f"{where}.minInstances: must not exceed maxInstances ({a.minInstances} > "
            f"{a.maxInstances})",
            field=f"{where}.minInstances",
        )
    return ScalingPolicy(
        min_instances=a.minInstances,
        max_instances=a.maxInstances,
        target_invocations_per_instance=a.targetInvocationsPerInstance,
    )


def variant_object_name(endpoint: str, variant: str) -> str:
    return k8s_name(endpoint, variant)


def variant_labels(endpoint: str, variant: str | None = None) -> dict[str, str]:
    labels = {LABEL_ENDPOINT: k8s_name(endpoint)}
    if variant is not None:
        labels[LABEL_VARIANT] = k8s_name(variant)
    return labels


def service_url(endpoint: str, variant: str, namespace: str, s: KubeSettings) -> str:
    host = f"{variant_object_name(endpoint, variant)}.{namespace}.svc.{s.cluster_domain}"
    return f"http://{host}:{s.serving_port}"


def _batching_args(container: ContainerDefinition) -> list[str]:
    b = container.AdaptiveBatching
    if b is None:
        return []
    return [
        "--max-batch-size",
        str(b.MaxBatchSize),
        "--max-batch-delay-ms",
        f"{b.MaxBatchDelayMilliseconds:g}",
    ]


def _serve_container(
    endpoint: str, variant: ProductionVariant, model: CreateModelRequest, s: KubeSettings
) -> dict[str, Any]:
    container = model.serving_containers[0]
    paths = MlPaths(ML_ROOT)
    env = dict(container.Environment)
    out: dict[str, Any] = {"name": "serve", "imagePullPolicy": s.image_pull_policy}
    if container.Image:
        # SageMaker's hosting contract: the image is started with "serve" and listens on 8080.
        out.update(image=container.Image, args=["serve"])
        env.setdefault("SAGEMAKER_BIND_TO_PORT", str(s.serving_port))
    else:
        program = env.get(PROGRAM_ENV)
        out.update(
            image=s.serving_image,
            command=["python", "-m", "orchestrator.serving"],
            args=[
                "--model-dir",
                str(paths.model_dir),
                "--code-dir",
                str(paths.code_dir),
                *(["--program", program] if program else []),
                "--host",
                "0.0.0.0",
                "--port",
                str(s.serving_port),
                "--endpoint",
                endpoint,
                "--variant",
                variant.VariantName,
                "--model-name",
                variant.ModelName,
                *_batching_args(container),
            ],
        )
    ping = {"httpGet": {"path": "/ping", "port": "http"}}
    out.update(
        env=[{"name": k, "value": v} for k, v in sorted(env.items())],
        ports=[{"name": "http", "containerPort": s.serving_port}],
        readinessProbe={**ping, "periodSeconds": 5, "failureThreshold": 2},
        livenessProbe={**ping, "periodSeconds": 10, "failureThreshold": 6},
        startupProbe={
            **ping,
            "periodSeconds": 5,
            "failureThreshold": max(
                1, (variant.ContainerStartupHealthCheckTimeoutInSeconds or 600) // 5
            ),
        },
        volumeMounts=[{"name": "ml", "mountPath": str(ML_ROOT)}],
        resources=instance_resources(variant.InstanceType),
        securityContext=container_security(),
    )
    return out


def _fetch_container(model: CreateModelRequest, s: KubeSettings) -> dict[str, Any]:
    container = model.serving_containers[0]
    args = ["--keyring", f"{KEYRING_DIR}/keyring.json", "--ml-root", str(ML_ROOT)]
    args += ["--object-store", s.object_store_url, "--s3-region", s.s3_region]
    if s.s3_endpoint_url:
        args += ["--s3-endpoint-url", s.s3_endpoint_url]
    if container.ModelDataUrl:
        args += ["--model-data", container.ModelDataUrl]
    source = container.Environment.get(SUBMIT_DIR_ENV)
    if source:
        args += ["--source", source]
    step = _step("model", "fetch-model", s)
    step.update(
        image=s.serving_image,
        args=args,
        volumeMounts=[
            {"name": "ml", "mountPath": str(ML_ROOT)},
            {"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True},
        ],
    )
    return step


def endpoint_variant_objects(
    endpoint: str,
    namespace: str,
    variant: ProductionVariant,
    model: CreateModelRequest,
    *,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
    scaling: ScalingPolicy | None = None,
) -> list[dict[str, Any]]:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget of one variant."""
    s = settings
    name = variant_object_name(endpoint, variant.VariantName)
    labels = variant_labels(endpoint, variant.VariantName)
    scaling = scaling_of(variant, scaling)
    low, high = scaling.bounds(variant.InitialInstanceCount)
    selector = {"matchLabels": labels}
    names = {ANNOTATION_ENDPOINT_NAME: endpoint, ANNOTATION_VARIANT_NAME: variant.VariantName}

    def meta() -> dict[str, Any]:
        return {**_meta(name, namespace, labels, owner), "annotations": dict(names)}

    deployment_meta = meta()
    deployment_meta["annotations"][ANNOTATION_INSTANCES] = str(variant.InitialInstanceCount)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": s.termination_grace_seconds,
        "securityContext": pod_security(s.run_as_user),
        "initContainers": [_fetch_container(model, s)],
        "containers": [_serve_container(endpoint, variant, model, s)],
        "volumes": [
            {"name": "ml", "emptyDir": {}},
            {
                "name": "keyring",
                # 0440 + the pod's fsGroup: readable by the step containers' user only.
                "secret": {"secretName": s.keyring_secret, "defaultMode": 0o440},
            },
        ],
        **gpu_placement(variant.InstanceType, s),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": deployment_meta,
        "spec": {
            "replicas": max(low, min(variant.InitialInstanceCount, high)),
            "selector": selector,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": {**labels, LABEL_MANAGED: "orchestrator"}},
                "spec": pod_spec,
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(),
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": s.serving_port, "targetPort": "http"}],
        },
    }
    target = scaling.target_invocations_per_instance
    metric: dict[str, Any] = (
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": scaling.metric},
                "target": {"type": "AverageValue", "averageValue": f"{target:g}"},
            },
        }
        if target
        else {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [metric],
            # The same cooldowns as the local autoscaler: a scale-out waits ScaleOutCooldown
            # after the last, a scale-in follows the highest recommendation of ScaleInCooldown.
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, **scaling.scale_up_policy()},
                "scaleDown": {
                    "stabilizationWindowSeconds": scaling.scale_in_cooldown,
                    **({"selectPolicy": "Disabled"} if scaling.disable_scale_in else {}),
                },
            },
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(),
        "spec": {"maxUnavailable": 1, "selector": selector},
    }
    return [deployment, service, hpa, pdb]
