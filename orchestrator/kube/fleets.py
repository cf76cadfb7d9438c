"""An endpoint's fleets as Kubernetes objects: a Deployment and a Service per variant of each
fleet (the replicas of one EndpointConfig), optionally an HPA, and a PDB. Pure.

Sizes come from the planner (``ScaleFleets``): the same autoscaler that runs on the local
backends decides ``spec.replicas``, so scale to zero works and no custom-metrics adapter is
needed. A blue/green update runs the new config's fleet as its own Deployments beside the
old ones; the data plane shifts traffic between the fleets' Services by the routes. With
``ORCH_KUBE__AUTOSCALER=hpa`` an HPA sizes each Deployment instead (it cannot scale to zero).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.controller.plan.types import VariantFleet
from orchestrator.errors import ValidationError
from orchestrator.kube.objects import (
    ANNOTATION_CONFIG_NAME,
    ANNOTATION_ENDPOINT_NAME,
    ANNOTATION_VARIANT_NAME,
    KEYRING_DIR,
    LABEL_ENDPOINT,
    LABEL_FLEET,
    LABEL_MANAGED,
    LABEL_VARIANT,
    ML_ROOT,
    PREFIX,
    container_security,
    gpu_placement,
    instance_resources,
    k8s_name,
    meta,
    pod_security,
    step_container,
)
from orchestrator.kube.replica_tls import (
    ANNOTATION_SERVING_CERT,
    CERT_FILE,
    KEY_FILE,
    TLS_MOUNT,
    TLS_VOLUME,
    ServingTls,
    serving_names,
)
from orchestrator.resources.endpoints import INVOCATIONS_PER_INSTANCE, ProductionVariant
from orchestrator.resources.models import (
    PROGRAM_ENV,
    SUBMIT_DIR_ENV,
    ContainerDefinition,
    CreateModelRequest,
)
from orchestrator.settings import KubeSettings
from orchestrator.training.contract import MlPaths

ANNOTATION_TEMPLATE = f"{PREFIX}/template-hash"
# Per-pod custom metrics an HPA would need (served by a metrics adapter over the replicas'
# Prometheus counters); only with ORCH_KUBE__AUTOSCALER=hpa.
INVOCATIONS_METRIC = "orch_invocations_per_minute"
CONCURRENCY_METRIC = "orch_concurrent_requests"


def fleet_object_name(endpoint: str, config: str, variant: str) -> str:
    return k8s_name(endpoint, variant, config)


def fleet_labels(
    endpoint: str, config: str | None = None, variant: str | None = None
) -> dict[str, str]:
    labels = {LABEL_ENDPOINT: k8s_name(endpoint)}
    if config is not None:
        labels[LABEL_FLEET] = k8s_name(config)
    if variant is not None:
        labels[LABEL_VARIANT] = k8s_name(variant)
    return labels


def service_url(
    endpoint: str, config: str, variant: str, namespace: str, s: KubeSettings, *, tls: bool = False
) -> str:
    """How the data plane reaches a fleet variant's Service: ``https://`` with replica TLS,
    by the first of its certificate's names (``replica_tls.serving_names``)."""
    service = fleet_object_name(endpoint, config, variant)
    host = serving_names(service, namespace, s.cluster_domain)[0]
    return f"{'https' if tls else 'http'}://{host}:{s.serving_port}"


class ScalingPolicy(BaseModel):
    """A variant's ManagedInstanceScaling as an HPA (``ORCH_KUBE__AUTOSCALER=hpa`` only)."""

    model_config = ConfigDict(frozen=True)

    min_instances: int
    max_instances: int
    target: float | None = None
    metric: str = INVOCATIONS_METRIC
    scale_out_cooldown: int = 0
    scale_in_cooldown: int = 300
    disable_scale_in: bool = False


