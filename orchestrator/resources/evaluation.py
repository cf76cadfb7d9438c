"""Response shapes of a training job's stored scores, its metrics at a chosen threshold, and
the built-in algorithms' catalogue (``GET /api/v1/algorithms``)."""

from __future__ import annotations

from typing import Literal

from orchestrator.resources.common import Output

Split = Literal["validation", "test"]


class EvaluationScoresResponse(Output):
    """A built-in binary classifier's labels and scores on one split (evaluation_scores.json):
    every row, or a seeded sample of 10,000 when the split has more (``Rows`` says how many)."""

    Split: str
    Labels: list[int]
    Scores: list[float]
    Rows: int | None = None  # the split's rows (more than Labels when sampled)


class ThresholdMetricsResponse(Output):
    """The binary metrics on the stored scores, predicting positive when score >= Threshold;
    the confusion matrix is ``[[tn, fp], [fn, tp]]``."""

    Split: str
    Threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    confusion_matrix: list[list[int]]
    Rows: int  # the stored rows the metrics are computed on


class HyperparameterOut(Output):
    Name: str
    Type: Literal["Integer", "Continuous", "Categorical", "Boolean", "FreeText"]
    Default: bool | int | float | str | None = None
    MinValue: float | None = None
    MaxValue: float | None = None
    Values: list[str] = []
    Required: bool = False
    Description: str = ""


class AlgorithmOut(Output):
    Name: str
    ProblemTypes: list[str]
    Hyperparameters: list[HyperparameterOut]


class ListAlgorithmsResponse(Output):
    Algorithms: list[AlgorithmOut]
