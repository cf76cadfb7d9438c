"""Every metric against scikit-learn's on the same predictions; threshold selection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from orchestrator.algorithms import evaluation


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def test_regression_metrics(rng: np.random.Generator) -> None:
    y = rng.normal(size=200) * 10 + 3
    pred = y + rng.normal(size=200)
    got = evaluation.regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-12)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-12)
    assert got["r2"] == pytest.approx(sk.r2_score(y, pred), rel=1e-12)
    const = np.full(5, 2.0)
    assert evaluation.regression_metrics(const, const)["r2"] == sk.r2_score(const, const)
    assert evaluation.regression_metrics(const, const + 1)["r2"] == sk.r2_score(const, const + 1)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_binary_metrics(rng: np.random.Generator, threshold: float) -> None:
    y = rng.integers(0, 2, size=300)
    scores = np.clip(y * 0.3 + rng.uniform(size=300) * 0.7, 0, 1)
    scores[:10] = 0.5  # ties
    got = evaluation.binary_metrics(y, scores, threshold)
    pred = (scores >= threshold).astype(int)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred, zero_division=0))
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred, zero_division=0))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, zero_division=0))
    assert got["auc"] == pytest.approx(sk.roc_auc_score(y, scores), rel=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, scores), rel=1e-9)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    tn, fp, fn, tp = sk.confusion_matrix(y, pred).ravel()
    assert (got["true_negatives"], got["false_positives"]) == (tn, fp)
    assert (got["false_negatives"], got["true_positives"]) == (fn, tp)
    assert got["threshold"] == threshold


def test_binary_metrics_degenerate() -> None:
    y = np.array([0, 0, 1, 1])
    got = evaluation.binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.4]), 0.9)  # all negative
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)
    assert got["auc"] == 1.0
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, [0.1, 0.2, 0.3, 0.4]))
    saturated = np.array([0.0, 0.0, 1.0, 1.0])
    assert evaluation.log_loss(y, saturated) == pytest.approx(sk.log_loss(y, saturated))


def test_multiclass_metrics(rng: np.random.Generator) -> None:
    k = 4
    y = rng.integers(0, k, size=400)
    logits = rng.normal(size=(400, k)) + np.eye(k)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = evaluation.multiclass_metrics(y, probs)
    pred = probs.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, probs), rel=1e-9)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    precision = sk.precision_score(y, pred, average=None)
    recall = sk.recall_score(y, pred, average=None)
    for c, per in enumerate(got["per_class"]):
        assert per["label"] == c
        assert per["precision"] == pytest.approx(precision[c])
        assert per["recall"] == pytest.approx(recall[c])
        assert per["support"] == int((y == c).sum())


def test_multiclass_class_never_predicted_nor_present() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    got = evaluation.multiclass_metrics(y, probs)
    pred = probs.argmax(axis=1)
    assert got["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    assert got["per_class"][2] == {
        "label": 2,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def best_over_thresholds(y: np.ndarray, scores: np.ndarray, metric: str) -> float:
    values = []
    for t in np.r_[np.unique(scores), 0.0]:
        pred = (scores >= t).astype(int)
        if metric == "accuracy":
            values.append(sk.accuracy_score(y, pred))
        else:
            values.append(sk.f1_score(y, pred, zero_division=0))
    return float(max(values))


@pytest.mark.parametrize("criterion", ["accuracy", "f1"])
def test_threshold_maximises_the_criterion(rng: np.random.Generator, criterion: str) -> None:
    y = rng.integers(0, 2, size=200)
    scores = np.round(np.clip(y * 0.25 + rng.uniform(size=200) * 0.75, 0, 1), 2)  # many ties
    t = evaluation.choose_threshold(y, scores, criterion)
    pred = (scores >= t).astype(int)
    got = sk.accuracy_score(y, pred) if criterion == "accuracy" else sk.f1_score(y, pred)
    assert got == pytest.approx(best_over_thresholds(y, scores, criterion))


def test_threshold_separable_data_lies_between_the_classes() -> None:
    y = np.array([0, 0, 0, 1, 1])
    t = evaluation.choose_threshold(y, np.array([0.1, 0.2, 0.3, 0.7, 0.9]), "accuracy")
    assert 0.3 < t < 0.7
    assert t == pytest.approx(0.5)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95])
def test_precision_at_target_recall(rng: np.random.Generator, target: float) -> None:
    y = rng.integers(0, 2, size=300)
    scores = np.clip(y * 0.3 + rng.uniform(size=300) * 0.7, 0, 1)
    t = evaluation.choose_threshold(y, scores, "precision_at_target_recall", target_recall=target)
    pred = (scores >= t).astype(int)
    assert sk.recall_score(y, pred) >= target
    precision, recall, _ = sk.precision_recall_curve(y, scores)
    assert sk.precision_score(y, pred) == pytest.approx(precision[recall >= target].max())


@pytest.mark.parametrize("target", [0.7, 0.9])
def test_recall_at_target_precision(rng: np.random.Generator, target: float) -> None:
    y = rng.integers(0, 2, size=300)
    scores = np.clip(y * 0.3 + rng.uniform(size=300) * 0.7, 0, 1)
    t = evaluation.choose_threshold(
        y, scores, "recall_at_target_precision", target_precision=target
    )
    pred = (scores >= t).astype(int)
    assert sk.precision_score(y, pred) >= target
    precision, recall, _ = sk.precision_recall_curve(y, scores)
    reachable = recall[:-1][precision[:-1] >= target]  # the last point is no threshold
    assert sk.recall_score(y, pred) == pytest.approx(reachable.max())


def test_recall_at_target_precision_reachable_and_not() -> None:
    y = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.3])
    t = evaluation.choose_threshold(y, scores, "recall_at_target_precision", target_precision=1.0)
    assert t == pytest.approx(0.85)  # only the top score positive: precision 1, recall 0.5
    # no threshold reaches precision 0.99 here: the most precise one (2 of 3) is taken
    y = np.array([0, 1, 1, 0])
    t = evaluation.choose_threshold(y, scores, "recall_at_target_precision", target_precision=0.99)
    assert t == pytest.approx(0.35)
