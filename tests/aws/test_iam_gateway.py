"""Policies on the AWS gateway: SigV4 access keys of identities, SageMaker's action names on
the resource's ARN, the owner tag stamped at create, S3 actions on object ARNs."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.api.identities import document_of
from tests.aws.conftest import AwsPlane

MODEL = {
    "PrimaryContainer": {"Image": "example/serve:1"},
    "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
}


def scientist(aws_plane: AwsPlane, name: str, service: str = "sagemaker") -> Any:
    plane = aws_plane.local.plane
    now = plane.clock.now()
    plane.keys.add_identity(
        name, kind="user", document=document_of(["DataScientist"], {}, []), now=now
    )
    record, secret = plane.access_keys.create(name="k", role="", now=now, identity=name)
    return aws_plane.client(
        service, aws_access_key_id=record.access_key_id, aws_secret_access_key=secret
    )


def test_data_scientists_own_what_they_create_over_sigv4(aws_plane: AwsPlane) -> None:
    alice, bob = scientist(aws_plane, "alice"), scientist(aws_plane, "bob")
    alice.create_model(ModelName="m-a", **MODEL)
    arn = alice.describe_model(ModelName="m-a")["ModelArn"]
    tags = alice.list_tags(ResourceArn=arn)["Tags"]
    assert {"Key": "orchestrator:owner", "Value": "alice"} in tags
    with pytest.raises(ClientError) as e:
        bob.describe_model(ModelName="m-a")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "sagemaker:DescribeModel" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        bob.delete_model(ModelName="m-a")
    assert [m["ModelName"] for m in bob.list_models()["Models"]] == ["m-a"]  # lists are open
    alice.delete_model(ModelName="m-a")


def test_s3_actions_are_on_object_arns(aws_plane: AwsPlane) -> None:
    plane = aws_plane.local.plane
    now = plane.clock.now()
    only = {"Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::shared/*"},
    ]}  # fmt: skip
    plane.keys.add_identity("s", kind="service", document=document_of([], {"s": only}, []), now=now)
    record, secret = plane.access_keys.create(name="k", role="", now=now, identity="s")
    s3 = aws_plane.client(
        "s3", aws_access_key_id=record.access_key_id, aws_secret_access_key=secret
    )
    admin = aws_plane.client("s3")
    admin.create_bucket(Bucket="shared")
    admin.create_bucket(Bucket="private")
    s3.put_object(Bucket="shared", Key="a", Body=b"1")
    assert s3.get_object(Bucket="shared", Key="a")["Body"].read() == b"1"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="private", Key="a", Body=b"1")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    admin.put_object(Bucket="private", Key="b", Body=b"2")
    with pytest.raises(ClientError):  # a copy reads its source too
        s3.copy_object(Bucket="shared", Key="c", CopySource={"Bucket": "private", "Key": "b"})
