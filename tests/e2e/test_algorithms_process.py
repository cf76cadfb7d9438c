"""Built-in algorithms through every front door on the process backend: train, evaluate,
serve, export; and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from orchestrator.client import Estimator
from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer

pytest.importorskip("tensorflow", reason="the built-in algorithms need orchestrator[tensorflow]")
pytestmark = pytest.mark.slow


def write_split(root: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    train, test = root / "train", root / "test"
    train.mkdir()
    test.mkdir()
    np.savetxt(train / "train.csv", np.column_stack([y_tr, x_tr]), delimiter=",")
    np.savetxt(test / "test.csv", np.column_stack([y_te, x_te]), delimiter=",")
    return train, test, x_te, y_te


def test_linear_learner_trains_evaluates_serves_and_exports(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    train, test, x_test, y_test = write_split(tmp_path)
    est = Estimator(
        algorithm="linear-learner",
        hyperparameters={"predictor_type": "binary_classifier", "epochs": 30, "seed": 1},
        client=c,
    )
    job = est.fit(
        {"train": train.as_uri(), "test": test.as_uri()},
        job_name="ll-binary",
        log_sink=lambda _: None,
    )
    assert job is not None and job.TrainingJobStatus == "Completed", job
    metrics = {m.MetricName: m.Value for m in job.FinalMetricDataList}
    assert metrics["test:accuracy"] > 0.93  # captured without any MetricDefinitions given
    assert {
        "test:auc",
        "test:f1",
        "test:precision",
        "test:recall",
        "test:log_loss",
        "test:threshold",
    } <= set(metrics)

    evaluation = c.training_job_evaluation("ll-binary")
    assert evaluation["predictor_type"] == "binary_classifier"
    cm = evaluation["test"]["confusion_matrix"]
    assert sum(map(sum, cm)) == len(y_test)
    assert evaluation["test"]["accuracy"] == pytest.approx(metrics["test:accuracy"], abs=1e-4)
    analysis = evaluation["test"]["analysis"]
    assert analysis["kind"] == "binary" and analysis["auc"] == evaluation["test"]["auc"]
    assert analysis["roc"][0] == [0.0, 0.0] and analysis["roc"][-1] == [1.0, 1.0]
    assert len(analysis["histogram"]["edges"]) == 51
    # the scores travelled beside evaluation.json; the threshold route at the job's own
    # threshold gives the evaluation's test metrics
    scored = c.training_job_scores("ll-binary", split="test")
    assert len(scored.Labels) == len(scored.Scores) == scored.Rows == len(y_test)
    assert sorted(scored.Labels) == sorted(int(v) for v in y_test)
    at = c.training_job_threshold_metrics("ll-binary", evaluation["threshold"], split="test")
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "true_positives",
        "false_positives",
        "true_negatives",
        "false_negatives",
        "confusion_matrix",
    ):
        assert getattr(at, key) == evaluation["test"][key], key

    predictor = est.deploy(initial_instance_count=1, endpoint_name="ll-binary")
    answer = predictor.predict(x_test[:20])
    labels = [p["predicted_label"] for p in answer["predictions"]]
    assert all(0.0 <= p["score"] <= 1.0 for p in answer["predictions"])
    assert np.mean(np.array(labels) == y_test[:20]) >= 0.85
    csv = "\n".join(",".join(str(v) for v in row) for row in x_test[:3]).encode()
    assert (
        c.invoke_endpoint("ll-binary", csv, content_type="text/csv").body.count(b"predicted_label")
        == 3
    )

    report = c.export_model("ll-binary", format="tflite")
    assert report["ArtifactUri"].endswith("/output/model.tflite")
    assert report["RowsChecked"] == len(y_test)
    assert report["MaxScaledDifference"] <= 1e-5
    blob = c.download_bytes(report["ArtifactUri"])
    assert blob[4:8] == b"TFL3"  # the TFLite flatbuffer identifier
    predictor.delete_endpoint()


def test_bad_hyperparameters_are_refused_before_any_job_exists(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    train, _, _, _ = write_split(tmp_path)
    spec = {
        "TrainingJobName": "bad-hp",
        "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
        "HyperParameters": {"predictor_type": "binary_classifier", "learning_rate": "-1"},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": train.as_uri()}}}
        ],
    }
    with pytest.raises(ValidationError, match="learning_rate") as info:
        c.create_training_job(spec)
    assert "(0, 10]" in info.value.message or "0" in info.value.message
    spec["HyperParameters"] = {"predictor_type": "binary_classifier", "learnin_rate": "0.1"}
    with pytest.raises(ValidationError, match="learnin_rate"):
        c.create_training_job(spec)
    spec["AlgorithmSpecification"] = {"AlgorithmName": "xgboost"}
    with pytest.raises(
        ValidationError, match="not a built-in algorithm; built in: linear-learner, mlp"
    ):
        c.create_training_job(spec)
    assert c.list_training_jobs().TrainingJobSummaries == []


def test_bad_data_fails_the_job_naming_file_row_and_column(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    data = tmp_path / "train"
    data.mkdir()
    (data / "rows.csv").write_text("1,0.5,0.25\n0,0.1,abc\n1,0.3,0.2\n")
    c.create_training_job(
        {
            "TrainingJobName": "bad-data",
            "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
            "HyperParameters": {"predictor_type": "binary_classifier", "epochs": "2"},
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": data.as_uri()}}}
            ],
        }
    )
    job = c.wait_for_training_job("bad-data", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Failed"
    reason = job.FailureReason or ""
    assert "rows.csv" in reason and "abc" in reason, reason
    assert json.dumps(reason)  # a plain string, ready for any client
