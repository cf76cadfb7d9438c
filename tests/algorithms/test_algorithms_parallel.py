"""linear-learner's parallel models: per-model learning rates, the winner, the refit."""

from __future__ import annotations

import itertools
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


def test_the_model_with_the_right_learning_rate_wins_and_is_recorded(
    job: RunJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Adam at 5.0 jumps far past the optimum every step; its neighbour at 0.5 (x0.1) does not.
    # Unpolished candidates: polished, both L2=0 models reach the same optimum and tie.
    from orchestrator.algorithms import linear

    monkeypatch.setattr(linear, "POLISH_CANDIDATES", False)
    x, y = _linear_data(200)
    hps = {
        "predictor_type": "regressor",
        "learning_rate": "5.0",
        "l2": "0",  # a given L2: the grid of rates and L2 values around it
        "num_models": "3",  # (5.0, L2 0), (5.0, L2 1e-4), (0.5, L2 0)
        "epochs": "8",
        "mini_batch_size": "16",
    }
    done = job("linear-learner", hps, {"train": csv_text(x, y)})
    assert done.code == 0, done.stdout
    chosen = done.evaluation()["model_selection"]
    assert (chosen["num_models"], chosen["winner"], chosen["criterion"]) == (3, 2, "loss")
    assert (chosen["selected_on"], chosen["folds"]) == ("cross-validation", 5)
    assert (chosen["learning_rate"], chosen["l2"]) == (pytest.approx(0.5), 0.0)
    models = chosen["models"]
    assert [m["learning_rate"] for m in models] == pytest.approx([5.0, 5.0, 0.5])
    assert models[2]["mse"] < min(models[0]["mse"], models[1]["mse"]) / 2
    meta = json.loads((done.model_dir / "algorithm.json").read_text())
    assert meta["model_selection"]["winner"] == 2
    assert meta["model_selection"]["learning_rate"] == pytest.approx(0.5)
    assert "linear-learner: model 3 of 3 chosen by 5-fold cross-validation loss" in done.stdout
    assert "learning rate 0.5, L2 0," in done.stdout
    assert done.evaluation()["test"]["rmse"] < 0.5  # y spans about +-10


def test_cross_validation_without_a_validation_channel_then_the_refit(job: RunJob) -> None:
    x, y = _linear_data(100, seed=1)
    hps = {"predictor_type": "regressor", "num_models": "2", "epochs": "10", "mini_batch_size": "8"}
    done = job("linear-learner", hps, {"train": csv_text(x, y)})
    assert done.code == 0, done.stdout
    doc = done.evaluation()
    assert doc["rows"] == {"train": 72, "validation": 8, "test": 20}
    chosen = doc["model_selection"]
    # train and the validation split together are cross-validated, then refit on
    assert chosen["refit"] == {"rows": 80, "epochs": chosen["epochs"]}
    assert chosen["selected_on"] == "cross-validation"
    assert 1 <= chosen["epochs"] <= doc["epochs_trained"] <= 10
    # l2=auto: scikit-learn's Ridge default (alpha=1) for 80 rows first, then a tenth of it
    assert [m["l2"] for m in chosen["models"]] == pytest.approx([1 / 80, 0.1 / 80])
    assert f"refit on 80 rows for {chosen['epochs']} epochs" in done.stdout
    # one train:loss and validation:loss line per epoch
    lines = done.stdout.splitlines()
    assert sum(line.startswith("train:loss=") for line in lines) == doc["epochs_trained"]
    assert sum(line.startswith("validation:loss=") for line in lines) == doc["epochs_trained"]
    assert doc["validation"]["rmse"] < 1.0 and doc["test"]["rmse"] < 1.0  # y's sd is about 2.8


def test_folds_are_balanced_and_stratified() -> None:
    from orchestrator.algorithms.parallel import assign_folds

    y = np.array([0] * 10 + [1] * 5 + [2] * 3, np.float64)
    folds = assign_folds("multiclass_classifier", y, 3, seed=4)
    assert sorted(np.bincount(folds)) == [6, 6, 6]
    for label, rows in ((0, 10), (1, 5), (2, 3)):
        per_fold = np.bincount(folds[y == label], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == rows
    regression = assign_folds("regressor", np.arange(11.0), 5, seed=4)
    assert sorted(np.bincount(regression)) == [2, 2, 2, 2, 3]


@pytest.mark.parametrize("ptype", ["regressor", "binary_classifier"])
def test_a_fold_model_trains_as_if_its_fold_were_absent(ptype: str) -> None:
    """Model (config 0, fold 0) of the shared layer follows a lone model on the other rows."""
    from orchestrator.algorithms import model as model_lib
    from orchestrator.algorithms import parallel

    x, y = _linear_data(30, seed=5)
    y = (y - y.mean()) / y.std() if ptype == "regressor" else (y > np.median(y)).astype(float)
    raw = {
        "predictor_type": ptype,
        "epochs": "6",
        "early_stopping_patience": "0",
        "mini_batch_size": "30",  # one full batch per epoch: the same gradients either way
        "shuffle": "false",
    }
    hp = parse_hyperparameters("linear-learner", raw)
    cands = [Candidate(0.05, 0.01), Candidate(0.1, 0.0)]
    folds = parallel.assign_folds(ptype, y, 3, seed=0)
    model_lib.seed_everything(0)
    cv = parallel.cross_validate(hp, cands, 1, (x, y), folds, emit=_drop)
    assert cv.epochs_run == 6 and all(1 <= e <= 6 for e in cv.best_epochs)
    epochs = cv.best_epochs[0]
    kept = folds != 0
    alone_hp = replace(hp, epochs=epochs, mini_batch_size=int(kept.sum()))
    alone = parallel.train(
        alone_hp,
        cands[:1],
        1,
        (x[kept], y[kept]),
        (x[kept], y[kept]),
        selection_is_validation=False,
        emit=_drop,
        averaged=[False],
        horizon=6,  # the same rates as the 6-epoch run
    )
    expected = parallel.logits_of(alone.kernels, alone.biases, x[~kept])[:, 0]
    np.testing.assert_allclose(cv.logits[~kept, 0], expected, rtol=1e-4, atol=1e-5)
    losses = parallel.row_losses(ptype, cv.logits[:, :1], y)[:, 0]
    np.testing.assert_allclose(cv.row_losses[:, 0], losses, rtol=1e-6)
    assert cv.best_losses[0] == pytest.approx(float(losses.mean()), rel=1e-6)


def test_the_rate_decays_from_the_given_one_to_a_hundredth() -> None:
    from orchestrator.algorithms.parallel import rate_at

    hp = parse_hyperparameters(
        "linear-learner", {"predictor_type": "regressor", "learning_rate": "0.2", "epochs": "10"}
    )
    rates = [rate_at(hp, e) for e in range(11)]
    assert rates[0] == pytest.approx(0.2) and rates[10] == pytest.approx(0.002)
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert rate_at(hp, 3, horizon=10) == rates[3]
    assert rate_at(hp, 5, horizon=20) == pytest.approx(0.2 * (0.01 + 0.99 * 0.5 * (1 + 0.5**0.5)))


def test_no_refit_with_a_validation_channel(job: RunJob) -> None:
    x, y = _linear_data(90, seed=2)
    hps = {"predictor_type": "regressor", "num_models": "2", "epochs": "4", "test_split": "0"}
    channels = {"train": csv_text(x[:70], y[:70]), "validation": csv_text(x[70:], y[70:])}
    done = job("linear-learner", hps, channels)
    assert done.code == 0, done.stdout
    doc = done.evaluation()
    assert doc["model_selection"]["refit"] is None
    assert doc["model_selection"]["selected_on"] == "validation"
    assert doc["model_selection"]["criterion"] == "mse"
    winner = doc["model_selection"]["models"][doc["model_selection"]["winner"]]
    assert doc["validation"]["rmse"] ** 2 == pytest.approx(winner["mse"], rel=1e-4)
    assert "refit" not in done.stdout


def test_multiclass_cross_validated_on_loss(job: RunJob) -> None:
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
    assert chosen["criterion"] == "loss"
    assert chosen["refit"] is not None
    assert all(0 <= m["accuracy"] <= 1 for m in chosen["models"])  # out of fold, recorded
    # C=1 for the 64 rows the test split leaves
    assert [m["l2"] for m in chosen["models"]] == pytest.approx([0.5 / 64, 0.05 / 64])
    assert done.evaluation()["test"]["accuracy"] >= 0.75


def test_replace_keeps_num_models_field() -> None:
    hp = parse_hyperparameters("linear-learner", {"predictor_type": "regressor"})
    assert replace(hp, num_models=1).num_models == 1
