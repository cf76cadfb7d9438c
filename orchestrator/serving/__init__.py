"""The inference server of one endpoint replica (SageMaker's container contract and KServe's
Open Inference Protocol).

``ModelHandler`` runs the model lifecycle (``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn``); a ``Pipeline`` chains several; a ``Dispatcher`` applies the replica's limits
(queue, concurrency, deadlines) and adaptive batching; ``build_app`` puts it behind ``/ping``,
``/invocations``, ``/v2/...`` and ``/metrics``; and ``serve`` (or
``python -m orchestrator.serving``) runs it as a process.
"""

from orchestrator.serving.app import MODEL_LATENCY_HEADER, ServingApp, build_app
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.codecs import NotAcceptableError, UnsupportedMediaTypeError
from orchestrator.serving.dispatch import Dispatcher
from orchestrator.serving.handler import InvokeResult, ModelHandler
from orchestrator.serving.pipeline import ModelSource, Pipeline, Step, load_servable
from orchestrator.serving.server import serve

__all__ = [
    "MODEL_LATENCY_HEADER",
    "BatchingConfig",
    "Dispatcher",
    "InvokeResult",
    "ModelHandler",
    "ModelSource",
    "NotAcceptableError",
    "Pipeline",
    "ServingApp",
    "Step",
    "UnsupportedMediaTypeError",
    "build_app",
    "load_servable",
    "serve",
]
