"""What the user's code is given, backend by backend, read from the built specs: the job's own
credential and the training contract, never a control-plane secret (the keyring, the object
store's credentials, an admin key, the state database, another job's files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.docker.replica_launch import replica_create_kwargs
from orchestrator.backends.docker.supervisor import DockerSupervisor, create_kwargs
from orchestrator.backends.process.replica_main import model_environment
from orchestrator.controller.plan.types import TransformLaunch, VariantFleet
from orchestrator.kube import fleets
from orchestrator.kube.jobs import training_job_manifest
from orchestrator.kube.transforms import transform_job_manifest
from orchestrator.resources.endpoints import ProductionVariant
from orchestrator.resources.models import ContainerDefinition, CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import KubeSettings, TransformSettings
from orchestrator.training.files import (
    JOB_FILE,
    ContainerRun,
    JobFile,
    StoreAccess,
    write_model,
)
from orchestrator.training.runner import Supervisor

# What the server's environment may hold: none of it may reach the user's code.
SERVER_ENV = {
    "ORCH_API_KEY": "orch_admin_secret",
    "ORCH_OBJECTS__S3_ENDPOINT_URL": "http://minio:9000",
    "ORCH_DATABASE_URL": "postgresql://orch:pw@db/orch",
    "AWS_ACCESS_KEY_ID": "AKIASERVER",
    "AWS_SECRET_ACCESS_KEY": "server-secret",
    "AWS_SESSION_TOKEN": "server-token",
    "AWS_PROFILE": "prod",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/orch/.aws/credentials",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token",
    "AWS_ENDPOINT_URL": "http://minio:9000",
    "VAULT_TOKEN": "hvs.x",
}
JOB_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAJOB",
    "AWS_SECRET_ACCESS_KEY": "job-secret",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:8686",
    "ORCH_API_KEY": "orch_job_secret",
    "ORCH_ENDPOINT_URL": "http://127.0.0.1:8686",
}
SERVER_VALUES = set(SERVER_ENV.values())
KEYRING = "/home/orch/.orchestrator/keyring.json"


def spec(**fields: Any) -> CreateTrainingJobRequest:
    doc: dict[str, Any] = {
        "TrainingJobName": "j1",
        "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
        "HyperParameters": {"sagemaker_program": "train.py"},
    }
    doc.update(fields)
    return CreateTrainingJobRequest.model_validate(doc)


def job_root(tmp_path: Path, *, container: ContainerRun | None = None) -> Path:
    root = tmp_path / "training-jobs" / "j1" / "attempt-1"
    job = JobFile(
        name="j1",
        attempt=1,
        spec=spec(),
        output_uri="s3://orchestrator/training-jobs/j1/output/model.tar.gz",
        ml_root=str(root / "ml"),
        log_path=str(tmp_path / "logs" / "j1.log"),
        store=StoreAccess(object_store_url="file:///objects", keyring_path=KEYRING),
        container=container,
        credentials=JOB_CREDENTIALS,
    )
    write_model(root / JOB_FILE, job)
    return root


def assert_clean(env: dict[str, str]) -> None:
    assert not SERVER_VALUES & set(env.values()), "a server secret reached the user's code"
    for key in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        assert key not in env
    ours = {k for k in env if k.startswith("ORCH_") and k not in JOB_CREDENTIALS}
    assert ours <= {"ORCH_ML_ROOT", "ORCH_ALGORITHM"}, ours


# --- process backend ---------------------------------------------------------------------------
def test_the_process_backends_script_gets_its_job_credential_and_none_of_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in SERVER_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PATH", "/usr/bin")
    supervisor = Supervisor(job_root(tmp_path))
    host = supervisor.hosts[0]
    env = supervisor.host_environment(host, supervisor.rendezvous())
    supervisor.log.close()
    assert_clean(env)
    assert {k: env[k] for k in JOB_CREDENTIALS} == JOB_CREDENTIALS
    assert env["PATH"] == "/usr/bin"  # the host's ordinary variables pass
    assert env["SM_MODEL_DIR"] == str(tmp_path / "training-jobs/j1/attempt-1/ml/model")


def test_a_job_that_brings_its_own_aws_setup_keeps_it_unmixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user who brings other credentials on purpose (their own Environment) gets them.
    root = job_root(tmp_path)
    job = JobFile.model_validate_json((root / JOB_FILE).read_text())
    job.spec.Environment["AWS_ENDPOINT_URL"] = "https://s3.eu-west-1.amazonaws.com"
    write_model(root / JOB_FILE, job)
    supervisor = Supervisor(root)
    env = supervisor.host_environment(supervisor.hosts[0], supervisor.rendezvous())
    supervisor.log.close()
    assert env["AWS_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    # None of our AWS variables is mixed into the job's own AWS setup; the API key stays.
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["ORCH_API_KEY"] == "orch_job_secret"


def test_a_process_model_server_keeps_none_of_the_servers_secrets() -> None:
    environ = {**SERVER_ENV, "PATH": "/usr/bin"}
    container = ContainerDefinition(Environment={"MODEL_THREADS": "4"})
    model_environment(environ, [container])
    assert environ == {"PATH": "/usr/bin", "MODEL_THREADS": "4"}


# --- Docker ------------------------------------------------------------------------------------
def test_a_docker_training_container_mounts_only_its_ml_dir_and_gets_only_its_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in SERVER_ENV.items():
        monkeypatch.setenv(k, v)
    run = ContainerRun(image="example/train:1", user="1000:1000", name="orch-j1-1")
    root = job_root(tmp_path, container=run)
    supervisor = DockerSupervisor(root)
    supervisor.log.close()
    host = supervisor.hosts[0]
    env = supervisor.environment(host)
    assert_clean(env)
    assert {k: env[k] for k in JOB_CREDENTIALS} == JOB_CREDENTIALS
    kwargs = create_kwargs(
        run,
        host=host.name,
        ml_root=supervisor.paths.root,
        entrypoint=None,
        command=["train"],
        environment=env,
        host_config=supervisor.host_config(host),
    )
    sources = [Path(m["Source"]) for m in kwargs["mounts"]]
    ml = root / "ml"
    assert all(s == ml or s.is_relative_to(root / "hosts") for s in sources), sources
    assert root / JOB_FILE not in sources and Path(KEYRING) not in sources
    assert "volumes" not in kwargs and kwargs["privileged"] is False
    assert "extra_hosts" not in kwargs and kwargs.get("network_mode") != "host"


def test_a_docker_replica_mounts_only_its_model_and_code(tmp_path: Path) -> None:
    doc = {
        "image": "orchestrator/serving:1",
        "name": "orch-replica-e-1",
        "environment": {"MODEL_THREADS": "4"},
        "labels": {"orchestrator.resource": "e", "orchestrator.variant": "v"},
        "grace_seconds": 5,
        "publish_host": "127.0.0.1",
        "user": "1000:1000",
        "nano_cpus": None,
        "memory_bytes": None,
        "endpoint": "e",
        "variant": "v",
    }
    container = ContainerDefinition(Environment={"MODEL_THREADS": "4"})
    kwargs = replica_create_kwargs(doc, tmp_path, [container], "m")
    assert kwargs["environment"] == {"MODEL_THREADS": "4", "HOME": "/tmp"}
    targets = sorted(m["Target"] for m in kwargs["mounts"])
    assert targets == ["/opt/ml/model"]
    assert all(Path(m["Source"]).is_relative_to(tmp_path) for m in kwargs["mounts"])


# --- Kubernetes --------------------------------------------------------------------------------
KUBE = KubeSettings(
    namespace="ml",
    training_image="registry.example/orchestrator/training:1",
    serving_image="registry.example/orchestrator/serving:1",
    object_store_url="s3://ml-bucket",
)
# Our own containers (they read the object store); every other one runs the user's code.
OURS = {"download", "upload", "model", "runner"}


def user_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    every = pod.get("initContainers", []) + pod["containers"]
    found = [c for c in every if c["name"] not in OURS]
    assert found, [c["name"] for c in every]
    return found


def assert_no_secret(pod: dict[str, Any]) -> None:
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in user_containers(pod):
        assert "envFrom" not in c, c["name"]
        assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
        for mount in c.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert "secret" not in volume and "projected" not in volume, (c["name"], mount)
        assert not [e for e in c.get("env", []) if e.get("value") in SERVER_VALUES]


def test_a_kubernetes_training_pods_user_container_gets_no_secret() -> None:
    for hosts in (1, 2):
        job = training_job_manifest(
            "j1", "ml", 1,
            spec(ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": hosts,
                                 "VolumeSizeInGB": 1}),
            output_uri="s3://ml-bucket/j1/output/model.tar.gz", owner=None, settings=KUBE,
        )  # fmt: skip
        pod = job["spec"]["template"]["spec"]
        assert [c["name"] for c in user_containers(pod)] == ["algo"]
        assert_no_secret(pod)
        # ...while our steps do read the keyring: the check above is not vacuous.
        assert any("keyring" in {m["name"] for m in c["volumeMounts"]} for c in pod["containers"])


MODEL = CreateModelRequest(
    ModelName="churn",
    PrimaryContainer={"ModelDataUrl": "s3://ml-bucket/models/churn/model.tar.gz"},
)


def test_a_kubernetes_endpoint_replicas_serving_container_gets_no_secret() -> None:
    fleet = VariantFleet(
        config="c",
        variant=ProductionVariant(VariantName="v", ModelName="churn", InstanceType="ml.m5.large"),
        model=MODEL,
        replicas=1,
        startup_timeout_seconds=120,
    )
    deployment = fleets.fleet_objects("e", "ml", fleet, owner=None, settings=KUBE)[0]
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in user_containers(pod)] == ["serve"]
    assert_no_secret(pod)


def test_a_kubernetes_transform_pods_model_server_gets_no_secret() -> None:
    spec_ = CreateTransformJobRequest.model_validate(
        {
            "TransformJobName": "scores",
            "ModelName": "churn",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://ml-bucket/in/"}}},
            "TransformOutput": {"S3OutputPath": "s3://ml-bucket/out/"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
    )
    launch = TransformLaunch("scores", 0, 1, spec_, "churn", MODEL)
    job = transform_job_manifest(
        launch, "ml", owner=None, settings=KUBE, transform=TransformSettings()
    )
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in user_containers(pod)] == ["serve"]
    assert_no_secret(pod)
