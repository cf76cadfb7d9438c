"""Model: a container definition (image or script, artifact, environment) to serve from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.resources.common import (
    ConditionsState,
    EnvironmentMap,
    Output,
    ResourceName,
    Spec,
    StorageUri,
    TagList,
)
from orchestrator.resources.images import own_image

# Script-mode serving: the program inside the model's code directory (SageMaker's names).
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIR_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"


class AdaptiveBatching(Spec):
    """Extension: concurrent requests to the model are predicted in one call."""

    # A batch leaves at MaxBatchSize requests, MaxBatchDelayMilliseconds after its first
    # request, or at once when no other model call is in flight (a lone client never waits).

    MaxBatchSize: Annotated[int, Field(ge=2, le=1024)]
    MaxBatchDelayMilliseconds: Annotated[float, Field(ge=0, le=1000)] = 0.0


_AdaptiveBatching = AdaptiveBatching


class ContainerDefinition(Spec):
    ContainerHostname: Annotated[str, StringConstraints(max_length=63)] | None = None
    Image: Annotated[str, StringConstraints(max_length=255)] | None = None
    Mode: Literal["SingleModel"] = "SingleModel"
    ModelDataUrl: StorageUri | None = None
    Environment: EnvironmentMap = {}
    AdaptiveBatching: _AdaptiveBatching | None = None

    @property
    def own_image(self) -> str | None:
        """The image a replica runs as given (None: the project's serving image serves it: no
        Image, or one of SageMaker's that ``resources.images`` stands in for)."""
        return own_image(self.Image)


_ContainerDefinition = ContainerDefinition


class CreateModelRequest(Spec):
    ModelName: ResourceName
    PrimaryContainer: _ContainerDefinition | None = None
    Containers: Annotated[list[ContainerDefinition], Field(min_length=1, max_length=15)] | None = (
        None
    )
    ExecutionRoleArn: Annotated[str, StringConstraints(max_length=2048)] | None = None
    Tags: TagList = []
    EnableNetworkIsolation: bool = False

    @model_validator(mode="after")
    def _one_container_form(self) -> Self:
        if (self.PrimaryContainer is None) == (self.Containers is None):
            raise ValueError("set exactly one of PrimaryContainer or Containers")
        for index, container in enumerate(self.Containers or []):
            if index > 0 and container.AdaptiveBatching is not None:
                raise ValueError(
                    f"Containers[{index}].AdaptiveBatching: a pipeline batches the requests "
                    "it receives, so set AdaptiveBatching on Containers[0] only"
                )
        return self

    @property
    def serving_containers(self) -> list[ContainerDefinition]:
        if self.PrimaryContainer is not None:
            return [self.PrimaryContainer]
        return list(self.Containers or [])


class ModelState(ConditionsState):
    """Models have no lifecycle of their own: a ``Valid`` condition (custom resources)."""


class DescribeModelResponse(CreateModelRequest):
    model_config = Output.model_config
    ModelArn: str
    CreationTime: datetime


class ModelSummary(Output):
    ModelName: str
    ModelArn: str
    CreationTime: datetime


class ListModelsResponse(Output):
    Models: list[ModelSummary]
    NextToken: str | None = None


class CreateModelResponse(Output):
    ModelArn: str
