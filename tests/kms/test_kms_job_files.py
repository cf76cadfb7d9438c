"""The KmsKeyId a resource names reaches whatever writes its objects, on every backend: the
job file of the process and Docker supervisors, a transform instance's file, the Kubernetes
steps' store; and the provider settings parse (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from orchestrator.backends.process import ProcessBackend
from orchestrator.backends.process.transforms import InstanceFile
from orchestrator.controller.plan.types import JobLaunch, TransformLaunch
from orchestrator.kube.steps import open_store
from orchestrator.objects import FileObjectStore, LocalKeyring
from orchestrator.objects.aws_kms import AwsKmsKeyProvider
from orchestrator.objects.providers import KeyChoice, key_provider_config, open_key_provider
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import Settings
from orchestrator.testing import model_spec, training_job_spec, transform_job_spec
from orchestrator.training.files import JobFile


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", config_dir=tmp_path / "config")


@pytest.fixture
def key_id(settings: Settings) -> str:
    ring = LocalKeyring(settings.keyring_path)
    assert ring.active_key_id  # the keyring file exists, as the Secret holds it
    return ring.create_key("out").key_id


def _training(key: str | None) -> CreateTrainingJobRequest:
    out = {"S3OutputPath": "s3://orchestrator/out", **({"KmsKeyId": key} if key else {})}
    return CreateTrainingJobRequest.model_validate(training_job_spec("j", OutputDataConfig=out))


def test_the_supervisors_job_file_carries_the_output_key(
    settings: Settings, key_id: str, tmp_path: Path
) -> None:
    backend = ProcessBackend(settings)
    launch = JobLaunch("j", 1, _training("alias/out"), "s3://orchestrator/out/j/model.tar.gz")
    doc = JobFile.model_validate_json(backend.job_file(launch, tmp_path).model_dump_json())
    assert doc.store.write_key == "alias/out"
    assert doc.store.keys is not None and doc.store.keys.kind == "local"
    info = doc.store.open().put_bytes("s3://orchestrator/out/j/model.tar.gz", b"m")
    assert info.key_id == key_id
    plain = JobLaunch("k", 1, _training(None), "s3://orchestrator/out/k/model.tar.gz")
    assert backend.job_file(plain, tmp_path).store.write_key is None


def test_a_transform_instance_writes_under_the_output_key(
    settings: Settings, key_id: str, tmp_path: Path
) -> None:
    backend = ProcessBackend(settings)
    body = transform_job_spec("t", "m", "s3://orchestrator/in/", "s3://orchestrator/tout")
    body["TransformOutput"]["KmsKeyId"] = key_id
    spec = CreateTransformJobRequest.model_validate(body)
    model = CreateModelRequest.model_validate(model_spec("m", "s3://orchestrator/model.tar.gz"))
    doc = backend.instance_file(TransformLaunch("t", 0, 1, spec, "m", model), tmp_path)
    doc = InstanceFile.model_validate_json(doc.model_dump_json())
    assert doc.store.write_key == key_id
    assert doc.store.open().put_bytes("s3://orchestrator/tout/a.out", b"x").key_id == key_id


def test_the_kubernetes_steps_store_uses_the_named_keys_of_the_mounted_secret(
    settings: Settings, key_id: str, tmp_path: Path
) -> None:
    mounted = settings.keyring_path  # keyring.json and keyring-named.json, as in the Secret
    url = (tmp_path / "objects").as_uri()
    store = open_store(
        url, mounted, s3_endpoint_url=None, s3_region="us-east-1", chunk_size=64 << 10,
        write_key="alias/out",
    )  # fmt: skip
    assert store.put_bytes("s3://orchestrator/out/model.tar.gz", b"m").key_id == key_id
    reader = FileObjectStore(tmp_path / "objects", LocalKeyring(mounted))
    assert reader.get_bytes("s3://orchestrator/out/model.tar.gz") == b"m"


def test_provider_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_OBJECTS__KEY_PROVIDER", "aws-kms")
    monkeypatch.setenv("ORCH_OBJECTS__KMS_KEY_ID", "alias/store")
    monkeypatch.setenv("ORCH_OBJECTS__KMS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ORCH_REGION", "eu-west-1")
    config = key_provider_config(Settings(home=tmp_path))
    assert (config.kind, config.default_key, config.aws_region) == (
        "aws-kms",
        "alias/store",
        "eu-west-1",
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    provider = open_key_provider(config)
    assert isinstance(provider, AwsKmsKeyProvider) and provider.default_key == "alias/store"
    monkeypatch.setenv("ORCH_OBJECTS__KEY_PROVIDER", "gcp")
    with pytest.raises(PydanticValidationError, match="key_provider"):
        Settings(home=tmp_path)


def test_a_local_default_key_is_a_choice_over_the_same_keyring(settings: Settings) -> None:
    ring = LocalKeyring(settings.keyring_path)
    config = key_provider_config(settings).model_copy(update={"default_key": "alias/x"})
    provider = open_key_provider(config, keyring=ring)
    assert isinstance(provider, KeyChoice) and provider.inner is ring
    assert open_key_provider(key_provider_config(settings), keyring=ring) is ring


def test_a_cluster_control_plane_refuses_a_provider_its_pods_cannot_use(tmp_path: Path) -> None:
    from orchestrator.api.app import build_control_plane
    from orchestrator.errors import ValidationError

    s = Settings(home=tmp_path, desired_state="kubernetes", objects={"key_provider": "vault"})
    with pytest.raises(ValidationError, match="only the local provider") as e:
        build_control_plane(s)
    assert e.value.field == "ORCH_OBJECTS__KEY_PROVIDER"
