"""Hyperparameter tuning scenarios, written once, run on every backend: a tuning job's trials
are training jobs of that backend (processes, containers, Kubernetes Jobs)."""

from __future__ import annotations

from typing import Any

from tests.conformance.declarations import scenario
from tests.conformance.harness import Harness, Script

RANGES = {
    "IntegerParameterRanges": [{"Name": "layers", "MinValue": "1", "MaxValue": "3"}],
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    ],
    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "sgd"]}],
}


def config(total: int, parallel: int, strategy: str = "Random") -> dict[str, Any]:
    return {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "train:loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": total, "MaxParallelTrainingJobs": parallel},
        "ParameterRanges": RANGES,
        "RandomSeed": 11,
    }


def in_ranges(tuned: dict[str, str]) -> bool:
    return (
        1 <= int(tuned["layers"]) <= 3
        and 0.001 <= float(tuned["lr"]) <= 0.1
        and tuned["optimizer"] in {"adam", "sgd"}
    )


@scenario(
    "Tune and complete",
    "a tuning job's trials run as training jobs of the backend, each with values inside the "
    "ranges; counters, objective counters and the best trial; Completed at "
    "MaxNumberOfTrainingJobs",
)
def test_tune_and_complete(h: Harness) -> None:
    name = "tune-and-complete"
    h.create_tuning_job(name, Script(prints=("loss=0.25",)), config(3, 2))
    job = h.wait_tuning(name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", f"{h.backend}: {job}"
    assert job["TrainingJobStatusCounters"]["Completed"] == 3, h.backend
    assert job["ObjectiveStatusCounters"]["Succeeded"] == 3, h.backend
    trials = h.trials(name)
    assert len(trials) == 3, h.backend
    assert all(t["TrainingJobStatus"] == "Completed" for t in trials), trials
    assert all(in_ranges(t["TunedHyperParameters"]) for t in trials), trials
    best = job["BestTrainingJob"]
    assert best["TrainingJobName"] in {t["TrainingJobName"] for t in trials}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 0.25, best
    trial = h.job(best["TrainingJobName"])  # a training job like any other
    assert trial.TrainingJobStatus == "Completed", h.backend
    assert {"Key": "orchestrator:tuning-job", "Value": name} in [
        t.model_dump() for t in trial.Tags
    ], trial.Tags


@scenario(
    "Stop a tuning job",
    "StopHyperParameterTuningJob stops every running trial; the tuning job ends Stopped and "
    "launches no more",
)
def test_stop_a_tuning_job(h: Harness) -> None:
    name = "stop-a-tuning-job"
    h.create_tuning_job(name, Script(until_stopped=True), config(4, 2))

    def two_running() -> list[dict[str, Any]] | None:
        rows = [t for t in h.trials(name) if t["TrainingJobStatus"] == "InProgress"]
        return rows if len(rows) == 2 else None

    running = h.wait(two_running, f"two trials of {name} running", 60.0)
    for t in running:
        h.wait_log(t["TrainingJobName"], Script.READY)
    h.client.request("POST", f"/api/v1/hyper-parameter-tuning-jobs/{name}/stop")
    job = h.wait_tuning(name)
    assert job["HyperParameterTuningJobStatus"] == "Stopped", f"{h.backend}: {job}"
    trials = h.trials(name)
    assert len(trials) == 2, f"{h.backend}: launched after the stop: {trials}"
    assert {t["TrainingJobStatus"] for t in trials} == {"Stopped"}, trials
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2, job


@scenario(
    "Every trial fails",
    "failed trials count as NonRetryableError; the tuning job fails only because every "
    "trial failed, with the first trial's reason",
)
def test_every_trial_fails(h: Harness) -> None:
    name = "every-trial-fails"
    h.create_tuning_job(name, Script(failure="bad data", exit_code=2), config(2, 2))
    job = h.wait_tuning(name)
    assert job["HyperParameterTuningJobStatus"] == "Failed", f"{h.backend}: {job}"
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 2, job
    assert job["ObjectiveStatusCounters"]["Failed"] == 2, job
    assert "every training job failed" in job["FailureReason"], job["FailureReason"]
    assert "AlgorithmError: bad data" in job["FailureReason"], job["FailureReason"]
    assert "BestTrainingJob" not in job, job
