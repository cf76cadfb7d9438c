"""The resource kinds, with the names each front door uses for them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from orchestrator.resources.endpoints import CreateEndpointConfigRequest, CreateEndpointRequest
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest


@dataclass(frozen=True)
class Kind:
    name: str  # "TrainingJob"
    plural_path: str  # REST collection: "training-jobs"
    arn_slug: str  # ARN resource type: "training-job"
    name_field: str  # "TrainingJobName"
    spec: type[BaseModel]


TRAINING_JOB = Kind(
    "TrainingJob", "training-jobs", "training-job", "TrainingJobName", CreateTrainingJobRequest
)
MODEL = Kind("Model", "models", "model", "ModelName", CreateModelRequest)
ENDPOINT_CONFIG = Kind(
    "EndpointConfig",
    "endpoint-configs",
    "endpoint-config",
    "EndpointConfigName",
    CreateEndpointConfigRequest,
)
ENDPOINT = Kind("Endpoint", "endpoints", "endpoint", "EndpointName", CreateEndpointRequest)

KINDS: dict[str, Kind] = {k.name: k for k in (TRAINING_JOB, MODEL, ENDPOINT_CONFIG, ENDPOINT)}
