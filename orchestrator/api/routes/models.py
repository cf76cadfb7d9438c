"""``/api/v1/models`` and ``/api/v1/endpoint-configs``: create, describe, list, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from orchestrator.api.deps import authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointConfigResponse,
    DescribeEndpointConfigResponse,
    ListEndpointConfigsResponse,
)
from orchestrator.resources.kinds import ENDPOINT_CONFIG, MODEL, REST_PREFIX
from orchestrator.resources.models import (
    CreateModelRequest,
    CreateModelResponse,
    DescribeModelResponse,
    ListModelsResponse,
)

router = APIRouter(prefix=REST_PREFIX)
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    f"/{MODEL.plural_path}",
    tags=[MODEL.name],
    response_model=CreateModelResponse,
    status_code=201,
    dependencies=[
        Depends(authorized("sagemaker:CreateModel", of_kind(MODEL.name, body="ModelName")))
    ],
)
def create_model(body: CreateModelRequest, cp: Plane, request: Request) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.create_model(body)
    return created({"ModelArn": arn}, was_created)


@router.get(
    f"/{MODEL.plural_path}",
    tags=[MODEL.name],
    response_model=ListModelsResponse,
    dependencies=[Depends(authorized("sagemaker:ListModels"))],
)
def list_models(cp: Plane, q: Annotated[ListQuery, Depends(list_query)]) -> ListModelsResponse:
    items, token = cp.list_models(q)
    return ListModelsResponse(Models=items, NextToken=token)


@router.get(
    f"/{MODEL.plural_path}/{{name}}",
    tags=[MODEL.name],
    response_model=DescribeModelResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeModel", of_kind(MODEL.name)))],
)
def describe_model(name: str, cp: Plane) -> DescribeModelResponse:
    return cp.describe_model(name)


@router.delete(
    f"/{MODEL.plural_path}/{{name}}",
    tags=[MODEL.name],
    dependencies=[Depends(authorized("sagemaker:DeleteModel", of_kind(MODEL.name)))],
)
def delete_model(name: str, cp: Plane) -> dict[str, str]:
    cp.delete_model(name)
    return {"ModelName": name}


@router.post(
    f"/{ENDPOINT_CONFIG.plural_path}",
    tags=[ENDPOINT_CONFIG.name],
    response_model=CreateEndpointConfigResponse,
    status_code=201,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:CreateEndpointConfig",
                of_kind(ENDPOINT_CONFIG.name, body="EndpointConfigName"),
            )
        )
    ],
)
def create_endpoint_config(
    body: CreateEndpointConfigRequest, cp: Plane, request: Request
) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.create_endpoint_config(body)
    return created({"EndpointConfigArn": arn}, was_created)


@router.get(
    f"/{ENDPOINT_CONFIG.plural_path}",
    tags=[ENDPOINT_CONFIG.name],
    response_model=ListEndpointConfigsResponse,
    dependencies=[Depends(authorized("sagemaker:ListEndpointConfigs"))],
)
def list_endpoint_configs(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListEndpointConfigsResponse:
    items, token = cp.list_endpoint_configs(q)
    return ListEndpointConfigsResponse(EndpointConfigs=items, NextToken=token)


@router.get(
    f"/{ENDPOINT_CONFIG.plural_path}/{{name}}",
    tags=[ENDPOINT_CONFIG.name],
    response_model=DescribeEndpointConfigResponse,
    dependencies=[
        Depends(authorized("sagemaker:DescribeEndpointConfig", of_kind(ENDPOINT_CONFIG.name)))
    ],
)
def describe_endpoint_config(name: str, cp: Plane) -> DescribeEndpointConfigResponse:
    return cp.describe_endpoint_config(name)


@router.delete(
    f"/{ENDPOINT_CONFIG.plural_path}/{{name}}",
    tags=[ENDPOINT_CONFIG.name],
    dependencies=[
        Depends(authorized("sagemaker:DeleteEndpointConfig", of_kind(ENDPOINT_CONFIG.name)))
    ],
)
def delete_endpoint_config(name: str, cp: Plane) -> dict[str, str]:
    cp.delete_endpoint_config(name)
    return {"EndpointConfigName": name}
