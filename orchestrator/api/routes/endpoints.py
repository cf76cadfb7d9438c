"""``/api/v1/endpoints``: create, describe, list, update (a new config, or weights and
capacities in place), delete.

Invocations (``/endpoints/{name}/invocations``) are the data plane's (``orchestrator.dataplane``),
served in front of this app.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from orchestrator.api.deps import authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.resources.endpoints import (
    CreateEndpointRequest,
    CreateEndpointResponse,
    DescribeEndpointResponse,
    ListEndpointsResponse,
    UpdateEndpointRequest,
    UpdateEndpointWeightsAndCapacitiesRequest,
)
from orchestrator.resources.kinds import ENDPOINT

router = APIRouter(tags=[ENDPOINT.name])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    ENDPOINT.collection,
    response_model=CreateEndpointResponse,
    status_code=201,
    dependencies=[
        Depends(authorized("sagemaker:CreateEndpoint", of_kind(ENDPOINT.name, body="EndpointName")))
    ],
)
def create_endpoint(body: CreateEndpointRequest, cp: Plane, request: Request) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.create_endpoint(body)
    return created({"EndpointArn": arn}, was_created)


@router.get(
    ENDPOINT.collection,
    response_model=ListEndpointsResponse,
    dependencies=[Depends(authorized("sagemaker:ListEndpoints"))],
)
def list_endpoints(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListEndpointsResponse:
    items, token = cp.list_endpoints(q)
    return ListEndpointsResponse(Endpoints=items, NextToken=token)


@router.get(
    f"{ENDPOINT.collection}/{{name}}",
    response_model=DescribeEndpointResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeEndpoint", of_kind(ENDPOINT.name)))],
)
def describe_endpoint(name: str, cp: Plane) -> DescribeEndpointResponse:
    return cp.describe_endpoint(name)


@router.patch(
    f"{ENDPOINT.collection}/{{name}}",
    response_model=CreateEndpointResponse,
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:UpdateEndpoint", of_kind(ENDPOINT.name)))],
)
def update_endpoint(name: str, body: UpdateEndpointRequest, cp: Plane) -> CreateEndpointResponse:
    """UpdateEndpoint: move to another EndpointConfig by a blue/green deployment."""
    return CreateEndpointResponse(EndpointArn=cp.update_endpoint(name, body))


@router.post(
    f"{ENDPOINT.collection}/{{name}}/weights-and-capacities",
    response_model=CreateEndpointResponse,
    status_code=202,
    dependencies=[
        Depends(authorized("sagemaker:UpdateEndpointWeightsAndCapacities", of_kind(ENDPOINT.name)))
    ],
)
def update_weights_and_capacities(
    name: str, body: UpdateEndpointWeightsAndCapacitiesRequest, cp: Plane
) -> CreateEndpointResponse:
    """UpdateEndpointWeightsAndCapacities: variants' weights and counts, in place."""
    return CreateEndpointResponse(EndpointArn=cp.update_endpoint_weights_and_capacities(name, body))


@router.delete(
    f"{ENDPOINT.collection}/{{name}}",
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:DeleteEndpoint", of_kind(ENDPOINT.name)))],
)
def delete_endpoint(name: str, cp: Plane) -> dict[str, str]:
    cp.delete_endpoint(name)
    return {"EndpointName": name, "EndpointStatus": "Deleting"}
