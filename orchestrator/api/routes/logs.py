"""``/api/v1/logs``: the log groups (training, endpoint and transform jobs' logs, the control
plane's own), their streams and events, and each group's retention (``api.logquery``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from orchestrator.access import Principal
from orchestrator.api.aws.loggroups import RETENTION_DAYS
from orchestrator.api.deps import authorized, log_group_resource, plane
from orchestrator.api.logquery import MAX_LIMIT, LogQuery
from orchestrator.api.service import ControlPlane

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])
Plane = Annotated[ControlPlane, Depends(plane)]
# Each route is the Logs operation it serves, on the group's ARN (``Group``; every group for
# the list of groups), as through the CloudWatch Logs protocol.
Groups = Annotated[Principal, Depends(authorized("logs:DescribeLogGroups", log_group_resource))]
Streams = Annotated[Principal, Depends(authorized("logs:DescribeLogStreams", log_group_resource))]
Events = Annotated[Principal, Depends(authorized("logs:FilterLogEvents", log_group_resource))]
Retention = Annotated[Principal, Depends(authorized("logs:PutRetentionPolicy", log_group_resource))]


GroupName = Annotated[str, Query(min_length=1, max_length=512)]


class RetentionBody(BaseModel):
    # One of CloudWatch's periods; None: keep every event.
    RetentionInDays: Literal[RETENTION_DAYS] | None = None  # type: ignore[valid-type]


@router.get("/groups")
def log_groups(cp: Plane, who: Groups, Prefix: str | None = None) -> dict[str, Any]:
    return {"LogGroups": LogQuery(cp).groups(who, Prefix)}


@router.get("/streams")
def log_streams(cp: Plane, who: Streams, Group: GroupName) -> dict[str, Any]:
    return {"LogStreams": LogQuery(cp).streams(who, Group)}


@router.get("/events")
def log_events(  # noqa: PLR0917 - one parameter per query parameter
    cp: Plane,
    who: Events,
    Group: GroupName,
    Stream: str | None = None,
    StreamPrefix: str | None = None,
    Filter: str | None = None,
    StartTime: str | None = None,
    EndTime: str | None = None,
    NextToken: str | None = None,
    Limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> dict[str, Any]:
    """Events in time order; ``NextToken`` always: poll with it for what comes next."""
    return LogQuery(cp).events(
        who,
        Group,
        stream=Stream,
        stream_prefix=StreamPrefix,
        pattern=Filter,
        start=StartTime,
        end=EndTime,
        token=NextToken,
        limit=Limit,
    )


@router.put("/retention")
def put_retention(
    cp: Plane, who: Retention, Group: GroupName, body: RetentionBody
) -> dict[str, Any]:
    days = None if body.RetentionInDays is None else int(body.RetentionInDays)  # lax: true is 1
    LogQuery(cp).put_retention(who, Group, days)
    return {"Group": Group, "RetentionInDays": days}
