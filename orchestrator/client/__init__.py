"""The Python client: ``Client`` (every operation over HTTP), ``Estimator`` and ``Predictor``."""

from orchestrator.client.client import Client, InvokeResult, LogChunk
from orchestrator.client.estimator import Estimator, Predictor

__all__ = ["Client", "Estimator", "InvokeResult", "LogChunk", "Predictor"]
