"""Transform jobs through boto3's ``sagemaker`` client, every exchange checked against botocore's
model (the ``wire`` fixture): create, describe (the project's status extensions stay off the
wire), list with SageMaker's parameters, stop, the waiter, and SageMaker's words for a missing
job, a name in use and bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.aws.conftest import AwsPlane

KIND = "TransformJob"
ARN = "arn:aws:sagemaker:us-east-1:000000000000:transform-job"
FAST = {"Delay": 1, "MaxAttempts": 3}
MISSING = "Could not find requested job with name nope"


def error(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = e.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def transform_request(name: str, **fields: Any) -> dict[str, Any]:
    """What the SDK's ``Transformer.transform()`` sends for a CSV prefix split by line."""
    doc: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "m",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/batch/"}
            },
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://bucket/scored/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    }  # fmt: skip
    doc.update(fields)
    return doc


@pytest.fixture
def plane(aws_plane: AwsPlane) -> AwsPlane:
    local = aws_plane.local
    local.plane.objects.put_bytes("s3://bucket/batch/a.csv", b"1,0.5,2\n2,0.1,3\n")
    local.client._http.post(
        "/api/v1/models", json={"ModelName": "m", "PrimaryContainer": {"Image": "x/serve:1"}}
    ).raise_for_status()
    return aws_plane


def end(plane: AwsPlane, name: str, status: str, reason: str | None = None) -> None:
    """What the controller writes when the job ends."""
    cp = plane.local.plane
    record = cp.store.get(KIND, name)
    now = cp.clock.now()
    state = {
        **record.status,
        "TransformJobStatus": status,
        "FailureReason": reason,
        "TransformStartTime": (now - timedelta(seconds=30)).isoformat(),
        "TransformEndTime": now.isoformat(),
        "Progress": {"FilesTotal": 1, "FilesCompleted": 1, "RecordsProcessed": 2},
        "Instances": [{"Instance": 0, "Attempt": 1, "Status": "Completed"}],
        "Conditions": [
            {"Type": "Ready", "Status": "True", "Reason": status, "LastTransitionTime": now}
        ],
    }
    cp.store.update_status(record, state, phase=status, active=False, now=now)


def test_create_then_describe_as_sagemaker_does(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    created = plane.local.plane.clock.now()
    arn = sagemaker.create_transform_job(**transform_request("tf-1"))["TransformJobArn"]
    assert arn == f"{ARN}/tf-1"
    d = sagemaker.describe_transform_job(TransformJobName="tf-1")
    assert (d["TransformJobName"], d["TransformJobArn"]) == ("tf-1", arn)
    assert d["TransformJobStatus"] == "InProgress" and d["ModelName"] == "m"
    assert d["TransformInput"]["SplitType"] == "Line"
    assert d["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert d["DataProcessing"] == {
        "InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]",
    }  # fmt: skip
    assert d["CreationTime"] == created and d["CreationTime"].tzinfo is not None
    plane.local.plane.clock.advance(60)
    end(plane, "tf-1", "Completed")
    d = sagemaker.describe_transform_job(TransformJobName="tf-1")
    assert d["TransformJobStatus"] == "Completed"
    assert d["TransformEndTime"] - d["TransformStartTime"] == timedelta(seconds=30)
    # The project's own status (progress, instances, conditions) stays off the wire.
    raw = wire.last("DescribeTransformJob").response
    assert not {"Progress", "Instances", "Conditions", "LastModifiedTime", "Tags"} & set(raw)
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="tf-1", WaiterConfig=FAST
    )


def test_a_failed_job_fails_the_waiter_with_its_reason(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_transform_job(**transform_request("bad"))
    end(plane, "bad", "Failed", "ClientError: a.csv line 2: the model answered 400")
    with pytest.raises(WaiterError) as e:
        sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="bad", WaiterConfig=FAST
        )
    assert "Failed" in str(e.value)
    d = sagemaker.describe_transform_job(TransformJobName="bad")
    assert d["FailureReason"] == "ClientError: a.csv line 2: the model answered 400"


def test_stop_shows_stopping_then_the_waiter_ends_on_stopped(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_transform_job(**transform_request("halt"))
    assert sagemaker.stop_transform_job(TransformJobName="halt")["ResponseMetadata"]
    assert plane.local.plane.store.get(KIND, "halt").stop_requested
    d = sagemaker.describe_transform_job(TransformJobName="halt")
    assert d["TransformJobStatus"] == "Stopping"
    end(plane, "halt", "Stopped")
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="halt", WaiterConfig=FAST
    )


def test_stopping_a_job_that_ended_is_a_validation_exception(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_transform_job(**transform_request("done"))
    end(plane, "done", "Completed")
    with pytest.raises(ClientError) as e:
        sagemaker.stop_transform_job(TransformJobName="done")
    assert error(e) == (
        "ValidationException",
        "TransformJob 'done' has already ended (Completed); nothing to stop",
    )


def test_a_missing_job_is_sagemaker_s_validation_exception(sagemaker: Any, wire: Any) -> None:
    for call in (sagemaker.describe_transform_job, sagemaker.stop_transform_job):
        with pytest.raises(ClientError) as e:
            call(TransformJobName="nope")
        assert error(e) == ("ValidationException", MISSING)
    # The waiter depends on it: a missing job is a failure, at once.
    with pytest.raises(WaiterError) as w:
        sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="nope", WaiterConfig=FAST
        )
    assert "ValidationException" in str(w.value)


