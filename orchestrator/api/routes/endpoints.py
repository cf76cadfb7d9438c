"""``/api/v1/endpoints`` (create, describe, list, delete) and ``/endpoints/{name}/invocations``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from orchestrator.api.auth import authorize
from orchestrator.api.deps import allowed, plane, presented_key, principal_of
from orchestrator.api.router import INVOKED_VARIANT_HEADER, TARGET_VARIANT_HEADER, Router
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
)
from orchestrator.resources.endpoints import (
    CreateEndpointRequest,
    CreateEndpointResponse,
    DescribeEndpointResponse,
    ListEndpointsResponse,
    UpdateEndpointRequest,
)
from orchestrator.resources.kinds import ENDPOINT

router = APIRouter(tags=[ENDPOINT.name])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    ENDPOINT.collection,
    response_model=CreateEndpointResponse,
    status_code=201,
    dependencies=[Depends(allowed("endpoint:create"))],
)
def create_endpoint(body: CreateEndpointRequest, cp: Plane) -> JSONResponse:
    arn, was_created = cp.create_endpoint(body)
    return created({"EndpointArn": arn}, was_created)


@router.get(
    ENDPOINT.collection,
    response_model=ListEndpointsResponse,
    dependencies=[Depends(allowed("endpoint:list"))],
)
def list_endpoints(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListEndpointsResponse:
    items, token = cp.list_endpoints(q)
    return ListEndpointsResponse(Endpoints=items, NextToken=token)


@router.get(
    f"{ENDPOINT.collection}/{{name}}",
    response_model=DescribeEndpointResponse,
    dependencies=[Depends(allowed("endpoint:describe"))],
)
def describe_endpoint(name: str, cp: Plane) -> DescribeEndpointResponse:
    return cp.describe_endpoint(name)


@router.patch(
    f"{ENDPOINT.collection}/{{name}}",
    response_model=CreateEndpointResponse,
    status_code=202,
    dependencies=[Depends(allowed("endpoint:update"))],
)
def update_endpoint(name: str, body: UpdateEndpointRequest, cp: Plane) -> CreateEndpointResponse:
    """UpdateEndpoint: move to another EndpointConfig by a blue/green deployment."""
    return CreateEndpointResponse(EndpointArn=cp.update_endpoint(name, body))


@router.delete(
    f"{ENDPOINT.collection}/{{name}}",
    status_code=202,
    dependencies=[Depends(allowed("endpoint:delete"))],
)
def delete_endpoint(name: str, cp: Plane) -> dict[str, str]:
    cp.delete_endpoint(name)
    return {"EndpointName": name, "EndpointStatus": "Deleting"}


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {int(declared)} bytes is over the {limit}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/endpoints/{name}/invocations",
    responses={200: {"description": "The model's answer, as the model wrote it"}},
)
async def invoke_endpoint(name: str, request: Request) -> Response:
    return await _invoke(name, request, "/invocations")


@router.post(
    "/endpoints/{name}/v2/models/{model}/infer",
    responses={200: {"description": "The Open Inference Protocol (v2) answer of the model"}},
)
async def infer_endpoint(name: str, model: str, request: Request) -> Response:
    """Open Inference Protocol v2 through the endpoint: routed like /invocations (weights,
    X-Target-Variant, shadow, updates); ``model`` is the Model's name, as each replica serves
    it at ``/v2/models/{model}/infer``."""
    return await _invoke(name, request, f"/v2/models/{quote(model, safe='')}/infer")


async def _invoke(name: str, request: Request, path: str) -> Response:
    cp: ControlPlane = request.app.state.plane
    route = cp.routes.get(name)
    key = presented_key(request)
    if route is None or not route.public or key:
        # Authenticate before saying anything about the endpoint: a caller without a valid
        # key gets the same 401 whether or not the endpoint exists.
        try:
            principal = await principal_of(request)
        except AuthenticationError:
            if route is None or not route.public:
                raise
        else:
            authorize(principal, "endpoint:invoke")
    if route is None:
        status = await run_in_threadpool(cp.endpoint_status, name)
        if status is None:
            raise NotFoundError(f"Endpoint {name!r} does not exist")
        if status[0] == "Failed":
            raise ConflictError(f"endpoint {name!r} is Failed: {status[1]}")
        raise UnavailableError(
            f"endpoint {name!r} is {status[0]}, not in service yet", retry_after=1
        )
    body = await _read_limited(request, cp.settings.serving.max_payload_bytes)
    r: Router = request.app.state.router
    answer = await r.invoke(
        route, body, dict(request.headers), request.headers.get(TARGET_VARIANT_HEADER), path=path
    )
    headers = {INVOKED_VARIANT_HEADER: answer.variant}
    if answer.retry_after is not None:
        headers["Retry-After"] = answer.retry_after
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type=answer.content_type,
        headers=headers,
    )
