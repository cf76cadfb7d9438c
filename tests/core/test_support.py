"""What each backend refuses of SageMaker's request shape: a clear error naming the field, the
backend and what to use instead; through REST before anything is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_builders import training_doc

from orchestrator.controller.plan.support import BACKENDS, RULES, refusals, rules_table
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.resources.datasources import CreateDataSourceRequest
from orchestrator.resources.distribution import TORCH_DISTRIBUTED, UNSUPPORTED_DISTRIBUTIONS
from orchestrator.resources.endpoints import CreateEndpointConfigRequest
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.testing import LocalControlPlane, local_control_plane, transform_job_spec

VARIANT = {"VariantName": "v1", "ModelName": "m"}
SCRIPT = {"sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://b/src.tar.gz"}


def script_job(hyperparameters: dict[str, str], **fields: Any) -> dict[str, Any]:
    return training_doc(
        AlgorithmSpecification={"TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        **fields,
    )


def job(**fields: Any) -> dict[str, Any]:
    """A script-mode job (it runs on every backend) with ``fields`` on top."""
    return training_doc(
        AlgorithmSpecification={"TrainingInputMode": "File"}, HyperParameters=SCRIPT, **fields
    )


MODEL = {"ModelName": "m", "PrimaryContainer": {"Image": "example/serve:1"}}


def transform(**fields: Any) -> dict[str, Any]:
    """A transform job that runs on every backend, with ``fields`` on top."""
    return transform_job_spec("t", "m", "s3://b/in/", "s3://b/out", **fields)


ARTIFACT = {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "s3://models/model.tar.gz"}}

# (kind, field path, a spec that uses it, backends that refuse it)
CASES: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("TrainingJob", "InputDataConfig[0].ShuffleConfig",
     job(InputDataConfig=[{"ChannelName": "train", "ShuffleConfig": {"Seed": 1},
                                    "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t"}}}]), set(BACKENDS)),
    ("TrainingJob", "InputDataConfig[0].CompressionType",
     job(InputDataConfig=[{"ChannelName": "train", "CompressionType": "Gzip",
                                    "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t"}}}]), set(BACKENDS)),
    ("TrainingJob", "InputDataConfig[0].RecordWrapperType",
     job(InputDataConfig=[{"ChannelName": "train", "RecordWrapperType": "RecordIO",
                                    "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t"}}}]), set(BACKENDS)),
    ("TrainingJob", "OutputDataConfig.CompressionType",
     job(OutputDataConfig={"S3OutputPath": "s3://b/o", "CompressionType": "NONE"}), set(BACKENDS)),
    ("TrainingJob", "ResourceConfig.VolumeKmsKeyId",
     job(ResourceConfig={"VolumeKmsKeyId": "alias/k"}), set(BACKENDS)),
    ("TrainingJob", "ResourceConfig.KeepAlivePeriodInSeconds",
     job(ResourceConfig={"KeepAlivePeriodInSeconds": 60}), set(BACKENDS)),
    ("TrainingJob", "EnableInterContainerTrafficEncryption",
     job(EnableInterContainerTrafficEncryption=True), set(BACKENDS)),
    ("TrainingJob", "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
     training_doc(AlgorithmSpecification={"EnableSageMakerMetricsTimeSeries": True}, HyperParameters=SCRIPT),
     set(BACKENDS)),
    *[
        ("TrainingJob", f"HyperParameters.{name}",
         script_job({**SCRIPT, name: "true"}), set(BACKENDS))
        for name in UNSUPPORTED_DISTRIBUTIONS
    ],
    ("TrainingJob", "EnableNetworkIsolation", job(EnableNetworkIsolation=True), {"process"}),
    ("TrainingJob", "AlgorithmSpecification.TrainingImage",
     training_doc(AlgorithmSpecification={"TrainingImage": "example/train:1"}), {"process"}),
    ("Model", "PrimaryContainer.Image", MODEL, {"process"}),
    ("Model", "EnableNetworkIsolation", {**ARTIFACT, "EnableNetworkIsolation": True}, set(BACKENDS)),
    ("Model", "Containers",
     {"ModelName": "m", "Containers": [{"ModelDataUrl": "s3://b/1"}, {"ModelDataUrl": "s3://b/2"}]},
     {"kubernetes"}),
    ("EndpointConfig", "KmsKeyId",
     {"EndpointConfigName": "c", "ProductionVariants": [VARIANT], "KmsKeyId": "alias/k"}, set(BACKENDS)),
    ("EndpointConfig", "ProductionVariants[0].ModelDataDownloadTimeoutInSeconds",
     {"EndpointConfigName": "c", "ProductionVariants": [{**VARIANT, "ModelDataDownloadTimeoutInSeconds": 60}]},
     set(BACKENDS)),
    ("TransformJob", "DataCaptureConfig",
     transform(DataCaptureConfig={"DestinationS3Uri": "s3://b/capture"}), set(BACKENDS)),
    ("TransformJob", "TransformResources.VolumeKmsKeyId",
     transform(TransformResources={"InstanceCount": 1, "VolumeKmsKeyId": "alias/k"}), set(BACKENDS)),
    ("TransformJob", "TransformResources.TransformAmiVersion",
     transform(TransformResources={"TransformAmiVersion": "al2-ami-sagemaker-batch-gpu-470"}),
     set(BACKENDS)),
    ("TransformJob", "ExperimentConfig",
     transform(ExperimentConfig={"ExperimentName": "e"}), set(BACKENDS)),
    ("DataSource", "DataSpec.Sql.DatabaseInformation.Host",
     {"DataSourceName": "d", "DataSpec": {"Sql": {
         "DatabaseInformation": {"Engine": "postgresql", "Host": "127.0.0.1", "DatabaseName": "db"},
         "SelectSqlQuery": "SELECT 1", "DatabaseCredentials": {"SecretUri": "s3://b/c.json"}}}},
     {"docker", "kubernetes"}),
]  # fmt: skip
MODELS = {
    "TrainingJob": CreateTrainingJobRequest,
    "Model": CreateModelRequest,
    "EndpointConfig": CreateEndpointConfigRequest,
    "TransformJob": CreateTransformJobRequest,
    "DataSource": CreateDataSourceRequest,
}


@pytest.mark.parametrize(("kind", "field", "doc", "refused_on"), CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_field_is_refused_by_name_where_it_cannot_run(
    kind: str, field: str, doc: dict[str, Any], refused_on: set[str], backend: str
) -> None:
    spec = MODELS[kind].model_validate(doc)
    found = refusals(kind, spec, backend)
    if backend not in refused_on:
        assert found == []
        return
    assert [r.field for r in found] == [field]
    message = found[0].message
    assert message.startswith(f"{field}: ")
    assert f"on the {backend} backend" in message
    assert ";" in message  # then what to use instead


def test_every_rule_is_covered_and_a_plain_spec_runs_everywhere() -> None:
    assert {(r.kind, r.field.replace("[]", "[0]")) for r in RULES} == {
        (k, f) for k, f, _, _ in CASES
    }
    plain = CreateTrainingJobRequest.model_validate(job())
    assert all(refusals("TrainingJob", plain, b) == [] for b in (*BACKENDS, "fake"))
    batch = CreateTransformJobRequest.model_validate(transform())
    assert all(refusals("TransformJob", batch, b) == [] for b in (*BACKENDS, "fake"))
    # What no backend does, the test fake refuses too.
    capture = CreateTransformJobRequest.model_validate(
        transform(DataCaptureConfig={"DestinationS3Uri": "s3://b/capture"})
    )
    (refused,) = refusals("TransformJob", capture, "fake")
    assert refused.message == (
        "DataCaptureConfig: batch data capture is not supported on the fake backend; "
        "remove DataCaptureConfig"
    )
    # The test fake refuses only what no backend does.
    isolated = CreateTrainingJobRequest.model_validate(job(EnableNetworkIsolation=True))
    assert refusals("TrainingJob", isolated, "fake") == []
    table = {(kind, field): where for kind, field, where in rules_table()}
    assert table[("TrainingJob", "EnableNetworkIsolation")] == {
        "process": False,
        "docker": True,
        "kubernetes": True,
    }
    # Every backend runs several instances now; the supported modes are not refused.
    two = script_job({**SCRIPT, TORCH_DISTRIBUTED: "true"}, ResourceConfig={"InstanceCount": 2})
    spec = CreateTrainingJobRequest.model_validate(two)
    assert all(refusals("TrainingJob", spec, b) == [] for b in BACKENDS)


def test_an_unsupported_distribution_is_refused_naming_it_and_the_fix() -> None:
    doc = script_job({**SCRIPT, "sagemaker_mpi_enabled": "true"})
    (found,) = refusals("TrainingJob", CreateTrainingJobRequest.model_validate(doc), "docker")
    assert found.message.startswith("HyperParameters.sagemaker_mpi_enabled: distribution mpi")
    assert 'distribution={"torch_distributed": {"enabled": True}}' in found.message
    off = script_job({**SCRIPT, "sagemaker_mpi_enabled": "false"})
    assert refusals("TrainingJob", CreateTrainingJobRequest.model_validate(off), "docker") == []


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path) as cp:
        yield cp


def test_rest_refuses_before_anything_is_stored(plane: LocalControlPlane) -> None:
    plane.plane.backend_name = "process"  # what the server's backend says of itself
    c = plane.client
    c.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
    with pytest.raises(ValidationError) as refused:
        c.create_training_job(job(TrainingJobName="two", EnableNetworkIsolation=True))
    assert refused.value.field == "EnableNetworkIsolation"
    with pytest.raises(NotFoundError):
        c.describe_training_job("two")
    with pytest.raises(ValidationError, match=r"^PrimaryContainer\.Image: .* on the process"):
        c.create_model(MODEL)
    c.upload_bytes(b"x", "s3://models/model.tar.gz")
    c.create_model(ARTIFACT)
    with pytest.raises(ValidationError, match=r"^KmsKeyId: .* on the process backend"):
        c.create_endpoint_config(
            {"EndpointConfigName": "c", "ProductionVariants": [VARIANT], "KmsKeyId": "k"}
        )
    with pytest.raises(NotFoundError):
        c.describe_endpoint_config("c")
