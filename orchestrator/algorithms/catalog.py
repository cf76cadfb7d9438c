"""The built-in algorithms described for a train wizard (``GET /api/v1/algorithms``). Pure.

Built from ``hyperparameters.SPECS``, so the catalogue is what the checks accept: each
hyperparameter's type (SageMaker's tuning names: ``Integer``, ``Continuous``, ``Categorical``,
plus ``Boolean`` and ``FreeText``), default (None where it depends on others: the text says
on what), range, allowed values (``auto`` too where it is allowed) and whether it is required.
"""

from __future__ import annotations

from typing import Any

from orchestrator.algorithms.hyperparameters import (
    ALGORITHMS,
    DEFAULT_LEARNING_RATE,
    PREDICTOR_TYPES,
    SPECS,
    _Spec,
)
from orchestrator.errors import NotFoundError

REQUIRED = frozenset({"predictor_type"})
DESCRIPTIONS: dict[str, str] = {
    "predictor_type": "What the model predicts: a number (regressor), one of two classes "
    "(binary_classifier) or one of several (multiclass_classifier).",
    "learning_rate": "The optimizer's step size; unset, the algorithm's own default.",
    "epochs": "The most passes over the training data (early stopping may end sooner).",
    "mini_batch_size": "Rows per gradient step.",
    "shuffle": "Shuffle the training rows before each epoch.",
    "l1": "L1 regularization strength (weights pushed to exactly zero).",
    "l2": "L2 regularization strength (weight decay).",
    "normalize_data": "Scale each feature to zero mean and unit variance before training.",
    "normalize_label": "Scale a regressor's label while training (predictions come back in "
    "the label's units); unset, true for a regressor and false otherwise.",
    "optimizer": "The gradient descent optimizer.",
    "early_stopping_patience": "Epochs without a better validation loss before training "
    "stops (0: never stop early).",
    "num_classes": "The number of classes of a multiclass classifier (labels 0..num_classes-1); "
    "unset, read from the data.",
    "label": "The label column: its 0-based index, or its name in a CSV header.",
    "seed": "The random seed (splits, initialization, shuffling, samples).",
    "test_split": "The fraction of train held out as test when no test channel is given.",
    "validation_split": "The fraction of train held out as validation when no validation "
    "channel is given.",
    "binary_classifier_model_selection_criteria": "What the binary classifier's score "
    "threshold is chosen for.",
    "target_recall": "The recall to reach with precision_at_target_recall.",
    "target_precision": "The precision to reach with recall_at_target_precision.",
    "num_layers": "Hidden layers of the network.",
    "hidden_units": "Units per hidden layer.",
    "dropout": "Dropout rate after each hidden layer.",
    "num_models": "Models trained in parallel in one job, the best on validation kept; auto: "
    "the given configuration and seven neighbours.",
}


def _type(spec: _Spec) -> str:
    if spec.kind is bool:
        return "Boolean"
    if spec.kind is int:
        return "Integer"
    if spec.kind is float:
        return "Continuous"
    return "Categorical" if spec.choices else "FreeText"


def _describe(algorithm: str, name: str, spec: _Spec) -> dict[str, Any]:
    default = spec.default
    if name == "learning_rate" and default is None:
        default = DEFAULT_LEARNING_RATE[algorithm]
    values = list(spec.choices) + (["auto"] if spec.auto else [])
    text = DESCRIPTIONS.get(name, "")
    if name == "l2" and spec.auto:
        text += " auto: chosen by cross-validation from a grid scaled to the rows."
    return {
        "Name": name,
        "Type": _type(spec),
        "Default": default,
        "MinValue": spec.low,
        "MaxValue": spec.high,
        "Values": values,
        "Required": name in REQUIRED,
        "Description": f"{text} Allowed: {spec.describe()}.".strip(),
    }


def describe_algorithm(name: str) -> dict[str, Any]:
    """One algorithm: its name, problem types and hyperparameters (predictor_type first)."""
    if name not in SPECS:
        raise NotFoundError(
            f"algorithm {name!r} is not a built-in algorithm; the built-in algorithms are "
            + ", ".join(ALGORITHMS)
        )
    specs = SPECS[name]
    return {
        "Name": name,
        "ProblemTypes": list(PREDICTOR_TYPES),
        "Hyperparameters": [_describe(name, k, spec) for k, spec in specs.items()],
    }


def list_algorithms() -> dict[str, Any]:
    return {"Algorithms": [describe_algorithm(a) for a in ALGORITHMS]}
