"""parse_spec: one ValidationError naming the field path and the fix, for every kind of mistake."""

from __future__ import annotations

from typing import Any

import pytest
from core_builders import training_doc
from pydantic import BaseModel

from orchestrator.errors import ValidationError
from orchestrator.resources import (
    CreateEndpointConfigRequest,
    CreateModelRequest,
    CreateTrainingJobRequest,
    parse_spec,
)
from orchestrator.resources.endpoints import UpdateEndpointRequest
from orchestrator.resources.validation import field_path

CHANNEL = {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/train/"}}}


def variant(name: str = "v1") -> dict[str, Any]:
    return {"VariantName": name, "ModelName": "m"}


CASES: list[tuple[str, type[BaseModel], Any, str | None, list[str]]] = [
    ("unknown field", CreateTrainingJobRequest, training_doc(Hyperparameters={}),
     "Hyperparameters", ["Hyperparameters: unknown field", "PascalCase"]),
    ("nested unknown field", CreateTrainingJobRequest,
     training_doc(InputDataConfig=[{**CHANNEL, "DataSource": {"S3DataSource": {"S3Uri": "s3://b/", "Uri": 1}}}]),
     "InputDataConfig[0].DataSource.S3DataSource.Uri", ["unknown field"]),
    ("wrong type", CreateTrainingJobRequest, training_doc(ResourceConfig={"InstanceCount": "two"}),
     "ResourceConfig.InstanceCount", ["ResourceConfig.InstanceCount: ", "(got 'two')"]),
    ("missing field", CreateTrainingJobRequest, {"TrainingJobName": "j"},
     "AlgorithmSpecification", ["AlgorithmSpecification: required field is missing"]),
    ("bad enum", CreateTrainingJobRequest,
     training_doc(AlgorithmSpecification={"TrainingImage": "i", "TrainingInputMode": "Pipe"}),
     "AlgorithmSpecification.TrainingInputMode", ["must be one of 'File' or 'FastFile'"]),
    ("bad instance type", CreateTrainingJobRequest, training_doc(ResourceConfig={"InstanceType": "ml.x9.huge"}),
     "ResourceConfig.InstanceType", ["unknown instance type 'ml.x9.huge'", "allowed: local, local_gpu, ml.c5"]),
    ("bad name", CreateTrainingJobRequest, training_doc("bad_name!"),
     "TrainingJobName", ["TrainingJobName: does not match the required pattern"]),
    ("name too long", CreateTrainingJobRequest, training_doc("a" * 64), "TrainingJobName", ["TrainingJobName"]),
    ("bad channel URI", CreateTrainingJobRequest,
     training_doc(InputDataConfig=[{**CHANNEL, "DataSource": {"S3DataSource": {"S3Uri": "http://x/y"}}}]),
     "InputDataConfig[0].DataSource.S3DataSource.S3Uri", ["http:// URIs are not fetched", "orch objects put"]),
    ("duplicate channels", CreateTrainingJobRequest, training_doc(InputDataConfig=[CHANNEL, CHANNEL]),
     "InputDataConfig", ["channel names must be unique; repeated: ['train']"]),
    ("nothing to run", CreateTrainingJobRequest,
     {"TrainingJobName": "j", "AlgorithmSpecification": {}}, None,
     ["nothing to run", "TrainingImage", "'sagemaker_program'"]),
    ("metric regex without group", CreateTrainingJobRequest,
     training_doc(AlgorithmSpecification={"TrainingImage": "i", "MetricDefinitions": [{"Name": "loss", "Regex": "loss=\\S+"}]}),
     "AlgorithmSpecification.MetricDefinitions[0].Regex", ["needs one capture group"]),
    ("metric regex not compiling", CreateTrainingJobRequest,
     training_doc(AlgorithmSpecification={"TrainingImage": "i", "MetricDefinitions": [{"Name": "loss", "Regex": "(x"}]}),
     "AlgorithmSpecification.MetricDefinitions[0].Regex", ["not a valid regular expression"]),
    ("checkpoint path outside /opt/ml", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/tmp/ckpt'}),
     "CheckpointConfig.LocalPath", ['is outside /opt/ml', "use a directory under /opt/ml"]),
    ("checkpoint path relative", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": 'checkpoints'}),
     "CheckpointConfig.LocalPath", ['is not an absolute path', "use a directory under /opt/ml"]),
    ("checkpoint path with ..", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/checkpoints/../../etc'}),
     "CheckpointConfig.LocalPath", ["contains '..'", "use a directory under /opt/ml"]),
    ("checkpoint path /opt/ml itself", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/'}),
     "CheckpointConfig.LocalPath", ['is /opt/ml itself', "use a directory under /opt/ml"]),
    ("checkpoint path in the model directory", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/model/ckpt'}),
     "CheckpointConfig.LocalPath", ['inside /opt/ml/model', "use a directory under /opt/ml"]),
    ("checkpoint path the input directory", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/input'}),
     "CheckpointConfig.LocalPath", ['inside /opt/ml/input', "use a directory under /opt/ml"]),
    ("checkpoint path in the output directory", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/output/ckpt'}),
     "CheckpointConfig.LocalPath", ['inside /opt/ml/output', "use a directory under /opt/ml"]),
    ("checkpoint path in the code directory", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/ml/code'}),
     "CheckpointConfig.LocalPath", ['inside /opt/ml/code', "use a directory under /opt/ml"]),
    ("checkpoint path a sibling of /opt/ml", CreateTrainingJobRequest,
     training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": '/opt/mlx/ckpt'}),
     "CheckpointConfig.LocalPath", ['is outside /opt/ml', "use a directory under /opt/ml"]),
    ("duplicate variants", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [variant(), variant()]},
     None, ["variant names must be unique; repeated: ['v1']"]),
    ("all weights zero", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [{**variant(), "InitialVariantWeight": 0}]},
     "ProductionVariants", ["at least one InitialVariantWeight must be > 0"]),
    ("no variants", CreateEndpointConfigRequest, {"EndpointConfigName": "c", "ProductionVariants": []},
     "ProductionVariants", ["ProductionVariants: "]),
    ("model with both container forms", CreateModelRequest,
     {"ModelName": "m", "PrimaryContainer": {"Image": "i"}, "Containers": [{"Image": "i"}]},
     None, ["set exactly one of PrimaryContainer or Containers"]),
    ("model with no container", CreateModelRequest, {"ModelName": "m"},
     None, ["set exactly one of PrimaryContainer or Containers"]),
    ("scaling min above max", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [{**variant(), "ManagedInstanceScaling": {"MinInstanceCount": 3, "MaxInstanceCount": 2}}]},
     "ProductionVariants[0].ManagedInstanceScaling", ["MinInstanceCount (3) must not exceed MaxInstanceCount (2)"]),
    ("initial count outside the scaling bounds", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [{**variant(), "InitialInstanceCount": 5, "ManagedInstanceScaling": {"MaxInstanceCount": 2}}]},
     "ProductionVariants[0]", ["InitialInstanceCount (5) must lie within ManagedInstanceScaling [1, 2]"]),
    ("target value zero", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [{**variant(), "ManagedInstanceScaling": {"MaxInstanceCount": 2, "TargetTracking": {"TargetValue": 0}}}]},
     "ProductionVariants[0].ManagedInstanceScaling.TargetTracking.TargetValue", ["greater than 0"]),
    ("unknown scaling metric", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [{**variant(), "ManagedInstanceScaling": {"MaxInstanceCount": 2, "TargetTracking": {"TargetValue": 5, "PredefinedMetricType": "CPU"}}}]},
     "ProductionVariants[0].ManagedInstanceScaling.TargetTracking.PredefinedMetricType", ["'SageMakerVariantInvocationsPerInstance'"]),
    ("shadow named like a production variant", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [variant()], "ShadowProductionVariants": [variant()]},
     None, ["variant names must be unique; repeated: ['v1']"]),
    ("two shadow variants", CreateEndpointConfigRequest,
     {"EndpointConfigName": "c", "ProductionVariants": [variant()], "ShadowProductionVariants": [variant("s1"), variant("s2")]},
     "ShadowProductionVariants", ["at most 1 item"]),
    ("canary without its size", UpdateEndpointRequest,
     {"EndpointConfigName": "c", "DeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}}},
     "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration", ["CanarySize is required when Type is CANARY"]),
    ("linear step over 100 percent", UpdateEndpointRequest,
     {"EndpointConfigName": "c", "DeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 150}}}}},
     "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize", ["at most 100, not 150"]),
    ("canary size on an all-at-once shift", UpdateEndpointRequest,
     {"EndpointConfigName": "c", "DeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}}}},
     "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration", ["CanarySize applies to Type CANARY only"]),
    ("unknown alarm metric", UpdateEndpointRequest,
     {"EndpointConfigName": "c", "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a", "MetricName": "CPU", "Threshold": 1}]}}},
     "DeploymentConfig.AutoRollbackConfiguration.Alarms[0].MetricName", ["'Invocation5XXErrorRate'"]),
    ("batch of one", CreateModelRequest,
     {"ModelName": "m", "PrimaryContainer": {"Image": "i", "AdaptiveBatching": {"MaxBatchSize": 1}}},
     "PrimaryContainer.AdaptiveBatching.MaxBatchSize", ["greater than or equal to 2"]),
    ("batching on a later pipeline step", CreateModelRequest,
     {"ModelName": "m", "Containers": [{"Image": "i"}, {"Image": "i", "AdaptiveBatching": {"MaxBatchSize": 4}}]},
     "Containers[1].AdaptiveBatching", ["set AdaptiveBatching on Containers[0] only"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "data", "field", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_spec_names_the_field_and_the_fix(
    model: type[BaseModel], data: Any, field: str | None, needles: list[str]
) -> None:
    with pytest.raises(ValidationError) as e:
        parse_spec(model, data)
    err = e.value
    assert err.status_code == 400
    assert err.field == field
    if field is not None:
        assert err.message.startswith(f"{field}: ")
    else:
        assert err.message.startswith("(body): ")
    for needle in needles:
        assert needle in err.message


def test_every_bad_field_is_listed() -> None:
    data = training_doc("bad name", Bogus=1, ResourceConfig={"InstanceCount": 0})
    with pytest.raises(ValidationError) as e:
        parse_spec(CreateTrainingJobRequest, data)
    message = e.value.message
    starts = [
        message.index(f"{f}: ")
        for f in ("TrainingJobName", "ResourceConfig.InstanceCount", "Bogus")
    ]
    assert starts == sorted(starts)
    assert starts[0] == 0
    assert "greater than or equal to 1 (got 0)" in message
    assert e.value.field == "TrainingJobName"


def test_bad_environment_name_is_named() -> None:
    data = {"ModelName": "m", "PrimaryContainer": {"Image": "i", "Environment": {"1BAD": "x"}}}
    with pytest.raises(ValidationError) as e:
        parse_spec(CreateModelRequest, data)
    assert (e.value.field or "").startswith("PrimaryContainer.Environment.1BAD")
    assert "does not match the required pattern" in e.value.message


def test_valid_spec_parses_with_sagemaker_defaults() -> None:
    spec = parse_spec(CreateTrainingJobRequest, training_doc(InputDataConfig=[CHANNEL]))
    assert spec.ResourceConfig.InstanceType == "local"
    assert spec.StoppingCondition.MaxRuntimeInSeconds == 86400
    assert spec.InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType == (
        "FullyReplicated"
    )


@pytest.mark.parametrize(
    ("local_path", "subpath"),
    [
        ("/opt/ml/checkpoints", "checkpoints"),
        ("/opt/ml/checkpoints/", "checkpoints"),
        ("/opt/ml/state/ckpt", "state/ckpt"),
        ("/opt/ml//./state", "state"),
    ],
)
def test_checkpoint_local_path_under_opt_ml_is_accepted(local_path: str, subpath: str) -> None:
    spec = parse_spec(
        CreateTrainingJobRequest,
        training_doc(CheckpointConfig={"S3Uri": "s3://b/ckpt", "LocalPath": local_path}),
    )
    assert spec.CheckpointConfig is not None
    assert spec.CheckpointConfig.subpath == subpath


def test_script_mode_hyperparameter_is_something_to_run() -> None:
    data = {
        "TrainingJobName": "j",
        "AlgorithmSpecification": {},
        "HyperParameters": {"sagemaker_program": "train.py"},
    }
    assert parse_spec(CreateTrainingJobRequest, data).HyperParameters == {
        "sagemaker_program": "train.py"
    }


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("A",), "A"),
        (("InputDataConfig", 0, "DataSource"), "InputDataConfig[0].DataSource"),
        (("X", 1, 2, "Y"), "X[1][2].Y"),
    ],
)
def test_field_path(loc: tuple[Any, ...], path: str) -> None:
    assert field_path(loc) == path
