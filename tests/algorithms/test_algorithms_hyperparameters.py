"""Hyperparameter validation and metric definitions (pure: no TensorFlow)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from orchestrator.algorithms import (
    ALGORITHMS,
    METRIC_NAMES,
    metric_definitions,
    metric_names,
    parse_hyperparameters,
)
from orchestrator.errors import ValidationError

BINARY = {"predictor_type": "binary_classifier"}


def test_defaults() -> None:
    hp = parse_hyperparameters("linear-learner", {"predictor_type": "regressor"})
    assert (hp.learning_rate, hp.epochs, hp.mini_batch_size, hp.optimizer) == (
        0.05,
        100,
        32,
        "adam",
    )
    assert (hp.seed, hp.label, hp.shuffle, hp.normalize_data, hp.normalize_label) == (
        0,
        "0",
        True,
        True,
        True,
    )
    assert (hp.test_split, hp.validation_split, hp.early_stopping_patience) == (0.2, 0.1, 10)
    mlp = parse_hyperparameters("mlp", BINARY)
    assert (mlp.num_layers, mlp.hidden_units, mlp.dropout, mlp.learning_rate) == (2, 64, 0.0, 0.003)
    assert mlp.normalize_label is False
    assert mlp.binary_classifier_model_selection_criteria == "accuracy"


def test_strings_json_strings_and_python_values() -> None:
    hp = parse_hyperparameters(
        "mlp",
        {
            "predictor_type": '"multiclass_classifier"',  # SageMaker's SDK JSON-encodes values
            "epochs": "10.0",
            "shuffle": "False",
            "l2": 0.5,
            "dropout": "0.25",
            "num_classes": 3,
            "sagemaker_program": "ignored",
            "_tuning_objective_metric": "test:accuracy",
            "algorithm": "mlp",
        },
    )
    assert hp.predictor_type == "multiclass_classifier"
    assert (hp.epochs, hp.shuffle, hp.l2, hp.dropout, hp.num_classes) == (10, False, 0.5, 0.25, 3)


@pytest.mark.parametrize(
    ("algorithm", "raw", "expected"),
    [
        ("linear-learner", {**BINARY, "hidden_units": "8"}, r"unknown hyperparameter hidden_units"),
        ("mlp", {**BINARY, "epoch": "3"}, r"epoch for mlp; allowed: .*epochs"),
        ("mlp", {"epochs": "3"}, r"predictor_type is required: one of regressor, binary_"),
        ("mlp", {"predictor_type": "ranker"}, r"predictor_type='ranker' .* one of regressor"),
        ("mlp", {**BINARY, "epochs": "0"}, r"epochs='0' .* an integer in \[1, 10000\]"),
        ("mlp", {**BINARY, "epochs": "ten"}, r"epochs='ten' .* an integer in \[1, 10000\]"),
        ("mlp", {**BINARY, "epochs": "2.5"}, r"epochs='2.5' .* an integer"),
        ("mlp", {**BINARY, "learning_rate": "0"}, r"learning_rate='0' .* a number in \(0, 10\]"),
        ("mlp", {**BINARY, "learning_rate": "nan"}, r"learning_rate='nan'"),
        ("mlp", {**BINARY, "dropout": "0.95"}, r"dropout='0.95' .* a number in \[0, 0.9\]"),
        ("mlp", {**BINARY, "l1": "-1"}, r"l1='-1' .* a number in \[0, 1000\]"),
        ("mlp", {**BINARY, "optimizer": "rmsprop"}, r"optimizer='rmsprop' .* one of adam, sgd"),
        ("mlp", {**BINARY, "shuffle": "yes"}, r"shuffle='yes' .* true or false"),
        ("mlp", {**BINARY, "target_recall": "1.5"}, r"target_recall='1.5' .* \(0, 1\]"),
        (
            "mlp",
            {**BINARY, "binary_classifier_model_selection_criteria": "auc"},
            r"one of accuracy, f1, precision_at_target_recall, recall_at_target_precision",
        ),
        ("mlp", {**BINARY, "num_classes": "3"}, r"num_classes must be 2"),
        ("mlp", {"predictor_type": "regressor", "num_classes": "3"}, r"only to classifiers"),
        ("mlp", {**BINARY, "normalize_label": "true"}, r"normalize_label=true applies only"),
        ("mlp", {**BINARY, "test_split": "0.5", "validation_split": "0.5"}, r"below 0.95"),
        ("xgboost", BINARY, r"unknown algorithm 'xgboost'; .* linear-learner, mlp"),
    ],
)
def test_rejected(algorithm: str, raw: dict[str, str], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected) as info:
        parse_hyperparameters(algorithm, raw)
    assert info.value.field is not None


def test_metric_definitions_match_single_lines() -> None:
    for algorithm in ALGORITHMS:
        definitions = metric_definitions(algorithm)
        assert [d["Name"] for d in definitions] == list(METRIC_NAMES)
    by_name = {d["Name"]: re.compile(d["Regex"]) for d in metric_definitions("mlp")}
    assert by_name["test:accuracy"].search("test:accuracy=0.97").group(1) == "0.97"  # type: ignore[union-attr]
    assert by_name["test:accuracy"].search("validation:accuracy=0.5") is None
    assert by_name["test:f1"].search("test:f1=1e-05").group(1) == "1e-05"  # type: ignore[union-attr]
    assert "test:rmse" in metric_names("regressor")
    assert "test:rmse" not in metric_names("binary_classifier")
    assert "test:macro_f1" in metric_names("multiclass_classifier")


def test_package_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, orchestrator.algorithms, orchestrator.algorithms.data, "
        "orchestrator.algorithms.evaluation\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_num_models() -> None:
    regressor = {"predictor_type": "regressor"}
    assert parse_hyperparameters("linear-learner", regressor).num_models == 8  # auto
    assert (
        parse_hyperparameters("linear-learner", {**regressor, "num_models": '"auto"'}).num_models
        == 8
    )
    assert parse_hyperparameters("linear-learner", {**regressor, "num_models": "1"}).num_models == 1
    assert parse_hyperparameters("linear-learner", {**regressor, "num_models": 32}).num_models == 32
    assert parse_hyperparameters("mlp", regressor).num_models == 1  # one network, always


@pytest.mark.parametrize("value", ["0", "33", "-1", "two", "2.5", "", "automatic"])
def test_num_models_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_hyperparameters("linear-learner", {**BINARY, "num_models": value})
    assert info.value.field == "num_models"
    assert info.value.message == (
        f"hyperparameter num_models={value!r} is invalid: it must be auto or an integer in [1, 32]"
    )


def test_num_models_is_linear_learner_only() -> None:
    with pytest.raises(ValidationError, match=r"unknown hyperparameter num_models for mlp"):
        parse_hyperparameters("mlp", {**BINARY, "num_models": "4"})