def scaling_of(variant: ProductionVariant) -> ScalingPolicy:
    """The same target tracking as the planner's autoscaler (desired = ceil(total / target));
    an HPA cannot go below one pod, so ``MinInstanceCount: 0`` keeps one pod here."""
    m = variant.scaling
    if m is None:
        n = variant.InitialInstanceCount
        return ScalingPolicy(min_instances=n, max_instances=n)
    t = m.TargetTracking
    per_minute = t is None or t.PredefinedMetricType == INVOCATIONS_PER_INSTANCE
    return ScalingPolicy(
        min_instances=max(1, m.MinInstanceCount),
        max_instances=m.MaxInstanceCount,
        target=t.TargetValue if t is not None else None,
        metric=INVOCATIONS_METRIC if per_minute else CONCURRENCY_METRIC,
        scale_out_cooldown=t.ScaleOutCooldown if t is not None else 0,
        scale_in_cooldown=t.ScaleInCooldown if t is not None else 300,
        disable_scale_in=t.DisableScaleIn if t is not None else False,
    )


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


def serve_container(
    model: CreateModelRequest,
    s: KubeSettings,
    *,
    model_name: str,
    instance_type: str,
    startup_timeout_seconds: float,
    endpoint: str = "",
    variant: str = "",
    tls: ServingTls | None = None,
) -> dict[str, Any]:
    """The model server container of a pod (an endpoint fleet's, a transform instance's): the
    Model's own image started with ``serve``, or the project's serving image, on
    ``serving_port`` with its probes on ``GET /ping`` and the instance type's resources.
    With ``tls`` (an endpoint fleet under replica TLS) it serves HTTPS with the fleet's
    certificate, mounted read-only at ``/opt/ml/tls``, and is probed over HTTPS."""
    container = model.serving_containers[0]
    paths = MlPaths(ML_ROOT)
    env = dict(container.Environment)
    out: dict[str, Any] = {"name": "serve", "imagePullPolicy": s.image_pull_policy}
    if container.own_image and tls is not None:
        raise ValidationError(
            f"Model {model_name!r} has its own image ({container.own_image}), which serves "
            "plain HTTP (the SageMaker hosting contract), and ORCH_SERVING__REPLICA_TLS=true "
            "makes replicas serve HTTPS: use the project's serving image for this Model "
            "(no Image, a ModelDataUrl) or unset ORCH_SERVING__REPLICA_TLS",
            field="PrimaryContainer.Image",
        )
    if container.own_image:
        # SageMaker's hosting contract: the image is started with "serve" and listens on 8080.
        out.update(image=container.own_image, args=["serve"])
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
                variant,
                "--model-name",
                model_name,
                *_batching_args(container),
                *(
                    [
                        "--tls-cert",
                        f"{TLS_MOUNT}/{CERT_FILE}",
                        "--tls-key",
                        f"{TLS_MOUNT}/{KEY_FILE}",
                    ]
                    if tls is not None
                    else []
                ),
            ],
        )
    ping: dict[str, Any] = {"httpGet": {"path": "/ping", "port": "http"}}
    mounts: list[dict[str, Any]] = [{"name": "ml", "mountPath": str(ML_ROOT)}]
    if tls is not None:
        # The kubelet does not verify a probe's certificate; the data plane does (the CA).
        ping["httpGet"]["scheme"] = "HTTPS"
        mounts.append({"name": TLS_VOLUME, "mountPath": TLS_MOUNT, "readOnly": True})
    out.update(
        env=[{"name": k, "value": v} for k, v in sorted(env.items())],
        ports=[{"name": "http", "containerPort": s.serving_port}],
        readinessProbe={**ping, "periodSeconds": 5, "failureThreshold": 2},
        livenessProbe={**ping, "periodSeconds": 10, "failureThreshold": 6},
        startupProbe={
            **ping,
            "periodSeconds": 5,
            "failureThreshold": max(1, math.ceil(startup_timeout_seconds / 5)),
        },
        volumeMounts=mounts,
        resources=instance_resources(instance_type),
        securityContext=container_security(),
    )
    return out


def _serve_container(
    endpoint: str, fleet: VariantFleet, s: KubeSettings, tls: ServingTls | None
) -> dict[str, Any]:
    variant = fleet.variant
    return serve_container(
        fleet.model,
        s,
        model_name=variant.ModelName,
        instance_type=variant.InstanceType,
        startup_timeout_seconds=fleet.startup_timeout_seconds,
        endpoint=endpoint,
        variant=variant.VariantName,
        tls=tls,
    )


