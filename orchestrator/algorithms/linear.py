"""linear-learner's training: ``num_models`` in parallel, the best kept, then maybe a refit.

When the validation rows were split off train (no validation channel), the chosen
configuration is trained again on train plus validation for the winner's best epoch count,
so no labelled row is left unused; the validation metrics reported are then the chosen
model's from before the refit (the refit model has seen those rows). With a validation
channel the chosen model is kept as trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np

from orchestrator.algorithms import evaluation, parallel, polish, selection
from orchestrator.algorithms import model as model_lib
from orchestrator.algorithms.data import Dataset
from orchestrator.algorithms.hyperparameters import Hyperparameters


@dataclass
class Fitted:
    network: keras.Model
    scaling: model_lib.Scaling
    epochs: int  # epochs the parallel models ran
    selection: dict[str, Any]  # the evaluation document's model_selection
    held_out: np.ndarray | None  # validation scores of the chosen model, before any refit
    refit_on: Dataset | None  # train + validation when refit
    threshold: float | None = None  # a binary classifier's, when chosen here


def fit(
    hp: Hyperparameters,
    train: Dataset,
    validation: Dataset | None,
    *,
    validation_given: bool,
    num_classes: int,
    emit: Callable[[str, float], None],
    log: Callable[[str], None],
) -> Fitted:
    if not validation_given:
        everything = train if validation is None else _concat(train, validation)
        k = min(CV_FOLDS, len(everything))
        if k >= 2:
            return _fit_cross_validated(
                hp, everything, len(train), k, num_classes=num_classes, emit=emit, log=log
            )
    cands = selection.candidates(hp, len(train))
    units = num_classes if hp.predictor_type == "multiclass_classifier" else 1
    scaling = model_lib.label_scaling(hp, train.y)
    norm = parallel.normaliser(hp, train.x)

    def target(y: np.ndarray) -> np.ndarray:
        return target_of(scaling, y)

    chooser = validation if validation is not None else train
    train_xy = (norm(train.x), target(train.y))
    chooser_xy = (norm(chooser.x), target(chooser.y))
    trained = parallel.train(
        hp,
        cands,
        units,
        train_xy,
        chooser_xy,
        selection_is_validation=validation is not None,
        emit=emit,
    )
    each: list[polish.Polished] = []
    if POLISH_CANDIDATES:
        each = [
            polish.polish(
                hp.predictor_type,
                *train_xy,
                trained.kernels[i],
                trained.biases[i],
                l2=c.l2,
                l1=hp.l1,
            )
            for i, c in enumerate(cands)
        ]
        kernels = np.stack([p.kernel for p in each])
        biases = np.stack([p.bias for p in each])
        with np.errstate(all="ignore"):
            losses = parallel.losses_of(
                hp.predictor_type, parallel.logits_of(kernels, biases, chooser_xy[0]), chooser_xy[1]
            )
        trained = replace(
            trained,
            kernels=kernels,
            biases=biases,
            best_losses=[float(v) if np.isfinite(v) else np.inf for v in losses],
        )
        log(
            f"linear-learner: polished {sum(p.ran for p in each)} of {len(each)} models "
            f"(L-BFGS-B, {sum(p.iterations for p in each)} iterations in all) before scoring them"
        )
    with np.errstate(all="ignore"):  # a model that diverged scores inf/NaN and loses
        logits = parallel.logits_of(trained.kernels, trained.biases, norm(chooser.x))
        scores = parallel.scores_of(hp.predictor_type, logits, scaling)
        objectives = [selection.objective(hp, chooser.y, scores[:, i]) for i in range(len(cands))]
    best = selection.winner(objectives, trained.best_losses)
    if best != 0 and chooser is validation:
        rows = parallel.row_losses(hp.predictor_type, logits, target(chooser.y))
        if not selection.clearly_better(rows[:, 0], rows[:, best]):
            log(
                f"linear-learner: model {best + 1} was best on validation but not by more than "
                "a standard error; keeping the given configuration"
            )
            best = 0
    chosen, epochs = cands[best], max(trained.best_epochs[best], 1)
    chosen_hp = replace(hp, learning_rate=chosen.learning_rate, l2=chosen.l2, num_models=1)
    network = model_lib.build(chosen_hp, train.x, num_classes)
    if each:
        polished = each[best]
        _log_polish(log, polished)
    else:
        polished = _polish(
            hp, train_xy, trained.kernels[best], trained.biases[best], chosen.l2, log=log
        )
    _set_weights(network, polished)
    criterion = selection.criterion(hp)
    on = "validation" if validation is not None else "train"
    log(
        f"linear-learner: model {best + 1} of {len(cands)} chosen by {on} {criterion} "
        f"{_abs(criterion, objectives[best]):.6g}: learning rate {chosen.learning_rate:.6g}, "
        f"L2 {chosen.l2:.6g}, best epoch {epochs}"
    )
    document: dict[str, Any] = {
        "num_models": len(cands),
        "criterion": criterion,
        "selected_on": on,
        "winner": best,
        "learning_rate": chosen.learning_rate,
        "l2": chosen.l2,
        "epochs": epochs,
        "averaged_weights": trained.averaged[best],
        "models": [
            {
                "learning_rate": c.learning_rate,
                "l2": c.l2,
                "best_epoch": trained.best_epochs[i],
                "loss": trained.best_losses[i],
                criterion: _abs(criterion, objectives[i]),
            }
            for i, c in enumerate(cands)
        ],
        "refit": None,
        "polish": {**polished.document(), "rows": len(train)},
    }
    held_out = scores[:, best] if validation is not None else None
    refit_on = None
    if validation is not None and not validation_given:
        refit_on = _concat(train, validation)
        refit_hp = replace(chosen_hp, epochs=epochs, early_stopping_patience=0)
        model_lib.seed_everything(hp.seed)
        scaling = model_lib.label_scaling(refit_hp, refit_on.y)
        norm = parallel.normaliser(refit_hp, refit_on.x)
        xy = (norm(refit_on.x), target_of(scaling, refit_on.y))
        # the same trainer (and weight averaging) as the selection run, one model; no
        # per-epoch lines: the job's time series are the selection run's
        again = parallel.train(
            refit_hp,
            [chosen],
            units,
            xy,
            xy,
            selection_is_validation=False,
            emit=_quiet,
            averaged=[trained.averaged[best]],
        )
        network = model_lib.build(refit_hp, refit_on.x, num_classes)
        polished = _polish(hp, xy, again.kernels[0], again.biases[0], chosen.l2, log=log)
        _set_weights(network, polished)
        document["polish"] = {**polished.document(), "rows": len(refit_on)}
        document["refit"] = {"rows": len(refit_on), "epochs": epochs}
        log(f"linear-learner: refit on train+validation ({len(refit_on)} rows) for {epochs} epochs")
    return Fitted(network, scaling, trained.epochs_run, document, held_out, refit_on)


CV_FOLDS = 5
CV_STANDARD_ERRORS = 2.0
# polish every candidate (each fold's models, or each model on train when a validation set
# chooses) before it is scored, so that selection compares converged models
POLISH_CANDIDATES = True


def _polish(
    hp: Hyperparameters,
    xy: tuple[np.ndarray, np.ndarray],
    kernel: np.ndarray,
    bias: np.ndarray,
    l2: float,
    *,
    log: Callable[[str], None],
) -> polish.Polished:
    """The chosen model polished on the rows it was trained on (``xy``, as trained)."""
    done = polish.polish(hp.predictor_type, xy[0], xy[1], kernel, bias, l2=l2, l1=hp.l1)
    _log_polish(log, done)
    return done


def _log_polish(log: Callable[[str], None], done: polish.Polished) -> None:
    if done.ran:
        log(
            f"linear-learner: polished the chosen model to its optimum (L-BFGS-B, "
            f"{done.iterations} iterations): objective {done.start:.8g} -> {done.value:.8g}"
        )
    else:
        log(f"linear-learner: kept the trained weights, polish {done.reason}")


def _set_weights(network: keras.Model, polished: polish.Polished) -> None:
    network.layers[-1].set_weights(
        [polished.kernel.astype(np.float32), polished.bias.astype(np.float32)]
    )


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(
        np.concatenate([a.x, b.x]),
        np.concatenate([a.y, b.y]),
        a.feature_names,
        a.label_name,
        a.origins + b.origins,
    )


def _fit_cross_validated(
    hp: Hyperparameters,
    rows: Dataset,
    train_rows: int,
    k: int,
    *,
    num_classes: int,
    emit: Callable[[str, float], None],
    log: Callable[[str], None],
) -> Fitted:
    """Choose by ``k``-fold cross-validation over ``rows`` (train first, then validation)."""
    cands = selection.candidates(hp, len(rows))
    units = num_classes if hp.predictor_type == "multiclass_classifier" else 1
    scaling = model_lib.label_scaling(hp, rows.y)
    norm = parallel.normaliser(hp, rows.x)
    folds = parallel.assign_folds(hp.predictor_type, rows.y, k, hp.seed)
    xy = (norm(rows.x), target_of(scaling, rows.y))
    cv = parallel.cross_validate(hp, cands, units, xy, folds, emit=emit)
    folds_polished: dict[str, object] | None = None
    if POLISH_CANDIDATES:
        # selection then compares each configuration's converged models, not how far
        # mini-batch training got with each L2 strength
        done = polish.polish_folds(
            hp.predictor_type, xy, folds, cv, [c.l2 for c in cands], l1=hp.l1
        )
        cv, folds_polished = done.cv, done.document()
        log(
            f"linear-learner: polished {done.converged} of {done.models} fold models "
            f"(L-BFGS-B, {done.iterations} iterations in all) before scoring them"
        )
    with np.errstate(all="ignore"):  # a model that diverged scores inf/NaN and loses
        scores = parallel.scores_of(hp.predictor_type, cv.logits, scaling)
        objectives = [selection.objective(hp, rows.y, scores[:, i]) for i in range(len(cands))]
    losses = [v if np.isfinite(v) else np.inf for v in cv.best_losses]
    best = min(range(len(cands)), key=lambda i: (losses[i], i))
    if best != 0 and not selection.clearly_better(
        cv.row_losses[:, 0], cv.row_losses[:, best], CV_STANDARD_ERRORS
    ):
        log(
            f"linear-learner: model {best + 1} had the lowest cross-validation loss but not by "
            f"more than {CV_STANDARD_ERRORS:g} standard errors; keeping the first configuration"
        )
        best = 0
    chosen, epochs = cands[best], max(cv.best_epochs[best], 1)
    chosen_hp = replace(hp, learning_rate=chosen.learning_rate, l2=chosen.l2, num_models=1)
    network = model_lib.build(chosen_hp, rows.x, num_classes)
    polished = _polish(hp, xy, cv.kernels[best], cv.biases[best], chosen.l2, log=log)
    _set_weights(network, polished)
    criterion = selection.criterion(hp)
    log(
        f"linear-learner: model {best + 1} of {len(cands)} chosen by {k}-fold cross-validation "
        f"loss {cv.best_losses[best]:.6g} ({criterion} {_abs(criterion, objectives[best]):.6g}): "
        f"learning rate {chosen.learning_rate:.6g}, L2 {chosen.l2:.6g}, best epoch {epochs}; "
        f"refit on {len(rows)} rows for {epochs} epochs"
    )
    document: dict[str, Any] = {
        "num_models": len(cands),
        "criterion": "loss",
        "selected_on": "cross-validation",
        "folds": k,
        "winner": best,
        "learning_rate": chosen.learning_rate,
        "l2": chosen.l2,
        "epochs": epochs,
        "averaged_weights": False,
        "models": [
            {
                "learning_rate": c.learning_rate,
                "l2": c.l2,
                "best_epoch": cv.best_epochs[i],
                "loss": cv.best_losses[i],
                criterion: _abs(criterion, objectives[i]),
            }
            for i, c in enumerate(cands)
        ],
        "refit": {"rows": len(rows), "epochs": epochs},
        "polish": {**polished.document(), "rows": len(rows), "folds": folds_polished},
    }
    held_out = scores[train_rows:, best] if train_rows < len(rows) else None
    refit_on = rows if train_rows < len(rows) else None
    threshold = None
    if hp.predictor_type == "binary_classifier":
        threshold = out_of_fold_threshold(hp, rows.y, scores[:, best])
        document["threshold_from"] = "out-of-fold scores"
    return Fitted(network, scaling, cv.epochs_run, document, held_out, refit_on, threshold)


def out_of_fold_threshold(hp: Hyperparameters, y: np.ndarray, scores: np.ndarray) -> float:
    """The threshold for ``binary_classifier_model_selection_criteria`` on out-of-fold scores.

    For accuracy, 0.5 (the log loss's own, for calibrated probabilities) is kept unless the
    best threshold's per-row correctness beats it by more than the rule's standard errors:
    the best of hundreds of cuts on a few hundred rows is otherwise best by chance.
    """
    wanted = hp.binary_classifier_model_selection_criteria
    best = evaluation.choose_threshold(y, scores, wanted, hp.target_recall, hp.target_precision)
    if wanted != "accuracy":
        return best
    wrong_half = ((scores >= 0.5) != (y == 1)).astype(np.float64)
    wrong_best = ((scores >= best) != (y == 1)).astype(np.float64)
    return best if selection.clearly_better(wrong_half, wrong_best, CV_STANDARD_ERRORS) else 0.5


def target_of(scaling: model_lib.Scaling, y: np.ndarray) -> np.ndarray:
    return (np.asarray(y, np.float64) - scaling.shift) / scaling.scale


def _quiet(name: str, value: float) -> None:
    pass


def _abs(criterion: str, value: float) -> float:
    """The objective as people read it (``mse`` is negated for maximising)."""
    return -value if criterion == "mse" else value