def test_a_name_in_use_is_resource_in_use_even_with_the_same_spec(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_transform_job(**transform_request("dup"))
    for again in (transform_request("dup"), transform_request("dup", MaxPayloadInMB=1)):
        with pytest.raises(ClientError) as e:
            sagemaker.create_transform_job(**again)
        code, message = error(e)
        assert code == "ResourceInUse"
        assert message == (
            "Transform job names must be unique within an AWS account and region, and a "
            f"transform job with this name already exists ({ARN}/dup)"
        )


@pytest.mark.parametrize(
    ("fields", "starts"),
    [
        ({"ModelName": "nope"}, "ModelName: Model 'nope' does not exist"),
        (
            {"TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/none/"}}, "ContentType": "text/csv"}},
            "TransformInput.DataSource.S3DataSource.S3Uri: no objects under s3://bucket/none/",
        ),
        (
            {"DataProcessing": {"InputFilter": "$[1:"}},
            "DataProcessing.InputFilter: unexpected end at position 4",
        ),
        (
            {"MaxConcurrentTransforms": 50},
            "MaxConcurrentTransforms x MaxPayloadInMB is 50 x 6 = 300 MB",
        ),
        (
            {"TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 101}},
            "TransformResources.InstanceCount: Input should be less than or equal to 100",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_a_validation_exception_naming_the_field(
    plane: AwsPlane, sagemaker: Any, wire: Any, fields: dict[str, Any], starts: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_transform_job(**transform_request("refused", **fields))
    code, message = error(e)
    assert code == "ValidationException" and starts in message, message
    assert plane.local.plane.store.find(KIND, "refused") is None


def test_a_member_sagemaker_does_not_have_is_refused_on_the_wire(plane: AwsPlane) -> None:
    """botocore refuses such a member before sending; a raw client gets this."""
    from tests.aws.raw import call

    body = {**transform_request("raw"), "Progress": {"FilesTotal": 1}}
    status, answer = call(plane, "CreateTransformJob", body)
    assert status == 400 and answer["__type"] == "ValidationException"
    assert answer["Message"] == "Progress: not a member of SageMaker's CreateTransformJob request"


def test_lists_take_sagemaker_s_parameters(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    clock = plane.local.plane.clock
    for name in ("charlie", "alpha", "bravo"):
        sagemaker.create_transform_job(**transform_request(name))
        clock.advance(10)
    end(plane, "alpha", "Completed")

    def names(**params: Any) -> list[str]:
        page = sagemaker.list_transform_jobs(**params)["TransformJobSummaries"]
        return [j["TransformJobName"] for j in page]

    assert names() == ["bravo", "alpha", "charlie"]  # SageMaker's default: newest first
    assert names(SortOrder="Ascending") == ["charlie", "alpha", "bravo"]
    assert names(SortBy="Name", SortOrder="Ascending") == ["alpha", "bravo", "charlie"]
    assert names(SortBy="Status", SortOrder="Ascending") == ["alpha", "charlie", "bravo"]
    assert names(StatusEquals="Completed") == ["alpha"]
    assert names(NameContains="LPH") == ["alpha"]
    start = clock.now() - timedelta(seconds=30)
    assert names(CreationTimeAfter=start + timedelta(seconds=5)) == ["bravo", "alpha"]
    assert names(CreationTimeBefore=start + timedelta(seconds=5)) == ["charlie"]
    assert names(LastModifiedTimeAfter=clock.now() - timedelta(seconds=1)) == ["alpha"]
    assert names(LastModifiedTimeBefore=clock.now() - timedelta(seconds=1)) == ["bravo", "charlie"]
    [done] = sagemaker.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert done["TransformJobArn"] == f"{ARN}/alpha" and "TransformEndTime" in done
    first = sagemaker.list_transform_jobs(MaxResults=2, SortBy="Name", SortOrder="Ascending")
    assert [j["TransformJobName"] for j in first["TransformJobSummaries"]] == ["alpha", "bravo"]
    rest = sagemaker.list_transform_jobs(
        MaxResults=2, SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"]
    )
    assert [j["TransformJobName"] for j in rest["TransformJobSummaries"]] == ["charlie"]
    assert "NextToken" not in rest
    paginated = sagemaker.get_paginator("list_transform_jobs").paginate(
        PaginationConfig={"PageSize": 1}
    )
    assert [j["TransformJobName"] for page in paginated for j in page["TransformJobSummaries"]] == [
        "bravo", "alpha", "charlie",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"StatusEquals": "Sleeping"}, "StatusEquals"),
        ({"SortBy": "Size"}, "SortBy"),
        ({"SortOrder": "Sideways"}, "SortOrder"),
        ({"NextToken": "bm90IG91cnM="}, "NextToken"),
    ],
)
def test_a_list_parameter_that_cannot_be_honoured_is_refused(
    sagemaker: Any, wire: Any, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.list_transform_jobs(**params)
    code, message = error(e)
    assert code == "ValidationException" and named in message, message


def test_a_transform_job_is_tagged_by_its_arn(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    arn = sagemaker.create_transform_job(**transform_request("tagged"))["TransformJobArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["env"])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == []
