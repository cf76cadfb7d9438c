"""The built-in algorithms' training entry point: ``python -m orchestrator.algorithms.train``.

It follows the SageMaker training contract under ``$ORCH_ML_ROOT`` (``/opt/ml`` when unset):
hyperparameters from ``input/config/hyperparameters.json``, data from the ``train`` channel
(required), ``validation`` and ``test`` (optional; ``validation_split`` / ``test_split`` of
train stand in for them). The algorithm is the ``algorithm`` hyperparameter or
``$ORCH_ALGORITHM``. Hyperparameters and data are checked before TensorFlow is imported; a
bad one writes its reason to ``output/failure`` and exits 1. Metrics are printed as
``name=value`` lines. ``model/`` receives the SavedModel, ``algorithm.json``,
``evaluation.json`` (each evaluated split's metrics and, under ``analysis``, what a console
draws: ``algorithms.analysis``), for a binary classifier ``evaluation_scores.json`` (each
split's labels and scores, a seeded sample of ``analysis.MAX_SCORE_ROWS`` rows past that;
``scores_file`` in evaluation.json says how many rows each split has and holds),
``test_features.npy`` (for the export check) and ``code/inference.py``. A train channel read
from a data source (``schema.json`` and ``part-*.parquet``) is turned into features by a recipe
(``algorithms.recipes``) fitted on it and applied to the other channels; ``recipe.json`` is
saved with the model, which then serves raw attribute values.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.algorithms import analysis, evaluation
from orchestrator.algorithms import data as data_lib
from orchestrator.algorithms.hyperparameters import (
    ALGORITHMS,
    EVALUATION_METRICS,
    Hyperparameters,
    parse_hyperparameters,
)
from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import SNAPSHOT_ALGORITHM
from orchestrator.training.contract import (
    EVALUATION_FILE,
    EVALUATION_SCORES_FILE,
    ML_ROOT_ENV,
    MlPaths,
)

if TYPE_CHECKING:
    from orchestrator.algorithms.recipes import Recipe

ALGORITHM_ENV = "ORCH_ALGORITHM"
METADATA_FILE = "algorithm.json"
SCORES_FILE = EVALUATION_SCORES_FILE
TEST_FEATURES_FILE = "test_features.npy"
MAX_SAVED_TEST_ROWS = 10_000
INFERENCE_SHIM = '''"""Serves a built-in algorithm's model (written by its training job)."""

from orchestrator.algorithms.inference import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''

