"""The audit trail records AWS calls by their operation names, with the signer as identity."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.audit import AuditTrail, LookupFilter
from tests.aws.conftest import AwsPlane


def _trail(aws_plane: AwsPlane) -> AuditTrail:
    trail = aws_plane.local.plane.audit
    assert trail is not None
    return trail


def _events(aws_plane: AwsPlane, **where: Any) -> list[dict[str, Any]]:
    return _trail(aws_plane).lookup(LookupFilter(**where), max_results=1000)[0]


def test_aws_operations_are_recorded_by_name(aws_plane: AwsPlane, sagemaker: Any) -> None:
    sagemaker.list_training_jobs()
    s3 = aws_plane.client("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="train.json", Body=b'{"body-marker": 1}')
    aws_plane.client("cloudwatch").list_metrics()
    aws_plane.client("logs").describe_log_groups()
    with pytest.raises(ClientError):
        sagemaker.describe_training_job(TrainingJobName="nope")
    by_name = {e["eventName"]: e for e in _events(aws_plane)}
    for name in ("ListTrainingJobs", "CreateBucket", "PutObject", "ListMetrics",
                 "DescribeLogGroups", "DescribeTrainingJob"):  # fmt: skip
        assert name in by_name, sorted(by_name)
    listed = by_name["ListTrainingJobs"]
    assert listed["eventSource"] == "sagemaker.amazonaws.com"
    assert listed["userIdentity"]["userName"] == "alice"
    assert listed["userIdentity"]["keyId"] == aws_plane.access_key_id
    assert listed["statusCode"] == 200
    assert listed["requestID"]
    put = by_name["PutObject"]
    assert put["resources"] == ["data/train.json"]
    assert "body-marker" not in json.dumps(put)
    failed = by_name["DescribeTrainingJob"]
    assert failed["statusCode"] == 400 and failed["errorCode"] == "ValidationException"
    assert failed["resources"] == ["nope"]
    assert aws_plane.secret not in json.dumps(_events(aws_plane))


def test_s3_cannot_write_the_trail_bucket(aws_plane: AwsPlane) -> None:
    s3 = aws_plane.client("s3")
    bucket = aws_plane.local.plane.settings.audit.bucket
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="records/forged.jsonl", Body=b"{}")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "audit trail" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="digests/00000001.json")
    refused = [e for e in _events(aws_plane, event_name="PutObject") if e["statusCode"] == 403]
    assert refused and refused[0]["errorCode"] == "AccessDenied"


def test_a_badly_signed_invocation_is_recorded(aws_plane: AwsPlane) -> None:
    runtime = aws_plane.client("sagemaker-runtime", aws_secret_access_key="wrong" * 8)
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName="ep-9", Body=b"1", ContentType="text/csv")
    events = _events(aws_plane, event_name="InvokeEndpoint")
    assert len(events) == 1
    assert events[0]["statusCode"] in (401, 403)
    assert events[0]["userIdentity"]["keyId"] == aws_plane.access_key_id
    assert events[0]["resources"] == ["endpoint/ep-9"]
