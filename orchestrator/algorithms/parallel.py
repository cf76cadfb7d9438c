"""linear-learner's ``num_models`` linear models, trained together inside one Keras model.

The models' weights are stacked along a leading model axis (kernel ``[n, d, k]``, bias
``[n, k]``) in one layer, so an epoch is one pass of batched matrix products for all of them.
The training loss is the sum of the models' losses: their parameters are disjoint, so each
model's gradient is exactly that of its own loss. Each model's L2 is its own term in the
kernel's regulariser. Each model's learning rate is set by a reparameterisation, see
``_scales``. After every epoch each model's loss on the selection set (validation, or train
when there is none) is computed in numpy; a model keeps its weights from its best epoch, and
training stops once no model has improved for ``early_stopping_patience`` epochs. The
optimizer's rate decays over the epochs (``rate_at``). ``cross_validate`` trains every
configuration once per fold and once on all rows, all in the same layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from orchestrator.algorithms.hyperparameters import Hyperparameters
from orchestrator.algorithms.model import Scaling, feature_stats
from orchestrator.algorithms.selection import Candidate


def _scales(hp: Hyperparameters, cands: list[Candidate]) -> np.ndarray:
    """Per-model factors ``s`` such that training ``V`` with ``W = s * V`` runs at its rate.

    One optimizer drives every model, so a per-model learning rate comes from the
    parameterisation: the layer trains ``V`` and uses ``W = s * V``. A step ``u`` on ``V``
    moves ``W`` by ``s * u``. Scaling the gradient instead would be wrong for Adam, whose
    step ``lr * m / sqrt(v)`` does not change when the gradient is scaled. Here Adam's step
    on ``V`` is ``lr * m / sqrt(v)`` whatever the gradient's scale, so ``W`` moves at
    ``s * lr``: ``s`` is the rate's ratio to the optimizer's (exactly Adam at that rate with
    epsilon divided by ``s``, which is negligible). Plain SGD's gradient on ``V`` is ``s * g``
    and its step ``lr * s * g``, so ``W`` moves ``s**2 * lr * g``: ``s`` is the square root.
    """
    ratio = np.array([c.learning_rate / hp.learning_rate for c in cands], np.float64)
    return ratio if hp.optimizer == "adam" else np.sqrt(ratio)


class ParallelLinear(keras.layers.Layer):  # type: ignore[misc]
    """``n`` linear maps of the same input: ``[batch, d] -> [batch, n, units]`` (logits)."""

    def __init__(
        self, init: np.ndarray, scales: np.ndarray, l1: float, l2s: np.ndarray, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._init = init  # effective initial kernels W, [n, d, units]
        self._scales = tf.constant(scales, tf.float32)
        self._l1 = l1
        self._l2s = tf.constant(l2s, tf.float32)

    def build(self, input_shape: Any) -> None:
        n, d, units = self._init.shape
        scales = self._scales.numpy()[:, None, None]
        start = (self._init / scales).astype(np.float32)
        self.kernel = self.add_weight(
            shape=(n, d, units),
            initializer=lambda shape, dtype=None: tf.constant(start),
            regularizer=self._penalty,
            name="kernel",
        )
        self.bias = self.add_weight(shape=(n, units), initializer="zeros", name="bias")

    def _penalty(self, v: tf.Tensor) -> tf.Tensor:
        w = v * self._scales[:, None, None]
        total = tf.reduce_sum(self._l2s * tf.reduce_sum(tf.square(w), axis=[1, 2]))
        if self._l1:
            total += self._l1 * tf.reduce_sum(tf.abs(w))
        return total

    def effective(self) -> tuple[np.ndarray, np.ndarray]:
        """The models' kernels ``[n, d, units]`` and biases ``[n, units]`` as numpy."""
        s = self._scales.numpy().astype(np.float64)
        kernel = np.asarray(self.kernel.numpy(), np.float64) * s[:, None, None]
        return kernel, np.asarray(self.bias.numpy(), np.float64) * s[:, None]

    def call(self, x: tf.Tensor) -> tf.Tensor:
        w = self.kernel * self._scales[:, None, None]
        b = self.bias * self._scales[:, None]
        return tf.einsum("bd,ndk->bnk", x, w) + b[None]


