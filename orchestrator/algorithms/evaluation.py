"""Evaluation metrics and the binary score threshold, in numpy (no scikit-learn at runtime).

Each metric follows scikit-learn's definition (the tests compare them): precision, recall
and F1 are 0 where undefined; R² is 1 for a perfect fit of a constant target and 0 otherwise;
log loss clips probabilities to ``[eps, 1 - eps]``; AUC is the Mann-Whitney statistic with
ties counted as one half. The confusion matrix puts true classes in rows, predictions in
columns (binary: ``[[tn, fp], [fn, tp]]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    err = pred - y
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": r2,
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; 0.5 when only one class is present."""
    y = np.asarray(y) == 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranked = np.asarray(scores, np.float64)[order]
    ranks = np.empty(len(ranked))
    # average ranks (1-based) over runs of equal scores
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    for s, e in zip(starts, ends, strict=True):
        ranks[s:e] = (s + e + 1) / 2.0
    rank_of = np.empty(len(ranked))
    rank_of[order] = ranks
    return float((rank_of[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Cross-entropy; ``probs`` is P(class 1) [n] or per-class probabilities [n, k]."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(y).astype(int)
    if probs.ndim == 1:
        probs = np.column_stack([1.0 - probs, probs])
    probs = np.clip(probs, _EPS, 1.0 - _EPS)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (np.asarray(y).astype(int), np.asarray(pred).astype(int)), 1)
    return out


def binary_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    y = np.asarray(y).astype(int)
    # compared in float64, as choose_threshold counts: float32 scores would round the
    # threshold to float32 first (NumPy 2), and the API's threshold route reads them as float64
    pred = (np.asarray(scores, np.float64) >= threshold).astype(int)
    cm = confusion_matrix(y, pred, 2)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, len(y)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": roc_auc(y, scores),
        "log_loss": log_loss(y, scores),
        "threshold": float(threshold),
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "confusion_matrix": cm.tolist(),
    }


def multiclass_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    y = np.asarray(y).astype(int)
    probs = np.asarray(probs, np.float64)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.array([_ratio(t, p) for t, p in zip(tp, predicted, strict=True)])
    recall = np.array([_ratio(t, s) for t, s in zip(tp, support, strict=True)])
    f1 = np.array([_ratio(2 * t, p + s) for t, p, s in zip(tp, predicted, support, strict=True)])
    # like scikit-learn's f1_score(average=...), over the classes present in y or predictions
    present = (support + predicted) > 0
    return {
        "accuracy": _ratio(float(tp.sum()), len(y)),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": _ratio(float((f1 * support).sum()), float(support.sum())),
        "log_loss": log_loss(y, probs),
        "per_class": [
            {
                "label": c,
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(k)
        ],
        "confusion_matrix": cm.tolist(),
    }


def choose_threshold(
    y: np.ndarray,
    scores: np.ndarray,
    criterion: str,
    target_recall: float = 0.8,
    target_precision: float = 0.8,
) -> float:
    """The score threshold (predict 1 when ``score >= threshold``) best for ``criterion``.

    Candidates lie midway between consecutive distinct scores (and 0, everything positive).
    ``precision_at_target_recall`` maximises precision among thresholds whose recall reaches
    the target; ``recall_at_target_precision`` maximises recall among those whose precision
    reaches it, or, when none does, takes the most precise threshold. Ties go to the
    threshold nearest 0.5.
    """
    y = np.asarray(y).astype(int)
    s = np.asarray(scores, np.float64)
    distinct = np.unique(s)[::-1]  # descending
    # threshold i makes every score >= distinct[i] positive
    cuts = np.r_[(distinct[:-1] + distinct[1:]) / 2.0, 0.0]
    order = np.argsort(-s, kind="mergesort")
    sorted_s, sorted_y = s[order], y[order]
    last = np.searchsorted(-sorted_s, -distinct, side="right")  # count of scores >= distinct
    tp = np.cumsum(sorted_y)[last - 1].astype(np.float64)
    fp = last - tp
    pos = float(y.sum())
    neg = len(y) - pos
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    recall = tp / pos if pos > 0 else np.zeros_like(tp)
    if criterion == "accuracy":
        value = (tp + (neg - fp)) / len(y)
    elif criterion == "f1":
        value = np.where(tp > 0, 2 * tp / (2 * tp + fp + (pos - tp)), 0.0)
    elif criterion == "precision_at_target_recall":
        value = np.where(recall >= target_recall - 1e-12, precision, -1.0)
    elif criterion == "recall_at_target_precision":
        ok = precision >= target_precision - 1e-12
        value = np.where(ok, recall, -1.0) if ok.any() else precision
    else:
        raise ValueError(f"unknown threshold criterion {criterion!r}")
    best = np.flatnonzero(value >= value.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])
