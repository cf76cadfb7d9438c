"""``/api/v1/tags``: AddTags, ListTags, DeleteTags for any resource, by its ARN."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from orchestrator.api.deps import authorized, plane, tagged_resource
from orchestrator.api.service import ControlPlane
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.resources.tags import (
    AddTagsRequest,
    AddTagsResponse,
    DeleteTagsRequest,
    ListTagsResponse,
    ResourceArn,
)

router = APIRouter(prefix=f"{REST_PREFIX}/tags", tags=["Tags"])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    "",
    response_model=AddTagsResponse,
    dependencies=[Depends(authorized("sagemaker:AddTags", tagged_resource))],
    responses={404: {"description": "No resource has that ARN"}},
)
def add_tags(body: AddTagsRequest, cp: Plane) -> AddTagsResponse:
    """Add tags to a resource, or overwrite those with the same key (50 at most)."""
    return AddTagsResponse(Tags=cp.tags.add_by_arn(body.ResourceArn, body.Tags))


@router.get(
    "",
    response_model=ListTagsResponse,
    dependencies=[Depends(authorized("sagemaker:ListTags", tagged_resource))],
    responses={404: {"description": "No resource has that ARN"}},
)
def list_tags(
    cp: Plane,
    ResourceArn: Annotated[ResourceArn, Query()],
    MaxResults: Annotated[int, Query(ge=1, le=100)] = 50,
    NextToken: str | None = None,
) -> ListTagsResponse:
    tags, token = cp.tags.list_by_arn(ResourceArn, MaxResults, NextToken)
    return ListTagsResponse(Tags=tags, NextToken=token)


@router.post(
    "/delete",
    dependencies=[Depends(authorized("sagemaker:DeleteTags", tagged_resource))],
    responses={404: {"description": "No resource has that ARN"}},
)
def delete_tags(body: DeleteTagsRequest, cp: Plane) -> dict[str, str]:
    """Remove the tags with these keys (keys the resource does not have are ignored)."""
    cp.tags.delete_by_arn(body.ResourceArn, body.TagKeys)
    return {"ResourceArn": body.ResourceArn}
