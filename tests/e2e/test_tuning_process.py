"""Tuning on the real process backend: early stopping reads a running trial's metric series
from its log, and a control plane killed mid-tuning carries on from the stored trials."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.testing import tarball
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.slow
PATH = "/api/v1/hyper-parameter-tuning-jobs"

CURVES = """
import json, os, time
hp = json.loads(os.environ.get("SM_HPS", "{}"))
quality = hp.get("quality", "good")
for epoch in range(1, %(epochs)d + 1):
    loss = 1.0 / epoch if quality != "bad" else 5.0
    print("epoch=%%d loss=%%.4f" %% (epoch, loss), flush=True)
    time.sleep(%(pause)s)
"""


def tuning(name: str, uri: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            **config,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=(\S+)"}],
            },
            "StaticHyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": uri,
            },
        },
    }


def wait_tuning(server: RunningServer, name: str, timeout: float = 90.0) -> dict[str, Any]:
    c = server.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.request("GET", f"{PATH}/{name}").json()
        if job["HyperParameterTuningJobStatus"] in {"Completed", "Failed", "Stopped"}:
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{name} did not end: {job}")


def test_early_stopping_auto_stops_the_trial_behind_the_median(server: RunningServer) -> None:
    c = server.client()
    uri = "s3://orchestrator/curves/sourcedir.tar.gz"
    c.upload_bytes(tarball({"train.py": CURVES % {"epochs": 12, "pause": 0.25}}), uri)
    body = tuning(
        "early",
        uri,
        {
            "Strategy": "Grid",
            "ResourceLimits": {"MaxParallelTrainingJobs": 3},
            "ParameterRanges": {
                "CategoricalParameterRanges": [
                    {"Name": "quality", "Values": ["good", "good2", "good3", "bad"]}
                ]
            },
            "TrainingJobEarlyStoppingType": "Auto",
        },
    )
    c.request("POST", PATH, json=body)
    job = wait_tuning(server, "early", timeout=120)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    trials = c.request("GET", f"{PATH}/early/training-jobs").json()["TrainingJobSummaries"]
    by_quality = {t["TunedHyperParameters"]["quality"]: t for t in trials}
    assert by_quality["bad"]["TrainingJobStatus"] == "Stopped", by_quality["bad"]
    assert {by_quality[q]["TrainingJobStatus"] for q in ("good", "good2", "good3")} == {"Completed"}
    # A stopped trial's objective is the last value it reported (before epoch 12).
    assert by_quality["bad"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 5.0
    assert job["TrainingJobStatusCounters"]["Stopped"] == 1
    log = c.training_job_logs(by_quality["bad"]["TrainingJobName"]).text
    assert "epoch=12" not in log, "stopped early, not at the end"
    series = c.training_job_metrics(by_quality["good"]["TrainingJobName"])
    assert [p.Epoch for p in series.Metrics[0].Points] == list(range(1, 13))


@pytest.mark.faults
def test_a_killed_control_plane_carries_on_from_the_stored_trials(server: RunningServer) -> None:
    c = server.client()
    uri = "s3://orchestrator/quick/sourcedir.tar.gz"
    c.upload_bytes(tarball({"train.py": CURVES % {"epochs": 3, "pause": 0.3}}), uri)
    body = tuning(
        "resume",
        uri,
        {
            "Strategy": "Bayesian",
            "RandomSeed": 5,
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
            },
        },
    )
    c.request("POST", PATH, json=body)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = c.request("GET", f"{PATH}/resume/training-jobs").json()["TrainingJobSummaries"]
        if len(rows) >= 3:
            break
        time.sleep(0.1)
    server.kill()
    server.start()
    c = server.client()
    job = wait_tuning(server, "resume", timeout=120)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    rows = c.request("GET", f"{PATH}/resume/training-jobs").json()["TrainingJobSummaries"]
    names = [r["TrainingJobName"] for r in rows]
    assert len(names) == 6 and len(set(names)) == 6, names
    assert [n.split("-")[1] for n in sorted(names)] == ["001", "002", "003", "004", "005", "006"]
    assert job["TrainingJobStatusCounters"]["Completed"] == 6, job
