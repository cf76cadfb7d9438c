"""``/api/v1/algorithms``: the built-in algorithms and their hyperparameters (a train wizard's
form), from ``algorithms.catalog``: SageMaker's ListAlgorithms and DescribeAlgorithm."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from orchestrator.algorithms.catalog import describe_algorithm, list_algorithms
from orchestrator.api.deps import authorized
from orchestrator.resources.evaluation import AlgorithmOut, ListAlgorithmsResponse
from orchestrator.resources.kinds import REST_PREFIX

router = APIRouter(prefix=f"{REST_PREFIX}/algorithms", tags=["Algorithms"])


@router.get(
    "",
    response_model=ListAlgorithmsResponse,
    dependencies=[Depends(authorized("sagemaker:ListAlgorithms"))],
)
def list_builtin_algorithms() -> ListAlgorithmsResponse:
    return ListAlgorithmsResponse.model_validate(list_algorithms())


@router.get(
    "/{name}",
    response_model=AlgorithmOut,
    dependencies=[Depends(authorized("sagemaker:DescribeAlgorithm"))],
    responses={404: {"description": "No built-in algorithm has that name"}},
)
def describe_builtin_algorithm(name: str) -> AlgorithmOut:
    return AlgorithmOut.model_validate(describe_algorithm(name))
