"""Tuning jobs through REST on the fake backend: bad input is a 400 naming the field before
anything is stored; Describe, the trials list, stop, delete."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing import LocalControlPlane, local_control_plane

PATH = "/api/v1/hyper-parameter-tuning-jobs"


def request(**config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
            ]
        },
    }
    base.update(config)
    return {
        "HyperParameterTuningJobName": "tj",
        "HyperParameterTuningJobConfig": base,
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": "img:1",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
            },
            "StaticHyperParameters": {"batch": "32"},
        },
    }


def builtin(**static: str) -> dict[str, Any]:
    doc = request(
        HyperParameterTuningJobObjective={"Type": "Maximize", "MetricName": "validation:accuracy"},
        ParameterRanges={
            "ContinuousParameterRanges": [
                {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1"}
            ]
        },
    )
    doc["TrainingJobDefinition"] = {
        "AlgorithmSpecification": {"AlgorithmName": "mlp"},
        "StaticHyperParameters": {
            "predictor_type": "multiclass_classifier",
            "num_classes": "3",
            **static,
        },
    }
    return doc


@pytest.fixture
def lcp(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path) as plane:
        yield plane


def post(lcp: LocalControlPlane, body: dict[str, Any]) -> Any:
    return lcp.client._http.post(PATH, json=body)


def refused(lcp: LocalControlPlane, body: dict[str, Any], field: str, *words: str) -> str:
    resp = post(lcp, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()
    text = str(error)
    assert field in text, text
    for w in words:
        assert w in text, text
    assert lcp.plane.store.find("HyperParameterTuningJob", "tj") is None
    assert lcp.plane.store.list_active("TrainingJob") == []
    return text


def with_ranges(**ranges: Any) -> dict[str, Any]:
    return request(ParameterRanges=ranges)


def test_min_greater_than_max(lcp: LocalControlPlane) -> None:
    body = with_ranges(IntegerParameterRanges=[{"Name": "n", "MinValue": "5", "MaxValue": "2"}])
    refused(lcp, body, "IntegerParameterRanges[0]", "MinValue 5 is greater than MaxValue 2")


def test_logarithmic_range_needs_a_positive_min(lcp: LocalControlPlane) -> None:
    body = with_ranges(
        ContinuousParameterRanges=[
            {"Name": "lr", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ]
    )
    refused(lcp, body, "ContinuousParameterRanges[0].ScalingType", "MinValue > 0")


def test_not_a_number(lcp: LocalControlPlane) -> None:
    body = with_ranges(
        ContinuousParameterRanges=[{"Name": "lr", "MinValue": "low", "MaxValue": "1"}]
    )
    refused(lcp, body, "ContinuousParameterRanges[0].MinValue", "is not a number")


def test_a_static_hyperparameter_given_a_range(lcp: LocalControlPlane) -> None:
    body = with_ranges(CategoricalParameterRanges=[{"Name": "batch", "Values": ["16", "32"]}])
    refused(lcp, body, "StaticHyperParameters", "'batch'", "either static or tuned")


def test_an_unknown_hyperparameter_of_a_builtin_given_a_range(lcp: LocalControlPlane) -> None:
    body = builtin()
    body["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"] = [
        {"Name": "num_trees", "MinValue": "1", "MaxValue": "9"}
    ]
    refused(lcp, body, "HyperParameterTuningJobConfig.ParameterRanges", "num_trees", "allowed")


def test_a_builtin_range_outside_what_the_algorithm_takes(lcp: LocalControlPlane) -> None:
    body = builtin()
    body["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"] = [
        {"Name": "dropout", "MinValue": "0", "MaxValue": "0.95"}
    ]
    refused(lcp, body, "HyperParameterTuningJobConfig.ParameterRanges", "dropout")


def test_an_objective_metric_nothing_emits(lcp: LocalControlPlane) -> None:
    body = request(HyperParameterTuningJobObjective={"Type": "Minimize", "MetricName": "val:auc"})
    refused(lcp, body, "HyperParameterTuningJobObjective.MetricName", "'val:auc'", "it emits: loss")
    refused(lcp, builtin() | {}, "x", "x") if False else None
    b = builtin()
    b["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = "f1"
    text = refused(lcp, b, "MetricName", "'f1'")
    assert "validation:accuracy" in text  # what the built-in does emit


def test_max_parallel_above_max_jobs(lcp: LocalControlPlane) -> None:
    body = request(ResourceLimits={"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 3})
    refused(lcp, body, "MaxParallelTrainingJobs", "greater than")


def test_grid_with_a_continuous_range(lcp: LocalControlPlane) -> None:
    refused(lcp, request(Strategy="Grid"), "ContinuousParameterRanges", "categorical ranges only")


def test_hyperband_with_early_stopping_auto(lcp: LocalControlPlane) -> None:
    body = request(Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto")
    refused(lcp, body, "TrainingJobEarlyStoppingType", "Hyperband")


def test_more_than_five_warm_start_parents(lcp: LocalControlPlane) -> None:
    body = request()
    body["WarmStartConfig"] = {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": f"p{i}"} for i in range(6)
        ],
    }
    refused(lcp, body, "ParentHyperParameterTuningJobs", "at most 5")


def test_a_warm_start_parent_that_does_not_exist_or_still_runs(lcp: LocalControlPlane) -> None:
    body = request()
    body["WarmStartConfig"] = {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "nope"}],
    }
    refused(lcp, body, "WarmStartConfig.ParentHyperParameterTuningJobs[0]", "no tuning job")
    parent = request()
    parent["HyperParameterTuningJobName"] = "parent"
    assert post(lcp, parent).status_code == 201
    body["WarmStartConfig"]["ParentHyperParameterTuningJobs"] = [
        {"HyperParameterTuningJobName": "parent"}
    ]
    resp = post(lcp, body)
    assert resp.status_code == 400 and "must have ended" in resp.text, resp.text


def test_unsupported_sagemaker_fields_are_refused_by_name(lcp: LocalControlPlane) -> None:
    body = request()
    body["Autotune"] = {"Mode": "Enabled"}
    refused(lcp, body, "Autotune")
    body = request()
    body["TrainingJobDefinition"]["VpcConfig"] = {"SecurityGroupIds": ["sg-1"], "Subnets": ["s-1"]}
    refused(lcp, body, "VpcConfig", "not supported")


def test_missing_channel_is_refused(lcp: LocalControlPlane) -> None:
    body = request()
    body["TrainingJobDefinition"]["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3Uri": "s3://orchestrator/none/"}},
        }
    ]
    refused(lcp, body, "TrainingJobDefinition.InputDataConfig[0].DataSource.S3DataSource.S3Uri")


def test_grid_needs_no_max_jobs_but_others_do(lcp: LocalControlPlane) -> None:
    refused(lcp, request(ResourceLimits={"MaxParallelTrainingJobs": 2}), "MaxNumberOfTrainingJobs")
    grid = request(
        Strategy="Grid",
        ResourceLimits={"MaxParallelTrainingJobs": 2},
        ParameterRanges={"CategoricalParameterRanges": [{"Name": "a", "Values": ["1", "2", "3"]}]},
    )
    assert post(lcp, grid).status_code == 201


def drive(lcp: LocalControlPlane, loss: Any, passes: int = 10) -> None:
    for _ in range(passes):
        lcp.controller.run_pass()
        for name, job in list(lcp.backend.jobs.items()):
            if job.state == "running":
                hp = lcp.plane.store.get("TrainingJob", name).spec["HyperParameters"]
                lcp.backend.complete(name, metrics={"loss": loss(hp)})


def test_create_run_describe_list_trials(lcp: LocalControlPlane) -> None:
    body = request()
    assert post(lcp, body).status_code == 201
    assert post(lcp, copy.deepcopy(body)).status_code == 200  # the same again
    other = request(ResourceLimits={"MaxNumberOfTrainingJobs": 5, "MaxParallelTrainingJobs": 2})
    assert post(lcp, other).status_code == 409
    drive(lcp, lambda hp: abs(float(hp["lr"]) - 0.01))
    job = lcp.client._http.get(f"{PATH}/tj").json()
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 4
    rows = lcp.client._http.get(
        f"{PATH}/tj/training-jobs",
        params={"SortBy": "FinalObjectiveMetricValue", "SortOrder": "Ascending"},
    ).json()["TrainingJobSummaries"]
    values = [r["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for r in rows]
    assert values == sorted(values) and len(values) == 4
    assert rows[0]["TrainingJobName"] == job["BestTrainingJob"]["TrainingJobName"]
    page = lcp.client._http.get(f"{PATH}/tj/training-jobs", params={"MaxResults": 3}).json()
    assert len(page["TrainingJobSummaries"]) == 3 and page["NextToken"]
    rest = lcp.client._http.get(
        f"{PATH}/tj/training-jobs", params={"MaxResults": 3, "NextToken": page["NextToken"]}
    ).json()
    assert len(rest["TrainingJobSummaries"]) == 1 and rest.get("NextToken") is None
    bad = lcp.client._http.get(f"{PATH}/tj/training-jobs", params={"SortBy": "Loss"})
    assert bad.status_code == 400 and "SortBy" in bad.text
    listed = lcp.client._http.get(PATH).json()["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobName"] for s in listed] == ["tj"]
    assert listed[0]["Strategy"] == "Bayesian"
    assert lcp.client._http.post(f"{PATH}/tj/stop").status_code == 409  # it has ended
    assert lcp.client._http.delete(f"{PATH}/tj").status_code == 202
    lcp.controller.run_pass()
    assert lcp.client._http.get(f"{PATH}/tj").status_code == 404
    # Its trials stay, as SageMaker's do.
    assert (
        len(
            lcp.plane.store.list(
                "TrainingJob",
                __import__("orchestrator.store", fromlist=["ListFilter"]).ListFilter(limit=10),
            )[0]
        )
        == 4
    )


def test_stop_stops_trials(lcp: LocalControlPlane) -> None:
    assert post(lcp, request()).status_code == 201
    lcp.controller.run_pass()
    assert len(lcp.backend.jobs) == 2
    assert lcp.client._http.delete(f"{PATH}/tj").status_code == 409  # stop it first
    assert lcp.client._http.post(f"{PATH}/tj/stop").status_code == 202
    assert lcp.client._http.get(f"{PATH}/tj").json()["HyperParameterTuningJobStatus"] == "Stopping"
    for _ in range(5):
        lcp.controller.run_pass()
    job = lcp.client._http.get(f"{PATH}/tj").json()
    assert job["HyperParameterTuningJobStatus"] == "Stopped", job
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2
    assert len(lcp.backend.jobs) == 2
    # Sorted by the objective, trials without one are left out (SageMaker's rule).
    by_objective = lcp.client._http.get(
        f"{PATH}/tj/training-jobs", params={"SortBy": "FinalObjectiveMetricValue"}
    ).json()["TrainingJobSummaries"]
    assert by_objective == []
    assert len(lcp.client._http.get(f"{PATH}/tj/training-jobs").json()["TrainingJobSummaries"]) == 2


def test_search_finds_trials_and_tuning_jobs(lcp: LocalControlPlane) -> None:
    assert post(lcp, request()).status_code == 201
    drive(lcp, lambda hp: abs(float(hp["lr"]) - 0.01))
    found = lcp.client.search(
        "TuningJobName = tj and Metrics.loss >= 0", sort_by="Metrics.loss", sort_order="Ascending"
    )["Results"]
    names = [r["TrainingJob"]["TrainingJobName"] for r in found]
    best = lcp.client._http.get(f"{PATH}/tj").json()["BestTrainingJob"]["TrainingJobName"]
    assert len(names) == 4 and names[0] == best
    jobs = lcp.client.search(
        "HyperParameterTuningJobStatus = Completed", resource="HyperParameterTuningJob"
    )["Results"]
    assert [j["HyperParameterTuningJob"]["HyperParameterTuningJobName"] for j in jobs] == ["tj"]


def test_one_instance_type_as_the_sdk_sends_it(lcp: LocalControlPlane) -> None:
    body = request()
    body["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"] = {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 10,
    }
    assert post(lcp, body).status_code == 201
    lcp.controller.run_pass()
    [trial] = lcp.plane.store.list_active("TrainingJob")[:1]
    assert trial.spec["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    many = request()
    many["HyperParameterTuningJobName"] = "tj"
    many["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"] = {
        "InstanceConfigs": [
            {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5}
        ]
    }
    resp = post(lcp, {**many, "HyperParameterTuningJobName": "tj2"})
    assert (
        resp.status_code == 400
        and "HyperParameterTuningResourceConfig.InstanceConfigs" in resp.text
    )


def test_a_stored_tuning_job_the_api_did_not_check_fails_before_any_trial(
    lcp: LocalControlPlane,
) -> None:
    """A custom resource reaches the reconciler without the API's checks: a built-in's range
    outside what the algorithm takes fails the tuning job as invalid, and no trial is made."""
    body = builtin()
    body["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"] = [
        {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "50"}
    ]
    store = lcp.plane.store
    now = lcp.plane.clock.now()
    store.create(
        "HyperParameterTuningJob", "tj", body, {}, phase="InProgress", active=True, now=now
    )
    lcp.controller.run_pass()
    job = lcp.client._http.get(f"{PATH}/tj").json()
    assert job["HyperParameterTuningJobStatus"] == "Failed", job
    assert "learning_rate" in job["FailureReason"], job["FailureReason"]
    valid = next(c for c in job["Conditions"] if c["Type"] == "Valid")
    assert valid["Status"] == "False"
    assert store.list_active("TrainingJob") == []
