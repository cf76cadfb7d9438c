"""The evaluation analysis (what a console draws) against scikit-learn on the same scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as sk

from orchestrator.algorithms import analysis, evaluation


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _binary(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, size=n)
    scores = np.clip(y * 0.35 + rng.uniform(size=n) * 0.65, 0, 1)
    scores[:20] = 0.5  # ties
    scores[20:25] = np.round(scores[20:25], 1)
    return y, scores


def test_roc_is_scikit_learns_curve_and_its_area_the_metrics_auc(
    rng: np.random.Generator,
) -> None:
    y, scores = _binary(rng, 300)
    fpr, tpr, _ = sk.roc_curve(y, scores)
    got = np.array(analysis.roc_points(y, scores))
    np.testing.assert_allclose(got, np.column_stack([fpr, tpr]), rtol=0, atol=1e-12)
    doc = analysis.binary_analysis(y, scores)
    assert doc["kind"] == "binary"
    assert doc["roc"][0] == [0.0, 0.0] and doc["roc"][-1] == [1.0, 1.0]
    assert doc["auc"] == evaluation.binary_metrics(y, scores, 0.5)["auc"]
    assert doc["auc"] == pytest.approx(sk.auc(fpr, tpr), rel=1e-12)
    roc = np.array(doc["roc"])
    assert np.trapezoid(roc[:, 1], roc[:, 0]) == pytest.approx(doc["auc"], rel=1e-12)


def test_pr_is_scikit_learns_curve_from_no_recall(rng: np.random.Generator) -> None:
    y, scores = _binary(rng, 300)
    precision, recall, _ = sk.precision_recall_curve(y, scores)
    want = np.column_stack([recall, precision])[::-1]  # scikit-learn's runs from full recall
    got = np.array(analysis.binary_analysis(y, scores)["pr"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got[0].tolist() == [0.0, 1.0] and got[-1][0] == 1.0


def test_curves_are_thinned_to_512_points_keeping_their_ends(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, size=20_000)
    scores = np.clip(y * 0.2 + rng.uniform(size=20_000) * 0.8, 0, 1)
    doc = analysis.binary_analysis(y, scores)
    fpr, tpr, _ = sk.roc_curve(y, scores)
    assert len(fpr) > analysis.MAX_CURVE_POINTS
    assert 2 <= len(doc["roc"]) <= 512 and 2 <= len(doc["pr"]) <= 512
    assert doc["roc"][0] == [0.0, 0.0] and doc["roc"][-1] == [1.0, 1.0]
    full = {(a, b) for a, b in zip(fpr.tolist(), tpr.tolist(), strict=True)}
    assert all((a, b) in full for a, b in doc["roc"])  # a subset of the full curve
    precision, recall, _ = sk.precision_recall_curve(y, scores)
    assert doc["pr"][-1] == pytest.approx([recall[0], precision[0]], abs=1e-12)
    # thinning costs the area little
    roc = np.array(doc["roc"])
    assert np.trapezoid(roc[:, 1], roc[:, 0]) == pytest.approx(doc["auc"], abs=2e-3)


def test_histogram_counts_each_class_over_fifty_bins(rng: np.random.Generator) -> None:
    y, scores = _binary(rng, 500)
    scores[-1], y[-1] = 1.0, 1  # the last bin holds 1.0
    hist = analysis.binary_analysis(y, scores)["histogram"]
    assert len(hist["edges"]) == 51 and hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0
    assert len(hist["negative"]) == len(hist["positive"]) == 50
    assert sum(hist["negative"]) == int((y == 0).sum())
    assert sum(hist["positive"]) == int((y == 1).sum())
    want, _ = np.histogram(scores[y == 1], bins=np.linspace(0, 1, 51))
    assert hist["positive"] == want.tolist()


def test_one_class_gives_the_diagonal(rng: np.random.Generator) -> None:
    y = np.ones(10, dtype=int)
    doc = analysis.binary_analysis(y, rng.uniform(size=10))
    assert doc["roc"] == [[0.0, 0.0], [1.0, 1.0]] and doc["auc"] == 0.5
    json.dumps(doc)


def test_multiclass_is_the_metrics_matrix_and_table(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, size=200)
    probs = rng.dirichlet([1, 1, 1], size=200)
    probs[np.arange(200), y] += 0.4
    probs /= probs.sum(axis=1, keepdims=True)
    metrics = evaluation.multiclass_metrics(y, probs)
    doc = analysis.multiclass_analysis(metrics)
    pred = probs.argmax(axis=1)
    assert doc["kind"] == "multiclass" and doc["labels"] == [0, 1, 2]
    assert doc["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    for c, row in enumerate(doc["per_class"]):
        assert row["label"] == c and row["support"] == s[c]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[c], r[c], f[c]))


def test_regression_residuals_scatter_and_baseline(rng: np.random.Generator) -> None:
    y = rng.normal(size=5000) * 10 + 3
    pred = y + rng.normal(size=5000)
    doc = analysis.regression_analysis(y, pred, train_mean=2.5, seed=3)
    assert doc["kind"] == "regression"
    assert doc["rmse"] == pytest.approx(evaluation.regression_metrics(y, pred)["rmse"], rel=1e-12)
    assert doc["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-12)
    baseline = np.sqrt(sk.mean_squared_error(y, np.full_like(y, 2.5)))
    assert doc["baseline_rmse"] == pytest.approx(baseline, rel=1e-12)
    res = doc["residuals"]
    assert len(res["edges"]) == len(res["counts"]) + 1 and sum(res["counts"]) == 5000
    assert len(doc["scatter"]) == analysis.MAX_SCATTER_POINTS
    pairs = {(a, b) for a, b in zip(y.tolist(), pred.tolist(), strict=True)}
    assert all((a, b) in pairs for a, b in doc["scatter"])
    again = analysis.regression_analysis(y, pred, train_mean=2.5, seed=3)
    assert again["scatter"] == doc["scatter"]  # deterministic
    small = analysis.regression_analysis(y[:10], pred[:10], train_mean=0.0, seed=3)
    assert small["scatter"] == np.column_stack([y[:10], pred[:10]]).tolist()


def test_score_rows_sample_past_ten_thousand_seeded(rng: np.random.Generator) -> None:
    y, scores = _binary(rng, 12_345)
    part = analysis.score_rows(y, scores, seed=1)
    assert part["rows"] == 12_345 and len(part["labels"]) == len(part["scores"]) == 10_000
    assert part == analysis.score_rows(y, scores, seed=1)
    assert part != analysis.score_rows(y, scores, seed=2)
    small = analysis.score_rows(y[:50], scores[:50], seed=1)
    assert small["labels"] == y[:50].tolist() and small["scores"] == scores[:50].tolist()
