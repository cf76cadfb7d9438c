"""Builders for the control-plane tests: specs, desired states, observations and a fake clock.

Every builder takes keyword overrides, so a test states only what matters to it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.controller.plan.endpoint import DesiredEndpoint
from orchestrator.controller.plan.training import DesiredJob
from orchestrator.controller.plan.types import (
    ObservedJob,
    ObservedReplica,
    ObservedTransform,
    ObservedTransformInstance,
)
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest, TrainingJobState
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.testing import transform_job_spec

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
JOB = "job-1"
ENDPOINT = "ep-1"
TRANSFORM = "batch-1"


def at(seconds: float) -> datetime:
    """``NOW`` plus some seconds: tables read as a timeline."""
    return NOW + timedelta(seconds=seconds)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = NOW) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


# --- training ----------------------------------------------------------------------------------
def training_doc(name: str = JOB, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
    }
    doc.update(overrides)
    return doc


def training_spec(name: str = JOB, **overrides: Any) -> CreateTrainingJobRequest:
    return CreateTrainingJobRequest.model_validate(training_doc(name, **overrides))


def job_state(**fields: Any) -> TrainingJobState:
    return TrainingJobState.model_validate(fields)


def desired_job(
    *,
    spec: CreateTrainingJobRequest | None = None,
    status: TrainingJobState | None = None,
    stop: bool = False,
    delete: bool = False,
) -> DesiredJob:
    return DesiredJob(
        name=JOB,
        spec=spec or training_spec(),
        status=status or TrainingJobState(),
        created_at=NOW,
        stop_requested=stop,
        delete_requested=delete,
        output_uri=f"s3://orchestrator/training-jobs/{JOB}/output/model.tar.gz",
    )


def running(attempt: int = 1, **fields: Any) -> ObservedJob:
    base = ObservedJob(name=JOB, attempt=attempt, state="running", started_at=NOW)
    return replace(base, **fields)


def exited(attempt: int = 1, **fields: Any) -> ObservedJob:
    base = ObservedJob(
        name=JOB, attempt=attempt, state="exited", started_at=NOW, ended_at=at(100), exit_code=0
    )
    return replace(base, **fields)


# --- endpoints ---------------------------------------------------------------------------------
def model_spec(name: str = "model-1", **overrides: Any) -> CreateModelRequest:
    doc: dict[str, Any] = {"ModelName": name, "PrimaryContainer": {"Image": "example/serve:1"}}
    doc.update(overrides)
    return CreateModelRequest.model_validate(doc)


def config_spec(
    *variants: tuple[str, str, int], name: str = "cfg-1"
) -> CreateEndpointConfigRequest:
    """``variants``: (VariantName, ModelName, InitialInstanceCount); one of 1 replica by default."""
    chosen = variants or (("v1", "model-1", 1),)
    return CreateEndpointConfigRequest.model_validate(
        {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {"VariantName": v, "ModelName": m, "InitialInstanceCount": n} for v, m, n in chosen
            ],
        }
    )


def desired_endpoint(
    *,
    config: CreateEndpointConfigRequest | str | None = "default",
    models: dict[str, CreateModelRequest] | None = None,
    status: EndpointState | None = None,
    delete: bool = False,
) -> DesiredEndpoint:
    cfg = config_spec() if config == "default" else config
    assert not isinstance(cfg, str)
    return DesiredEndpoint(
        name=ENDPOINT,
        spec=CreateEndpointRequest(EndpointName=ENDPOINT, EndpointConfigName="cfg-1"),
        status=status or EndpointState(),
        config=cfg,
        models={"model-1": model_spec()} if models is None else models,
        delete_requested=delete,
    )


def replica(
    slot: int = 0,
    generation: int = 1,
    state: str = "ready",
    *,
    variant: str = "v1",
    started_at: datetime = NOW,
    message: str = "",
) -> ObservedReplica:
    rid = f"{variant}-{slot}-{generation}"
    return ObservedReplica(
        endpoint=ENDPOINT,
        variant=variant,
        slot=slot,
        replica_id=rid,
        state=state,  # type: ignore[arg-type]
        url=f"http://replica/{rid}",
        started_at=started_at,
        message=message,
        generation=generation,
    )


# --- transform jobs ----------------------------------------------------------------------------
def transform_doc(
    name: str = TRANSFORM, *, model: str = "model-1", instances: int = 2, **overrides: Any
) -> dict[str, Any]:
    return transform_job_spec(
        name, model, "s3://data/in/", "s3://data/out", instances=instances, **overrides
    )


def transform_spec(
    name: str = TRANSFORM, *, instances: int = 2, **overrides: Any
) -> CreateTransformJobRequest:
    return CreateTransformJobRequest.model_validate(
        transform_doc(name, instances=instances, **overrides)
    )


def instance(
    i: int, attempt: int = 1, state: str = "running", **fields: Any
) -> ObservedTransformInstance:
    """One transform instance's latest attempt as a backend reports it (started at ``NOW``)."""
    base = ObservedTransformInstance(
        name=TRANSFORM,
        instance=i,
        attempt=attempt,
        state=state,  # type: ignore[arg-type]
        started_at=NOW,
    )
    return replace(base, **fields)


def transform_seen(*instances: ObservedTransformInstance, **fields: Any) -> ObservedTransform:
    return ObservedTransform(instances=tuple(instances), **fields)
