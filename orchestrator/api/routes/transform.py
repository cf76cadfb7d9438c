"""``/api/v1/transform-jobs``: CreateTransformJob, Describe, List, Stop, Delete, logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.deps import authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.api.transform import LOG_LIMIT
from orchestrator.resources.kinds import TRANSFORM_JOB
from orchestrator.resources.transform import (
    CreateTransformJobRequest,
    CreateTransformJobResponse,
    DescribeTransformJobResponse,
    ListTransformJobsResponse,
)

KIND = TRANSFORM_JOB
router = APIRouter(prefix=KIND.collection, tags=[KIND.name])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    "",
    response_model=CreateTransformJobResponse,
    status_code=201,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:CreateTransformJob", of_kind(TRANSFORM_JOB.name, body="TransformJobName")
            )
        )
    ],
    responses={200: {"description": "Same name and spec: the existing job"}, 409: {}},
)
def create_transform_job(
    body: CreateTransformJobRequest, cp: Plane, request: Request
) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.transform.create(body)
    return created({"TransformJobArn": arn}, was_created)


@router.get(
    "",
    response_model=ListTransformJobsResponse,
    dependencies=[Depends(authorized("sagemaker:ListTransformJobs"))],
)
def list_transform_jobs(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListTransformJobsResponse:
    items, token = cp.transform.list_jobs(q)
    return ListTransformJobsResponse(TransformJobSummaries=items, NextToken=token)


@router.get(
    "/{name}",
    response_model=DescribeTransformJobResponse,
    dependencies=[
        Depends(authorized("sagemaker:DescribeTransformJob", of_kind(TRANSFORM_JOB.name)))
    ],
)
def describe_transform_job(name: str, cp: Plane) -> DescribeTransformJobResponse:
    return cp.transform.describe(name)


@router.post(
    "/{name}/stop",
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:StopTransformJob", of_kind(TRANSFORM_JOB.name)))],
)
def stop_transform_job(name: str, cp: Plane) -> dict[str, str]:
    cp.transform.stop(name)
    return {"TransformJobName": name, "TransformJobStatus": "Stopping"}


@router.delete(
    "/{name}",
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:DeleteTransformJob", of_kind(TRANSFORM_JOB.name)))],
)
def delete_transform_job(name: str, cp: Plane) -> dict[str, str]:
    cp.transform.delete(name)
    return {"TransformJobName": name}


@router.get(
    "/{name}/logs",
    dependencies=[
        Depends(authorized("orchestrator:GetTransformJobLogs", of_kind(TRANSFORM_JOB.name)))
    ],
    responses={200: {"content": {"text/plain": {}}}},
)
def transform_job_logs(
    name: str,
    cp: Plane,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=LOG_LIMIT)] = 1 << 20,
) -> Response:
    """The job's log, every instance's runner and model server; ``X-Next-Offset`` is where
    the next read starts, ``X-More`` whether the job may write more."""
    data, nxt, active = cp.transform.logs(name, offset, limit)
    return Response(
        content=data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Next-Offset": str(nxt), "X-More": "true" if active else "false"},
    )
