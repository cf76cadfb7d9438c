"""The networks (Keras on TensorFlow): build, train, wrap for serving, save as a SavedModel.

linear-learner is one Dense layer; mlp puts ``num_layers`` hidden ReLU layers of
``hidden_units`` (each followed by ``dropout``) in front of it. Both start with a
Normalization layer holding the training set's feature means and variances, and end with the
problem's link (identity, sigmoid, softmax), so the SavedModel (and the TFLite file made from
it) takes raw features. A regressor trained on scaled labels has the inverse scaling in its
serving function. The serving signature ``serving_default`` takes ``features`` (float32
``[batch, n_features]``) and returns ``scores``: ``[batch]`` for a regressor (the prediction)
and a binary classifier (P(label=1)), ``[batch, num_classes]`` probabilities for multiclass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from orchestrator.algorithms.hyperparameters import Hyperparameters

SAVED_MODEL_DIR = "saved_model"
SIGNATURE = "serving_default"
INPUT_NAME = "features"
OUTPUT_NAME = "scores"


@dataclass(frozen=True)
class Scaling:
    """Label scaling of a regressor: the network predicts ``(y - shift) / scale``."""

    shift: float = 0.0
    scale: float = 1.0


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Normalization layer's mean and variance of ``x``'s columns."""
    variance = x.var(axis=0)
    variance[variance <= 1e-12] = 1.0  # a constant column stays as it is, centred
    return x.mean(axis=0), variance


def build(hp: Hyperparameters, x: np.ndarray, num_classes: int) -> keras.Model:
    """The training network for ``hp`` with feature statistics taken from ``x``."""
    regularizer = keras.regularizers.L1L2(l1=hp.l1, l2=hp.l2) if hp.l1 or hp.l2 else None
    inputs = keras.Input(shape=(x.shape[1],), name=INPUT_NAME, dtype="float32")
    h = inputs
    if hp.normalize_data:
        mean, variance = feature_stats(x)
        h = keras.layers.Normalization(mean=mean, variance=variance)(h)
    for _ in range(hp.num_layers if hp.algorithm == "mlp" else 0):
        h = keras.layers.Dense(hp.hidden_units, activation="relu", kernel_regularizer=regularizer)(
            h
        )
        if hp.dropout > 0:
            h = keras.layers.Dropout(hp.dropout)(h)
    units, activation = {
        "regressor": (1, None),
        "binary_classifier": (1, "sigmoid"),
        "multiclass_classifier": (num_classes, "softmax"),
    }[hp.predictor_type]
    outputs = keras.layers.Dense(units, activation=activation, kernel_regularizer=regularizer)(h)
    model = keras.Model(inputs, outputs, name=hp.algorithm.replace("-", "_"))
    loss = {
        "regressor": "mean_squared_error",
        "binary_classifier": "binary_crossentropy",
        "multiclass_classifier": "sparse_categorical_crossentropy",
    }[hp.predictor_type]
    optimizer = (
        keras.optimizers.Adam(hp.learning_rate)
        if hp.optimizer == "adam"
        else keras.optimizers.SGD(hp.learning_rate)
    )
    model.compile(optimizer=optimizer, loss=loss)
    return model


def label_scaling(hp: Hyperparameters, y: np.ndarray) -> Scaling:
    if hp.predictor_type != "regressor" or not hp.normalize_label:
        return Scaling()
    std = float(y.std())
    return Scaling(float(y.mean()), std if std > 1e-12 else 1.0)


class _EpochLines(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, emit: Callable[[str, float], None]) -> None:
        super().__init__()
        self._emit = emit

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        self._emit("train:loss", float(logs.get("loss", float("nan"))))
        if "val_loss" in logs:
            self._emit("validation:loss", float(logs["val_loss"]))


def fit(
    model: keras.Model,
    hp: Hyperparameters,
    scaling: Scaling,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    emit: Callable[[str, float], None],
) -> int:
    """Train in place (best epoch's weights kept when early stopping); return epochs run."""

    def target(y: np.ndarray) -> np.ndarray:
        return ((y - scaling.shift) / scaling.scale).astype(np.float32)

    callbacks: list[Any] = [_EpochLines(emit)]
    if hp.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if validation is not None else "loss",
                patience=hp.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    history = model.fit(
        train[0].astype(np.float32),
        target(train[1]),
        batch_size=hp.mini_batch_size,
        epochs=hp.epochs,
        shuffle=hp.shuffle,
        validation_data=None
        if validation is None
        else (validation[0].astype(np.float32), target(validation[1])),
        callbacks=callbacks,
        verbose=0,
    )
    return len(history.history.get("loss", []))


class ServingModule(tf.Module):  # type: ignore[misc]
    """The exported graph: the network plus the inverse label scaling."""

    def __init__(self, model: keras.Model, scaling: Scaling, n_features: int) -> None:
        super().__init__()
        self.model = model
        self.shift = tf.constant(scaling.shift, tf.float32)
        self.scale = tf.constant(scaling.scale, tf.float32)
        self.multiclass = int(model.outputs[0].shape[-1]) > 1
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, n_features], tf.float32, name=INPUT_NAME)],
        )

    def _serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.model(features, training=False)
        if not self.multiclass:
            out = tf.squeeze(out, axis=-1) * self.scale + self.shift
        return {OUTPUT_NAME: out}


def predict(fn: Callable[..., Any], x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run a serving function over ``x`` in batches."""
    parts = [
        np.asarray(fn(features=tf.constant(x[i : i + batch], tf.float32))[OUTPUT_NAME])
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts) if parts else np.empty((0,), np.float32)


def save(module: ServingModule, model_dir: Path) -> Path:
    path = model_dir / SAVED_MODEL_DIR
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    return path


def load(model_dir: Path) -> tuple[Any, Callable[..., Any]]:
    """The loaded SavedModel (keep it alive) and its serving function."""
    loaded = tf.saved_model.load(str(model_dir / SAVED_MODEL_DIR))
    return loaded, loaded.signatures[SIGNATURE]
