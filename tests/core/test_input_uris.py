"""What a spec's URIs may name, refused at the create (not at run time) naming the field:
``s3://`` objects of the store; ``file://`` only from admins on a local control plane with
ORCH_ALLOW_FILE_URIS; no other scheme; no bucket that spells an IP address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from core_builders import training_doc

from orchestrator.access import Principal
from orchestrator.api import inputs
from orchestrator.errors import PermissionDeniedError, ValidationError
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.settings import Settings
from orchestrator.testing import LocalControlPlane, local_control_plane, transform_job_spec

JOBS = "/api/v1/training-jobs"
CHANNEL = "InputDataConfig[0].DataSource.S3DataSource.S3Uri"


def channel(uri: str) -> list[dict[str, Any]]:
    return [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": uri}}}]


@pytest.fixture
def lcp(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path) as plane:
        yield plane


def post(lcp: LocalControlPlane, path: str, body: dict[str, Any]) -> httpx.Response:
    response: httpx.Response = lcp.client._http.post(path, json=body)
    return response


def refused(
    lcp: LocalControlPlane, path: str, body: dict[str, Any], field: str, *words: str
) -> dict[str, Any]:
    r = post(lcp, path, body)
    assert r.status_code == 400, r.text
    error: dict[str, Any] = r.json()
    assert error["code"] == "ValidationException"
    assert error["field"] == field, error
    assert field in error["message"]
    for word in words:
        assert word in error["message"], error["message"]
    return error


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("s3://127.0.0.1/data", "127.0.0.1, loopback"),
        ("s3://169.254.169.254/latest/meta-data", "169.254.169.254, link-local"),
        ("s3://10.1.2.3/data", "10.1.2.3, a private address"),
        ("s3://[::1]/data", "::1, loopback"),
        ("s3://0x7f000001/data", "127.0.0.1, loopback"),
        ("s3://2130706433/data", "127.0.0.1, loopback"),
        ("s3://8.8.8.8/data", "8.8.8.8"),  # S3 refuses IP-formatted bucket names, any of them
    ],
)
def test_a_bucket_that_is_an_address_is_refused(lcp: LocalControlPlane, uri: str, why: str) -> None:
    error = refused(lcp, JOBS, training_doc(InputDataConfig=channel(uri)), CHANNEL, why)
    assert "never a host" in error["message"]
    assert lcp.plane.store.find("TrainingJob", "job-1") is None


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://127.0.0.1:8080/data", ("http:// URIs are not fetched", "orch objects put")),
        ("https://example.com/data.csv", ("https:// URIs are not fetched", "s3:// URI")),
        ("ftp://example.com/data", ("ftp:// URIs are not read here",)),
        ("gs://bucket/data", ("gs:// URIs are not read here",)),
        ("/data/train", ("must be a URI",)),
    ],
)
def test_other_schemes_are_refused_naming_the_field_and_the_fix(
    lcp: LocalControlPlane, uri: str, words: tuple[str, ...]
) -> None:
    refused(lcp, JOBS, training_doc(InputDataConfig=channel(uri)), CHANNEL, *words)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"OutputDataConfig": {"S3OutputPath": "http://10.0.0.1/out"}}, "OutputDataConfig.S3OutputPath"),
        ({"OutputDataConfig": {"S3OutputPath": "file:///tmp/out"}}, "OutputDataConfig.S3OutputPath"),
        ({"CheckpointConfig": {"S3Uri": "s3://169.254.169.254/c"}}, "CheckpointConfig.S3Uri"),
        ({"CheckpointConfig": {"S3Uri": "file:///tmp/ckpt"}}, "CheckpointConfig.S3Uri"),
    ],
)  # fmt: skip
def test_outputs_and_checkpoints_are_the_stores_only(
    lcp: LocalControlPlane, fields: dict[str, Any], field: str
) -> None:
    refused(lcp, JOBS, training_doc(**fields), field)


def test_model_uris(lcp: LocalControlPlane) -> None:
    model: dict[str, Any] = {"ModelName": "m", "PrimaryContainer": {"Image": "img:1"}}
    body: dict[str, Any]
    for url in ("https://169.254.169.254/model.tar.gz", "s3://127.0.0.1/model.tar.gz"):
        body = {**model, "PrimaryContainer": {"Image": "img:1", "ModelDataUrl": url}}
        refused(lcp, "/api/v1/models", body, "PrimaryContainer.ModelDataUrl")
    body = {"ModelName": "m", "Containers": [{"Image": "i"}, {"ModelDataUrl": "gs://b/m"}]}
    refused(lcp, "/api/v1/models", body, "Containers[1].ModelDataUrl", "gs://")
    env = {"SAGEMAKER_SUBMIT_DIRECTORY": "http://10.0.0.1/code.tar.gz"}
    body = {"ModelName": "m", "PrimaryContainer": {"Image": "img:1", "Environment": env}}
    refused(
        lcp, "/api/v1/models", body, "PrimaryContainer.Environment.SAGEMAKER_SUBMIT_DIRECTORY",
        "http:// URIs are not fetched",
    )  # fmt: skip


def test_transform_uris(lcp: LocalControlPlane) -> None:
    path = "/api/v1/transform-jobs"
    body = transform_job_spec("t", "m", "http://127.0.0.1/in", "s3://out/")
    refused(lcp, path, body, "TransformInput.DataSource.S3DataSource.S3Uri", "http://")
    body = transform_job_spec("t", "m", "s3://in/", "s3://0x7f000001/out")
    refused(lcp, path, body, "TransformOutput.S3OutputPath", "loopback")


def test_a_script_mode_source_is_checked_as_a_channel(lcp: LocalControlPlane) -> None:
    field = "HyperParameters.sagemaker_submit_directory"
    for source, word in (
        ('"http://127.0.0.1/src.tar.gz"', "http://"),
        ("s3://10.0.0.9/s", "private"),
    ):
        hyper = {"sagemaker_program": "train.py", "sagemaker_submit_directory": source}
        refused(lcp, JOBS, training_doc(HyperParameters=hyper), field, word)


def test_file_uris_from_an_admin_on_a_local_server(lcp: LocalControlPlane, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    r = post(lcp, JOBS, training_doc(InputDataConfig=channel((tmp_path / "data").as_uri())))
    assert r.status_code == 201, r.text


def test_file_uris_from_anyone_else_are_403(
    lcp: LocalControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Today only admins may create at all; a caller who may create but not read the host's
    # files (the policies to come) is stood in for by the one function that decides.
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(inputs, "may_read_host_files", lambda _principal: False)
    r = post(lcp, JOBS, training_doc(InputDataConfig=channel((tmp_path / "data").as_uri())))
    assert r.status_code == 403, r.text
    assert (r.json()["code"], r.json()["field"]) == ("AccessDeniedException", CHANNEL)
    assert "only admins" in r.json()["message"]
    hyper = {"sagemaker_program": "train.py", "sagemaker_submit_directory": tmp_path.as_uri()}
    r = post(lcp, JOBS, training_doc(HyperParameters=hyper))
    assert (r.status_code, r.json()["field"]) == (403, "HyperParameters.sagemaker_submit_directory")
    model = {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": tmp_path.as_uri()}}
    r = post(lcp, "/api/v1/models", model)
    assert (r.status_code, r.json()["field"]) == (403, "PrimaryContainer.ModelDataUrl")
    assert lcp.plane.store.find("TrainingJob", "job-1") is None


def test_file_uris_by_an_admin_with_the_setting_off_are_400(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with local_control_plane(tmp_path, allow_file_uris=False) as lcp:
        body = training_doc(InputDataConfig=channel((tmp_path / "data").as_uri()))
        refused(lcp, JOBS, body, CHANNEL, "ORCH_ALLOW_FILE_URIS", "s3://")
        tuning = {
            "HyperParameterTuningJobName": "tj",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
                "ParameterRanges": {
                    "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "3"}]
                },
            },
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {
                    "TrainingImage": "img:1",
                    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
                },
                "InputDataConfig": channel((tmp_path / "data").as_uri()),
            },
        }
        refused(
            lcp, "/api/v1/hyper-parameter-tuning-jobs", tuning,
            f"TrainingJobDefinition.{CHANNEL}", "ORCH_ALLOW_FILE_URIS",
        )  # fmt: skip


def test_the_file_uri_rules() -> None:
    admin = Principal("k1", "a", "admin")
    local = Settings(backend="fake")
    inputs.check_file_uri("F", local, admin)
    with pytest.raises(PermissionDeniedError, match="key k2 \\(invoke\\)"):
        inputs.check_file_uri("F", local, Principal("k2", "b", "invoke"))
    with pytest.raises(PermissionDeniedError, match="no caller"):
        inputs.check_file_uri("F", local, None)
    with pytest.raises(ValidationError, match="ORCH_ALLOW_FILE_URIS"):
        inputs.check_file_uri("F", Settings(backend="fake", allow_file_uris=False), admin)
    cluster = Settings(backend="fake", desired_state="kubernetes")
    with pytest.raises(ValidationError, match="not read on a cluster") as caught:
        inputs.check_file_uri("F", cluster, admin)  # whoever asks, whatever the setting
    assert caught.value.field == "F"


def test_the_models_refuse_the_same_without_the_api() -> None:
    # A custom resource read by the operator is parsed by the same models.
    with pytest.raises(ValueError, match="http:// URIs are not fetched"):
        CreateTrainingJobRequest.model_validate(
            training_doc(InputDataConfig=channel("http://169.254.169.254/"))
        )
    spec = CreateTrainingJobRequest.model_validate(
        training_doc(InputDataConfig=channel("s3://data/train/"))
    )
    assert spec.InputDataConfig[0].DataSource.S3DataSource.S3Uri == "s3://data/train/"
