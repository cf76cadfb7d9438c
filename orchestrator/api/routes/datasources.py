"""``/api/v1/data-sources``: Amazon ML's data sources (create from S3 or a SQL database,
describe with the schema, insights, list, update the schema, refresh, delete)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from orchestrator.api.deps import ACTION_ATTRIBUTE, authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.resources.common import Spec
from orchestrator.resources.datasources import (
    AttributeName,
    AttributeType,
    CreateDataSourceRequest,
    CreateDataSourceResponse,
    DescribeDataSourceResponse,
    ListDataSourcesResponse,
)
from orchestrator.resources.kinds import DATA_SOURCE

KIND = DATA_SOURCE
router = APIRouter(prefix=KIND.collection, tags=[KIND.name])
Plane = Annotated[ControlPlane, Depends(plane)]
_S3 = authorized(
    "machinelearning:CreateDataSourceFromS3", of_kind(KIND.name, body="DataSourceName")
)
_RDS = authorized(
    "machinelearning:CreateDataSourceFromRDS", of_kind(KIND.name, body="DataSourceName")
)


async def _create_action(request: Request) -> Any:
    """Amazon ML's action for the source the body names: FromRDS for a SQL query."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = {}
    spec = body.get("DataSpec") if isinstance(body, dict) else None
    sql = isinstance(spec, dict) and spec.get("Sql") is not None
    check: Any = _RDS if sql else _S3
    return await check(request)


setattr(_create_action, ACTION_ATTRIBUTE, "machinelearning:CreateDataSourceFromS3")


class UpdateDataSourceRequest(Spec):
    """Schema edits: types over the inferred ones, and the target (no new snapshot)."""

    AttributeTypes: Annotated[dict[AttributeName, AttributeType], Field(max_length=1000)] | None = (
        None
    )
    TargetAttributeName: AttributeName | None = None


@router.post(
    "",
    response_model=CreateDataSourceResponse,
    status_code=201,
    dependencies=[Depends(_create_action)],
    responses={
        200: {
            "description": "Same name: the existing data source (a new version when "
            "the spec changed)"
        }
    },
)
def create_data_source(body: CreateDataSourceRequest, cp: Plane, request: Request) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.data_sources.create(body)
    return created({"DataSourceArn": arn}, was_created)


@router.get(
    "",
    response_model=ListDataSourcesResponse,
    dependencies=[Depends(authorized("machinelearning:DescribeDataSources"))],
)
def list_data_sources(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListDataSourcesResponse:
    items, token = cp.data_sources.list(q)
    return ListDataSourcesResponse(DataSources=items, NextToken=token)


@router.get(
    "/{name}",
    response_model=DescribeDataSourceResponse,
    dependencies=[Depends(authorized("machinelearning:GetDataSource", of_kind(KIND.name)))],
)
def describe_data_source(
    name: str, cp: Plane, version: Annotated[int | None, Query(ge=1)] = None
) -> DescribeDataSourceResponse:
    """The data source, its versions, and the schema of ``version`` (default: the latest
    completed) with the edits applied."""
    return cp.data_sources.describe(name, version)


@router.get(
    "/{name}/insights",
    dependencies=[Depends(authorized("machinelearning:GetDataSource", of_kind(KIND.name)))],
)
def data_source_insights(
    name: str, cp: Plane, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """Amazon ML's data insights of a snapshot: per attribute the missing and invalid shares,
    the distribution, the correlation with the target; the target's distribution; warnings."""
    return cp.data_sources.insights(name, version)


@router.patch(
    "/{name}",
    status_code=200,
    dependencies=[Depends(authorized("machinelearning:UpdateDataSource", of_kind(KIND.name)))],
)
def update_data_source(name: str, body: UpdateDataSourceRequest, cp: Plane) -> dict[str, str]:
    cp.data_sources.update(name, body.AttributeTypes, body.TargetAttributeName)
    return {"DataSourceName": name}


@router.post(
    "/{name}/refresh",
    status_code=202,
    dependencies=[Depends(authorized("machinelearning:UpdateDataSource", of_kind(KIND.name)))],
)
def refresh_data_source(name: str, cp: Plane) -> dict[str, Any]:
    """A new snapshot of the unchanged query or location: a new version."""
    return {"DataSourceName": name, "Version": cp.data_sources.refresh(name)}


@router.delete(
    "/{name}",
    status_code=202,
    dependencies=[Depends(authorized("machinelearning:DeleteDataSource", of_kind(KIND.name)))],
)
def delete_data_source(name: str, cp: Plane) -> dict[str, str]:
    cp.data_sources.delete(name)
    return {"DataSourceName": name}
