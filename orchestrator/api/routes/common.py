"""Pieces every resource router shares: list query parameters and create responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse

from orchestrator.api.service import ListQuery


def list_query(  # noqa: PLR0917 - one parameter per SageMaker list filter
    MaxResults: Annotated[int | None, Query(ge=1, le=100)] = None,
    NextToken: str | None = None,
    NameContains: Annotated[str | None, Query(max_length=63)] = None,
    StatusEquals: str | None = None,
    CreationTimeAfter: datetime | None = None,
    CreationTimeBefore: datetime | None = None,
    LastModifiedTimeAfter: datetime | None = None,
    LastModifiedTimeBefore: datetime | None = None,
    SortBy: str = "CreationTime",
    SortOrder: str = "Descending",
) -> ListQuery:
    return ListQuery(
        MaxResults=MaxResults,
        NextToken=NextToken,
        NameContains=NameContains,
        StatusEquals=StatusEquals,
        CreationTimeAfter=CreationTimeAfter,
        CreationTimeBefore=CreationTimeBefore,
        LastModifiedTimeAfter=LastModifiedTimeAfter,
        LastModifiedTimeBefore=LastModifiedTimeBefore,
        SortBy=SortBy,
        SortOrder=SortOrder,
    )


def created(body: dict[str, Any], was_created: bool) -> JSONResponse:
    """201 for a new resource, 200 when the same create was repeated (idempotent)."""
    return JSONResponse(body, status_code=201 if was_created else 200)
