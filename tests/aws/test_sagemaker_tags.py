"""AddTags, ListTags and DeleteTags on every kind, by ARN: tags live in the resource's spec (the
create's ``Tags`` and later changes are one list), persist, and change nothing that runs."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import AwsPlane

ARN = "arn:aws:sagemaker:us-east-1:000000000000"


def error(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = e.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


@pytest.fixture
def resources(aws_plane: AwsPlane, sagemaker: Any) -> dict[str, str]:
    """One of each kind, some created with tags; kind -> ARN."""
    local = aws_plane.local
    local.plane.objects.put_bytes("s3://bucket/train/x.csv", b"1\n")
    job = sagemaker.create_training_job(
        TrainingJobName="Job-1",  # capitals: its ARN has the name lower-cased
        AlgorithmSpecification={"TrainingImage": "linear-learner", "TrainingInputMode": "File"},
        HyperParameters={"predictor_type": "regressor"},
        RoleArn="arn:aws:iam::111122223333:role/x",
        OutputDataConfig={"S3OutputPath": "s3://bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        Tags=[{"Key": "team", "Value": "search"}],
    )["TrainingJobArn"]
    model = sagemaker.create_model(
        ModelName="m", PrimaryContainer={"Image": "registry.example/serve:1"},
        Tags=[{"Key": "sagemaker.amazonaws.com/model-source", "Value": "s3://bucket/model-builder/m/"}],
    )["ModelArn"]  # fmt: skip
    config = sagemaker.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m"}]
    )["EndpointConfigArn"]
    endpoint = sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c", Tags=[])[
        "EndpointArn"
    ]
    return {"TrainingJob": job, "Model": model, "EndpointConfig": config, "Endpoint": endpoint}


def test_arns_are_sagemaker_s(resources: dict[str, str]) -> None:
    assert resources == {
        "TrainingJob": f"{ARN}:training-job/job-1",
        "Model": f"{ARN}:model/m",
        "EndpointConfig": f"{ARN}:endpoint-config/c",
        "Endpoint": f"{ARN}:endpoint/e",
    }


def test_tags_of_every_kind_are_added_listed_overwritten_and_deleted(
    aws_plane: AwsPlane, sagemaker: Any, wire: Any, resources: dict[str, str]
) -> None:
    store = aws_plane.local.plane.store
    names = {"TrainingJob": "Job-1", "Model": "m", "EndpointConfig": "c", "Endpoint": "e"}
    for kind, arn in resources.items():
        before = sagemaker.list_tags(ResourceArn=arn)["Tags"]
        added = sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "ana"}])  # fmt: skip
        assert added["Tags"] == [{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "ana"}]
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "env", "Value": "prod"}])  # overwrites
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
            *before, {"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": "ana"},
        ]  # fmt: skip
        sagemaker.delete_tags(ResourceArn=arn, TagKeys=["owner", "not-there"])
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
            *before,
            {"Key": "env", "Value": "prod"},
        ]
        # In the spec, the one place they live: the REST API's describe shows them too.
        assert store.get(kind, names[kind]).spec["Tags"] == [
            *before,
            {"Key": "env", "Value": "prod"},
        ]
    rest = aws_plane.local.client.describe_endpoint("e")
    assert [(t.Key, t.Value) for t in rest.Tags] == [("env", "prod")]


def test_tagging_leaves_the_resource_to_the_controller_as_it_was(
    aws_plane: AwsPlane, sagemaker: Any, wire: Any, resources: dict[str, str]
) -> None:
    local = aws_plane.local
    local.controller.run_pass()
    local.backend.complete("Job-1")
    local.controller.run_pass()
    store = local.plane.store
    assert [r.name for r in store.list_active("TrainingJob")] == []
    before = store.get("TrainingJob", "Job-1")
    sagemaker.add_tags(ResourceArn=resources["TrainingJob"], Tags=[{"Key": "k", "Value": "v"}])
    after = store.get("TrainingJob", "Job-1")
    assert (after.active, after.phase, after.status) == (False, before.phase, before.status)
    launches = len(local.backend.launches)
    local.controller.run_pass()
    assert len(local.backend.launches) == launches
    assert (
        sagemaker.describe_training_job(TrainingJobName="Job-1")["TrainingJobStatus"] == "Completed"
    )


@pytest.mark.parametrize(
    ("call", "params", "code", "words"),
    [
        ("add_tags", {"Tags": [{"Key": "aws:cloudformation", "Value": "x"}]}, "ValidationException",
         "Tags: tag keys starting with 'aws:' are reserved"),
        ("add_tags", {"Tags": [{"Key": f"k{i}", "Value": ""} for i in range(50)]}, "ValidationException",
         "would have 51 tags; the limit is 50"),
        ("delete_tags", {"TagKeys": ["aws:x"]}, "ValidationException", "TagKeys: tag keys starting with 'aws:'"),
        ("list_tags", {"NextToken": "more"}, "ValidationException", "NextToken: a resource's tags"),
    ],
    ids=["reserved key", "over 50", "reserved delete", "next token"],
)  # fmt: skip
def test_tag_refusals(
    sagemaker: Any, wire: Any, resources: dict[str, str], call: str, params: dict[str, Any],
    code: str, words: str,
) -> None:  # fmt: skip
    with pytest.raises(ClientError) as e:
        getattr(sagemaker, call)(ResourceArn=resources["Model"], **params)
    got_code, message = error(e)
    assert got_code == code and words in message, message


@pytest.mark.parametrize(
    ("arn", "words"),
    [
        (f"{ARN}:endpoint/ghost", f'Could not find resource "{ARN}:endpoint/ghost".'),
        (f"{ARN}:notebook-instance/nb", "ResourceArn 'arn:aws:sagemaker:us-east-1:000000000000:notebook-instance/nb' names no resource this server keeps"),
        ("arn:aws:sagemaker:eu-west-1:000000000000:model/m", "names no resource this server keeps"),
    ],
    ids=["missing", "another kind", "another region"],
)  # fmt: skip
def test_an_arn_that_names_nothing_here(sagemaker: Any, wire: Any, arn: str, words: str) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.list_tags(ResourceArn=arn)
    code, message = error(e)
    assert code == "ValidationException" and words in message, message
