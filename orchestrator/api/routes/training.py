"""``/api/v1/training-jobs``: CreateTrainingJob, Describe, List, Stop, Delete, logs, metrics,
the evaluation (its stored scores, metrics at a threshold)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from orchestrator.api.deps import authorized, of_kind, owned, plane
from orchestrator.api.routes.common import created, list_query
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.resources.evaluation import (
    EvaluationScoresResponse,
    Split,
    ThresholdMetricsResponse,
)
from orchestrator.resources.jobmetrics import (
    MAX_SERIES_POINTS,
    MIN_SERIES_POINTS,
    TrainingJobMetricsResponse,
)
from orchestrator.resources.kinds import TRAINING_JOB
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    CreateTrainingJobResponse,
    DescribeTrainingJobResponse,
    ListTrainingJobsResponse,
)

router = APIRouter(prefix=TRAINING_JOB.collection, tags=[TRAINING_JOB.name])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    "",
    response_model=CreateTrainingJobResponse,
    status_code=201,
    dependencies=[
        Depends(
            authorized(
                "sagemaker:CreateTrainingJob", of_kind(TRAINING_JOB.name, body="TrainingJobName")
            )
        )
    ],
    responses={200: {"description": "Same name and spec: the existing job"}, 409: {}},
)
def create_training_job(
    body: CreateTrainingJobRequest, cp: Plane, request: Request
) -> JSONResponse:
    body = owned(body, request)
    arn, was_created = cp.create_training_job(body)
    return created({"TrainingJobArn": arn}, was_created)


@router.get(
    "",
    response_model=ListTrainingJobsResponse,
    dependencies=[Depends(authorized("sagemaker:ListTrainingJobs"))],
)
def list_training_jobs(
    cp: Plane, q: Annotated[ListQuery, Depends(list_query)]
) -> ListTrainingJobsResponse:
    items, token = cp.list_training_jobs(q)
    return ListTrainingJobsResponse(TrainingJobSummaries=items, NextToken=token)


@router.get(
    "/{name}",
    response_model=DescribeTrainingJobResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeTrainingJob", of_kind(TRAINING_JOB.name)))],
)
def describe_training_job(name: str, cp: Plane) -> DescribeTrainingJobResponse:
    return cp.describe_training_job(name)


@router.post(
    "/{name}/stop",
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:StopTrainingJob", of_kind(TRAINING_JOB.name)))],
)
def stop_training_job(name: str, cp: Plane) -> dict[str, str]:
    cp.stop_training_job(name)
    return {"TrainingJobName": name, "TrainingJobStatus": "Stopping"}


@router.post(
    "/{name}/preempt",
    status_code=202,
    dependencies=[
        Depends(authorized("orchestrator:PreemptTrainingJob", of_kind(TRAINING_JOB.name)))
    ],
)
def preempt_training_job(name: str, cp: Plane) -> dict[str, str]:
    cp.preempt_training_job(name)
    return {"TrainingJobName": name, "TrainingJobStatus": "InProgress"}


@router.delete(
    "/{name}",
    status_code=202,
    dependencies=[Depends(authorized("sagemaker:DeleteTrainingJob", of_kind(TRAINING_JOB.name)))],
)
def delete_training_job(name: str, cp: Plane) -> dict[str, str]:
    cp.delete_training_job(name)
    return {"TrainingJobName": name}


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Format: Literal["tflite"] = "tflite"


@router.post(
    "/{name}/export",
    dependencies=[
        Depends(authorized("orchestrator:ExportTrainingJobModel", of_kind(TRAINING_JOB.name)))
    ],
    responses={409: {"description": "The job has not completed"}},
)
def export_training_job_model(name: str, body: ExportRequest, cp: Plane) -> dict[str, Any]:
    """The model for the edge (TFLite), checked against the SavedModel on the test rows."""
    return cp.export_training_job_model(name, body.Format)


@router.get(
    "/{name}/evaluation",
    dependencies=[Depends(authorized("sagemaker:DescribeTrainingJob", of_kind(TRAINING_JOB.name)))],
    responses={404: {"description": "The job wrote no evaluation.json"}},
)
def training_job_evaluation(name: str, cp: Plane) -> dict[str, Any]:
    return cp.training_job_evaluation(name)


SplitQuery = Annotated[
    Split, Query(alias="Split", description="The evaluated split: validation or test")
]


@router.get(
    "/{name}/evaluation/scores",
    response_model=EvaluationScoresResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeTrainingJob", of_kind(TRAINING_JOB.name)))],
    responses={
        400: {"description": "The job has no scores for Split"},
        404: {"description": "The job stored no scores (not a built-in binary classifier)"},
    },
)
def training_job_scores(
    name: str, cp: Plane, split: SplitQuery = "test"
) -> EvaluationScoresResponse:
    """A built-in binary classifier's labels and scores on a split (at most 10,000 rows, a
    seeded sample past that; ``Rows`` is the split's size)."""
    return cp.training_job_scores(name, split)


@router.get(
    "/{name}/evaluation/threshold",
    response_model=ThresholdMetricsResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeTrainingJob", of_kind(TRAINING_JOB.name)))],
    responses={
        400: {"description": "The job has no scores for Split"},
        404: {"description": "The job stored no scores (not a built-in binary classifier)"},
    },
)
def training_job_threshold_metrics(
    name: str,
    cp: Plane,
    threshold: Annotated[
        float,
        Query(alias="Threshold", ge=0.0, le=1.0, description="Positive when score >= it"),
    ],
    split: SplitQuery = "test",
) -> ThresholdMetricsResponse:
    """The binary metrics of the stored scores at ``Threshold``."""
    return cp.training_job_threshold_metrics(name, split, threshold)


@router.get(
    "/{name}/logs",
    dependencies=[
        Depends(authorized("orchestrator:GetTrainingJobLogs", of_kind(TRAINING_JOB.name)))
    ],
    responses={200: {"content": {"text/plain": {}}}},
)
def training_job_logs(
    name: str,
    cp: Plane,
    *,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=4 << 20)] = 1 << 20,
    attempt: Annotated[int | None, Query(ge=1)] = None,
    tail: Annotated[int | None, Query(ge=1, le=4 << 20)] = None,
) -> Response:
    """The job's log: every attempt (each starts with ``[orchestrator] === attempt N ===``),
    or ``attempt``'s part only (offsets from its start); ``tail``: the log's last ``tail``
    bytes at most, from the first whole line (``X-Next-Offset`` then follows from there)."""
    data, nxt, active = cp.training_job_logs(name, offset, limit, attempt, tail=tail)
    return Response(
        content=data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Next-Offset": str(nxt), "X-More": "true" if active else "false"},
    )


@router.get(
    "/{name}/metrics",
    response_model=TrainingJobMetricsResponse,
    dependencies=[Depends(authorized("sagemaker:DescribeTrainingJob", of_kind(TRAINING_JOB.name)))],
    responses={400: {"description": "metric names a metric the job does not emit"}},
)
def training_job_metrics(
    name: str,
    cp: Plane,
    metric: str | None = None,
    max_points: Annotated[
        int | None,
        Query(
            alias="MaxPoints",
            ge=MIN_SERIES_POINTS,
            le=MAX_SERIES_POINTS,
            description="Thin each series to at most this many points (the first and last, "
            "and each bucket's lowest and highest value)",
        ),
    ] = None,
) -> TrainingJobMetricsResponse:
    """Every value of each metric the job printed, with its time, step and epoch."""
    return cp.training_job_metrics(name, metric, max_points)
