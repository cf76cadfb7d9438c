"""What a console draws for an evaluated split (``document[split]["analysis"]``), in numpy.

* binary: score histograms of each class over 50 equal bins of [0, 1]; the ROC curve (its
  points as scikit-learn's ``roc_curve`` gives them, collinear ones dropped, from (0, 0) to
  (1, 1)); the precision-recall curve as ``[recall, precision]`` from (0, 1) towards full
  recall (scikit-learn's ``precision_recall_curve``, reversed); each curve thinned to at most
  ``MAX_CURVE_POINTS`` evenly spaced points, its ends kept. ``auc`` is the metrics' AUC.
* multiclass: the labels, the confusion matrix and the per-class table of the metrics.
* regression: a histogram of the residuals (actual - predicted), ``[actual, predicted]``
  pairs (a seeded sample of at most ``MAX_SCATTER_POINTS``), the RMSE and the RMSE of
  predicting the training labels' mean (both in the labels' units).

``sample_rows`` is the one seeded sample: the scatter and ``evaluation_scores.json`` use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.algorithms.evaluation import roc_auc

HISTOGRAM_BINS = 50
MAX_CURVE_POINTS = 512
MAX_SCATTER_POINTS = 2000
MAX_SCORE_ROWS = 10_000
"""Rows per split in ``evaluation_scores.json`` (a seeded sample past that)."""


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Row indices, in order: all of them, or ``limit`` drawn without replacement by ``seed``."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _thin(points: np.ndarray, limit: int) -> np.ndarray:
    if len(points) <= limit:
        return points
    keep = np.unique(np.round(np.linspace(0, len(points) - 1, limit)).astype(int))
    thinned: np.ndarray = points[keep]
    return thinned


def _counts(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each distinct score, highest first (``score >= it``)."""
    order = np.argsort(-scores, kind="mergesort")
    s, yy = scores[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(yy)[last].astype(np.float64)
    return tps, 1.0 + last - tps


def roc_points(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``[[fpr, tpr], ...]`` from (0, 0) to (1, 1); the diagonal when one class is missing."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, np.float64)
    pos = int(y.sum())
    if len(y) == 0 or pos == 0 or pos == len(y):
        return np.array([[0.0, 0.0], [1.0, 1.0]])
    tps, fps = _counts(y, scores)
    if len(tps) > 2:  # scikit-learn's drop_intermediate: collinear points go
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        tps, fps = tps[keep], fps[keep]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return np.column_stack([fps / fps[-1], tps / tps[-1]])


def pr_points(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``[[recall, precision], ...]``: (0, 1), then each distinct score from the highest."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, np.float64)
    if len(y) == 0:
        return np.array([[0.0, 1.0]])
    tps, fps = _counts(y, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.zeros_like(tps)
    return np.vstack([[0.0, 1.0], np.column_stack([recall, precision])])


def binary_analysis(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    y, scores = np.asarray(y).astype(int), np.asarray(scores, np.float64)
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    clipped = np.clip(scores, 0.0, 1.0)
    negative, _ = np.histogram(clipped[y == 0], bins=edges)
    positive, _ = np.histogram(clipped[y == 1], bins=edges)
    return {
        "kind": "binary",
        "histogram": {
            "edges": edges.tolist(),
            "negative": negative.astype(int).tolist(),
            "positive": positive.astype(int).tolist(),
        },
        "roc": _thin(roc_points(y, scores), MAX_CURVE_POINTS).tolist(),
        "pr": _thin(pr_points(y, scores), MAX_CURVE_POINTS).tolist(),
        "auc": roc_auc(y, scores),
    }


def multiclass_analysis(metrics: dict[str, Any]) -> dict[str, Any]:
    """From ``evaluation.multiclass_metrics``' result (labels are the class indices)."""
    return {
        "kind": "multiclass",
        "labels": [c["label"] for c in metrics["per_class"]],
        "confusion_matrix": metrics["confusion_matrix"],
        "per_class": metrics["per_class"],
    }


def regression_analysis(
    y: np.ndarray, pred: np.ndarray, train_mean: float, seed: int
) -> dict[str, Any]:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    residuals = y - pred
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    rows = sample_rows(len(y), MAX_SCATTER_POINTS, seed)
    return {
        "kind": "regression",
        "residuals": {"edges": edges.tolist(), "counts": counts.astype(int).tolist()},
        "scatter": np.column_stack([y[rows], pred[rows]]).tolist(),
        "rmse": float(np.sqrt(np.mean(residuals**2))) if len(y) else 0.0,
        "baseline_rmse": float(np.sqrt(np.mean((y - train_mean) ** 2))) if len(y) else 0.0,
    }


def score_rows(y: np.ndarray, scores: np.ndarray, seed: int) -> dict[str, Any]:
    """One split's part of ``evaluation_scores.json``: labels and scores (sampled past
    ``MAX_SCORE_ROWS``) and how many rows the split has."""
    rows = sample_rows(len(y), MAX_SCORE_ROWS, seed)
    return {
        "labels": np.asarray(y).astype(int)[rows].tolist(),
        "scores": np.asarray(scores, np.float64)[rows].tolist(),
        "rows": len(y),
        "seed": seed,
    }
