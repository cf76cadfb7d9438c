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
from orchestrator.resources.endpoints import CreateEndpointConfigRequest
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.testing import LocalControlPlane, local_control_plane

VARIANT = {"VariantName": "v1", "ModelName": "m"}
SCRIPT = {"sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://b/src.tar.gz"}


def job(**fields: Any) -> dict[str, Any]:
    """A script-mode job (it runs on every backend) with ``fields`` on top."""
    return training_doc(
        AlgorithmSpecification={"TrainingInputMode": "File"}, HyperParameters=SCRIPT, **fields
    )


MODEL = {"ModelName": "m", "PrimaryContainer": {"Image": "example/serve:1"}}
ARTIFACT = {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "s3://models/model.tar.gz"}}

# (kind, field path, a spec that uses it, backends that refuse it)
CASES: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("TrainingJob", "EnableManagedSpotTraining", job(EnableManagedSpotTraining=True), set(BACKENDS)),
    ("TrainingJob", "StoppingCondition.MaxWaitTimeInSeconds",
     job(StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}), set(BACKENDS)),
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
    ("TrainingJob", "OutputDataConfig.KmsKeyId",
     job(OutputDataConfig={"S3OutputPath": "s3://b/o", "KmsKeyId": "alias/k"}), set(BACKENDS)),
    ("TrainingJob", "ResourceConfig.VolumeKmsKeyId",
     job(ResourceConfig={"VolumeKmsKeyId": "alias/k"}), set(BACKENDS)),
    ("TrainingJob", "ResourceConfig.KeepAlivePeriodInSeconds",
     job(ResourceConfig={"KeepAlivePeriodInSeconds": 60}), set(BACKENDS)),
    ("TrainingJob", "CheckpointConfig.LocalPath",
     job(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": "/tmp/ckpt"}), set(BACKENDS)),
    ("TrainingJob", "EnableInterContainerTrafficEncryption",
     job(EnableInterContainerTrafficEncryption=True), set(BACKENDS)),
    ("TrainingJob", "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
     training_doc(AlgorithmSpecification={"EnableSageMakerMetricsTimeSeries": True}, HyperParameters=SCRIPT),
     set(BACKENDS)),
    ("TrainingJob", "ResourceConfig.InstanceCount",
     job(ResourceConfig={"InstanceCount": 2}), {"process"}),
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
]  # fmt: skip
MODELS = {
    "TrainingJob": CreateTrainingJobRequest,
    "Model": CreateModelRequest,
    "EndpointConfig": CreateEndpointConfigRequest,
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
    # The test fake refuses only what no backend does.
    two = CreateTrainingJobRequest.model_validate(job(ResourceConfig={"InstanceCount": 2}))
    assert refusals("TrainingJob", two, "fake") == []
    table = {(kind, field): where for kind, field, where in rules_table()}
    assert table[("TrainingJob", "ResourceConfig.InstanceCount")] == {
        "process": False,
        "docker": True,
        "kubernetes": True,
    }


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path) as cp:
        yield cp


def test_rest_refuses_before_anything_is_stored(plane: LocalControlPlane) -> None:
    plane.plane.backend_name = "process"  # what the server's backend says of itself
    c = plane.client
    c.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
    with pytest.raises(ValidationError) as refused:
        c.create_training_job(
            job(TrainingJobName="two", ResourceConfig={"InstanceType": "local", "InstanceCount": 2})
        )
    assert refused.value.field == "ResourceConfig.InstanceCount"
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
