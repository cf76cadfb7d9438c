"""Hyperparameter tuning jobs through boto3's ``sagemaker`` client, every exchange checked
against botocore's model (the ``wire`` fixture): create, describe, list, the trials sorted by
the objective, a trial's TuningJobArn, stop, delete, SageMaker's words for a missing job and a
name in use, and bad input as a ValidationException naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import AwsPlane

SOURCE = "s3://bucket/src/sourcedir.tar.gz"
ROLE = "arn:aws:iam::111122223333:role/x"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def error(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = e.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def tuning_request(name: str, *, trials: int = 3, parallel: int = 2) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1",
                     "ScalingType": "Logarithmic"}
                ],
                "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "4"}],
                "CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd"]}],
            },
            "TrainingJobEarlyStoppingType": "Off",
            "RandomSeed": 5,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": "train.py", "sagemaker_submit_directory": SOURCE,
            },
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }  # fmt: skip


@pytest.fixture
def plane(aws_plane: AwsPlane) -> AwsPlane:
    from orchestrator.testing import tarball

    aws_plane.local.plane.objects.put_bytes(SOURCE, tarball({"train.py": "print('loss=1')\n"}))
    return aws_plane


def run_trials(plane: AwsPlane, losses: dict[int, float], passes: int = 3) -> None:
    local = plane.local
    for _ in range(passes):
        local.controller.run_pass()
        for name, job in list(local.backend.jobs.items()):
            if job.state != "exited":
                local.plane.clock.advance(3)
                local.backend.complete(name, metrics={"loss": losses[int(name.split("-")[-2])]})
        local.controller.run_pass()


def test_create_describe_list_and_the_trials(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    arn = sagemaker.create_hyper_parameter_tuning_job(**tuning_request("hpo"))[
        "HyperParameterTuningJobArn"
    ]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:hyper-parameter-tuning-job/hpo"
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="hpo")
    assert d["HyperParameterTuningJobStatus"] == "InProgress"
    run_trials(plane, {1: 0.5, 2: 0.1, 3: 0.3})
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="hpo")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert d["TrainingJobStatusCounters"]["Completed"] == 3
    assert d["ObjectiveStatusCounters"]["Succeeded"] == 3
    best = d["BestTrainingJob"]
    assert best["TrainingJobName"].startswith("hpo-002-")
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Minimize", "MetricName": "loss", "Value": 0.1,
    }  # fmt: skip
    assert set(best["TunedHyperParameters"]) == {"lr", "n", "opt"}
    assert d["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 3
    assert "Conditions" not in wire.last("DescribeHyperParameterTuningJob").response

    listed = sagemaker.list_hyper_parameter_tuning_jobs(NameContains="hp")
    summaries = listed["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobName"] for s in summaries] == ["hpo"]
    assert summaries[0]["Strategy"] == "Bayesian"

    trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="hpo", SortBy="FinalObjectiveMetricValue",
        SortOrder="Ascending",
    )["TrainingJobSummaries"]  # fmt: skip
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials]
    assert values == [0.1, 0.3, 0.5]
    page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="hpo", MaxResults=2
    )
    assert len(page["TrainingJobSummaries"]) == 2 and page["NextToken"]
    rest = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="hpo", MaxResults=2, NextToken=page["NextToken"]
    )
    assert len(rest["TrainingJobSummaries"]) == 1 and "NextToken" not in rest

    # A trial is a training job that names its tuning job.
    trial = sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert trial["TuningJobArn"] == arn
    assert trial["HyperParameters"]["lr"] == best["TunedHyperParameters"]["lr"]


def test_stop_then_delete(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    local = plane.local
    sagemaker.create_hyper_parameter_tuning_job(**tuning_request("halt"))
    local.controller.run_pass()
    running = sorted(local.backend.jobs)
    assert len(running) == 2
    with pytest.raises(ClientError) as e:
        sagemaker.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    assert error(e)[0] == "ValidationException" and "stop it first" in error(e)[1]
    sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    assert d["HyperParameterTuningJobStatus"] == "Stopping"
    local.controller.run_pass()
    # Every running trial was asked to stop.
    for name in running:
        t = sagemaker.describe_training_job(TrainingJobName=name)
        assert t["TrainingJobStatus"] in {"Stopping", "Stopped"}, (name, t["TrainingJobStatus"])
    for _ in range(3):
        for name, job in list(local.backend.jobs.items()):
            if job.state != "exited":
                local.backend.complete(name)
        local.controller.run_pass()
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    assert d["HyperParameterTuningJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as e:
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    assert error(e)[0] == "ValidationException"
    sagemaker.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    for _ in range(3):
        local.controller.run_pass()
    with pytest.raises(ClientError) as e:
        sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    assert error(e) == (
        "ResourceNotFound",
        "Amazon SageMaker can't find a tuning job with name halt",
    )


def test_a_missing_job_and_a_name_in_use(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    for call in (
        sagemaker.describe_hyper_parameter_tuning_job,
        sagemaker.stop_hyper_parameter_tuning_job,
        sagemaker.list_training_jobs_for_hyper_parameter_tuning_job,
    ):
        with pytest.raises(ClientError) as e:
            call(HyperParameterTuningJobName="nope")
        assert error(e)[0] == "ResourceNotFound"
    sagemaker.create_hyper_parameter_tuning_job(**tuning_request("twice"))
    with pytest.raises(ClientError) as e:
        sagemaker.create_hyper_parameter_tuning_job(**tuning_request("twice"))
    assert error(e)[0] == "ResourceInUse" and "already exists" in error(e)[1]


def _bad(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(tuning_request("bad"))
    config = doc["HyperParameterTuningJobConfig"]
    for path, value in changes.items():
        target = config
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ResourceLimits__MaxParallelTrainingJobs": 5}, "MaxParallelTrainingJobs"),
        (
            {"ParameterRanges__ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]},
            "ScalingType",
        ),
        (
            {"ParameterRanges__IntegerParameterRanges": [
                {"Name": "n", "MinValue": "5", "MaxValue": "1"}]},
            "MinValue",
        ),
        ({"HyperParameterTuningJobObjective__MetricName": "accuracy"}, "MetricName"),
        ({"Strategy": "Grid"}, "Grid"),
        ({"Strategy": "Hyperband", "TrainingJobEarlyStoppingType": "Auto"},
         "TrainingJobEarlyStoppingType"),
    ],
)  # fmt: skip
def test_bad_input_is_a_validation_exception_naming_the_field(
    plane: AwsPlane, sagemaker: Any, changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_hyper_parameter_tuning_job(**_bad(**changes))
    code, message = error(e)
    assert code == "ValidationException" and named in message, message
    assert not plane.local.backend.launches


def test_a_wire_field_this_server_does_not_take_is_named(plane: AwsPlane, sagemaker: Any) -> None:
    doc = tuning_request("vpc")
    doc["TrainingJobDefinition"]["VpcConfig"] = {
        "SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"],
    }  # fmt: skip
    with pytest.raises(ClientError) as e:
        sagemaker.create_hyper_parameter_tuning_job(**doc)
    assert error(e)[0] == "ValidationException" and "VpcConfig" in error(e)[1]
    with pytest.raises(ClientError) as e:
        sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="vpc", SortBy="Name", MaxResults=500
        )
    assert error(e)[0] == "ValidationException"


def test_the_sdk_s_tuning_resource_config_with_one_instance_type(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    doc = tuning_request("sdk")
    definition = doc["TrainingJobDefinition"]
    definition["HyperParameterTuningResourceConfig"] = definition.pop("ResourceConfig")
    sagemaker.create_hyper_parameter_tuning_job(**doc)
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="sdk")
    assert d["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    doc = tuning_request("many")
    doc["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"] = {
        "InstanceConfigs": [{"InstanceCount": 1, "InstanceType": "ml.m5.large",
                             "VolumeSizeInGB": 5}],
    }  # fmt: skip
    del doc["TrainingJobDefinition"]["ResourceConfig"]
    with pytest.raises(ClientError) as e:
        sagemaker.create_hyper_parameter_tuning_job(**doc)
    code, message = error(e)
    assert code == "ValidationException"
    assert "HyperParameterTuningResourceConfig.InstanceConfigs" in message
