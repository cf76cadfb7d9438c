"""A training job's stored scores and its metrics at any threshold, independent of HTTP.

A built-in binary classifier writes ``model/evaluation_scores.json`` (``{split: {"labels",
"scores", "rows"}}``, at most 10,000 rows a split: ``algorithms.analysis``) and every backend
uploads it beside model.tar.gz, as it does evaluation.json (``training.transfer``). The
threshold metrics are ``algorithms.evaluation.binary_metrics`` on those rows (numpy, which
the control plane loads anyway), predicting positive where ``score >= threshold``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.objects import ObjectStore
from orchestrator.resources.evaluation import EvaluationScoresResponse, ThresholdMetricsResponse
from orchestrator.training.contract import EVALUATION_SCORES_FILE

SPLITS = ("validation", "test")


def scores_uri(artifact: str) -> str:
    return artifact.rsplit("/", 1)[0] + "/" + EVALUATION_SCORES_FILE


def read_scores(objects: ObjectStore, name: str, artifact: str | None) -> dict[str, Any]:
    """The job's evaluation_scores.json; 404 when it wrote none."""
    missing = NotFoundError(
        f"TrainingJob {name!r} has no stored scores: only a built-in algorithm's "
        "binary_classifier job writes model/evaluation_scores.json"
    )
    if not artifact:
        raise missing
    uri = scores_uri(artifact)
    if not objects.exists(uri):
        raise missing
    try:
        doc = json.loads(objects.get_bytes(uri))
    except json.JSONDecodeError as e:
        raise ValidationError(f"{uri} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValidationError(f"{uri} must hold a JSON object of splits")
    return doc


def split_scores(doc: dict[str, Any], name: str, split: str) -> EvaluationScoresResponse:
    """One split's labels and scores; 400 naming ``Split`` when the job has no such split."""
    part = doc.get(split) if split in SPLITS else None
    if not isinstance(part, dict):
        have = [s for s in SPLITS if isinstance(doc.get(s), dict)]
        raise ValidationError(
            f"Split={split!r}: TrainingJob {name!r} has scores for "
            + (", ".join(have) if have else "no split")
            + f" (one of {', '.join(SPLITS)})",
            field="Split",
        )
    labels = [int(v) for v in part.get("labels", [])]
    scores = [float(v) for v in part.get("scores", [])]
    if len(labels) != len(scores):
        raise ValidationError(
            f"TrainingJob {name!r}'s {split} scores hold {len(scores)} scores for "
            f"{len(labels)} labels"
        )
    rows = part.get("rows")
    return EvaluationScoresResponse(
        Split=split,
        Labels=labels,
        Scores=scores,
        Rows=int(rows) if isinstance(rows, int) else len(labels),
    )


def check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValidationError(
            f"Threshold={threshold!r} must be in [0, 1]: a score at or above it is predicted "
            "positive",
            field="Threshold",
        )


def threshold_metrics(
    scored: EvaluationScoresResponse, threshold: float
) -> ThresholdMetricsResponse:
    """``binary_metrics`` of the stored rows at ``threshold``, and the false positive rate."""
    check_threshold(threshold)
    import numpy as np

    from orchestrator.algorithms.evaluation import binary_metrics

    y = np.asarray(scored.Labels, dtype=np.int64)
    s = np.asarray(scored.Scores, dtype=np.float64)
    keys = ("accuracy", "precision", "recall", "f1")
    counts = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    # no rows: every count and ratio is 0 (binary_metrics' log loss needs a row)
    m = binary_metrics(y, s, threshold) if len(y) else dict.fromkeys(keys + counts, 0)
    tp, fp, tn, fn = (int(m[k]) for k in counts)
    return ThresholdMetricsResponse(
        Split=scored.Split,
        Threshold=threshold,
        accuracy=float(m["accuracy"]),
        precision=float(m["precision"]),
        recall=float(m["recall"]),
        f1=float(m["f1"]),
        false_positive_rate=fp / (fp + tn) if fp + tn else 0.0,
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
        confusion_matrix=[[tn, fp], [fn, tp]],
        Rows=len(y),
    )
