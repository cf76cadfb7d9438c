"""Serving a built-in algorithm's model: the four functions of the SageMaker serving contract.

Requests (``Content-Type``): ``application/json`` — a list of rows, one row, or
``{"instances": [...]}`` whose items are rows or ``{"features": row}`` — and ``text/csv``
(numeric rows, no header, no label column). Rows are scored in batches. Responses
(``Accept``), in the shape of SageMaker's linear-learner:

- ``application/json``: ``{"predictions": [...]}`` with one object per row:
  regressor ``{"score": 12.3}``; binary ``{"predicted_label": 1, "score": 0.93}`` (score is
  P(label=1), label is ``score >= threshold``); multiclass ``{"predicted_label": 2,
  "score": [p0, p1, p2]}``.
- ``text/csv``: one line per row: ``score``; ``predicted_label,score``;
  ``predicted_label,p0,p1,...``.

A model trained on a data source has a recipe (``recipe.json``, ``algorithms.recipes``) and is
served with :func:`recipe_input_fn` (its ``code/inference.py`` says so): requests hold raw
attribute values, which the recipe turns into features as in training. ``application/json``:
``{"instances": [...]}``, a list, or a single object, whose instances are objects by attribute
name (every attribute present, ``null`` for a missing value; the target, if present, ignored)
or lists (or ``{"features": [...]}``) of values in the schema's attribute order without the
target; ``text/csv``: rows of values in that order (no header; an empty field is missing).
Numeric rows from :func:`input_fn` are read the same way. A classifier's JSON predictions add
``predicted_class``, the target's value of ``predicted_label``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import ValidationError
from orchestrator.serving.codecs import (
    CSV,
    JSON,
    NotAcceptableError,
    UnsupportedMediaTypeError,
    accepted_types,
    decode_csv,
    media_type,
)

if TYPE_CHECKING:
    from orchestrator.algorithms.recipes import Recipe

BATCH = 1024


@dataclass
class AlgorithmModel:
    """A loaded SavedModel, its serving function and the training job's metadata."""

    saved_model: Any
    serve: Any
    metadata: dict[str, Any]
    recipe: Recipe | None = None

    @property
    def n_features(self) -> int:
        return int(self.metadata["n_features"])


@dataclass(frozen=True)
class Prediction:
    predictor_type: str
    scores: np.ndarray  # [n] or [n, k]
    labels: np.ndarray | None  # [n] ints for classifiers
    classes: tuple[str, ...] = ()  # a recipe's class values, by label


def model_fn(model_dir: str) -> AlgorithmModel:
    from orchestrator.algorithms import model as model_lib
    from orchestrator.algorithms.train import METADATA_FILE

    root = Path(model_dir)
    metadata = json.loads((root / METADATA_FILE).read_text())
    saved, serve = model_lib.load(root)
    recipe = None
    if metadata.get("recipe"):
        from orchestrator.algorithms.recipes import Recipe

        recipe = Recipe.from_json((root / str(metadata["recipe"])).read_text())
    return AlgorithmModel(saved, serve, metadata, recipe)


@dataclass(frozen=True)
class RawInstances:
    """A request's instances of raw attribute values, for a model's recipe."""

    items: list[Any]  # objects (by attribute name) or lists (in the attribute order)
    where: list[str]  # how errors name each


def recipe_input_fn(body: bytes, content_type: str) -> RawInstances:
    """``input_fn`` of a model trained through a recipe: raw values, decoded but not typed."""
    kind = media_type(content_type) or JSON
    if kind == JSON:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValidationError(f"the body is not valid JSON: {e}", field="body") from e
        if isinstance(document, dict):
            document = document.get("instances", [document])
        if not isinstance(document, list) or not document:
            raise ValidationError(
                'the JSON body must be {"instances": [...]}, a non-empty list of instances or '
                "one object of attributes",
                field="body",
            )
        if not any(isinstance(item, dict | list) for item in document):
            document = [document]  # one instance's list of values
        items = [
            item["features"] if isinstance(item, dict) and set(item) == {"features"} else item
            for item in document
        ]
        return RawInstances(items, [f"instance {i}" for i in range(len(items))])
    if kind == CSV:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ValidationError(f"the CSV body is not UTF-8: {e}", field="body") from e
        try:
            rows = [
                (n, r)
                for n, r in enumerate(csv.reader(io.StringIO(text)), start=1)
                if any(c.strip() for c in r)
            ]
        except csv.Error as e:
            raise ValidationError(f"the CSV body cannot be read: {e}", field="body") from e
        if not rows:
            raise ValidationError("the CSV body is empty", field="body")
        return RawInstances(
            [[c if c.strip() else None for c in r] for _, r in rows],
            [f"CSV line {n}" for n, _ in rows],
        )
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type {content_type!r}; this model reads {JSON} and {CSV}",
        field="Content-Type",
    )