def _loss(
    predictor_type: str, model_folds: np.ndarray | None = None, fractions: np.ndarray | None = None
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Per row, the sum over models of each model's loss on its logits ``[batch, n, units]``.

    With ``model_folds`` (cross-validation), ``y_true`` is ``[batch, 2]``: the target and the
    row's fold; model ``j`` does not train on rows of fold ``model_folds[j]``, and its loss is
    divided by ``fractions[j]`` (the share of rows it trains on) so that it is its mean loss.
    """
    folds = None if model_folds is None else tf.constant(model_folds, tf.float32)
    shares = None if fractions is None else tf.constant(fractions, tf.float32)

    def loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        mask = None
        if folds is not None:
            y_true = tf.reshape(y_true, [-1, 2])
            mask = tf.cast(tf.not_equal(y_true[:, 1:2], folds[None, :]), logits.dtype)
            y_true = y_true[:, 0]
        shape = tf.shape(logits)[:2]
        if predictor_type == "multiclass_classifier":
            labels = tf.broadcast_to(tf.cast(tf.reshape(y_true, [-1, 1]), tf.int32), shape)
            per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        else:
            z = logits[..., 0]
            y = tf.broadcast_to(tf.cast(tf.reshape(y_true, [-1, 1]), z.dtype), shape)
            per = (
                tf.square(z - y)
                if predictor_type == "regressor"
                else tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)
            )
        if mask is not None and shares is not None:
            per = per * mask / shares[None, :]
        return tf.reduce_sum(per, axis=1)

    return loss


def logits_of(kernel: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``[rows, n, units]`` logits of every model on normalised ``x``."""
    return np.asarray(np.einsum("bd,ndk->bnk", x, kernel) + bias[None])


def losses_of(predictor_type: str, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each model's mean data loss (no penalty), like ``_loss``; ``y`` is the trained target."""
    return np.asarray(row_losses(predictor_type, logits, y).mean(axis=0))


def row_losses(predictor_type: str, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[rows, n]``: each row's data loss under each model."""
    if predictor_type == "multiclass_classifier":
        shifted = logits - logits.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        picked = np.take_along_axis(log_probs, y.astype(int)[:, None, None], axis=2)[..., 0]
        return np.asarray(-picked)
    z = logits[..., 0]
    if predictor_type == "regressor":
        return np.asarray((z - y[:, None]) ** 2)
    # log(1 + exp(-|z|)) + max(z, 0) - z * y, stable
    return np.asarray(np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * y[:, None])


def scores_of(predictor_type: str, logits: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Model ``i``'s scores are ``out[:, i]``: predictions, P(1) or class probabilities."""
    if predictor_type == "multiclass_classifier":
        shifted = np.exp(logits - logits.max(axis=2, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=2, keepdims=True))
    z = logits[..., 0]
    if predictor_type == "regressor":
        return np.asarray(z * scaling.scale + scaling.shift)
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass
class Trained:
    """Every model at its best epoch on the selection set."""

    kernels: np.ndarray  # [n, d, units], for normalised features
    biases: np.ndarray  # [n, units]
    best_epochs: list[int]  # 1-based epoch each model's weights come from
    best_losses: list[float]  # its loss on the selection set then
    epochs_run: int
    averaged: list[bool]  # whether the kept weights are the averaged iterate


AVERAGE_DECAY = 0.9
FINAL_RATE = 0.01  # the schedule's last rate, as a share of the first
PLATEAU_TOLERANCE = 1e-3  # a training loss this much (relative) lower is an improvement


def rate_at(hp: Hyperparameters, epoch: int, horizon: int | None = None) -> float:
    """The optimizer's rate in ``epoch`` (0-based): cosine decay over ``horizon`` epochs.

    A constant step leaves the iterate jittering around the optimum; decaying it to a
    small share of the first lets each (convex) model converge within its epochs. A refit
    for fewer epochs passes the selection run's ``horizon`` so it follows the same rates.
    """
    total = max(horizon or hp.epochs, 1)
    progress = min(epoch / total, 1.0)
    return hp.learning_rate * (
        FINAL_RATE + (1 - FINAL_RATE) * 0.5 * (1 + math.cos(math.pi * progress))
    )


class _Schedule(keras.callbacks.Callback):  # type: ignore[misc]
    """Sets the optimizer's rate to ``rate_at`` before each epoch."""

    def __init__(self, hp: Hyperparameters, horizon: int | None) -> None:
        super().__init__()
        self._hp, self._horizon = hp, horizon

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.model.optimizer.learning_rate.assign(rate_at(self._hp, epoch, self._horizon))


def _schedule(hp: Hyperparameters, horizon: int | None) -> keras.callbacks.Callback:
    return _Schedule(hp, horizon)


class _Tracker(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(
        self,
        layer: ParallelLinear,
        hp: Hyperparameters,
        selection: tuple[np.ndarray, np.ndarray],
        is_validation: bool,
        *,
        emit: Callable[[str, float], None],
        averaged: list[bool] | None,
    ) -> None:
        super().__init__()
        self._forced = averaged
        self._layer, self._hp, self._sel, self._is_validation = layer, hp, selection, is_validation
        self._emit = emit
        n = int(layer._init.shape[0])
        self.n = n
        self.kernels, self.biases = layer.effective()
        self.best_epochs = [0] * n
        self.best_losses = [math.inf] * n
        self.averaged = [False] * n
        self.epochs_run = 0
        self._avg: tuple[np.ndarray, np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        with np.errstate(all="ignore"):  # a model that diverged scores inf/NaN and loses
            self._step(epoch, logs or {})

    def _step(self, epoch: int, logs: dict[str, float]) -> None:
        # A constant-step optimizer's iterate jitters around the optimum by about the step
        # size; what is scored and kept is an average of the epochs' iterates instead,
        # weighted in proportion to the epoch number (so early iterates fade fast) until
        # it becomes an exponential one with weight 0.9 on the past: on these convex
        # problems it converges the way Polyak averaging does. While a model is still far
        # from its optimum the average lags behind, so each model is scored both ways and
        # the better one counts (a refit is told which its winner used).
        raw_k, raw_b = self._layer.effective()
        avg_k, avg_b = raw_k, raw_b
        if self._avg is not None:
            keep = min(AVERAGE_DECAY, 1.0 - 2.0 / (epoch + 2))
            avg_k = keep * self._avg[0] + (1.0 - keep) * raw_k
            avg_b = keep * self._avg[1] + (1.0 - keep) * raw_b
        self._avg = (avg_k, avg_b)
        ptype, (sx, sy) = self._hp.predictor_type, self._sel
        raw = losses_of(ptype, logits_of(raw_k, raw_b, sx), sy)
        avg = losses_of(ptype, logits_of(avg_k, avg_b, sx), sy)
        use_avg = np.where(np.isnan(raw), True, avg < raw)
        if self._forced is not None:
            use_avg = np.array(self._forced, bool)
        current = np.where(use_avg, avg, raw)
        keep_last = self._hp.early_stopping_patience == 0  # no early stopping: the last epoch
        for i, value in enumerate(current):
            if keep_last or value < self.best_losses[i]:
                self.best_losses[i], self.best_epochs[i] = float(value), epoch + 1
                self.averaged[i] = bool(use_avg[i])
                self.kernels[i] = avg_k[i] if use_avg[i] else raw_k[i]
                self.biases[i] = avg_b[i] if use_avg[i] else raw_b[i]
        self.epochs_run = epoch + 1
        # the time series stay one line per epoch: the mean model's training loss (its
        # penalty included, like Keras's), and the best model's validation loss
        self._emit("train:loss", float(logs.get("loss", float("nan"))) / self.n)
        if self._is_validation:
            finite = current[np.isfinite(current)]
            self._emit("validation:loss", float(finite.min()) if finite.size else float("nan"))
        patience = self._hp.early_stopping_patience
        if patience > 0 and all(epoch + 1 - b >= patience for b in self.best_epochs):
            self.model.stop_training = True


def normaliser(hp: Hyperparameters, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """What the exported model's Normalization layer does, in numpy, with ``x``'s statistics."""
    if not hp.normalize_data:
        return lambda rows: np.asarray(rows, np.float64)
    mean, variance = feature_stats(x)
    std = np.maximum(np.sqrt(variance), 1e-7)  # keras.layers.Normalization's epsilon floor
    return lambda rows: (np.asarray(rows, np.float64) - mean) / std


def train(
    hp: Hyperparameters,
    cands: list[Candidate],
    units: int,
    train_xy: tuple[np.ndarray, np.ndarray],
    selection: tuple[np.ndarray, np.ndarray],
    *,
    selection_is_validation: bool,
    emit: Callable[[str, float], None],
    averaged: list[bool] | None = None,
    horizon: int | None = None,
) -> Trained:
    """Train ``cands`` side by side on normalised ``train_xy``; targets already scaled.

    ``averaged`` fixes, per model, whether the averaged iterate is kept (else the better);
    ``horizon`` is the epochs the rate schedule spans (``hp.epochs`` unless given).
    """
    x, y = train_xy
    layer, model = _build(hp, cands, x.shape[1], units)
    model.compile(optimizer=_optimizer(hp), loss=_loss(hp.predictor_type))
    tracker = _Tracker(layer, hp, selection, selection_is_validation, emit=emit, averaged=averaged)
    model.fit(
        x.astype(np.float32),
        y.astype(np.float32),
        batch_size=hp.mini_batch_size,
        epochs=hp.epochs,
        shuffle=hp.shuffle,
        callbacks=[_schedule(hp, horizon), tracker],
        verbose=0,
    )
    return Trained(
        tracker.kernels,
        tracker.biases,
        tracker.best_epochs,
        tracker.best_losses,
        tracker.epochs_run,
        tracker.averaged,
    )


def _build(
    hp: Hyperparameters, cands: list[Candidate], d: int, units: int
) -> tuple[ParallelLinear, keras.Model]:
    rng = np.random.default_rng(hp.seed)
    limit = math.sqrt(6.0 / (d + units))  # Glorot uniform, like keras.layers.Dense
    layer = ParallelLinear(
        rng.uniform(-limit, limit, size=(len(cands), d, units)),
        _scales(hp, cands),
        hp.l1,
        np.array([c.l2 for c in cands], np.float64),
    )
    inputs = keras.Input(shape=(d,), dtype="float32")
    return layer, keras.Model(inputs, layer(inputs), name="linear_learner_parallel")


def _optimizer(hp: Hyperparameters) -> keras.optimizers.Optimizer:
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(hp.learning_rate)
    return keras.optimizers.SGD(hp.learning_rate)


def assign_folds(predictor_type: str, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each row's fold in ``0..k-1``: shuffled, and for a classifier dealt class by class."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    folds = np.empty(len(y), np.int64)
    if predictor_type == "regressor":
        folds[order] = np.arange(len(y)) % k
        return folds
    start = 0
    for label in np.unique(y):
        rows = order[y[order] == label]
        folds[rows] = (start + np.arange(len(rows))) % k
        start += len(rows)
    return folds


@dataclass
class CrossValidated:
    """Each configuration's cross-validation at its best epoch, and its model on all rows."""

    row_losses: np.ndarray  # [rows, m]: each row's loss under its fold's model
    logits: np.ndarray  # [rows, m, units]: out-of-fold logits
    kernels: np.ndarray  # [m, d, units]: the all-rows models at that epoch
    biases: np.ndarray  # [m, units]
    best_epochs: list[int]
    best_losses: list[float]  # mean out-of-fold loss
    epochs_run: int
    fold_kernels: np.ndarray  # [k * m, d, units]: model ``f * m + c`` is ``c`` without fold f
    fold_biases: np.ndarray  # [k * m, units]


class _FoldTracker(keras.callbacks.Callback):  # type: ignore[misc]
    """Scores the fold models on their held-out rows after every epoch, per configuration.

    Model ``f * m + c`` is configuration ``c`` without fold ``f``; model ``k * m + c`` is it
    on every row (the refit at the chosen epoch count, run alongside). A configuration's
    loss is its folds' mean out-of-fold loss at the last epoch; training stops once the
    training loss has not improved for ``early_stopping_patience`` epochs.
    """

    def __init__(
        self,
        layer: ParallelLinear,
        hp: Hyperparameters,
        xy: tuple[np.ndarray, np.ndarray],
        folds: np.ndarray,
        *,
        m: int,
        k: int,
        emit: Callable[[str, float], None],
    ) -> None:
        super().__init__()
        self._layer, self._hp, self._xy, self._folds = layer, hp, xy, folds
        self._m, self._k, self._emit = m, k, emit
        rows, units = len(folds), int(layer._init.shape[2])
        self.row_losses = np.full((rows, m), np.inf)
        self.logits = np.zeros((rows, m, units))
        kernel, bias = layer.effective()
        self.kernels, self.biases = kernel[k * m :].copy(), bias[k * m :].copy()
        self.fold_kernels, self.fold_biases = kernel[: k * m].copy(), bias[: k * m].copy()
        self.best_epochs = [0] * m
        self.best_losses = [math.inf] * m
        self.epochs_run = 0
        self._lowest, self._since = math.inf, 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        with np.errstate(all="ignore"):  # a model that diverged scores inf/NaN and loses
            self._step(epoch, logs or {})

    def _step(self, epoch: int, logs: dict[str, float]) -> None:
        m, k = self._m, self._k
        kernel, bias = self._layer.effective()
        x, y = self._xy
        oof = np.empty_like(self.logits)
        for f in range(k):  # each fold's rows under that fold's models
            held = self._folds == f
            oof[held] = logits_of(kernel[f * m : (f + 1) * m], bias[f * m : (f + 1) * m], x[held])
        per = row_losses(self._hp.predictor_type, oof, y)
        means = per.mean(axis=0)
        # every configuration is kept at its latest epoch: each converges to its own
        # regularised optimum (the schedule decays its rate), and its L2 strength, not an
        # early stop, is what cross-validation chooses
        self.best_losses = [float(v) if np.isfinite(v) else math.inf for v in means]
        self.best_epochs = [epoch + 1] * m
        self.row_losses, self.logits = per, oof
        self.kernels, self.biases = kernel[k * m :].copy(), bias[k * m :].copy()
        self.fold_kernels, self.fold_biases = kernel[: k * m].copy(), bias[: k * m].copy()
        self.epochs_run = epoch + 1
        # one line per epoch, as in ``train``: the mean model's training loss, and the best
        # configuration's cross-validation loss
        train_loss = float(logs.get("loss", float("nan"))) / ((k + 1) * m)
        self._emit("train:loss", train_loss)
        finite = means[np.isfinite(means)]
        self._emit("validation:loss", float(finite.min()) if finite.size else float("nan"))
        # early stopping on a plateau of the (convex) training objective
        if train_loss < self._lowest * (1.0 - PLATEAU_TOLERANCE):
            self._lowest, self._since = train_loss, 0
        else:
            self._since += 1
        patience = self._hp.early_stopping_patience
        if patience > 0 and self._since >= patience:
            self.model.stop_training = True


def cross_validate(
    hp: Hyperparameters,
    cands: list[Candidate],
    units: int,
    xy: tuple[np.ndarray, np.ndarray],
    folds: np.ndarray,
    *,
    emit: Callable[[str, float], None],
) -> CrossValidated:
    """k-fold cross-validation of ``cands`` and their all-rows refits, in one Keras fit.

    ``xy`` is normalised with scaled targets; ``folds`` gives each row's fold (``0..k-1``).
    The ``(k + 1) * m`` models share one layer; a row's fold masks it out of its fold's
    models' loss. Every model follows the same rate schedule and sees the same batches.
    """
    x, y = xy
    m, k = len(cands), int(folds.max()) + 1
    counts = np.bincount(folds, minlength=k).astype(np.float64)
    model_folds = np.array([f for f in range(k + 1) for _ in range(m)], np.float64)
    fractions = np.array(
        [(len(y) - (counts[f] if f < k else 0.0)) / len(y) for f in range(k + 1) for _ in range(m)]
    )
    layer, model = _build(hp, cands * (k + 1), x.shape[1], units)
    model.compile(optimizer=_optimizer(hp), loss=_loss(hp.predictor_type, model_folds, fractions))
    tracker = _FoldTracker(layer, hp, xy, folds, m=m, k=k, emit=emit)
    model.fit(
        x.astype(np.float32),
        # [rows, 2, 1]: of logits' rank, or Keras squeezes a single unit's axis from them
        np.column_stack([y, folds]).astype(np.float32)[:, :, None],
        batch_size=hp.mini_batch_size,
        epochs=hp.epochs,
        shuffle=hp.shuffle,
        callbacks=[_schedule(hp, None), tracker],
        verbose=0,
    )
    return CrossValidated(
        tracker.row_losses,
        tracker.logits,
        tracker.kernels,
        tracker.biases,
        tracker.best_epochs,
        tracker.best_losses,
        tracker.epochs_run,
        tracker.fold_kernels,
        tracker.fold_biases,
    )
