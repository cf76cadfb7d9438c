"""A transform instance attempt as a ``batch/v1`` Job, pure: the model server as a native
sidecar (the same container an endpoint's fleet runs), the runner as the main container, names,
labels, secrets only where the orchestrator's own containers are."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from orchestrator.controller.plan.types import TransformLaunch, VariantFleet
from orchestrator.kube import fleets
from orchestrator.kube.transforms import (
    ANNOTATION_INSTANCE_COUNT,
    STEP_ENV,
    TransformStepConfig,
    transform_job_manifest,
    transform_job_name,
)
from orchestrator.resources.endpoints import ProductionVariant
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import KubeSettings, TransformSettings
from orchestrator.transformer.driver import InstanceConfig

SETTINGS = KubeSettings(
    namespace="ml",
    training_image="registry.example/orchestrator/training:1",
    serving_image="registry.example/orchestrator/serving:1",
    gpu_node_selector={"nvidia.com/gpu.present": "true"},
    gpu_runtime_class_name="nvidia",
    object_store_url="s3://ml-bucket",
    s3_endpoint_url="http://minio.storage:9000",
)
OWNER = {
    "apiVersion": "orchestrator.dev/v1alpha1",
    "kind": "TransformJob",
    "name": "scores",
    "uid": "u-1",
    "controller": True,
    "blockOwnerDeletion": True,
}
MODEL = CreateModelRequest(
    ModelName="churn",
    PrimaryContainer={
        "ModelDataUrl": "s3://ml-bucket/models/churn/model.tar.gz",
        "Environment": {
            "SAGEMAKER_PROGRAM": "serve.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "s3://ml-bucket/src.tar.gz",
        },
    },
)


def spec(name: str = "scores", **over: Any) -> CreateTransformJobRequest:
    doc: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "churn",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3Uri": "s3://ml-bucket/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://ml-bucket/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "Environment": {"MODEL_THREADS": "4"},
    }
    doc.update(over)
    return CreateTransformJobRequest.model_validate(doc)


def launch(
    instance: int = 1, attempt: int = 2, *, model: CreateModelRequest = MODEL, **over: Any
) -> TransformLaunch:
    return TransformLaunch(
        name=over.pop("name", "scores"),
        instance=instance,
        attempt=attempt,
        spec=spec(**over),
        model_name=model.ModelName,
        model=model,
    )


def manifest(
    item: TransformLaunch | None = None,
    settings: KubeSettings = SETTINGS,
    transform: TransformSettings | None = None,
) -> dict[str, Any]:
    return transform_job_manifest(
        item or launch(),
        "ml",
        owner=OWNER,
        settings=settings,
        transform=transform or TransformSettings(startup_timeout_seconds=120),
    )


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["initContainers"] + pod["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or []}


def test_one_job_per_instance_attempt_never_retried_inside() -> None:
    job = manifest()
    meta, job_spec = job["metadata"], job["spec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert meta["name"] == "scores-1-2"
    assert meta["namespace"] == "ml"
    labels = {
        "orchestrator.dev/transform-job": "scores",
        "orchestrator.dev/instance": "1",
        "orchestrator.dev/attempt": "2",
        "app.kubernetes.io/managed-by": "orchestrator",
    }
    assert meta["labels"] == labels
    assert meta["annotations"] == {"orchestrator.dev/transform-job-name": "scores"}
    assert meta["ownerReferences"] == [OWNER]
    assert job_spec["backoffLimit"] == 0
    assert "podFailurePolicy" not in job_spec  # a pod lost is a new attempt, the planner's
    template = job_spec["template"]
    assert template["metadata"]["labels"] == labels
    assert template["metadata"]["annotations"] == {ANNOTATION_INSTANCE_COUNT: "2"}
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert list(containers(job)) == ["model", "serve", "runner"]
    assert [c["name"] for c in pod["containers"]] == ["runner"]
    for c in containers(job).values():
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_model_server_is_a_native_sidecar_built_as_an_endpoints_container() -> None:
    job = manifest()
    serve = containers(job)["serve"]
    assert serve["restartPolicy"] == "Always"  # a native sidecar (Kubernetes 1.28+)
    # The same container an endpoint's fleet runs for this Model, but for the job's Environment.
    fleet = VariantFleet(
        config="c",
        variant=ProductionVariant(VariantName="v", ModelName="churn", InstanceType="ml.m5.large"),
        model=MODEL,
        replicas=1,
        startup_timeout_seconds=120,
    )
    deployment = fleets.fleet_objects("e", "ml", fleet, owner=None, settings=SETTINGS)[0]
    endpoint_pod = deployment["spec"]["template"]["spec"]
    endpoint_serve = endpoint_pod["containers"][0]
    probes = ("startupProbe", "livenessProbe")
    same = {k: v for k, v in serve.items() if k not in ("restartPolicy", "env", "args")}
    endpoint_same = {k: v for k, v in endpoint_serve.items() if k not in ("env", "args", *probes)}
    assert same == endpoint_same
    assert serve["args"][serve["args"].index("--model-name") + 1] == "churn"
    assert serve["args"][serve["args"].index("--port") + 1] == "8080"
    assert serve["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    # The runner waits for GET /ping itself (its startup timeout, then a clear failure): the
    # kubelet neither holds it back nor restarts a model that loads slowly.
    assert not set(probes) & set(serve)
    assert env_of(serve) == {
        "MODEL_THREADS": "4",
        "SAGEMAKER_PROGRAM": "serve.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://ml-bucket/src.tar.gz",
    }
    # The model step is the endpoint's: the artifact and source unpacked into /opt/ml.
    model = containers(job)["model"]
    assert model == endpoint_pod["initContainers"][0]
    assert "restartPolicy" not in model
    assert "--model-data" in model["args"]


def test_a_model_with_its_own_image_is_started_with_serve_as_on_sagemaker() -> None:
    own = CreateModelRequest(ModelName="xgb", PrimaryContainer={"Image": "registry.example/xgb:2"})
    serve = containers(manifest(launch(model=own)))["serve"]
    assert serve["image"] == "registry.example/xgb:2"
    assert serve["args"] == ["serve"]
    assert "command" not in serve
    assert env_of(serve)["SAGEMAKER_BIND_TO_PORT"] == "8080"


def test_the_runner_gets_its_instance_the_store_and_the_sidecars_address() -> None:
    transform = TransformSettings(range_bytes=1 << 20, startup_timeout_seconds=90)
    settings = SETTINGS.model_copy(update={"serving_port": 9090})
    job = manifest(launch(), settings, transform)
    runner = containers(job)["runner"]
    assert runner["image"] == "registry.example/orchestrator/training:1"
    assert runner["command"] == ["python", "-m", "orchestrator.kube.transform_step"]
    assert runner["args"][:2] == ["--keyring", "/etc/orchestrator/keyring/keyring.json"]
    assert runner["terminationMessagePolicy"] == "FallbackToLogsOnError"
    cfg = TransformStepConfig.model_validate_json(env_of(runner)[STEP_ENV])
    assert cfg.server_url == "http://127.0.0.1:9090"
    assert containers(job)["serve"]["ports"] == [{"name": "http", "containerPort": 9090}]
    assert cfg.object_store_url == "s3://ml-bucket"
    assert cfg.s3_endpoint_url == "http://minio.storage:9000"
    assert cfg.transform == transform
    assert cfg.instance["Name"] == "scores"
    assert (cfg.instance["Instance"], cfg.instance["Attempt"]) == (1, 2)
    assert cfg.instance["InstanceCount"] == 2
    assert cfg.instance["ModelName"] == "churn"
    assert CreateTransformJobRequest.model_validate(cfg.instance["Spec"]) == spec()
    # What the runner reads it as.
    instance = InstanceConfig.model_validate(cfg.instance)
    assert (instance.Name, instance.Instance, instance.Attempt) == ("scores", 1, 2)
    assert (instance.InstanceCount, instance.ModelName, instance.Spec) == (2, "churn", spec())
    # No secret in the config: the keys come from the Secrets, mounted into the runner only.
    assert "secret" not in json.dumps(cfg.model_dump()).lower()


def test_secrets_reach_the_orchestrators_containers_only() -> None:
    job = manifest()
    c = containers(job)
    assert c["runner"]["envFrom"] == [
        {"secretRef": {"name": "orchestrator-object-store", "optional": True}}
    ]
    assert {"name": "keyring", "mountPath": "/etc/orchestrator/keyring", "readOnly": True} in c[
        "runner"
    ]["volumeMounts"]
    assert "envFrom" not in c["serve"]
    assert [m["name"] for m in c["serve"]["volumeMounts"]] == ["ml"]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["keyring"]["secret"] == {
        "secretName": "orchestrator-keyring",
        "defaultMode": 0o440,
    }


def test_the_instance_types_resources_go_to_the_model_server() -> None:
    gpu = manifest(launch(TransformResources={"InstanceType": "ml.p3.2xlarge"}))
    c = containers(gpu)
    assert c["serve"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in json.dumps(c["runner"]["resources"])
    pod = gpu["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    cpu = manifest()["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu and "tolerations" not in cpu
    assert containers(manifest())["serve"]["resources"]["requests"]["cpu"] == "2"


def test_names_fit_a_dns_label_and_never_collide() -> None:
    long = "a" * 63
    names = {transform_job_name(long, i, a) for i in range(3) for a in (1, 2, 10)}
    assert len(names) == 9
    assert all(len(n) <= 63 for n in names)
    # Lowercased where the name has capitals, and then hashed so "A" and "a" differ.
    upper, lower = transform_job_name("Scores", 0, 1), transform_job_name("scores", 0, 1)
    assert upper != lower and upper == upper.lower()
    job = manifest(launch(0, 1, name="Scores", TransformJobName="Scores"))
    assert job["metadata"]["name"] == upper
    assert job["metadata"]["annotations"]["orchestrator.dev/transform-job-name"] == "Scores"


@pytest.mark.parametrize("version", ["1.30.0", latest_version()])
def test_the_job_is_valid_kubernetes(version: str) -> None:
    for item in (launch(), launch(TransformResources={"InstanceType": "ml.p3.2xlarge"})):
        kubernetes_validate.validate(manifest(item), version, strict=True)
