"""SageMaker's control-plane API (awsJson1_1, ``X-Amz-Target: SageMaker.<Operation>``) as one
table over ``ControlPlane``.

Each row names the operation, the policy action it needs and the function that turns the
request's members into a service call and its result into the response's members (timestamps
as datetimes; the protocol layer writes them as epoch seconds). The requests are the
resource models themselves (SageMaker's field names), validated by ``parse_spec``, so a bad
field is a ``ValidationException`` that names it. ``python -m orchestrator.api.aws.compat``
writes ``docs/sagemaker-compat.md`` from these tables.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrator.access import Principal
from orchestrator.api.aws.jsonrpc import JsonService, Operation
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.resources import parse_spec
from orchestrator.resources.training import CreateTrainingJobRequest

Params = dict[str, Any]


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="python", exclude_none=True)
    return out


def _list_query(params: Params) -> ListQuery:
    return parse_spec(ListQuery, {k: v for k, v in params.items() if k in ListQuery.model_fields})


def operations(cp: ControlPlane) -> dict[str, Operation]:
    def create_training_job(p: Params, _: Principal) -> dict[str, Any]:
        arn, _created = cp.create_training_job(parse_spec(CreateTrainingJobRequest, p))
        return {"TrainingJobArn": arn}

    def describe_training_job(p: Params, _: Principal) -> dict[str, Any]:
        return _dump(cp.describe_training_job(str(p.get("TrainingJobName", ""))))

    def list_training_jobs(p: Params, _: Principal) -> dict[str, Any]:
        items, token = cp.list_training_jobs(_list_query(p))
        out: dict[str, Any] = {"TrainingJobSummaries": [_dump(i) for i in items]}
        if token:
            out["NextToken"] = token
        return out

    def stop_training_job(p: Params, _: Principal) -> dict[str, Any]:
        cp.stop_training_job(str(p.get("TrainingJobName", "")))
        return {}

    table = [
        Operation("CreateTrainingJob", "training-job:create", create_training_job),
        Operation("DescribeTrainingJob", "training-job:describe", describe_training_job),
        Operation("ListTrainingJobs", "training-job:list", list_training_jobs),
        Operation("StopTrainingJob", "training-job:stop", stop_training_job),
    ]
    return {op.name: op for op in table}


class SageMakerService(JsonService):
    signing_name: ClassVar[str] = "sagemaker"
    target_prefix: ClassVar[str] = "SageMaker."
    json_version: ClassVar[str] = "1.1"

    def __init__(self, cp: ControlPlane) -> None:
        super().__init__(operations(cp))
