"""The built-in algorithms' hyperparameters: names, types, ranges, defaults. Pure and fast.

The control plane imports this module (to validate a built-in job's hyperparameters when it
is created and to add the algorithm's metric definitions), so it imports neither TensorFlow
nor numpy. Values arrive as strings (``hyperparameters.json``), possibly JSON-encoded by
SageMaker's SDK (``'"adam"'``); Python values are accepted too. Keys starting with
``sagemaker_`` and SageMaker's ``_tuning_objective_metric`` are ignored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ValidationError

ALGORITHMS: tuple[str, ...] = ("linear-learner", "mlp")
PREDICTOR_TYPES: tuple[str, ...] = ("regressor", "binary_classifier", "multiclass_classifier")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SELECTION_CRITERIA: tuple[str, ...] = (
    "accuracy",
    "f1",
    "precision_at_target_recall",
    "recall_at_target_precision",
)
_IGNORED = ("_tuning_objective_metric", "algorithm")


@dataclass(frozen=True)
class _Spec:
    kind: type  # int, float, bool or str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    low_open: bool = False  # the low bound itself is not allowed
    auto: bool = False  # "auto" is allowed too (resolved by the parser)

    def describe(self) -> str:
        if self.auto:
            return "auto or " + _Spec(self.kind, None, self.low, self.high).describe()
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        noun = "an integer" if self.kind is int else "a number"
        left = "(" if self.low_open else "["
        return f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}]"


def _fmt(v: float | None) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))


_COMMON: dict[str, _Spec] = {
    "predictor_type": _Spec(str, None, choices=PREDICTOR_TYPES),
    "learning_rate": _Spec(float, None, 0.0, 10.0, low_open=True),
    "epochs": _Spec(int, 100, 1, 10_000),
    "mini_batch_size": _Spec(int, 32, 1, 1_000_000),
    "shuffle": _Spec(bool, True),
    "l1": _Spec(float, 0.0, 0.0, 1000.0),
    "l2": _Spec(float, 0.0, 0.0, 1000.0),
    "normalize_data": _Spec(bool, True),
    "normalize_label": _Spec(bool, None),
    "optimizer": _Spec(str, "adam", choices=OPTIMIZERS),
    "early_stopping_patience": _Spec(int, 10, 0, 10_000),
    "num_classes": _Spec(int, None, 2, 100_000),
    "label": _Spec(str, "0"),
    "seed": _Spec(int, 0, 0, 2**31 - 1),
    "test_split": _Spec(float, 0.2, 0.0, 0.9),
    "validation_split": _Spec(float, 0.1, 0.0, 0.9),
    "binary_classifier_model_selection_criteria": _Spec(
        str, "accuracy", choices=SELECTION_CRITERIA
    ),
    "target_recall": _Spec(float, 0.8, 0.0, 1.0, low_open=True),
    "target_precision": _Spec(float, 0.8, 0.0, 1.0, low_open=True),
}
_MLP: dict[str, _Spec] = {
    "num_layers": _Spec(int, 2, 1, 16),
    "hidden_units": _Spec(int, 64, 1, 4096),
    "dropout": _Spec(float, 0.0, 0.0, 0.9),
}
MAX_NUM_MODELS = 32
NUM_MODELS_AUTO = 8
"""``num_models=auto``: the given configuration and seven neighbours (learning rate, L2)."""
_LINEAR: dict[str, _Spec] = {
    # SageMaker's linear learner: models trained in parallel in one job, best on validation
    "num_models": _Spec(int, "auto", 1, MAX_NUM_MODELS, auto=True),
    # auto: a grid scaled to the rows (scikit-learn's default strength first), chosen by
    # cross-validation; see selection.candidates
    "l2": _Spec(float, "auto", 0.0, 1000.0, auto=True),
}
SPECS: dict[str, dict[str, _Spec]] = {
    "linear-learner": {**_COMMON, **_LINEAR},
    "mlp": {**_COMMON, **_MLP},
}
DEFAULT_LEARNING_RATE: dict[str, float] = {"linear-learner": 0.05, "mlp": 0.003}


@dataclass(frozen=True)
class Hyperparameters:
    """A built-in job's validated hyperparameters (defaults filled in)."""

    algorithm: str
    predictor_type: str
    learning_rate: float
    epochs: int
    mini_batch_size: int
    shuffle: bool
    l1: float
    l2: float
    normalize_data: bool
    normalize_label: bool
    optimizer: str
    early_stopping_patience: int
    num_classes: int | None
    label: str
    seed: int
    test_split: float
    validation_split: float
    binary_classifier_model_selection_criteria: str
    target_recall: float
    target_precision: float
    num_layers: int = 0
    hidden_units: int = 0
    dropout: float = 0.0
    num_models: int = 1  # linear-learner: models trained in parallel ("auto" resolved)
    l2_auto: bool = False  # linear-learner: l2=auto (then l2 reads 0.0 until resolved)