def _features(data: Any, model: AlgorithmModel) -> np.ndarray:
    """The model's feature matrix: a recipe's output for raw values, else ``data`` itself."""
    if isinstance(data, RawInstances):
        if model.recipe is None:
            raise ValidationError(
                "this model was not trained on a data source: send rows of numeric features",
                field="body",
            )
        return model.recipe.transform_items(data.items, data.where)
    if model.recipe is not None and isinstance(data, np.ndarray) and data.ndim == 2:
        rows: Sequence[Any] = data.astype(np.float64).tolist()
        return model.recipe.transform_items(rows)
    return np.asarray(data)


def input_fn(body: bytes, content_type: str) -> np.ndarray:
    kind = media_type(content_type) or JSON
    if kind == JSON:
        rows = _json_rows(body)
    elif kind == CSV:
        rows = decode_csv(body)
    else:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {content_type!r}; this model reads {JSON} and {CSV}",
            field="Content-Type",
        )
    try:
        data = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"the rows must be lists of numbers of equal length: {e}", field="body"
        ) from e
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValidationError("the body must hold one or more rows of features", field="body")
    if not np.isfinite(data).all():
        row = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
        raise ValidationError(f"row {row} holds a missing or non-finite value", field="body")
    return data.astype(np.float32)


def _json_rows(body: bytes) -> Any:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationError(f"the body is not valid JSON: {e}", field="body") from e
    if isinstance(document, dict):
        if "instances" not in document:
            raise ValidationError('a JSON object body needs an "instances" list', field="body")
        document = document["instances"]
    if not isinstance(document, list) or not document:
        raise ValidationError("the JSON body must be a non-empty list of rows", field="body")
    return [r["features"] if isinstance(r, dict) and "features" in r else r for r in document]


def predict_fn(data: np.ndarray | RawInstances, model: AlgorithmModel) -> Prediction:
    from orchestrator.algorithms import model as model_lib

    data = _features(data, model)
    if data.ndim != 2 or data.shape[1] != model.n_features:
        got = data.shape[1] if data.ndim == 2 else data.ndim
        raise ValidationError(
            f"each row needs {model.n_features} features (the label column excluded); got {got}",
            field="body",
        )
    scores = model_lib.predict(model.serve, data.astype(np.float32), batch=BATCH)
    ptype = str(model.metadata["predictor_type"])
    labels: np.ndarray | None = None
    if ptype == "binary_classifier":
        labels = (scores >= float(model.metadata["threshold"])).astype(int)
    elif ptype == "multiclass_classifier":
        labels = scores.argmax(axis=1)
    classes = model.recipe.target.classes if model.recipe is not None else ()
    return Prediction(ptype, scores, labels, classes)


def _records(prediction: Prediction) -> list[dict[str, Any]]:
    scores = prediction.scores.tolist()
    if prediction.labels is None:
        return [{"score": s} for s in scores]
    records: list[dict[str, Any]] = [
        {"predicted_label": int(label), "score": s}
        for label, s in zip(prediction.labels, scores, strict=True)
    ]
    if prediction.classes:
        for record in records:
            record["predicted_class"] = prediction.classes[record["predicted_label"]]
    return records


def output_fn(prediction: Prediction, accept: str) -> tuple[bytes, str]:
    for kind in accepted_types(accept):
        if kind in (JSON, "application/*", "*/*"):
            return json.dumps({"predictions": _records(prediction)}).encode(), JSON
        if kind in (CSV, "text/*"):
            lines = []
            for record in _records(prediction):
                score = record["score"]
                cells = score if isinstance(score, list) else [score]
                if "predicted_label" in record:
                    cells = [record["predicted_label"], *cells]
                lines.append(",".join(repr(c) if isinstance(c, float) else str(c) for c in cells))
            return ("\n".join(lines) + "\n").encode(), CSV
    raise NotAcceptableError(
        f"cannot answer Accept {accept!r}; this model writes {JSON} and {CSV}", field="Accept"
    )
