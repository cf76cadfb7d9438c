"""``/api/v1/hyper-parameter-tuning-jobs``: Create, Describe, List, Stop, Delete, and the
trials (ListTrainingJobsForHyperParameterTuningJob)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from orchestrator.api.deps import authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.api.tuning import TrialQuery
from orchestrator.resources.kinds import HYPER_PARAMETER_TUNING_JOB
from orchestrator.resources.tuning import (
    CreateHyperParameterTuningJobRequest,
    CreateHyperParameterTuningJobResponse,
    DescribeHyperParameterTuningJobResponse,
    ListHyperParameterTuningJobsResponse,
    ListTrainingJobsForHyperParameterTuningJobResponse,
)

KIND = HYPER_PARAMETER_TUNING_JOB
router = APIRouter(prefix=KIND.collection, tags=[KIND.name])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    "",
    response_model=CreateHyperParameterTuningJobResponse,
    status_code=201,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:CreateHyperParameterTuningJob",
                of_kind(HYPER_PARAMETER_TUNING_JOB.name, body="HyperParameterTuningJobName"),
            )
        )
    ],
    responses={200: {"description": "Same name and spec: the existing tuning job"}, 409: {}},
)
def create_tuning_job(
    body: CreateHyperParameterTuningJobRequest, cp: Plane, request: Request
) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.tuning.create(body)
    return created({"HyperParameterTuningJobArn": arn}, was_created)


@router.get(
    "",
    response_model=ListHyperParameterTuningJobsResponse,
    dependencies=[Depends(authorized("sagemaker:ListHyperParameterTuningJobs"))],
)
def list_tuning_jobs(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListHyperParameterTuningJobsResponse:
    items, token = cp.tuning.list_jobs(q)
    return ListHyperParameterTuningJobsResponse(
        HyperParameterTuningJobSummaries=items, NextToken=token
    )


@router.get(
    "/{name}",
    response_model=DescribeHyperParameterTuningJobResponse,
    response_model_exclude_none=True,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:DescribeHyperParameterTuningJob",
                of_kind(HYPER_PARAMETER_TUNING_JOB.name),
            )
        )
    ],
)
def describe_tuning_job(name: str, cp: Plane) -> DescribeHyperParameterTuningJobResponse:
    return cp.tuning.describe(name)


@router.get(
    "/{name}/training-jobs",
    response_model=ListTrainingJobsForHyperParameterTuningJobResponse,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:DescribeHyperParameterTuningJob",
                of_kind(HYPER_PARAMETER_TUNING_JOB.name),
            )
        )
    ],
)
def list_trials(  # noqa: PLR0917 - one parameter per SageMaker filter
    name: str,
    cp: Plane,
    MaxResults: Annotated[int | None, Query(ge=1, le=100)] = None,
    NextToken: str | None = None,
    StatusEquals: str | None = None,
    SortBy: str = "Name",
    SortOrder: str = "Ascending",
) -> ListTrainingJobsForHyperParameterTuningJobResponse:
    q = TrialQuery(
        MaxResults=MaxResults,
        NextToken=NextToken,
        StatusEquals=StatusEquals,
        SortBy=SortBy,
        SortOrder=SortOrder,
    )
    rows, token = cp.tuning.trials(name, q)
    return ListTrainingJobsForHyperParameterTuningJobResponse(
        TrainingJobSummaries=rows, NextToken=token
    )


@router.post(
    "/{name}/stop",
    status_code=202,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:StopHyperParameterTuningJob", of_kind(HYPER_PARAMETER_TUNING_JOB.name)
            )
        )
    ],
)
def stop_tuning_job(name: str, cp: Plane) -> dict[str, str]:
    cp.tuning.stop(name)
    return {"HyperParameterTuningJobName": name, "HyperParameterTuningJobStatus": "Stopping"}


@router.delete(
    "/{name}",
    status_code=202,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:DeleteHyperParameterTuningJob", of_kind(HYPER_PARAMETER_TUNING_JOB.name)
            )
        )
    ],
)
def delete_tuning_job(name: str, cp: Plane) -> dict[str, str]:
    cp.tuning.delete(name)
    return {"HyperParameterTuningJobName": name}
