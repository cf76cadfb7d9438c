"""Built-in algorithms (linear-learner, mlp) on TensorFlow, with Amazon ML-style evaluation.

Importing this package is cheap and TensorFlow-free: it offers the hyperparameter checks and
metric definitions the control plane needs. TensorFlow is imported only by the modules that
train, serve and export (``train``, ``model``, ``inference``, ``export``), which need the
``tensorflow`` extra. See docs/algorithms.md.
"""

from orchestrator.algorithms.hyperparameters import (
    ALGORITHMS,
    METRIC_NAMES,
    PREDICTOR_TYPES,
    Hyperparameters,
    metric_definitions,
    metric_names,
    parse_hyperparameters,
)

__all__ = [
    "ALGORITHMS",
    "METRIC_NAMES",
    "PREDICTOR_TYPES",
    "Hyperparameters",
    "metric_definitions",
    "metric_names",
    "parse_hyperparameters",
]
