"""The REST face of the log groups (``GET /api/v1/logs/...``): the same groups, streams and
events the CloudWatch Logs protocol serves (``api.aws.logs``), with the product's errors.

Times (``StartTime``, ``EndTime``) are epoch milliseconds, an ISO 8601 time, or a duration
before now (``30s``, ``10m``, ``2h``, ``1d``). A page of events always carries a
``NextToken``: the byte position reached in each stream, so a follower polls with it and gets
only what was written since (an empty page while nothing was).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from orchestrator.access import Principal
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.logevents import positions_token, read_positions_token
from orchestrator.api.aws.logs import Logs
from orchestrator.api.service import ControlPlane
from orchestrator.errors import NotFoundError, OrchestratorError, ValidationError

_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# the wire's parameter -> the REST query parameter, for errors that name one
_FIELDS = {
    "filterPattern": "Filter",
    "startTime": "StartTime",
    "endTime": "EndTime",
    "nextToken": "NextToken",
    "logStreamName": "Stream",
    "logStreamNames": "Stream",
    "logStreamNamePrefix": "StreamPrefix",
    "limit": "Limit",
    "retentionInDays": "RetentionInDays",
}
MAX_LIMIT = 10_000


def parse_time(value: str, field: str, now: datetime) -> int:
    """Epoch ms from epoch ms, an ISO 8601 time or a duration before ``now``."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    m = _DURATION.match(text)
    if m is not None:
        ago = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return int((now - ago).timestamp() * 1000)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{field}: {value!r} is not a time; give a duration before now (30s, 10m, 2h, 1d), "
            "an ISO 8601 time (2026-01-01T12:00:00Z) or epoch milliseconds",
            field=field,
        ) from None
    return int((t if t.tzinfo is not None else t.astimezone()).timestamp() * 1000)


def _product_error(e: AwsError, group: str) -> OrchestratorError:
    if e.aws_code == "ResourceNotFoundException":
        if "stream" in e.message:
            return NotFoundError(
                f"log group {group!r} has no such log stream; `orch logs streams {group}` "
                "lists them",
                field="Stream",
            )
        return NotFoundError(
            f"log group {group!r} does not exist; `orch logs groups` lists the groups",
            field="Group",
        )
    name, _, rest = e.message.partition(":")
    field = _FIELDS.get(name)
    if field is None:
        return ValidationError(e.message)
    return ValidationError(f"{field}:{rest}", field=field)


class LogQuery:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.logs = Logs(cp)

    def groups(self, principal: Principal, prefix: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"logGroupNamePrefix": prefix} if prefix else {}
        while True:
            page = self.logs.describe_log_groups(params, principal)
            out += [
                {
                    "Name": g["logGroupName"],
                    "CreationTime": g["creationTime"],
                    "RetentionInDays": g.get("retentionInDays"),
                }
                for g in page["logGroups"]
            ]
            if "nextToken" not in page:
                return out
            params["nextToken"] = page["nextToken"]

    def streams(self, principal: Principal, group: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"logGroupName": group}
        out: list[dict[str, Any]] = []
        try:
            while True:
                page = self.logs.describe_log_streams(params, principal)
                out += [
                    {
                        "Name": s["logStreamName"],
                        "FirstEventTime": s["firstEventTimestamp"],
                        "LastEventTime": s["lastEventTimestamp"],
                    }
                    for s in page["logStreams"]
                ]
                if "nextToken" not in page:
                    return out
                params["nextToken"] = page["nextToken"]
        except AwsError as e:
            raise _product_error(e, group) from e

    def events(
        self,
        principal: Principal,
        group: str,
        *,
        stream: str | None = None,
        stream_prefix: str | None = None,
        pattern: str | None = None,
        start: str | None = None,
        end: str | None = None,
        token: str | None = None,
        limit: int = MAX_LIMIT,
    ) -> dict[str, Any]:
        now = self.cp.clock.now()
        params: dict[str, Any] = {"logGroupName": group, "limit": limit}
        if stream and stream_prefix:
            raise ValidationError(
                "Stream and StreamPrefix are mutually exclusive; give one of them", field="Stream"
            )
        if stream:
            params["logStreamNames"] = [stream]
        if stream_prefix:
            params["logStreamNamePrefix"] = stream_prefix
        if pattern:
            params["filterPattern"] = pattern
        if start:
            params["startTime"] = parse_time(start, "StartTime", now)
        if end:
            params["endTime"] = parse_time(end, "EndTime", now)
        if token:
            params["nextToken"] = token
        try:
            page, reached = self.logs.filter_events(params, principal)
        except AwsError as e:
            raise _product_error(e, group) from e
        next_token = page.get("nextToken")
        if next_token is None:  # caught up: poll on from where each stream was read to
            positions = _positions(token, group) if token else {}
            next_token = positions_token(group, positions | reached)
        return {
            "Events": [
                {"Stream": e["logStreamName"], "Timestamp": e["timestamp"], "Message": e["message"]}
                for e in page["events"]
            ],
            "NextToken": next_token,
        }

    def put_retention(self, principal: Principal, group: str, days: int | None) -> None:
        params: dict[str, Any] = {"logGroupName": group, "retentionInDays": days}
        try:
            if days is None:
                self.logs.delete_retention_policy(params, principal)
            else:
                self.logs.put_retention_policy(params, principal)
        except AwsError as e:
            raise _product_error(e, group) from e


def _positions(token: str, group: str) -> dict[str, int]:
    try:
        return read_positions_token(token, group)
    except AwsError as e:
        raise _product_error(e, group) from e