def parse_hyperparameters(algorithm: str, raw: Mapping[str, Any]) -> Hyperparameters:
    """Validate ``raw`` for ``algorithm``; raise ``ValidationError`` naming the culprit."""
    if algorithm not in SPECS:
        raise ValidationError(
            f"unknown algorithm {algorithm!r}; the built-in algorithms are {', '.join(ALGORITHMS)}",
            field="algorithm",
        )
    specs = SPECS[algorithm]
    given = {k: v for k, v in raw.items() if not k.startswith("sagemaker_") and k not in _IGNORED}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ValidationError(
            f"unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{algorithm}; allowed: {', '.join(sorted(specs))}",
            field=unknown[0],
        )
    if "predictor_type" not in given:
        raise ValidationError(
            f"hyperparameter predictor_type is required: one of {', '.join(PREDICTOR_TYPES)}",
            field="predictor_type",
        )
    values = {
        name: _parse(name, spec, given[name]) if name in given else spec.default
        for name, spec in specs.items()
    }
    ptype = values["predictor_type"]
    if values["learning_rate"] is None:
        values["learning_rate"] = DEFAULT_LEARNING_RATE[algorithm]
    if values.get("num_models") == "auto":
        values["num_models"] = NUM_MODELS_AUTO
    if values["l2"] == "auto":
        values["l2"], values["l2_auto"] = 0.0, True
    if values["normalize_label"] is None:
        values["normalize_label"] = ptype == "regressor"
    elif values["normalize_label"] and ptype != "regressor":
        raise ValidationError(
            "hyperparameter normalize_label=true applies only to predictor_type=regressor",
            field="normalize_label",
        )
    classes = values["num_classes"]
    if ptype == "binary_classifier" and classes not in (None, 2):
        raise ValidationError(
            f"hyperparameter num_classes must be 2 (or unset) for binary_classifier, not {classes}",
            field="num_classes",
        )
    if ptype == "regressor" and classes is not None:
        raise ValidationError(
            "hyperparameter num_classes applies only to classifiers", field="num_classes"
        )
    if values["test_split"] + values["validation_split"] >= 0.95:
        raise ValidationError(
            "hyperparameters test_split + validation_split must be below 0.95 so that rows "
            f"are left to train on (got {values['test_split']} + {values['validation_split']})",
            field="test_split",
        )
    return Hyperparameters(algorithm=algorithm, **values)


def _parse(name: str, spec: _Spec, value: Any) -> Any:
    text = _unwrap(value)
    bad = ValidationError(
        f"hyperparameter {name}={text!r} is invalid: it must be {spec.describe()}", field=name
    )
    if spec.auto and text.strip().lower() == "auto":
        return "auto"
    if spec.kind is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise bad
        return lowered in ("true", "1")
    if spec.kind is str:
        if spec.choices and text not in spec.choices:
            raise bad
        if not text:
            raise bad
        return text
    try:
        number: float = int(text) if spec.kind is int else float(text)
    except ValueError:
        if spec.kind is int and re.fullmatch(r"\s*-?\d+\.0*\s*", text):
            number = int(float(text))  # "10.0" from a tuner that writes floats
        else:
            raise bad from None
    if not math.isfinite(number):
        raise bad
    too_low = spec.low is not None and (number < spec.low or (spec.low_open and number == spec.low))
    if too_low or (spec.high is not None and number > spec.high):
        raise bad
    return number


def _unwrap(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


_REGRESSION = ("rmse", "mae", "r2")
_BINARY = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "log_loss",
    "threshold",
    "true_positives",
    "false_positives",
    "true_negatives",
    "false_negatives",
)
_MULTICLASS = ("accuracy", "macro_f1", "weighted_f1", "log_loss")
EVALUATION_METRICS: dict[str, tuple[str, ...]] = {
    "regressor": _REGRESSION,
    "binary_classifier": _BINARY,
    "multiclass_classifier": _MULTICLASS,
}
"""The scalar metrics of an evaluation, by predictor type (emitted per data set)."""
EVALUATED_SETS: tuple[str, ...] = ("validation", "test")
TRAINING_METRICS: tuple[str, ...] = ("train:loss", "validation:loss")
"""Emitted once per epoch."""

METRIC_NAMES: tuple[str, ...] = TRAINING_METRICS + tuple(
    dict.fromkeys(
        f"{split}:{name}"
        for split in EVALUATED_SETS
        for names in EVALUATION_METRICS.values()
        for name in names
    )
)
"""Every metric name a built-in job can emit as a ``name=value`` line."""


def metric_names(predictor_type: str | None = None) -> tuple[str, ...]:
    """The metric names a job emits: all of them, or those of one predictor type."""
    if predictor_type is None:
        return METRIC_NAMES
    names = EVALUATION_METRICS[predictor_type]
    return TRAINING_METRICS + tuple(f"{s}:{n}" for s in EVALUATED_SETS for n in names)


def metric_definitions(algorithm: str, predictor_type: str | None = None) -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` for a built-in job; each regex matches one line."""
    if algorithm not in SPECS:
        raise ValidationError(
            f"unknown algorithm {algorithm!r}; the built-in algorithms are {', '.join(ALGORITHMS)}",
            field="algorithm",
        )
    return [
        {"Name": name, "Regex": rf"^{re.escape(name)}=(\S+)$"}
        for name in metric_names(predictor_type)
    ]
