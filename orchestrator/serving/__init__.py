"""The inference server of one endpoint replica (the SageMaker serving contract).

``ModelHandler`` runs the model lifecycle (``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn``), ``build_app`` puts it behind ``/ping``, ``/invocations`` and ``/metrics``,
and ``serve`` (or ``python -m orchestrator.serving``) runs it as a process.
"""

from orchestrator.serving.app import MODEL_LATENCY_HEADER, build_app
from orchestrator.serving.codecs import NotAcceptableError, UnsupportedMediaTypeError
from orchestrator.serving.handler import InvokeResult, ModelHandler
from orchestrator.serving.server import serve

__all__ = [
    "MODEL_LATENCY_HEADER",
    "InvokeResult",
    "ModelHandler",
    "NotAcceptableError",
    "UnsupportedMediaTypeError",
    "build_app",
    "serve",
]
