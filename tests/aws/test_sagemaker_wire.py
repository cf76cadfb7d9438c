"""The wire against botocore's model: every operation of the table in one run, each request and
answer checked; the checker itself catches what it must; the server's copy of the model's
members is current."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.api.aws.sagemaker import TABLE
from tests.aws.conftest import AwsPlane
from tests.aws.shapes import GENERATED, generated_module, problems, served_operations

ROLE = "arn:aws:iam::111122223333:role/x"


def test_the_server_s_copy_of_the_model_is_current() -> None:
    assert GENERATED.read_text() == generated_module(served_operations()), (
        "orchestrator/api/aws/sagemaker_model.py is stale: run python -m tests.aws.shapes"
    )


def _tuning_on_the_wire(plane: AwsPlane, sm: Any) -> None:
    from orchestrator.testing import tarball
    from tests.aws.test_sagemaker_tuning import SOURCE, tuning_request

    local = plane.local
    local.plane.objects.put_bytes(SOURCE, tarball({"train.py": "print('loss=1')\n"}))
    sm.create_hyper_parameter_tuning_job(**tuning_request("t", trials=2, parallel=1))
    local.controller.run_pass()
    sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="t")
    sm.list_hyper_parameter_tuning_jobs(SortBy="Name", StatusEquals="InProgress")
    sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="t")
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="t")
    for _ in range(3):
        for name, job in list(local.backend.jobs.items()):
            if job.state != "exited":
                local.backend.complete(name)
        local.controller.run_pass()
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="t")


def _transform_on_the_wire(plane: AwsPlane, sm: Any) -> None:
    from tests.aws.test_transform_wire import end, transform_request

    source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train/"}}
    request = transform_request(
        "tf", TransformInput={"DataSource": source, "ContentType": "text/csv", "SplitType": "Line"}
    )
    sm.create_transform_job(**request)
    sm.describe_transform_job(TransformJobName="tf")
    sm.list_transform_jobs(SortBy="Status", StatusEquals="InProgress", MaxResults=5)
    sm.stop_transform_job(TransformJobName="tf")
    end(plane, "tf", "Stopped")
    sm.describe_transform_job(TransformJobName="tf")


def test_every_operation_of_the_table_on_the_wire(
    aws_plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    local = aws_plane.local
    local.plane.objects.put_bytes("s3://bucket/train/x.csv", b"1\n")
    local.plane.objects.put_bytes("s3://bucket/out/model.tar.gz", b"m")
    sm = sagemaker
    job = {
        "TrainingJobName": "j", "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "linear-learner", "TrainingInputMode": "File"},
        "HyperParameters": {"predictor_type": "regressor"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Tags": [{"Key": "k", "Value": "v"}],
    }  # fmt: skip
    job_arn = sm.create_training_job(**job)["TrainingJobArn"]
    local.controller.run_pass()
    sm.describe_training_job(TrainingJobName="j")
    sm.list_training_jobs(SortBy="Status", StatusEquals="InProgress", MaxResults=5)
    sm.stop_training_job(TrainingJobName="j")
    sm.describe_training_job(TrainingJobName="j")
    for _ in range(3):
        local.controller.run_pass()
    sm.describe_training_job(TrainingJobName="j")
    found = sm.search(
        Resource="TrainingJob", SortBy="Tags.k", SortOrder="Ascending", MaxResults=5,
        SearchExpression={"Filters": [{"Name": "Tags.k", "Operator": "Equals", "Value": "v"}]},
    )  # fmt: skip
    assert [r["TrainingJob"]["TrainingJobName"] for r in found["Results"]] == ["j"]
    sm.create_model(
        ModelName="m", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "registry.example/serve:1", "Environment": {"A": "1"},
                          "ModelDataUrl": "s3://bucket/out/model.tar.gz",
                          "ContainerHostname": "main", "Mode": "SingleModel"},
    )  # fmt: skip
    sm.describe_model(ModelName="m")
    sm.list_models(NameContains="m")
    _transform_on_the_wire(aws_plane, sm)
    variant = {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1,
               "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0,
               "ContainerStartupHealthCheckTimeoutInSeconds": 60,
               "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}}  # fmt: skip
    shadow = {"VariantName": "s", "ModelName": "m", "InitialVariantWeight": 0.5}
    for name in ("c1", "c2"):
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant], ShadowProductionVariants=[shadow])  # fmt: skip
    sm.describe_endpoint_config(EndpointConfigName="c1")
    sm.list_endpoint_configs(SortBy="Name", SortOrder="Ascending")
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 0,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}},
            "TerminationWaitInSeconds": 0, "MaximumExecutionTimeoutInSeconds": 600,
        },
    }  # fmt: skip
    endpoint_arn = sm.create_endpoint(EndpointName="e", EndpointConfigName="c1", DeploymentConfig=deployment)["EndpointArn"]  # fmt: skip
    sm.describe_endpoint(EndpointName="e")
    for _ in range(2):
        local.controller.run_pass()
    sm.update_endpoint_weights_and_capacities(
        EndpointName="e", DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredWeight": 2.0, "DesiredInstanceCount": 2}]
    )  # fmt: skip
    sm.describe_endpoint(EndpointName="e")
    for _ in range(2):  # the new replica starts, then serves
        local.controller.run_pass()
    sm.update_endpoint(EndpointName="e", EndpointConfigName="c2", RetainDeploymentConfig=True)
    local.controller.run_pass()
    sm.describe_endpoint(EndpointName="e")  # with its pending deployment
    for _ in range(4):
        local.controller.run_pass()
    sm.list_endpoints(StatusEquals="InService")
    for arn in (job_arn, endpoint_arn):
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}])
        sm.list_tags(ResourceArn=arn, MaxResults=50)
        sm.delete_tags(ResourceArn=arn, TagKeys=["env"])
    sm.delete_training_job(TrainingJobName="j")
    _tuning_on_the_wire(aws_plane, sm)
    sm.delete_endpoint(EndpointName="e")
    sm.delete_endpoint_config(EndpointConfigName="c1")
    sm.delete_model(ModelName="m")

    called = {e.operation for e in wire.exchanges if e.status == 200}
    assert called == {row.name for row in TABLE}
    # A describe carries every required member, and an answer none of the project's extras.
    ep = [e.response for e in wire.exchanges if e.operation == "DescribeEndpoint"]
    assert any("PendingDeploymentSummary" in r for r in ep)
    assert any(r.get("ShadowProductionVariants") for r in ep)


# --- the checker catches what it must ---------------------------------------------------------
DESCRIBE = {
    "TrainingJobName": "j",
    "TrainingJobArn": "arn:aws:sagemaker:us-east-1:000000000000:training-job/j",
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/j/output/model.tar.gz"},
    "TrainingJobStatus": "InProgress",
    "SecondaryStatus": "Starting",
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    "CreationTime": 1767225600.0,
    "AlgorithmSpecification": {"TrainingImage": "i", "TrainingInputMode": "File"},
    "HyperParameters": {"a": "1"},
    "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": 1767225600.0}],
}


def _changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DESCRIBE)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def test_a_right_answer_passes() -> None:
    assert problems(DESCRIBE, "DescribeTrainingJobResponse") == []


@pytest.mark.parametrize(
    ("path", "value", "found"),
    [
        (("Conditions",), [], "DescribeTrainingJobResponse.Conditions: not a member"),
        (("AlgorithmSpecification", "AuthMode"), "x", "AlgorithmSpecification.AuthMode: not a member"),
        (("TrainingJobStatus",), "Running", "'Running' is not one of TrainingJobStatus's values"),
        (("SecondaryStatus",), KeyError, "SecondaryStatus: required member missing"),
        (("TrainingJobArn",), "arn:aws:ecs:us-east-1:000000000000:task/j", "does not match TrainingJobArn's pattern"),
        (("CreationTime",), "2026-01-01T00:00:00Z", "CreationTime: expected epoch seconds"),
        (("StoppingCondition", "MaxRuntimeInSeconds"), 0, "under the minimum 1"),
        (("TrainingJobName",), "a" * 64, "over the maximum 63"),
        (("HyperParameters",), {"a": 1}, "expected a string"),
        (("SecondaryStatusTransitions", 0, "Status"), "Thinking", "'Thinking' is not one of SecondaryStatus's"),
        (("ModelArtifacts",), "s3://b/x", "expected an object (ModelArtifacts)"),
    ],
)  # fmt: skip
def test_the_checker_catches(path: tuple[Any, ...], value: Any, found: str) -> None:
    got = problems(_changed(path, value), "DescribeTrainingJobResponse")
    assert any(found in p for p in got), got
