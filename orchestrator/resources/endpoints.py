"""EndpointConfig and Endpoint: production variants, their status, and the Describe/List shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.resources.common import Condition, Output, ResourceName, Spec, TagList
from orchestrator.resources.instances import InstanceTypeName


class ProductionVariant(Spec):
    VariantName: ResourceName
    ModelName: ResourceName
    InitialInstanceCount: Annotated[int, Field(ge=1, le=100)] = 1
    InstanceType: InstanceTypeName = "local"
    InitialVariantWeight: Annotated[float, Field(ge=0.0, le=1000.0)] = 1.0
    ContainerStartupHealthCheckTimeoutInSeconds: Annotated[int, Field(ge=60, le=3600)] | None = None
    ModelDataDownloadTimeoutInSeconds: Annotated[int, Field(ge=60, le=3600)] | None = None


class CreateEndpointConfigRequest(Spec):
    EndpointConfigName: ResourceName
    ProductionVariants: Annotated[list[ProductionVariant], Field(min_length=1, max_length=10)]
    Tags: TagList = []
    KmsKeyId: Annotated[str, StringConstraints(max_length=2048)] | None = None

    @model_validator(mode="after")
    def _variants_coherent(self) -> Self:
        names = [v.VariantName for v in self.ProductionVariants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"ProductionVariants: variant names must be unique; repeated: {dupes}")
        if sum(v.InitialVariantWeight for v in self.ProductionVariants) <= 0:
            raise ValueError("ProductionVariants: at least one InitialVariantWeight must be > 0")
        return self


class DescribeEndpointConfigResponse(CreateEndpointConfigRequest):
    model_config = Output.model_config
    EndpointConfigArn: str
    CreationTime: datetime


class EndpointConfigSummary(Output):
    EndpointConfigName: str
    EndpointConfigArn: str
    CreationTime: datetime


class ListEndpointConfigsResponse(Output):
    EndpointConfigs: list[EndpointConfigSummary]
    NextToken: str | None = None


class CreateEndpointConfigResponse(Output):
    EndpointConfigArn: str


class EndpointStatus(StrEnum):
    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"


class CreateEndpointRequest(Spec):
    EndpointName: ResourceName
    EndpointConfigName: ResourceName
    Tags: TagList = []
    # Orchestrator extension: invocations need an API key unless the endpoint is made public.
    AuthMode: Literal["ApiKey", "None"] = "ApiKey"


class ProductionVariantSummary(Output):
    VariantName: str
    CurrentWeight: float
    DesiredWeight: float
    CurrentInstanceCount: int
    DesiredInstanceCount: int


_EndpointStatus = EndpointStatus


class EndpointState(Output):
    EndpointStatus: _EndpointStatus = EndpointStatus.CREATING
    FailureReason: str | None = None
    ProductionVariants: list[ProductionVariantSummary] = []
    Conditions: list[Condition] = []
    # Bookkeeping of the controller: replica launches so far (names each new replica) and
    # replicas that died before serving, in a row.
    ReplicaGeneration: int = 0
    StartFailures: int = 0


class DescribeEndpointResponse(CreateEndpointRequest, EndpointState):
    model_config = Output.model_config
    EndpointArn: str
    CreationTime: datetime
    LastModifiedTime: datetime


class EndpointSummary(Output):
    EndpointName: str
    EndpointArn: str
    CreationTime: datetime
    LastModifiedTime: datetime
    EndpointStatus: _EndpointStatus


class ListEndpointsResponse(Output):
    Endpoints: list[EndpointSummary]
    NextToken: str | None = None


class CreateEndpointResponse(Output):
    EndpointArn: str
