"""linear-learner's polish: L-BFGS-B to the exact optimum of the trained objective."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("scipy")

from algorithms_harness import RunJob, csv_text
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import Lasso, LogisticRegression, Ridge

from orchestrator.algorithms import polish


def _standardised(loader: object, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    x, y = loader(return_X_y=True)  # type: ignore[operator]
    x, y = np.asarray(x, np.float64)[:rows], np.asarray(y, np.float64)[:rows]
    return (x - x.mean(axis=0)) / x.std(axis=0), y


def _start(d: int, units: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights somewhere off the optimum, as mini-batch training leaves them."""
    return np.random.default_rng(0).normal(scale=0.3, size=(d, units)), np.full(units, 0.2)


def test_binary_reaches_logistic_regressions_optimum() -> None:
    """C=1 is l2 = 1/(2n) in the mean-loss scaling: the same optimum as scikit-learn's."""
    x, y = _standardised(load_breast_cancer, 300)
    l2 = 0.5 / len(x)
    sk = LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000).fit(x, y)
    done = polish.polish("binary_classifier", x, y, *_start(x.shape[1], 1), l2=l2)
    assert done.ran and done.reason == "converged" and done.iterations > 0
    theirs = polish.objective("binary_classifier", x, y, sk.coef_.T, sk.intercept_, l2=l2)
    assert done.value == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert done.value < done.start
    np.testing.assert_allclose(done.kernel[:, 0], sk.coef_[0], atol=2e-4)
    np.testing.assert_allclose(done.bias, sk.intercept_, atol=2e-4)


def test_multiclass_reaches_logistic_regressions_optimum() -> None:
    """Softmax over all classes with an L2 penalty: the same kernel as scikit-learn's."""
    x, y = _standardised(load_iris)
    l2 = 0.5 / len(x)
    sk = LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000).fit(x, y)
    done = polish.polish("multiclass_classifier", x, y, *_start(x.shape[1], 3), l2=l2)
    assert done.ran
    theirs = polish.objective("multiclass_classifier", x, y, sk.coef_.T, sk.intercept_, l2=l2)
    assert done.value == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(done.kernel, sk.coef_.T, atol=2e-4)
    # the unpenalised biases are fixed only up to a common shift (the start keeps its own)
    centred = done.bias - done.bias.mean()
    np.testing.assert_allclose(centred, sk.intercept_ - sk.intercept_.mean(), atol=2e-4)


def test_regressor_reaches_ridges_and_lassos_solutions() -> None:
    """Ridge's alpha is l2 = alpha / n; Lasso's alpha (on half the mean square) is l1 = 2 alpha."""
    x, y = _standardised(load_diabetes)
    y = (y - y.mean()) / y.std()
    ridge = Ridge(alpha=1.0).fit(x, y)
    done = polish.polish("regressor", x, y, *_start(x.shape[1], 1), l2=1.0 / len(x))
    assert done.ran
    np.testing.assert_allclose(done.kernel[:, 0], ridge.coef_, atol=1e-6)
    lasso = Lasso(alpha=0.05, tol=1e-12, max_iter=100_000).fit(x, y)
    sparse = polish.polish("regressor", x, y, *_start(x.shape[1], 1), l2=0.0, l1=0.1)
    assert sparse.ran
    np.testing.assert_allclose(sparse.kernel[:, 0], lasso.coef_, atol=1e-5)
    assert np.sum(np.abs(sparse.kernel) < 1e-9) == np.sum(lasso.coef_ == 0.0) > 0


def test_too_large_a_problem_is_skipped_with_the_weights_kept() -> None:
    x, y = _standardised(load_breast_cancer, 100)
    kernel, bias = _start(x.shape[1], 1)
    done = polish.polish("binary_classifier", x, y, kernel, bias, l2=0.01, max_work=100)
    assert not done.ran and done.iterations == 0
    assert done.reason == f"skipped: rows x features x units = {100 * 30} > 100"
    assert done.kernel is kernel and done.bias is bias
    assert done.value == done.start


def test_an_optimizer_that_does_not_converge_keeps_the_weights() -> None:
    """One iteration is not convergence: the trained weights stay, with the optimizer's word."""
    x, y = _standardised(load_iris)
    kernel, bias = _start(x.shape[1], 3)
    done = polish.polish(
        "multiclass_classifier", x, y, kernel, bias, l2=0.5 / len(x), max_iterations=1
    )
    assert not done.ran and done.iterations == 1
    assert done.reason.startswith("failed: ")
    assert done.kernel is kernel and done.value == done.start


def test_a_job_records_its_polish_and_exports_the_polished_model(job: RunJob) -> None:
    """Cross-validated binary job: the fold models and the final model are polished, and the
    exported network predicts as scikit-learn's model of the same strength (C=1 or 10)."""
    x, y = _standardised(load_breast_cancer, 200)
    done = job(
        "linear-learner",
        {
            "predictor_type": "binary_classifier",
            "epochs": "5",
            "test_split": "0",
            "num_models": "2",
        },
        {"train": csv_text(x, y)},
    )
    assert done.code == 0, done.failure
    chosen = done.evaluation()["model_selection"]
    record = chosen["polish"]
    assert record["ran"] is True and record["iterations"] > 0 and record["rows"] == 200
    assert record["objective_after"] < record["objective_before"]
    assert record["folds"]["models"] == 5 * chosen["num_models"]
    assert record["folds"]["converged"] == record["folds"]["models"]
    assert "polished the chosen model to its optimum" in done.stdout
    from orchestrator.algorithms import model as model_lib

    c = 1.0 if chosen["winner"] == 0 else 10.0  # the second strength is 0.1x the first
    sk = LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(x, y)
    loaded, serve = model_lib.load(done.model_dir)
    ours = model_lib.predict(serve, x.astype(np.float32))
    np.testing.assert_allclose(ours, sk.predict_proba(x)[:, 1], atol=1e-4)
    del loaded


def test_a_job_whose_polish_is_skipped_keeps_the_trained_model(
    job: RunJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polish, "MAX_WORK", 10)
    x, y = _standardised(load_iris)
    done = job(
        "linear-learner",
        {"predictor_type": "multiclass_classifier", "epochs": "3", "test_split": "0"},
        {"train": csv_text(x, y)},
    )
    assert done.code == 0, done.failure
    record = done.evaluation()["model_selection"]["polish"]
    assert record["ran"] is False and record["iterations"] == 0
    assert record["reason"].startswith("skipped: rows x features x units = ")
    assert record["folds"]["converged"] == 0
    assert "kept the trained weights, polish skipped" in done.stdout
