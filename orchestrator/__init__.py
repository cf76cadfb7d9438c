"""Orchestrator: a self-hosted ML training and hosting orchestrator with SageMaker-shaped APIs.

The curated public API (pinned by a test): the client, the error tree, the settings. Names are
imported on first use, so that ``import orchestrator.<module>`` in a job supervisor or a
replica does not pay for the client's imports (measured: it cut a job
supervisor's start from 0.33 s to 0.2 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CategoricalParameter": "orchestrator.client",
    "Client": "orchestrator.client",
    "ContinuousParameter": "orchestrator.client",
    "HyperparameterTuner": "orchestrator.client",
    "IntegerParameter": "orchestrator.client",
    "Estimator": "orchestrator.client",
    "InvokeResult": "orchestrator.client",
    "Predictor": "orchestrator.client",
    "Transformer": "orchestrator.client",
    "Settings": "orchestrator.settings",
    "get_settings": "orchestrator.settings",
    "AuthenticationError": "orchestrator.errors",
    "ConflictError": "orchestrator.errors",
    "JobFailedError": "orchestrator.errors",
    "ModelError": "orchestrator.errors",
    "NotFoundError": "orchestrator.errors",
    "OrchestratorError": "orchestrator.errors",
    "PayloadTooLargeError": "orchestrator.errors",
    "PermanentError": "orchestrator.errors",
    "TemporaryError": "orchestrator.errors",
    "UnavailableError": "orchestrator.errors",
    "ValidationError": "orchestrator.errors",
}

__all__ = [
    "AuthenticationError",
    "CategoricalParameter",
    "Client",
    "ConflictError",
    "ContinuousParameter",
    "Estimator",
    "HyperparameterTuner",
    "IntegerParameter",
    "InvokeResult",
    "JobFailedError",
    "ModelError",
    "NotFoundError",
    "OrchestratorError",
    "PayloadTooLargeError",
    "PermanentError",
    "Predictor",
    "Settings",
    "TemporaryError",
    "Transformer",
    "UnavailableError",
    "ValidationError",
    "__version__",
    "get_settings",
]

if TYPE_CHECKING:
    from orchestrator.client import (
        CategoricalParameter,
        Client,
        ContinuousParameter,
        Estimator,
        HyperparameterTuner,
        IntegerParameter,
        InvokeResult,
        Predictor,
        Transformer,
    )
    from orchestrator.errors import (
        AuthenticationError,
        ConflictError,
        JobFailedError,
        ModelError,
        NotFoundError,
        OrchestratorError,
        PayloadTooLargeError,
        PermanentError,
        TemporaryError,
        UnavailableError,
        ValidationError,
    )
    from orchestrator.settings import Settings, get_settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
