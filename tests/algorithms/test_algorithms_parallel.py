"""linear-learner's parallel models: per-model learning rates, the winner, the refit."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from algorithms_harness import RunJob, csv_text

from orchestrator.algorithms import parse_hyperparameters
from orchestrator.algorithms.selection import Candidate


def _linear_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    return x, x @ np.array([1.5, -2.0, 0.5, 1.0]) + 3.0 + 0.1 * rng.normal(size=rows)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_each_model_runs_at_its_own_learning_rate(optimizer: str) -> None:
    """The same two models trained under either base rate follow the same trajectories."""
    from orchestrator.algorithms import model as model_lib
    from orchestrator.algorithms import parallel

    x, y = _linear_data(64)
    y = (y - y.mean()) / y.std()
    cands = [Candidate(0.01, 0.0), Candidate(0.1, 0.001)]
    runs = []
    for base in (0.01, 0.1):
        hp = parse_hyperparameters(
            "linear-learner",
            {
                "predictor_type": "regressor",
                "optimizer": optimizer,
                "learning_rate": str(base),
                "epochs": "2",
                "early_stopping_patience": "0",
                "mini_batch_size": "16",
            },
        )
        model_lib.seed_everything(0)
        runs.append(
            parallel.train(hp, cands, 1, (x, y), (x, y), selection_is_validation=True, emit=_drop)
        )
    start = np.random.default_rng(0).uniform(-1, 1, size=runs[0].kernels.shape)
    assert not np.allclose(runs[0].kernels, start)  # they trained
    np.testing.assert_allclose(runs[0].kernels, runs[1].kernels, rtol=2e-3, atol=2e-5)


def _drop(name: str, value: float) -> None:
    pass


def test_the_model_with_the_right_learning_rate_wins_and_is_recorded(job: RunJob) -> None:
    # Adam at 5.0 jumps far past the optimum every step; its neighbour at 0.5 (x0.1) does not
    x, y = _linear_data(200)
    hps = {
        "predictor_type": "regressor",
        "learning_rate": "5.0",
        "num_models": "3",  # (5.0, L2 0), (5.0, L2 1e-4), (0.5, L2 0)
        "epochs": "8",
        "mini_batch_size": "16",
    }
    done = job("linear-learner", hps, {"train": csv_text(x, y)})
    assert done.code == 0, done.stdout
    chosen = done.evaluation()["model_selection"]
    assert (chosen["num_models"], chosen["winner"], chosen["criterion"]) == (3, 2, "mse")
    assert (chosen["learning_rate"], chosen["l2"]) == (pytest.approx(0.5), 0.0)
    models = chosen["models"]
    assert [m["learning_rate"] for m in models] == pytest.approx([5.0, 5.0, 0.5])
    assert models[2]["mse"] < min(models[0]["mse"], models[1]["mse"]) / 2
    meta = json.loads((done.model_dir / "algorithm.json").read_text())
    assert meta["model_selection"]["winner"] == 2
    assert meta["model_selection"]["learning_rate"] == pytest.approx(0.5)
    assert "linear-learner: model 3 of 3 chosen by validation mse" in done.stdout
    assert "learning rate 0.5, L2 0," in done.stdout
    assert done.evaluation()["test"]["rmse"] < 0.5  # y spans about +-10


def test_refit_on_train_plus_validation_without_a_validation_channel(job: RunJob) -> None:
    x, y = _linear_data(100, seed=1)
    hps = {"predictor_type": "regressor", "num_models": "2", "epochs": "10", "mini_batch_size": "8"}
    done = job("linear-learner", hps, {"train": csv_text(x, y)})
    assert done.code == 0, done.stdout
    doc = done.evaluation()
    assert doc["rows"] == {"train": 72, "validation": 8, "test": 20}
    chosen = doc["model_selection"]
    assert chosen["refit"] == {"rows": 80, "epochs": chosen["epochs"]}
    assert 1 <= chosen["epochs"] <= doc["epochs_trained"] <= 10
    # the reported validation figures are the chosen model's before the refit (held out)
    assert doc["validation"]["rmse"] ** 2 == pytest.approx(
        chosen["models"][chosen["winner"]]["mse"], rel=1e-4
    )
    assert f"refit on train+validation (80 rows) for {chosen['epochs']} epochs" in done.stdout
    # one train:loss and validation:loss line per epoch of the selection run, none for the refit
    lines = done.stdout.splitlines()
    assert sum(line.startswith("train:loss=") for line in lines) == doc["epochs_trained"]
    assert sum(line.startswith("validation:loss=") for line in lines) == doc["epochs_trained"]
    assert doc["test"]["rmse"] < 1.0  # y's standard deviation is about 2.8


def test_no_refit_with_a_validation_channel(job: RunJob) -> None:
    x, y = _linear_data(90, seed=2)
    hps = {"predictor_type": "regressor", "num_models": "2", "epochs": "4", "test_split": "0"}
    channels = {"train": csv_text(x[:70], y[:70]), "validation": csv_text(x[70:], y[70:])}
    done = job("linear-learner", hps, channels)
    assert done.code == 0, done.stdout
    doc = done.evaluation()
    assert doc["model_selection"]["refit"] is None
    assert doc["model_selection"]["selected_on"] == "validation"
    winner = doc["model_selection"]["models"][doc["model_selection"]["winner"]]
    assert doc["validation"]["rmse"] ** 2 == pytest.approx(winner["mse"], rel=1e-4)
    assert "refit" not in done.stdout


def test_multiclass_selection_by_accuracy(job: RunJob) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=3.0, size=(4, 3))
    labels = np.repeat(np.arange(4), 20)
    x = centres[labels] + rng.normal(size=(80, 3))
    hps = {
        "predictor_type": "multiclass_classifier",
        "num_models": "2",
        "epochs": "8",
        "mini_batch_size": "8",
    }
    done = job("linear-learner", hps, {"train": csv_text(x, labels.astype(float))})
    assert done.code == 0, done.stdout
    chosen = done.evaluation()["model_selection"]
    assert chosen["criterion"] == "accuracy"
    assert chosen["refit"] is not None
    assert done.evaluation()["test"]["accuracy"] >= 0.75


def test_replace_keeps_num_models_field() -> None:
    hp = parse_hyperparameters("linear-learner", {"predictor_type": "regressor"})
    assert replace(hp, num_models=1).num_models == 1
