"""The Python client: ``Client`` (every operation over HTTP), ``Estimator``, ``Predictor``,
``Transformer`` (batch transform) and ``HyperparameterTuner`` with its parameter ranges."""

from orchestrator.client.client import Client, InvokeResult, LogChunk
from orchestrator.client.estimator import DataSourceInput, Estimator, Predictor
from orchestrator.client.transformer import Transformer
from orchestrator.client.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperparameterTuner,
    IntegerParameter,
)

__all__ = [
    "CategoricalParameter",
    "Client",
    "ContinuousParameter",
    "DataSourceInput",
    "Estimator",
    "HyperparameterTuner",
    "IntegerParameter",
    "InvokeResult",
    "LogChunk",
    "Predictor",
    "Transformer",
]
