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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

BATCH = 1024


@dataclass
class AlgorithmModel:
    """A loaded SavedModel, its serving function and the training job's metadata."""

    saved_model: Any
    serve: Any
    metadata: dict[str, Any]

    @property
    def n_features(self) -> int:
        return int(self.metadata["n_features"])


@dataclass(frozen=True)
class Prediction:
    predictor_type: str
    scores: np.ndarray  # [n] or [n, k]
    labels: np.ndarray | None  # [n] ints for classifiers


def model_fn(model_dir: str) -> AlgorithmModel:
    from orchestrator.algorithms import model as model_lib
    from orchestrator.algorithms.train import METADATA_FILE

    root = Path(model_dir)
    metadata = json.loads((root / METADATA_FILE).read_text())
    saved, serve = model_lib.load(root)
    return AlgorithmModel(saved, serve, metadata)


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


def predict_fn(data: np.ndarray, model: AlgorithmModel) -> Prediction:
    from orchestrator.algorithms import model as model_lib

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
    return Prediction(ptype, scores, labels)


def _records(prediction: Prediction) -> list[dict[str, Any]]:
    scores = prediction.scores.tolist()
    if prediction.labels is None:
        return [{"score": s} for s in scores]
    return [
        {"predicted_label": int(label), "score": s}
        for label, s in zip(prediction.labels, scores, strict=True)
    ]


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
