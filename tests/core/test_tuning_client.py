"""``Client``'s tuning-job calls and ``HyperparameterTuner`` against an in-process control plane
on the fake backend: the request the tuner builds from an Estimator, fit, the trials, the best
one, stop, delete, wait, and bad input named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.client import (
    CategoricalParameter,
    ContinuousParameter,
    Estimator,
    HyperparameterTuner,
    IntegerParameter,
)
from orchestrator.client.tuner import tuning_job_name
from orchestrator.errors import ConflictError, JobFailedError, NotFoundError, ValidationError
from orchestrator.resources.tuning import TUNING_JOB_TAG
from orchestrator.testing import FakeClock, LocalControlPlane, local_control_plane

LOSS = [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]
RANGES = {
    "lr": ContinuousParameter(1e-4, 1e-1, scaling_type="Logarithmic"),
    "n": IntegerParameter(1, 4),
    "opt": CategoricalParameter(["adam", "sgd"]),
}


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path, clock=FakeClock()) as plane:
        yield plane


@pytest.fixture
def estimator(tmp_path: Path, local: LocalControlPlane) -> Estimator:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('loss=0.5')\n")
    return Estimator(str(src / "train.py"), hyperparameters={"epochs": 3}, client=local.client)


def tuner(estimator: Estimator, **kw: object) -> HyperparameterTuner:
    args: dict[str, object] = {
        "metric_definitions": LOSS,
        "objective_type": "Minimize",
        "max_jobs": 4,
        "max_parallel_jobs": 2,
        "random_seed": 7,
    }
    args.update(kw)
    return HyperparameterTuner(estimator, "loss", RANGES, **args)  # type: ignore[arg-type]


def finish_running(local: LocalControlPlane, losses: dict[int, float]) -> None:
    """One pass to launch, then each running trial completes with the loss of its number."""
    local.controller.run_pass()
    for name, job in list(local.backend.jobs.items()):
        if job.state != "exited":
            number = int(name.rsplit("-", 2)[1])
            local.plane.clock.advance(5)
            local.backend.complete(name, metrics={"loss": losses[number]})
    local.controller.run_pass()


def test_the_request_is_built_from_the_estimator(estimator: Estimator) -> None:
    spec = tuner(estimator).tuning_job_spec(
        "t-1", estimator.training_job_spec("t-1", {}, "s3://b/s")
    )
    config = spec["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "loss"}
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4}
    assert config["RandomSeed"] == 7
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    ]
    assert ranges["IntegerParameterRanges"][0]["MaxValue"] == "4"
    assert ranges["CategoricalParameterRanges"] == [{"Name": "opt", "Values": ["adam", "sgd"]}]
    definition = spec["TrainingJobDefinition"]
    assert "TrainingJobName" not in definition and "HyperParameters" not in definition
    assert definition["StaticHyperParameters"]["epochs"] == "3"
    assert definition["StaticHyperParameters"]["sagemaker_program"] == "train.py"
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == LOSS


def test_a_tuned_hyperparameter_is_not_also_static(estimator: Estimator) -> None:
    estimator.hyperparameters["lr"] = 0.5
    spec = tuner(estimator).tuning_job_spec("t-1", estimator.training_job_spec("t-1", {}, None))
    assert "lr" not in spec["TrainingJobDefinition"]["StaticHyperParameters"]


def test_fit_runs_the_trials_and_names_the_best(
    local: LocalControlPlane, estimator: Estimator
) -> None:
    t = tuner(estimator)
    assert t.fit(wait=False) is None
    name = t.latest_tuning_job
    assert name is not None and len(name) <= 32
    # The script's directory is uploaded once, under the tuning job's name.
    assert local.client.list_objects(f"s3://orchestrator/{name}/source/")
    losses = {1: 0.9, 2: 0.3, 3: 0.7, 4: 0.5}
    for _ in range(3):
        finish_running(local, losses)
    done = t.wait(poll=0.01, timeout=5)
    assert done.HyperParameterTuningJobStatus == "Completed"
    assert done.TrainingJobStatusCounters.Completed == 4
    best = t.best_training_job()
    assert best.startswith(f"{name}-002-")
    rows = t.trials()
    assert [r.TrainingJobName.split("-")[-2] for r in rows] == ["002", "004", "003", "001"]
    assert all(set(r.TunedHyperParameters) == {"lr", "n", "opt"} for r in rows)
    trial = local.client.describe_training_job(best)
    assert any(tag.Key == TUNING_JOB_TAG and tag.Value == name for tag in trial.Tags)
    listed = local.client.list_tuning_jobs(NameContains=name[:5])
    assert [s.HyperParameterTuningJobName for s in listed.HyperParameterTuningJobSummaries] == [
        name
    ]


def test_trials_page_and_sort(local: LocalControlPlane, estimator: Estimator) -> None:
    t = tuner(estimator)
    t.fit(wait=False)
    name = t.latest_tuning_job
    assert name is not None
    for _ in range(3):
        finish_running(local, {1: 0.9, 2: 0.3, 3: 0.7, 4: 0.5})
    page = local.client.list_tuning_job_trials(name, max_results=3)
    assert len(page.TrainingJobSummaries) == 3 and page.NextToken
    rest = local.client.list_tuning_job_trials(name, max_results=3, next_token=page.NextToken)
    assert len(rest.TrainingJobSummaries) == 1 and rest.NextToken is None
    by_value = local.client.list_tuning_job_trials(
        name, sort_by="FinalObjectiveMetricValue", sort_order="Ascending"
    )
    values = [
        r.FinalHyperParameterTuningJobObjectiveMetric.Value
        for r in by_value.TrainingJobSummaries
        if r.FinalHyperParameterTuningJobObjectiveMetric
    ]
    assert values == [0.3, 0.5, 0.7, 0.9]
    with pytest.raises(ValidationError) as e:
        local.client.list_tuning_job_trials(name, sort_by="Loss")
    assert e.value.field == "SortBy"


def test_stop_stops_running_trials_then_delete(
    local: LocalControlPlane, estimator: Estimator
) -> None:
    t = tuner(estimator)
    t.fit(wait=False)
    name = t.latest_tuning_job
    assert name is not None
    local.controller.run_pass()
    assert len(local.backend.jobs) == 2
    with pytest.raises(ConflictError):
        local.client.delete_tuning_job(name)  # still running
    t.stop()
    assert t.describe().HyperParameterTuningJobStatus == "Stopping"
    for _ in range(4):
        local.controller.run_pass()
        for trial in list(local.backend.jobs):
            if local.backend.jobs[trial].state != "exited":
                local.backend.complete(trial)
    done = local.client.wait_for_tuning_job(name, poll=0.01, timeout=5)
    assert done.HyperParameterTuningJobStatus == "Stopped"
    assert len(local.backend.jobs) == 2  # no trial launched after the stop
    local.client.delete_tuning_job(name)
    for _ in range(3):
        local.controller.run_pass()
    with pytest.raises(NotFoundError):
        local.client.describe_tuning_job(name)


def test_every_trial_failing_fails_fit(local: LocalControlPlane, estimator: Estimator) -> None:
    t = tuner(estimator, max_jobs=2)
    t.fit(wait=False)
    for _ in range(3):
        local.controller.run_pass()
        for trial, job in list(local.backend.jobs.items()):
            if job.state != "exited":
                local.backend.fail(trial, "boom")
    local.controller.run_pass()
    with pytest.raises(JobFailedError, match="failed"):
        t.wait(poll=0.01, timeout=5)


def test_bad_input_is_refused_naming_the_field(estimator: Estimator) -> None:
    with pytest.raises(ValidationError) as e:
        tuner(estimator, max_jobs=2, max_parallel_jobs=3).fit(wait=False)
    assert "MaxParallelTrainingJobs" in e.value.message
    with pytest.raises(ValidationError) as e:
        HyperparameterTuner(estimator, "accuracy", RANGES, metric_definitions=LOSS).fit(wait=False)
    assert "accuracy" in e.value.message and "MetricName" in (e.value.field or "")
    with pytest.raises(ValidationError) as e:
        HyperparameterTuner(estimator, "loss", {})
    assert e.value.field == "hyperparameter_ranges"
    bad = {"lr": ContinuousParameter(0.0, 1.0, scaling_type="Logarithmic")}
    with pytest.raises(ValidationError) as e:
        HyperparameterTuner(estimator, "loss", bad, metric_definitions=LOSS).fit(wait=False)
    assert "Logarithmic" in e.value.message
    with pytest.raises(ValidationError) as e:
        HyperparameterTuner(estimator, "loss", RANGES).best_training_job()
    assert "fit()" in e.value.message


def test_tuning_job_names_fit_sagemaker_s_limit() -> None:
    for base in ("a" * 80, "my_script.v2", "-"):
        name = tuning_job_name(base)
        assert len(name) <= 32 and name[0].isalnum() and "--" not in name[:-4], name
