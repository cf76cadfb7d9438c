"""The training entry point end to end: evaluation, metric lines, artifacts, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from algorithms_harness import Job, RunJob, csv_text, run_job, write_root

from orchestrator.algorithms import inference


def test_binary_job(binary_job: Job) -> None:
    assert binary_job.code == 0, binary_job.stdout
    doc = binary_job.evaluation()
    assert doc["algorithm"] == "linear-learner"
    assert doc["rows"] == {"train": 410, "validation": 46, "test": 113}  # 0.2 then 0.1 split
    test = doc["test"]
    assert test["accuracy"] > 0.9
    assert test["auc"] > 0.95
    assert doc["threshold_criterion"] == "f1"
    assert 0.0 <= doc["threshold"] <= 1.0
    assert test["threshold"] == doc["threshold"]
    assert np.sum(test["confusion_matrix"]) == 113
    metrics = binary_job.metrics()
    for name in ("accuracy", "precision", "recall", "f1", "auc", "log_loss", "threshold"):
        assert metrics[f"test:{name}"] == pytest.approx(test[name], rel=1e-5, abs=1e-6)
    assert metrics["test:true_positives"] == test["true_positives"]
    assert "train:loss" in metrics
    assert "validation:loss" in metrics
    files = {p.name for p in binary_job.model_dir.iterdir()}
    assert {
        "saved_model",
        "algorithm.json",
        "evaluation.json",
        "evaluation_scores.json",
        "test_features.npy",
        "code",
    } <= files
    scored = json.loads((binary_job.model_dir / "evaluation_scores.json").read_text())
    assert set(scored) == {"validation", "test"}
    assert len(scored["test"]["labels"]) == len(scored["test"]["scores"]) == 113
    assert doc["scores_file"]["rows"]["test"] == {"total": 113, "stored": 113}
    analysis = test["analysis"]
    assert analysis["kind"] == "binary" and analysis["auc"] == test["auc"]
    assert analysis["roc"][0] == [0.0, 0.0] and analysis["roc"][-1] == [1.0, 1.0]
    assert sum(analysis["histogram"]["positive"]) + sum(analysis["histogram"]["negative"]) == 113
    assert doc["validation"]["analysis"]["kind"] == "binary"
    shim = (binary_job.model_dir / "code" / "inference.py").read_text()
    assert "from orchestrator.algorithms.inference import" in shim
    meta = json.loads((binary_job.model_dir / "algorithm.json").read_text())
    assert (meta["n_features"], meta["classes"], meta["threshold"]) == (
        30,
        [0, 1],
        doc["threshold"],
    )


def test_multiclass_job(multiclass_job: Job) -> None:
    assert multiclass_job.code == 0, multiclass_job.stdout
    doc = multiclass_job.evaluation()
    assert doc["rows"] == {"train": 100, "validation": 25, "test": 25}  # channels, no splits
    test = doc["test"]
    assert test["accuracy"] >= 0.8
    assert len(test["per_class"]) == 3
    assert np.asarray(test["confusion_matrix"]).shape == (3, 3)
    analysis = test["analysis"]
    assert analysis["kind"] == "multiclass" and analysis["labels"] == [0, 1, 2]
    assert analysis["confusion_matrix"] == test["confusion_matrix"]
    assert analysis["per_class"] == test["per_class"]
    metrics = multiclass_job.metrics()
    assert metrics["test:macro_f1"] == pytest.approx(test["macro_f1"], rel=1e-5)
    assert metrics["validation:weighted_f1"] == pytest.approx(
        doc["validation"]["weighted_f1"], rel=1e-5
    )
    meta = json.loads((multiclass_job.model_dir / "algorithm.json").read_text())
    assert meta["label_name"] == "species"
    assert meta["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_regression_job(regression_job: Job) -> None:
    assert regression_job.code == 0, regression_job.stdout
    doc = regression_job.evaluation()
    test = doc["test"]
    assert 40 < test["rmse"] < 70  # diabetes targets span 25..346; a linear fit reaches ~55
    assert test["r2"] > 0.3
    assert set(test) == {"rmse", "mae", "r2", "analysis"}
    assert regression_job.metrics()["test:rmse"] == pytest.approx(test["rmse"], rel=1e-5)
    analysis = test["analysis"]
    assert analysis["kind"] == "regression"
    assert analysis["rmse"] == pytest.approx(test["rmse"], rel=1e-9)
    # the baseline predicts the training labels' mean, in the labels' units: worse than the fit
    assert 60 < analysis["baseline_rmse"] < 100 and analysis["baseline_rmse"] > test["rmse"]
    assert len(analysis["scatter"]) == doc["rows"]["test"] <= 2000
    assert sum(analysis["residuals"]["counts"]) == doc["rows"]["test"]
    assert not (regression_job.model_dir / "evaluation_scores.json").exists()


def recover(job: RunJob, seed: int = 0, epochs: str = "40") -> tuple[Job, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(800, 2))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 1 + rng.normal(scale=0.1, size=800)
    hps = {"predictor_type": "regressor", "epochs": epochs, "seed": str(seed)}
    done = job("linear-learner", hps, {"train": csv_text(x, y)})
    assert done.code == 0
    model = inference.model_fn(str(done.model_dir))
    grid = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    scores = inference.predict_fn(grid, model).scores
    return done, scores


def test_recovers_a_known_linear_function(job: RunJob) -> None:
    done, (at_origin, at_x1, at_x2) = recover(job)
    assert at_origin == pytest.approx(1.0, abs=0.05)  # intercept
    assert at_x1 - at_origin == pytest.approx(3.0, abs=0.05)
    assert at_x2 - at_origin == pytest.approx(-2.0, abs=0.05)
    assert done.evaluation()["test"]["rmse"] < 0.15  # the noise is 0.1


def small_binary(tmp_path: Path, seed: str, shuffle: str = "true") -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x @ [1.0, -1.0, 0.5] + rng.normal(scale=0.5, size=200) > 0).astype(float)
    hps = {"predictor_type": "binary_classifier", "epochs": "3", "seed": seed, "shuffle": shuffle}
    root = write_root(tmp_path / f"s{seed}{shuffle}", hps, {"train": csv_text(x, y)})
    assert run_job(root, "mlp").code == 0
    model = inference.model_fn(str(root / "model"))
    return inference.predict_fn(x.astype(np.float32), model).scores


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    first = small_binary(tmp_path / "a", "3")
    np.testing.assert_array_equal(first, small_binary(tmp_path / "b", "3"))
    assert not np.array_equal(first, small_binary(tmp_path / "c", "4"))


def test_bad_hyperparameter_fails_before_training_via_the_module(tmp_path: Path) -> None:
    root = write_root(tmp_path, {"predictor_type": "regressor", "epochs": "0"}, {"train": "1,2\n"})
    env = {**os.environ, "ORCH_ML_ROOT": str(root), "ORCH_ALGORITHM": "linear-learner"}
    # a None entry makes "import tensorflow" fail: a bad hyperparameter must not need it
    probe = (
        "import sys, runpy; sys.modules['tensorflow'] = None; "
        "runpy.run_module('orchestrator.algorithms.train', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert "epochs='0' is invalid: it must be an integer in [1, 10000]" in failure
    assert not (root / "model" / "saved_model").exists()


def test_the_algorithm_is_required(job: RunJob, tmp_path: Path) -> None:
    root = write_root(tmp_path / "none", {"predictor_type": "regressor"}, {"train": "1,2\n3,4\n"})
    done = run_job(root, None)
    assert done.code == 1
    assert "set the algorithm hyperparameter to one of linear-learner, mlp" in done.failure


@pytest.mark.parametrize(
    ("ptype", "channels", "hps", "expected"),
    [
        (
            "binary_classifier",
            {"train": "y,a\n1,2\n0,3\n"},
            {"label": "target"},
            "label column 'target' not found in data.csv",
        ),
        (
            "binary_classifier",
            {"train": "y,a\n1,2\n0,x\n"},
            {},
            "data.csv, line 3, column 1 ('a'): 'x' is not a number",
        ),
        (
            "binary_classifier",
            {"train": "y,a\n1,2\n1,3\n1,4\n"},
            {"test_split": "0"},
            "train data has a single class (1)",
        ),
        (
            "regressor",
            {"train": "y,a\n1,2\n0,NaN\n"},
            {},
            "data.csv, line 3, column 1 ('a'): missing or non-finite value 'NaN'",
        ),
        ("regressor", {"train": ""}, {}, "data.csv is empty"),
        ("regressor", {}, {}, "the train channel is required"),
        ("regressor", {"train": "1,2\n"}, {}, "leaves no test row"),
        (
            "regressor",
            {"train": "1,2\n2,3\n3,4\n4,5\n", "test": "1,2,3\n"},
            {},
            "the test data has 2 feature columns, train has 1",
        ),
        (
            "binary_classifier",
            {"train": "0,1\n1,2\n0,3\n1,4\n", "validation": "0,1\n2,2\n"},
            {"test_split": "0"},
            "validation data, data.csv, line 2, label column 'column_0': label 2 is not 0 or 1",
        ),
    ],
)
def test_bad_data_fails_the_job_saying_what_and_where(
    job: RunJob, ptype: str, channels: dict[str, str], hps: dict[str, str], expected: str
) -> None:
    done = job("linear-learner", {"predictor_type": ptype, **hps}, channels)
    assert done.code == 1
    assert expected in done.failure
