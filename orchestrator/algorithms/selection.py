"""linear-learner's model selection: the configurations trained side by side, and the winner.

Like SageMaker's linear learner (``num_models``), one job trains several models at once: the
first exactly as the hyperparameters say, the others with nearby learning rates and L2
strengths. Each keeps its weights from its best epoch (lowest loss on the selection set);
the winner is the best on that set by the objective SageMaker selects on for the predictor
type: the squared error for a regressor, ``binary_classifier_model_selection_criteria`` at
its best threshold for a binary classifier, accuracy for a multiclass classifier. Ties go to
the lower loss, then to the earlier model (the given configuration first). A winner other
than the given configuration is kept only when its per-row loss on the selection set beats
the given one's by more than one standard error of the paired difference (the
one-standard-error rule): on a small validation set the best of several is otherwise often
best by chance. numpy only.

With ``l2=auto`` (the default) the L2 strengths are a grid scaled to the rows trained on:
first scikit-learn's default strength in this scaling (the loss is the mean over rows plus
``l2 * |w|^2``, so LogisticRegression's ``C=1`` is ``l2 = 1 / (2 n)`` and Ridge's
``alpha=1`` is ``l2 = 1 / n``), then 0.1x, 10x, ... of it, all at the given learning rate
(past eight models, at 0.3x, 3x and 0.1x of it too). Without a validation channel the
winner is chosen by k-fold cross-validation (``parallel.cross_validate``) with a
two-standard-error rule: the folds' models share most of their rows, so the per-row
differences are correlated and one naive standard error is too lenient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.algorithms import evaluation
from orchestrator.algorithms.hyperparameters import Hyperparameters

LEARNING_RATE_FACTORS: tuple[float, ...] = (1.0, 0.1, 0.3, 3.0, 0.03, 0.01)
L2_VALUES: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-5, 1e-1)
L2_AUTO_FACTORS: tuple[float, ...] = (1.0, 0.1, 10.0, 0.01, 100.0, 0.3, 3.0, 0.001)
AUTO_RATE_FACTORS: tuple[float, ...] = (1.0, 0.3, 3.0, 0.1)


def auto_l2(hp: Hyperparameters, rows: int) -> float:
    """scikit-learn's default L2 strength for ``rows`` rows, per row (see the module)."""
    return (1.0 if hp.predictor_type == "regressor" else 0.5) / max(rows, 1)


@dataclass(frozen=True)
class Candidate:
    """One model of the parallel set: its learning rate and L2 strength."""

    learning_rate: float
    l2: float


def candidates(hp: Hyperparameters, rows: int = 1) -> list[Candidate]:
    """``hp.num_models`` configurations, the given one first, then a spread of neighbours.

    The grid is learning rate x (given factor) by L2 (the given value first), walked by
    anti-diagonals so that any prefix mixes both directions rather than varying one. With
    ``l2=auto`` it is the L2 grid for ``rows`` rows at the given rate, then at other rates.
    """
    if hp.l2_auto:
        base = auto_l2(hp, rows)
        return [
            Candidate(hp.learning_rate * f, base * g)
            for f in AUTO_RATE_FACTORS
            for g in L2_AUTO_FACTORS
        ][: hp.num_models]
    l2s = [hp.l2, *(v for v in L2_VALUES if v != hp.l2)]
    if hp.l2 != 0.0:
        l2s.append(0.0)
    rates = [hp.learning_rate * f for f in LEARNING_RATE_FACTORS]
    grid = [(i, j) for i in range(len(rates)) for j in range(len(l2s))]
    grid.sort(key=lambda ij: (ij[0] + ij[1], ij[0]))
    return [Candidate(rates[i], l2s[j]) for i, j in grid[: hp.num_models]]


def criterion(hp: Hyperparameters) -> str:
    """The name of what the winner is chosen by (recorded in the job's output)."""
    if hp.predictor_type == "regressor":
        return "mse"
    if hp.predictor_type == "binary_classifier":
        return hp.binary_classifier_model_selection_criteria
    return "accuracy"


def objective(hp: Hyperparameters, y: np.ndarray, scores: np.ndarray) -> float:
    """The selection objective of one model's ``scores`` on ``y``; higher is better.

    ``scores`` are predictions in the label's units (regressor), P(1) (binary) or class
    probabilities (multiclass). A regressor's is the negated mean squared error.
    """
    if hp.predictor_type == "regressor":
        return -float(np.mean((np.asarray(scores, np.float64) - y) ** 2))
    if hp.predictor_type == "multiclass_classifier":
        return float(np.mean(np.asarray(scores).argmax(axis=1) == y))
    wanted = hp.binary_classifier_model_selection_criteria
    threshold = evaluation.choose_threshold(
        y, scores, wanted, hp.target_recall, hp.target_precision
    )
    m = evaluation.binary_metrics(y, scores, threshold)
    if wanted == "precision_at_target_recall":
        return float(m["precision"]) if m["recall"] >= hp.target_recall - 1e-12 else -1.0
    if wanted == "recall_at_target_precision":
        return float(m["recall"]) if m["precision"] >= hp.target_precision - 1e-12 else -1.0
    return float(m[wanted])


def winner(objectives: list[float], losses: list[float]) -> int:
    """The index of the best model: highest objective, then lowest loss, then first.

    A model that diverged (NaN) loses to every finite one.
    """

    def key(i: int) -> tuple[float, float, int]:
        obj, loss = objectives[i], losses[i]
        return (-obj if np.isfinite(obj) else np.inf, loss if np.isfinite(loss) else np.inf, i)

    return min(range(len(objectives)), key=key)


def clearly_better(given: np.ndarray, other: np.ndarray, errors: float = 1.0) -> bool:
    """Whether ``other``'s per-row losses beat ``given``'s by more than ``errors`` standard
    errors of the paired difference."""
    diff = np.asarray(given, np.float64) - np.asarray(other, np.float64)
    if len(diff) < 2 or not np.all(np.isfinite(diff)):
        return bool(np.all(np.isfinite(other)) and not np.all(np.isfinite(given)))
    return bool(diff.mean() > errors * diff.std(ddof=1) / np.sqrt(len(diff)))
