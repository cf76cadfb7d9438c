"""``/api/v1/kms/keys``, ``orch kms``, and KmsKeyId checked at create (400 naming the field)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app as cli_app
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.testing import (
    LocalControlPlane,
    endpoint_config_spec,
    local_control_plane,
    model_spec,
    training_job_spec,
    transform_job_spec,
)

SOURCE = "s3://orchestrator/code/sourcedir.tar.gz"


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path) as cp:
        cp.client.upload_bytes(b"source", SOURCE)
        cp.client.upload_bytes(b"rows", "s3://orchestrator/in/a.csv")
        cp.client.upload_bytes(b"model", "s3://orchestrator/model.tar.gz")
        yield cp


def _job(name: str, key: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"S3OutputPath": "s3://orchestrator/out"}
    if key is not None:
        out["KmsKeyId"] = key
    return training_job_spec(name, source=SOURCE, OutputDataConfig=out)


def test_create_and_list_keys(cp: LocalControlPlane) -> None:
    c = cp.client
    made = c.create_kms_key("team-a")
    assert made.KeyId.startswith("mk-") and made.Alias == "alias/team-a"
    assert made.Arn == f"arn:aws:kms:us-east-1:000000000000:key/{made.KeyId}"
    bare = c.create_kms_key()
    listed = c.list_kms_keys()
    assert listed.KeyProvider == "local"
    assert [(k.KeyId, k.Alias, k.Default) for k in listed.Keys] == [
        ("default", "alias/default", True),
        (made.KeyId, "alias/team-a", False),
        (bare.KeyId, None, False),
    ]
    with pytest.raises(ConflictError):
        c.create_kms_key("alias/team-a")
    with pytest.raises(ValidationError) as e:
        c.create_kms_key("aws/reserved")
    assert e.value.field == "Alias"


@pytest.mark.parametrize(
    "form", ["alias/team-a", "KEY_ID", "arn:aws:kms:us-east-1:000000000000:key/KEY_ID"]
)
def test_a_training_job_naming_a_key_is_created(cp: LocalControlPlane, form: str) -> None:
    key = cp.client.create_kms_key("team-a")
    cp.client.create_training_job(_job("j", form.replace("KEY_ID", key.KeyId)))
    stored = cp.client.describe_training_job("j")
    assert stored.OutputDataConfig is not None
    assert stored.OutputDataConfig.KmsKeyId == form.replace("KEY_ID", key.KeyId)


def test_an_unknown_key_is_a_400_naming_the_field_before_anything_is_stored(
    cp: LocalControlPlane,
) -> None:
    c = cp.client
    with pytest.raises(ValidationError, match=r"^OutputDataConfig\.KmsKeyId: KmsKeyId") as e:
        c.create_training_job(_job("j", "alias/nope"))
    assert e.value.field == "OutputDataConfig.KmsKeyId"
    assert "orch kms create-key" in e.value.message
    with pytest.raises(NotFoundError):
        c.describe_training_job("j")
    c.create_model(model_spec("m", "s3://orchestrator/model.tar.gz"))
    body = transform_job_spec("t", "m", "s3://orchestrator/in/", "s3://orchestrator/tout")
    body["TransformOutput"]["KmsKeyId"] = "alias/nope"
    with pytest.raises(ValidationError) as e:
        c.create_transform_job(body)
    assert e.value.field == "TransformOutput.KmsKeyId"
    with pytest.raises(NotFoundError):
        c.describe_transform_job("t")
    c.create_kms_key("team-t")
    body["TransformOutput"]["KmsKeyId"] = "alias/team-t"
    c.create_transform_job(body)


def test_endpoint_config_kms_key_stays_refused_by_name(cp: LocalControlPlane) -> None:
    cp.client.create_model(model_spec("m", "s3://orchestrator/model.tar.gz"))
    spec = endpoint_config_spec("c", "m")
    spec["KmsKeyId"] = "alias/default"
    with pytest.raises(ValidationError, match=r"^KmsKeyId: an endpoint writes no objects") as e:
        cp.client.create_endpoint_config(spec)
    assert e.value.field == "KmsKeyId"


def test_orch_kms_commands(cp: LocalControlPlane) -> None:
    runner = CliRunner()
    base = ["--endpoint-url", cp.url, "--api-key", cp.api_key]
    made = runner.invoke(cli_app, [*base, "kms", "create-key", "--alias", "cli-key"])
    assert made.exit_code == 0, made.output
    assert "alias/cli-key" in made.output
    listed = runner.invoke(cli_app, [*base, "-o", "json", "kms", "list-keys"])
    assert listed.exit_code == 0, listed.output
    keys = json.loads(listed.output)["Keys"]
    assert [k["Alias"] for k in keys] == ["alias/default", "alias/cli-key"]
    table = runner.invoke(cli_app, [*base, "kms", "list-keys"])
    assert "cli-key" in table.output and "default" in table.output


def test_keys_are_made_in_the_service_when_the_provider_is_not_local(tmp_path: Path) -> None:
    settings = {"objects": {"key_provider": "vault", "kms_key_id": "k"}}
    with local_control_plane(tmp_path, **settings) as cp:
        with pytest.raises(ValidationError, match="bao write -f transit/keys/NAME") as e:
            cp.client.create_kms_key("x")
        assert e.value.field == "ORCH_OBJECTS__KEY_PROVIDER"


def test_a_tuning_job_naming_an_unknown_key_is_refused_by_field(cp: LocalControlPlane) -> None:
    from tests.tuning.test_api_tuning import request

    body = request()
    definition = body["TrainingJobDefinition"]
    definition["OutputDataConfig"] = {"S3OutputPath": "s3://orchestrator/t", "KmsKeyId": "nope"}
    resp = cp.client._http.post("/api/v1/hyper-parameter-tuning-jobs", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == "TrainingJobDefinition.OutputDataConfig.KmsKeyId"
    cp.client.create_kms_key("tune")
    definition["OutputDataConfig"]["KmsKeyId"] = "alias/tune"
    resp = cp.client._http.post("/api/v1/hyper-parameter-tuning-jobs", json=body)
    assert resp.status_code == 201, resp.text


def test_the_estimator_sends_output_kms_key(cp: LocalControlPlane, tmp_path: Path) -> None:
    from orchestrator.client import Estimator

    (tmp_path / "train.py").write_text("print('hi')\n")
    key = cp.client.create_kms_key("est")
    est = Estimator(str(tmp_path / "train.py"), client=cp.client, output_kms_key="alias/est")
    spec = est.training_job_spec("e", {}, "s3://orchestrator/e/source/sourcedir.tar.gz")
    assert spec["OutputDataConfig"] == {
        "S3OutputPath": "s3://orchestrator/training-jobs",
        "KmsKeyId": "alias/est",
    }
    mine = Estimator(
        str(tmp_path / "train.py"), client=cp.client, output_path="s3://orchestrator/x",
        output_kms_key=key.KeyId,
    )  # fmt: skip
    spec = mine.training_job_spec("f", {}, None)
    assert spec["OutputDataConfig"] == {
        "S3OutputPath": "s3://orchestrator/x",
        "KmsKeyId": key.KeyId,
    }


def test_on_a_cluster_keys_are_added_to_the_keyring_secret(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from orchestrator.api.kms import KmsKeys
    from orchestrator.objects import LocalKeyring
    from orchestrator.settings import Settings

    s = Settings(home=tmp_path, desired_state="kubernetes")
    cp = SimpleNamespace(settings=s, key_provider=LocalKeyring(s.keyring_path))
    with pytest.raises(ValidationError, match=r"add the keyring-named\.json beside it"):
        KmsKeys(cp).create("x")  # type: ignore[arg-type]
    assert [k.KeyId for k in KmsKeys(cp).list().Keys] == ["default"]  # type: ignore[arg-type]
