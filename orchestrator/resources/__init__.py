"""Pure resource models: the single source of truth for the API, client, CLI and manifests.

The names below are loaded when first used (PEP 562), so that importing one module of the
package (a training job's supervisor imports ``resources.training`` and ``failures``) does
not build every kind's models: a trial's launch pays for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.resources.common import Condition, Tag, make_arn, set_condition
    from orchestrator.resources.endpoints import (
        CreateEndpointConfigRequest,
        CreateEndpointRequest,
        DescribeEndpointConfigResponse,
        DescribeEndpointResponse,
        EndpointState,
        EndpointStatus,
        ProductionVariant,
        ProductionVariantSummary,
    )
    from orchestrator.resources.kinds import KINDS, Kind
    from orchestrator.resources.models import (
        ContainerDefinition,
        CreateModelRequest,
        DescribeModelResponse,
    )
    from orchestrator.resources.training import (
        TERMINAL_TRAINING_STATUSES,
        AlgorithmSpecification,
        Channel,
        CreateTrainingJobRequest,
        DescribeTrainingJobResponse,
        SecondaryStatus,
        TrainingJobState,
        TrainingJobStatus,
    )
    from orchestrator.resources.validation import parse_spec

_WHERE = {
    "Condition": "common",
    "Tag": "common",
    "make_arn": "common",
    "set_condition": "common",
    "CreateEndpointConfigRequest": "endpoints",
    "CreateEndpointRequest": "endpoints",
    "DescribeEndpointConfigResponse": "endpoints",
    "DescribeEndpointResponse": "endpoints",
    "EndpointState": "endpoints",
    "EndpointStatus": "endpoints",
    "ProductionVariant": "endpoints",
    "ProductionVariantSummary": "endpoints",
    "KINDS": "kinds",
    "Kind": "kinds",
    "ContainerDefinition": "models",
    "CreateModelRequest": "models",
    "DescribeModelResponse": "models",
    "TERMINAL_TRAINING_STATUSES": "training",
    "AlgorithmSpecification": "training",
    "Channel": "training",
    "CreateTrainingJobRequest": "training",
    "DescribeTrainingJobResponse": "training",
    "SecondaryStatus": "training",
    "TrainingJobState": "training",
    "TrainingJobStatus": "training",
    "parse_spec": "validation",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "KINDS",
    "TERMINAL_TRAINING_STATUSES",
    "AlgorithmSpecification",
    "Channel",
    "Condition",
    "ContainerDefinition",
    "CreateEndpointConfigRequest",
    "CreateEndpointRequest",
    "CreateModelRequest",
    "CreateTrainingJobRequest",
    "DescribeEndpointConfigResponse",
    "DescribeEndpointResponse",
    "DescribeModelResponse",
    "DescribeTrainingJobResponse",
    "EndpointState",
    "EndpointStatus",
    "Kind",
    "ProductionVariant",
    "ProductionVariantSummary",
    "SecondaryStatus",
    "Tag",
    "TrainingJobState",
    "TrainingJobStatus",
    "make_arn",
    "parse_spec",
    "set_condition",
]