# A model trained through a recipe reads raw attribute values (``inference.recipe_input_fn``).
RECIPE_INFERENCE_SHIM = '''"""A built-in algorithm's model on raw values (through its recipe)."""

from orchestrator.algorithms.inference import model_fn, output_fn, predict_fn
from orchestrator.algorithms.inference import recipe_input_fn as input_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''


@dataclass(frozen=True)
class Splits:
    train: data_lib.Dataset
    validation: data_lib.Dataset | None
    test: data_lib.Dataset | None
    num_classes: int  # 0 for a regressor
    validation_given: bool = False  # from a validation channel, not split off train
    recipe: Recipe | None = None  # a data source's channels: the features' recipe


def read_hyperparameters(paths: MlPaths, env: Mapping[str, str]) -> Hyperparameters:
    file = paths.config_dir / "hyperparameters.json"
    raw: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {}
    if not isinstance(raw, dict):
        raise ValidationError(f"{file} must hold a JSON object", field="HyperParameters")
    algorithm = str(raw.get("algorithm", "")).strip('"') or env.get(ALGORITHM_ENV, "")
    if not algorithm:
        raise ValidationError(
            "no algorithm given: set the algorithm hyperparameter to one of "
            + ", ".join(ALGORITHMS),
            field="algorithm",
        )
    return parse_hyperparameters(algorithm, raw)


def load_splits(paths: MlPaths, hp: Hyperparameters) -> Splits:
    """Load the channels, check them, then split train for what no channel gives."""
    if not paths.channel_dir("train").is_dir():
        raise data_lib.DataError("the train channel is required and was not given")
    recipe = None
    if data_lib.is_datasource_channel(paths.channel_dir("train")):
        recipe = data_lib.fit_recipe(paths.channel_dir("train"), hp.predictor_type, hp.num_classes)
    train = _load(paths, "train", hp, recipe)
    counts = [data_lib.check_labels(train, "train", hp.predictor_type, hp.num_classes)]
    sets: dict[str, data_lib.Dataset | None] = {}
    for name in ("test", "validation"):
        directory = paths.channel_dir(name)
        part = _load(paths, name, hp, recipe) if directory.is_dir() else None
        sets[name] = part
        if part is None:
            continue
        if part.x.shape[1] != train.x.shape[1]:
            raise data_lib.DataError(
                f"the {name} data has {part.x.shape[1]} feature columns, train has "
                f"{train.x.shape[1]}"
            )
        # a held-out set may hold a single class; only its label values are checked
        counts.append(data_lib.check_label_values(part, name, hp.predictor_type, hp.num_classes))
    stratify = hp.predictor_type != "regressor"
    for offset, (name, fraction) in enumerate(
        (("test", hp.test_split), ("validation", hp.validation_split))
    ):
        if sets[name] is None and fraction > 0:
            train, held = data_lib.split(train, fraction, hp.seed + offset, stratify)
            if len(held) == 0:
                raise data_lib.DataError(
                    f"{name}_split={fraction} of {len(train)} train rows leaves no {name} row; "
                    f"give more rows or a {name} channel"
                )
            sets[name] = held
    if len(train) < 2:
        raise data_lib.DataError(f"too few rows to train on: {len(train)} (at least 2 needed)")
    given = paths.channel_dir("validation").is_dir()
    return Splits(train, sets["validation"], sets["test"], max(counts), given, recipe)


def _load(
    paths: MlPaths, name: str, hp: Hyperparameters, recipe: Recipe | None
) -> data_lib.Dataset:
    """A channel: through the train channel's recipe when train reads a data source."""
    directory = paths.channel_dir(name)
    if recipe is not None:
        if not data_lib.is_datasource_channel(directory):
            raise data_lib.DataError(
                f"the train channel reads a data source but the {name} channel does not "
                "(no schema.json and part-*.parquet files); give both from data sources"
            )
        return data_lib.load_datasource_channel(directory, recipe)
    if name != "train" and data_lib.is_datasource_channel(directory):
        raise data_lib.DataError(
            f"the {name} channel reads a data source but the train channel does not; "
            "give both from data sources, or both as files"
        )
    return data_lib.load_channel(directory, hp.label)


def _emit(name: str, value: float) -> None:
    text = str(value) if isinstance(value, int) else f"{value:.6g}"
    print(f"{name}={text}", flush=True)


def _log(message: str) -> None:
    print(message, flush=True)  # a plain line, never name=value: metric regexes skip it


def evaluate(
    hp: Hyperparameters, y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, Any]:
    if hp.predictor_type == "regressor":
        return evaluation.regression_metrics(y, scores)
    if hp.predictor_type == "binary_classifier":
        return evaluation.binary_metrics(y, scores, threshold)
    return evaluation.multiclass_metrics(y, scores)


def analyse(
    hp: Hyperparameters,
    y: np.ndarray,
    scores: np.ndarray,
    metrics: dict[str, Any],
    train_y: np.ndarray,
) -> dict[str, Any]:
    """The split's ``analysis`` (``algorithms.analysis``), beside its metrics."""
    if hp.predictor_type == "regressor":
        return analysis.regression_analysis(y, scores, float(np.mean(train_y)), hp.seed)
    if hp.predictor_type == "binary_classifier":
        return analysis.binary_analysis(y, scores)
    return analysis.multiclass_analysis(metrics)


def run(paths: MlPaths, hp: Hyperparameters, splits: Splits) -> dict[str, Any]:
    """Train, evaluate and write the model directory; returns the evaluation document."""
    from orchestrator.algorithms import model as model_lib  # TensorFlow: only now

    started = time.perf_counter()
    model_lib.seed_everything(hp.seed)
    train, validation, test = splits.train, splits.validation, splits.test
    fitted = None
    if hp.algorithm == "linear-learner":
        from orchestrator.algorithms import linear

        fitted = linear.fit(
            hp,
            train,
            validation,
            validation_given=splits.validation_given,
            num_classes=splits.num_classes,
            emit=_emit,
            log=_log,
        )
        network, scaling, epochs = fitted.network, fitted.scaling, fitted.epochs
    else:
        network = model_lib.build(hp, train.x, splits.num_classes)
        scaling = model_lib.label_scaling(hp, train.y)
        epochs = model_lib.fit(
            network,
            hp,
            scaling,
            (train.x, train.y),
            None if validation is None else (validation.x, validation.y),
            emit=_emit,
        )
    module = model_lib.ServingModule(network, scaling, train.x.shape[1])
    refit_on = fitted.refit_on if fitted is not None else None
    threshold = 0.5
    if hp.predictor_type == "binary_classifier":
        # the refit model's threshold is chosen on the rows it was fitted to
        chooser = (
            refit_on if refit_on is not None else (validation if validation is not None else train)
        )
        threshold = evaluation.choose_threshold(
            chooser.y,
            model_lib.predict(module.serve, chooser.x),
            hp.binary_classifier_model_selection_criteria,
            hp.target_recall,
            hp.target_precision,
        )
        if fitted is not None and fitted.threshold is not None:
            threshold = fitted.threshold  # chosen on cross-validation's out-of-fold scores
    document: dict[str, Any] = {
        "algorithm": hp.algorithm,
        "predictor_type": hp.predictor_type,
        "epochs_trained": epochs,
        "training_seconds": round(time.perf_counter() - started, 3),
        "rows": {"train": len(train)},
    }
    if fitted is not None:
        document["model_selection"] = fitted.selection
    if hp.predictor_type == "binary_classifier":
        document["threshold"] = threshold
        document["threshold_criterion"] = hp.binary_classifier_model_selection_criteria
    scored: dict[str, dict[str, Any]] = {}
    for name, part in (("validation", validation), ("test", test)):
        if part is None:
            continue
        held_out = fitted.held_out if fitted is not None and refit_on is not None else None
        scores = (
            held_out  # the refit model has seen these rows: report the held-out model
            if name == "validation" and held_out is not None
            else model_lib.predict(module.serve, part.x)
        )
        metrics = evaluate(hp, part.y, scores, threshold)
        metrics["analysis"] = analyse(hp, part.y, scores, metrics, train.y)
        document[name] = metrics
        if hp.predictor_type == "binary_classifier":
            scored[name] = analysis.score_rows(part.y, scores, hp.seed)
        document["rows"][name] = len(part)
        for metric in EVALUATION_METRICS[hp.predictor_type]:
            _emit(f"{name}:{metric}", metrics[metric])
    if scored:
        document["scores_file"] = {
            "file": SCORES_FILE,
            "seed": hp.seed,
            "rows": {
                k: {"total": v["rows"], "stored": len(v["labels"])} for k, v in scored.items()
            },
        }
    write_model(
        paths.model_dir, hp, splits=splits, module=module, threshold=threshold, document=document
    )
    if scored:
        (paths.model_dir / SCORES_FILE).write_text(json.dumps(scored))
    return document


def write_model(
    model_dir: Path,
    hp: Hyperparameters,
    *,
    splits: Splits,
    module: Any,
    threshold: float,
    document: dict[str, Any],
) -> None:
    from orchestrator.algorithms import model as model_lib

    model_dir.mkdir(parents=True, exist_ok=True)
    model_lib.save(module, model_dir)
    metadata = {
        "format_version": 1,
        "algorithm": hp.algorithm,
        "predictor_type": hp.predictor_type,
        "n_features": int(splits.train.x.shape[1]),
        "feature_names": list(splits.train.feature_names),
        "label": hp.label,
        "label_name": splits.train.label_name,
        "classes": list(range(splits.num_classes)),
        "threshold": threshold,
        "saved_model": model_lib.SAVED_MODEL_DIR,
        "signature": model_lib.SIGNATURE,
        "hyperparameters": asdict(hp),
    }
    if splits.recipe is not None:
        metadata["recipe"] = splits.recipe.save(model_dir).name
        metadata["attributes"] = list(splits.recipe.attribute_names)
        metadata["class_values"] = list(splits.recipe.target.classes)
    chosen = document.get("model_selection")
    if chosen is not None:
        keys = ("num_models", "winner", "learning_rate", "l2", "epochs", "criterion", "refit")
        metadata["model_selection"] = {k: chosen[k] for k in keys}
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    (model_dir / EVALUATION_FILE).write_text(json.dumps(document, indent=2))
    check = next(p for p in (splits.test, splits.validation, splits.train) if p is not None)
    np.save(model_dir / TEST_FEATURES_FILE, check.x[:MAX_SAVED_TEST_ROWS].astype(np.float32))
    (model_dir / "code").mkdir(exist_ok=True)
    shim = INFERENCE_SHIM if splits.recipe is None else RECIPE_INFERENCE_SHIM
    (model_dir / "code" / "inference.py").write_text(shim)


def fail(paths: MlPaths, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(message)
    return 1


def _requested_algorithm(paths: MlPaths, env: Mapping[str, str]) -> str:
    """The algorithm asked for, read leniently (``read_hyperparameters`` reports bad files)."""
    try:
        raw = json.loads((paths.config_dir / "hyperparameters.json").read_text())
    except (OSError, ValueError):
        raw = {}
    value = raw.get("algorithm", "") if isinstance(raw, dict) else ""
    return str(value).strip('"') or env.get(ALGORITHM_ENV, "")


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    paths = MlPaths(Path(env.get(ML_ROOT_ENV, "/opt/ml")))
    if _requested_algorithm(paths, env) == SNAPSHOT_ALGORITHM:
        from orchestrator.datasources import snapshot  # a DataSource's snapshot job

        return snapshot.main(env)
    try:
        hp = read_hyperparameters(paths, env)
        splits = load_splits(paths, hp)
        run(paths, hp, splits)
    except ValidationError as e:
        return fail(paths, e.message)
    except Exception as e:
        traceback.print_exc()
        return fail(paths, f"the built-in algorithm failed: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
