"""Hyperparameter tuning with SageMaker code, unchanged, against a real control plane (process
backend): the SageMaker Python SDK's HyperparameterTuner over an SKLearn estimator, and boto3's
create_hyper_parameter_tuning_job polled to the end. Few trials of a script that exits at once."""

from __future__ import annotations

import io
import math
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_sagemaker_wire import ROLE, _sdk_session, aws_env

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra")
pytestmark = pytest.mark.slow
__all__ = ["aws_env"]  # the fixture, shared with the other wire tests

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# The objective as a function of the tuned values, printed as SageMaker's regexes read it.
TRAIN_PY = """
import argparse, math
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--n", type=int)
parser.add_argument("--opt")
args, _ = parser.parse_known_args()
loss = (math.log10(args.lr) + 2) ** 2 + 0.1 * args.n + (0.0 if args.opt == "adam" else 0.5)
print(f"loss={loss:.6f}")
"""


def expected_loss(hp: dict[str, str]) -> float:
    lr, n, opt = float(hp["lr"].strip('"')), int(hp["n"].strip('"')), hp["opt"].strip('"')
    return (math.log10(lr) + 2) ** 2 + 0.1 * n + (0.0 if opt == "adam" else 0.5)


def wait_tuning(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d: dict[str, Any] = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if d["HyperParameterTuningJobStatus"] in {"Completed", "Stopped", "Failed"}:
            return d
        assert time.monotonic() < deadline, d["HyperParameterTuningJobStatus"]
        time.sleep(1)


def test_sdk_tuner_fits_and_names_the_best_trial(aws_env: RunningServer, tmp_path: Path) -> None:
    sess = _sdk_session("tune")
    from sagemaker.sklearn import SKLearn
    from sagemaker.tuner import (
        CategoricalParameter,
        ContinuousParameter,
        HyperparameterTuner,
        IntegerParameter,
    )

    assert sess.default_bucket() == "tune"  # made if missing
    sess.upload_string_as_file_body("1,2\n", bucket="tune", key="train/train.csv")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN_PY)
    est = SKLearn(
        entry_point="train.py", source_dir=str(src), framework_version="1.2-1", py_version="py3",
        role=ROLE, instance_count=1, instance_type="ml.m5.large", output_path="s3://tune/out",
        sagemaker_session=sess,
    )  # fmt: skip
    tuner = HyperparameterTuner(
        est,
        objective_metric_name="loss",
        objective_type="Minimize",
        hyperparameter_ranges={
            "lr": ContinuousParameter(1e-4, 1e-1, scaling_type="Logarithmic"),
            "n": IntegerParameter(1, 4),
            "opt": CategoricalParameter(["adam", "sgd"]),
        },
        metric_definitions=[{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
        strategy="Bayesian",
        max_jobs=4,
        max_parallel_jobs=2,
        random_seed=1,
    )
    tuner.fit({"train": "s3://tune/train"}, job_name="sdk-tune", wait=False)
    sm = boto3.client("sagemaker")
    done = wait_tuning(sm, "sdk-tune")
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    assert done["TrainingJobStatusCounters"]["Completed"] == 4
    best = tuner.best_training_job()
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="sdk-tune", MaxResults=10
    )["TrainingJobSummaries"]
    assert len(trials) == 4
    values = {
        t["TrainingJobName"]: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for t in trials
    }
    assert best == min(values, key=values.__getitem__)
    for t in trials:  # the objective each trial printed, from the values it was given
        assert values[t["TrainingJobName"]] == pytest.approx(
            expected_loss(t["TunedHyperParameters"]), abs=1e-5
        )
    trial = sm.describe_training_job(TrainingJobName=best)
    assert trial["TuningJobArn"].endswith(":hyper-parameter-tuning-job/sdk-tune")
    # The SDK's analytics: Describe and the trials, as a pandas DataFrame.
    frame = tuner.analytics().dataframe()
    assert len(frame) == 4 and {"lr", "n", "opt", "FinalObjectiveValue"} <= set(frame.columns)
    assert frame["FinalObjectiveValue"].min() == pytest.approx(values[best])


def _tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_boto3_tuning_job_runs_its_trials(aws_env: RunningServer) -> None:
    s3 = boto3.client("s3")
    sm = boto3.client("sagemaker")
    s3.create_bucket(Bucket="hpo")
    s3.put_object(Bucket="hpo", Key="src/sourcedir.tar.gz", Body=_tarball({"train.py": TRAIN_PY}))
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="boto-tune",
        HyperParameterTuningJobConfig={
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1",
                     "ScalingType": "Logarithmic"}
                ],
                "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "4"}],
                "CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd"]}],
            },
        },
        TrainingJobDefinition={
            "StaticHyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": "s3://hpo/src/sourcedir.tar.gz",
            },
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://hpo/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    )  # fmt: skip
    done = wait_tuning(sm, "boto-tune")
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    rows = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="boto-tune", SortBy="FinalObjectiveMetricValue",
        SortOrder="Ascending",
    )["TrainingJobSummaries"]  # fmt: skip
    assert len(rows) == 3
    assert rows[0]["TrainingJobName"] == done["BestTrainingJob"]["TrainingJobName"]
    values = [r["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for r in rows]
    assert values == sorted(values)
    listed = sm.list_hyper_parameter_tuning_jobs(StatusEquals="Completed")
    assert [s["HyperParameterTuningJobName"] for s in listed["HyperParameterTuningJobSummaries"]] == ["boto-tune"]  # fmt: skip
