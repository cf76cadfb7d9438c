"""The SageMaker Python SDK, unchanged, against the control plane: ``Estimator.fit()`` with its
default request (DebugHookConfig, ProfilerConfig) on SageMaker's linear-learner image, then
``deploy()``; every exchange checked against botocore's model."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.training.contract import builtin_algorithm
from tests.aws.conftest import REGION, AwsPlane
from tests.aws.shapes import Wire

sagemaker_sdk = pytest.importorskip("sagemaker", reason="the SDK is in the [dev] extra")

ROLE = "arn:aws:iam::111122223333:role/x"


@pytest.fixture
def session(aws_plane: AwsPlane, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3
    from sagemaker.session import Session

    # Every client the SDK makes for itself goes to the control plane (the wire report's
    # setup): nothing reaches AWS, no telemetry, no STS for a default bucket.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_plane.url)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    boto = boto3.Session(
        aws_access_key_id=aws_plane.access_key_id,
        aws_secret_access_key=aws_plane.secret,
        region_name=REGION,
    )
    return Session(
        boto_session=boto,
        sagemaker_client=aws_plane.client("sagemaker"),
        default_bucket="bucket",
        sagemaker_config={
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
        },
    )


def test_fit_with_the_sdk_s_defaults_then_deploy(aws_plane: AwsPlane, session: Any) -> None:
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator

    local = aws_plane.local
    local.plane.objects.put_bytes("s3://bucket/train/data.csv", b"1,2\n3,4\n")
    wire = Wire(session.sagemaker_client)
    image = image_uris.retrieve("linear-learner", REGION)
    estimator = Estimator(
        image_uri=image, role=ROLE, instance_count=1, instance_type="ml.m5.large",
        output_path="s3://bucket/prefix", sagemaker_session=session,
        hyperparameters={"predictor_type": "regressor", "epochs": 3},
    )  # fmt: skip
    estimator.fit({"train": "s3://bucket/train"}, wait=False)
    job = estimator.latest_training_job.name
    sent = wire.last("CreateTrainingJob").request
    assert {"DebugHookConfig", "ProfilerConfig"} <= set(sent)  # the SDK's defaults, accepted
    local.controller.run_pass()
    assert builtin_algorithm(local.backend.launches[-1].spec) == "linear-learner"
    local.backend.complete(job, artifact=f"s3://bucket/prefix/{job}/output/model.tar.gz")
    local.controller.run_pass()
    described = session.wait_for_job(job, poll=0.01)
    assert described["TrainingJobStatus"] == "Completed"
    assert estimator.model_data == f"s3://bucket/prefix/{job}/output/model.tar.gz"

    local.plane.objects.put_bytes(estimator.model_data, b"model")
    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False)
    local.controller.run_pass()
    local.controller.run_pass()
    assert (
        session.wait_for_endpoint(predictor.endpoint_name, poll=0.01)["EndpointStatus"]
        == "InService"
    )
    made = wire.last("CreateModel").request
    assert made["PrimaryContainer"]["Image"] == image  # served by the project's serving image
    model = session.sagemaker_client.describe_model(ModelName=made["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == estimator.model_data
    predictor.delete_endpoint()
    local.controller.run_pass()
    wire.check()
