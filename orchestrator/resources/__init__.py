"""Pure resource models: the single source of truth for the API, client, CLI and manifests."""

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
