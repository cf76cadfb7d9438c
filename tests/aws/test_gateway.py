"""The gateway: boto3 reaches the services through it with a SigV4 key; every refusal is the
AWS error botocore expects; the management API and bearer keys are untouched."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import AwsPlane


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def test_boto3_lists_training_jobs_with_an_access_key(sagemaker: Any) -> None:
    out = sagemaker.list_training_jobs()
    assert out["TrainingJobSummaries"] == []
    assert out["ResponseMetadata"]["RequestId"]


def test_a_wrong_secret_is_invalid_signature(aws_plane: AwsPlane) -> None:
    client = aws_plane.client("sagemaker", aws_secret_access_key=aws_plane.secret[:-2] + "xx")
    with pytest.raises(ClientError) as e:
        client.list_training_jobs()
    assert _code(e) == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unknown_key_is_unrecognized_client(aws_plane: AwsPlane) -> None:
    client = aws_plane.client("sagemaker", aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as e:
        client.list_training_jobs()
    assert _code(e) == "UnrecognizedClientException"


def test_a_revoked_key_stops_working_at_once(aws_plane: AwsPlane, sagemaker: Any) -> None:
    sagemaker.list_training_jobs()
    aws_plane.local.plane.access_keys.revoke(aws_plane.access_key_id)
    with pytest.raises(ClientError) as e:
        sagemaker.list_training_jobs()
    assert _code(e) == "UnrecognizedClientException"


def test_a_region_other_than_the_servers_is_refused_naming_it(aws_plane: AwsPlane) -> None:
    client = aws_plane.client("sagemaker", region_name="eu-west-1")
    with pytest.raises(ClientError) as e:
        client.list_training_jobs()
    assert _code(e) == "InvalidSignatureException"
    assert "'us-east-1'" in e.value.response["Error"]["Message"]


def test_an_unsigned_request_with_a_target_is_missing_token(aws_plane: AwsPlane) -> None:
    r = httpx.post(
        aws_plane.url + "/",
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs",
                 "Content-Type": "application/x-amz-json-1.1"},
        content=b"{}",
    )  # fmt: skip
    assert r.status_code == 403
    assert r.json()["__type"] == "MissingAuthenticationTokenException"
    assert r.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert r.headers["x-amzn-requestid"]


def test_an_unknown_operation_names_itself(aws_plane: AwsPlane) -> None:
    client = aws_plane.client("sagemaker")
    with pytest.raises(ClientError) as e:
        client.list_notebook_instances()
    assert _code(e) == "UnknownOperationException"
    assert "ListNotebookInstances" in e.value.response["Error"]["Message"]


def test_sts_get_caller_identity(aws_plane: AwsPlane) -> None:
    out = aws_plane.client("sts").get_caller_identity()
    assert out["UserId"] == aws_plane.access_key_id
    assert out["Account"] == aws_plane.local.plane.settings.account_id
    assert out["Arn"].endswith(":user/alice")


def test_bearer_keys_still_reach_the_management_api(aws_plane: AwsPlane) -> None:
    assert aws_plane.local.client.list_training_jobs().TrainingJobSummaries == []


@pytest.mark.parametrize(
    ("variable", "service"),
    [
        ("AWS_ENDPOINT_URL", "sagemaker"),
        ("AWS_ENDPOINT_URL_SAGEMAKER", "sagemaker"),
        ("AWS_ENDPOINT_URL_S3", "s3"),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "logs"),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", "cloudwatch"),
        ("AWS_ENDPOINT_URL_STS", "sts"),
    ],
)
def test_one_url_serves_every_service_by_the_environment_variables(
    aws_plane: AwsPlane, monkeypatch: pytest.MonkeyPatch, variable: str, service: str
) -> None:
    """boto3 finds the control plane from ``AWS_ENDPOINT_URL`` or the service's own variable,
    with no ``endpoint_url=`` in the code; the signature's scope tells the services apart."""
    import boto3

    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv(variable, aws_plane.url)
    client = boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id=aws_plane.access_key_id,
        aws_secret_access_key=aws_plane.secret,
    )
    assert client.meta.endpoint_url == aws_plane.url
    calls = {
        "sagemaker": lambda: client.list_endpoints()["Endpoints"],
        "s3": lambda: client.list_buckets()["Buckets"],
        "logs": lambda: client.describe_log_groups()["logGroups"],
        "cloudwatch": lambda: client.list_metrics()["Metrics"],
        "sts": lambda: [client.get_caller_identity()["UserId"]],
    }
    answer = calls[service]()
    assert isinstance(answer, list)
    if service == "sts":
        assert answer == [aws_plane.access_key_id]
