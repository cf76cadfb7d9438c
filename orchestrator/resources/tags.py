"""Tags of any resource by its ARN over REST (``/api/v1/tags``): add, list, delete.

The same shapes as SageMaker's AddTags, ListTags and DeleteTags; a resource has at most 50
tags and keys starting with ``aws:`` are SageMaker's own (``api.tags``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from orchestrator.resources.common import Output, Spec, Tag, TagList

ResourceArn = Annotated[str, StringConstraints(min_length=1, max_length=256)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AddTagsRequest(Spec):
    ResourceArn: ResourceArn
    Tags: Annotated[TagList, Field(min_length=1)]


class AddTagsResponse(Output):
    Tags: list[Tag] = []


class ListTagsResponse(Output):
    Tags: list[Tag] = []
    NextToken: str | None = None


class DeleteTagsRequest(Spec):
    ResourceArn: ResourceArn
    TagKeys: Annotated[list[TagKey], Field(min_length=1, max_length=50)]
