"""Fixtures for the built-in algorithms: ML roots built from bundled data, trained models.

Trained models are session-scoped (TensorFlow training is the slow part) and built in process
through ``train.main``, the same function ``python -m orchestrator.algorithms.train`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from algorithms_harness import Job, RunJob, csv_text, run_job, write_root
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris


@pytest.fixture
def job(tmp_path: Path) -> RunJob:
    """Run a job: ``job(algorithm, hyperparameters, channels)``."""

    def run(algorithm: str, hyperparameters: dict[str, str], channels: dict[str, Any]) -> Job:
        return run_job(write_root(tmp_path / "ml", hyperparameters, channels), algorithm)

    return run


def _bundled(loader: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = loader(return_X_y=True)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


@pytest.fixture(scope="session")
def binary_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """linear-learner on breast cancer; a test_split hold-out; threshold chosen by F1."""
    x, y = _bundled(load_breast_cancer)
    hps = {
        "predictor_type": "binary_classifier",
        "epochs": "15",
        "binary_classifier_model_selection_criteria": "f1",
    }
    root = write_root(tmp_path_factory.mktemp("binary"), hps, {"train": csv_text(x, y)})
    return run_job(root, "linear-learner")


@pytest.fixture(scope="session")
def multiclass_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """mlp on iris, label by name in the last column, explicit validation and test channels."""
    x, y = _bundled(load_iris)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]

    def text(part: slice) -> str:
        rows = np.column_stack([x[part], y[part]])
        return ",".join(names) + "\n" + "\n".join(",".join(f"{v:g}" for v in r) for r in rows)

    hps = {
        "predictor_type": "multiclass_classifier",
        "label": "species",
        "epochs": "40",
        "hidden_units": "16",
        "learning_rate": "0.01",
    }
    channels = {"train": text(slice(0, 100)), "validation": text(slice(100, 125))}
    channels["test"] = text(slice(125, 150))
    root = write_root(tmp_path_factory.mktemp("multiclass"), hps, channels)
    return run_job(root, "mlp")


@pytest.fixture(scope="session")
def regression_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """linear-learner on diabetes (targets 25..346, scaled for training), from Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = _bundled(load_diabetes)
    columns = {"target": y, **{f"x{i}": x[:, i] for i in range(x.shape[1])}}
    root = tmp_path_factory.mktemp("regression")
    write_root(root, {"predictor_type": "regressor", "epochs": "30", "label": "target"}, {})
    (root / "input" / "data" / "train").mkdir(parents=True)
    pq.write_table(pa.table(columns), root / "input" / "data" / "train" / "part-0.parquet")
    return run_job(root, "linear-learner")