def fetch_container(model: CreateModelRequest, s: KubeSettings) -> dict[str, Any]:
    """The init container that unpacks the Model's artifact and source into ``/opt/ml``."""
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
    step = step_container("model", "fetch-model", s)
    step.update(
        image=s.serving_image,
        args=args,
        volumeMounts=[
            {"name": "ml", "mountPath": str(ML_ROOT)},
            {"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True},
        ],
    )
    return step


def _hpa(name: str, metadata: dict[str, Any], scaling: ScalingPolicy) -> dict[str, Any]:
    metric: dict[str, Any] = (
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": scaling.metric},
                "target": {"type": "AverageValue", "averageValue": f"{scaling.target:g}"},
            },
        }
        if scaling.target
        else {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    )
    up: dict[str, Any] = {"stabilizationWindowSeconds": 0}
    if scaling.scale_out_cooldown:
        up["policies"] = [
            {"type": "Percent", "value": 100, "periodSeconds": scaling.scale_out_cooldown},
            {"type": "Pods", "value": 4, "periodSeconds": scaling.scale_out_cooldown},
        ]
        up["selectPolicy"] = "Max"
    down: dict[str, Any] = {"stabilizationWindowSeconds": scaling.scale_in_cooldown}
    if scaling.disable_scale_in:
        down["selectPolicy"] = "Disabled"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_instances,
            "maxReplicas": scaling.max_instances,
            "metrics": [metric],
            # The same cooldowns as the planner's autoscaler.
            "behavior": {"scaleUp": up, "scaleDown": down},
        },
    }


def fleet_objects(
    endpoint: str,
    namespace: str,
    fleet: VariantFleet,
    *,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
    tls: ServingTls | None = None,
) -> list[dict[str, Any]]:
    """Deployment, Service and PodDisruptionBudget (and with the HPA autoscaler, its HPA) of
    one variant of one fleet. The Deployment's pod template carries a hash of itself, so a
    changed template (a Model edited in place, a re-issued serving certificate: ``tls``) is
    seen and rolled out."""
    s = settings
    variant = fleet.variant
    name = fleet_object_name(endpoint, fleet.config, variant.VariantName)
    labels = fleet_labels(endpoint, fleet.config, variant.VariantName)
    selector = {"matchLabels": labels}
    names = {
        ANNOTATION_ENDPOINT_NAME: endpoint,
        ANNOTATION_CONFIG_NAME: fleet.config,
        ANNOTATION_VARIANT_NAME: variant.VariantName,
    }

    def metadata() -> dict[str, Any]:
        return {**meta(name, namespace, labels, owner), "annotations": dict(names)}

    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": s.termination_grace_seconds,
        "securityContext": pod_security(s.run_as_user),
        "initContainers": [fetch_container(fleet.model, s)],
        "containers": [_serve_container(endpoint, fleet, s, tls)],
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
    template: dict[str, Any] = {
        "metadata": {"labels": {**labels, LABEL_MANAGED: "orchestrator"}},
        "spec": pod_spec,
    }
    if tls is not None:
        pod_spec["volumes"].append(
            # 0440 + the pod's fsGroup, as the keyring: the model server's user reads the key.
            {"name": TLS_VOLUME, "secret": {"secretName": tls.secret, "defaultMode": 0o440}}
        )
        template["metadata"]["annotations"] = {ANNOTATION_SERVING_CERT: tls.fingerprint}
    deployment_meta = metadata()
    deployment_meta["annotations"][ANNOTATION_TEMPLATE] = template_hash(template)
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": deployment_meta,
        "spec": {
            "replicas": fleet.replicas,
            "selector": selector,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": template,
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(),
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": s.serving_port, "targetPort": "http"}],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(),
        "spec": {"maxUnavailable": 1, "selector": selector},
    }
    out = [deployment, service, pdb]
    if s.autoscaler == "hpa":
        scaling = scaling_of(variant)
        deployment["spec"]["replicas"] = max(
            scaling.min_instances, min(fleet.replicas, scaling.max_instances)
        )
        out.append(_hpa(name, metadata(), scaling))
    return out


def template_hash(template: dict[str, Any]) -> str:
    blob = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
