"""CloudWatch Logs (awsJson1_1, ``X-Amz-Target: Logs_20140328.<Operation>``), read-only, over the
logs the backends keep: what ``Estimator.fit(logs=True)`` / ``Session.logs_for_job`` and
``wait_for_endpoint(live_logging=True)`` read.

Log groups, as SageMaker names them:

- ``/aws/sagemaker/TrainingJobs`` (once a training job exists): a stream per host of each job
  whose log has output, ``JOB/algo-K-EPOCH`` for K in 1..``ResourceConfig.InstanceCount``,
  EPOCH the second of the log's first line. On several hosts a backend whose logs are in the
  supervisor's format (``JobLogTimes``: Docker; the fake) tags each host's lines ``[algo-K] ``:
  each stream is its host's lines, tag removed, and the supervisor's own lines are algo-1's.
  Kubernetes keeps one pod's log (``read_job_logs``): a job there has one stream, algo-1's.
- ``/aws/sagemaker/Endpoints/NAME`` per endpoint: a stream ``VARIANT/REPLICA-ID`` per replica
  log the backend keeps (``ReplicaLogs``: the process and Docker backends, the fake; on
  Kubernetes ``VARIANT/POD``, the pod's log through the API server).
- ``/aws/sagemaker/TransformJobs`` and ``/orchestrator/control-plane``: ``loggroups``, which
  also keeps each group's retention (``PutRetentionPolicy``, ``DeleteRetentionPolicy``).

A line's ``timestamp`` is the time its writer put it in the log, from the log's time marks
(``training.joblog``: the supervisor marks every millisecond in which it writes, on the
process and Docker backends, and so does the fake); ``ingestionTime`` is the same instant.
A log without marks (Kubernetes pod logs, replica logs: the inference server writes its log
itself) does not know its lines' times: each of its lines carries the creation time of its job
or endpoint, so the stream stays in order and an SDK's position (timestamp, events to skip)
stays exact, and a time window takes all of such a log or none of it. Tokens are byte
offsets (``logevents``), so polling reads only what is new.

Tenancy: every group and stream is read through the resources store, which shows a caller
only its own account's jobs and endpoints, so another account's job streams and endpoint
groups answer exactly as absent ones. The control plane's own log is the server's: another
account sees no such group. The shared groups' retention (training, transform jobs, the
control plane) is the server's to set: another account's PutRetentionPolicy or
DeleteRetentionPolicy on them is refused (an endpoint's group is its own to set).

Errors are CloudWatch's: ``ResourceNotFoundException`` ("The specified log group does not
exist." / "... log stream ...") and ``InvalidParameterException`` naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Protocol

from orchestrator import tenancy
from orchestrator.access import Principal
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.jsonrpc import JsonService, Operation
from orchestrator.api.aws.logevents import (
    MAX_EVENTS,
    FilterPattern,
    Source,
    StreamInfo,
    Window,
    backward,
    end_of,
    event_id,
    forward,
    merge,
    opaque_token,
    positions_token,
    read_opaque_token,
    read_positions_token,
    read_stream_token,
    stream_token,
)
from orchestrator.api.aws.loggroups import (
    CONTROL_PLANE_GROUP,
    TRANSFORM_GROUP,
    ControlPlaneLog,
    Retention,
    TransformJobs,
)
from orchestrator.api.owners import own
from orchestrator.api.service import ControlPlane
from orchestrator.backends.base import JobLogTimes, ReplicaLogs
from orchestrator.resources.kinds import ENDPOINT, TRAINING_JOB, TRANSFORM_JOB
from orchestrator.store import ListFilter, Record
from orchestrator.training.joblog import ListMarks

Params = dict[str, Any]
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_GROUP = "/aws/sagemaker/Endpoints/"
_JOB_STREAM = re.compile(r"^(?P<job>[^/]+)/algo-(?P<host>[1-9][0-9]*)-(?P<epoch>[0-9]+)$")
_REPLICA = re.compile(r"^(?P<variant>.+)-[0-9]+-[0-9]+$")  # plan.endpoint.replica_id
_PAGE = 100

SUPPORTED: dict[str, str] = {
    "DescribeLogGroups": (
        "/aws/sagemaker/TrainingJobs (once a training job exists) and "
        "/aws/sagemaker/Endpoints/NAME per endpoint; logGroupNamePrefix, logGroupNamePattern, "
        "logGroupIdentifiers, limit, nextToken; also /aws/sagemaker/TransformJobs and "
        "/orchestrator/control-plane (the API servers' own log); retentionInDays"
    ),
    "DescribeLogStreams": (
        "JOB/algo-K-EPOCH per host of a job with output (K up to ResourceConfig.InstanceCount; "
        "per-host lines on Docker; one stream, algo-1, on Kubernetes), VARIANT/REPLICA-ID per "
        "replica log (process and Docker backends; VARIANT/POD on Kubernetes), "
        "JOB/algo-K-EPOCH per transform instance, a host name per API server; "
        "logStreamNamePrefix, orderBy, descending, limit, nextToken"
    ),
    "GetLogEvents": (
        "a stream's lines: timestamp = when the line was written (ms, from the log's time "
        "marks; the job's or endpoint's creation time where a log keeps none), ingestionTime "
        "the same; byte-offset tokens (the same token returns nothing until there is more); "
        "startFromHead, startTime, endTime, limit, 1 MB pages"
    ),
    "FilterLogEvents": (
        "several streams' events in time order: logStreamNames or logStreamNamePrefix, "
        'startTime, endTime, limit, nextToken; filterPattern terms, "phrases", ?alternatives '
        "and -exclusions (not JSON, space-delimited or %regex% patterns)"
    ),
    "PutRetentionPolicy": (
        "retentionInDays from CloudWatch's list; older events are no longer returned"
    ),
    "DeleteRetentionPolicy": "the group keeps its events again for as long as they are on disk",
}
NOT_SUPPORTED: list[str] = [
    "AssociateKmsKey",
    "CreateLogGroup",
    "CreateLogStream",
    "DeleteLogGroup",
    "DeleteLogStream",
    "DescribeMetricFilters",
    "DescribeQueries",
    "DescribeSubscriptionFilters",
    "GetLogRecord",
    "GetQueryResults",
    "ListTagsForResource",
    "PutLogEvents",
    "PutMetricFilter",
    "PutSubscriptionFilter",
    "StartLiveTail",
    "StartQuery",
    "StopQuery",
    "TagResource",
    "UntagResource",
]


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def _no_group() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log group does not exist.")


def _no_stream() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log stream does not exist.")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


# --- parameters ----------------------------------------------------------------------------
def _str(p: Params, name: str) -> str | None:
    v = p.get(name)
    if v is None or isinstance(v, str):
        return v
    raise _invalid(f"{name}: must be a string (got {type(v).__name__})")


def _int(p: Params, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    v = p.get(name)
    if v is None:
        return default
    if type(v) is not int or not lo <= v <= hi:
        raise _invalid(f"{name}: must be a whole number from {lo} to {hi} (got {v!r})")
    return v


def _bool(p: Params, name: str, default: bool) -> bool:
    v = p.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _invalid(f"{name}: must be true or false (got {v!r})")
    return v


def _window(p: Params, pattern: FilterPattern | None = None) -> Window:
    start = _int(p, "startTime", 0, 2**63 - 1)
    end = _int(p, "endTime", 0, 2**63 - 1)
    if start is not None and end is not None and end < start:
        raise _invalid(f"endTime: {end} is before startTime {start} (both epoch milliseconds)")
    match = None if pattern is None or pattern.empty else pattern
    return Window(start, end, match)


# --- groups and streams --------------------------------------------------------------------
class Group(Protocol):
    name: str
    action: str  # the policy action reading it takes

    def streams(self, prefix: str) -> list[StreamInfo]: ...

    def open(self, stream: str) -> Source:
        """The stream's source (close it after), or ``ResourceNotFoundException``."""


def _hosts(r: Record) -> int:
    count = (r.spec.get("ResourceConfig") or {}).get("InstanceCount", 1)
    return count if isinstance(count, int) and count > 0 else 1


class TrainingJobs:
    name = TRAINING_GROUP
    action = "training-job:logs"

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def _source(self, r: Record, host: str | None = None, *, untagged: bool = True) -> Source:
        backend = self.cp.backend
        marks = backend.job_log_marks(r.name) if isinstance(backend, JobLogTimes) else ListMarks()
        return Source(
            read=partial(backend.read_job_logs, r.name),
            marks=marks,
            fallback_ms=_ms(r.created_at),
            complete=not r.active,
            host=host,
            untagged=untagged,
        )

    def _hosts(self, r: Record) -> int:
        """How many streams the job has: one per host where the log tags the hosts' lines."""
        return _hosts(r) if isinstance(self.cp.backend, JobLogTimes) else 1

    def _streams_of(self, r: Record) -> list[StreamInfo]:
        src = self._source(r)
        try:
            if not src.read(0, 1)[0]:
                return []  # no output yet: no stream (as SageMaker, until a host writes)
            first, last = src.time_at(0), src.last_ms
        finally:
            src.close()
        return [
            StreamInfo(f"{r.name}/algo-{k}-{first // 1000}", first, last)
            for k in range(1, self._hosts(r) + 1)
        ]

    def _records(self, prefix: str) -> Iterator[Record]:
        job, slash, _ = prefix.partition("/")
        if slash:  # one job's streams (the SDK's ``JOB/``)
            r = own(self.cp.store.find(TRAINING_JOB.name, job))
            if r is not None:
                yield r
            return
        token = None
        while True:
            page, token = self.cp.store.list(
                TRAINING_JOB.name, ListFilter(limit=_PAGE, next_token=token, name_contains=prefix)
            )
            yield from (r for r in page if r.name.startswith(prefix) and own(r))
            if token is None:
                return

    def streams(self, prefix: str) -> list[StreamInfo]:
        return [
            s
            for r in self._records(prefix)
            for s in self._streams_of(r)
            if s.name.startswith(prefix)
        ]

    def open(self, stream: str) -> Source:
        m = _JOB_STREAM.match(stream)
        r = own(self.cp.store.find(TRAINING_JOB.name, m["job"])) if m else None
        if m is None or r is None or int(m["host"]) > self._hosts(r):
            raise _no_stream()
        k = int(m["host"])
        src = self._source(r, f"algo-{k}" if self._hosts(r) > 1 else None, untagged=k == 1)
        if not src.read(0, 1)[0] or src.time_at(0) // 1000 != int(m["epoch"]):
            src.close()
            raise _no_stream()
        return src


class EndpointLogs:
    action = "endpoint:logs"

    def __init__(self, cp: ControlPlane, record: Record) -> None:
        self.cp = cp
        self.record = record
        self.name = ENDPOINT_GROUP + record.name

    def _ids(self) -> list[str]:
        backend = self.cp.backend
        return backend.replica_log_ids(self.record.name) if isinstance(backend, ReplicaLogs) else []

    def _source(self, replica_id: str) -> Source:
        backend = self.cp.backend
        assert isinstance(backend, ReplicaLogs)
        endpoint = self.record.name
        return Source(
            read=partial(backend.read_replica_log, endpoint, replica_id),
            marks=backend.replica_log_marks(endpoint, replica_id),
            fallback_ms=_ms(self.record.created_at),
        )

    @staticmethod
    def stream_name(replica_id: str) -> str:
        if "/" in replica_id:  # already VARIANT/INSTANCE (Kubernetes: VARIANT/POD)
            return replica_id
        m = _REPLICA.match(replica_id)
        return f"{m['variant'] if m else replica_id}/{replica_id}"

    def streams(self, prefix: str) -> list[StreamInfo]:
        out = []
        for rid in self._ids():
            name = self.stream_name(rid)
            if not name.startswith(prefix):
                continue
            src = self._source(rid)
            try:
                if src.read(0, 1)[0]:
                    out.append(StreamInfo(name, src.time_at(0), src.last_ms))
            finally:
                src.close()
        return out

    def open(self, stream: str) -> Source:
        rid = next((r for r in self._ids() if self.stream_name(r) == stream), None)
        if rid is None:
            raise _no_stream()
        return self._source(rid)


# --- the operations ------------------------------------------------------------------------
class Logs:
    """The operations, over a control plane."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.retention = Retention(cp.settings.logs_dir)
        self.arn_prefix = f"arn:aws:logs:{cp.settings.region}:{cp.settings.account_id}:log-group:"

    def _group_name(self, p: Params) -> str:
        name, ident = _str(p, "logGroupName"), _str(p, "logGroupIdentifier")
        if name and ident:
            raise _invalid(
                "logGroupName and logGroupIdentifier are mutually exclusive; give one of them"
            )
        if ident:
            name = ident.removeprefix(self.arn_prefix).removesuffix(":*")
        if not name:
            raise _invalid("logGroupName: required (or logGroupIdentifier, its name or ARN)")
        return name

    def group(self, p: Params, principal: Principal) -> Group:
        name = self._group_name(p)
        group: Group
        if name == TRAINING_GROUP:
            first, _ = self.cp.store.list(TRAINING_JOB.name, ListFilter(limit=1))
            if not [r for r in first if own(r)]:
                raise _no_group()
            group = TrainingJobs(self.cp)
        elif name.startswith(ENDPOINT_GROUP):
            record = own(self.cp.store.find(ENDPOINT.name, name.removeprefix(ENDPOINT_GROUP)))
            if record is None:
                raise _no_group()
            group = EndpointLogs(self.cp, record)
        elif name == TRANSFORM_GROUP:
            first, _ = self.cp.store.list(TRANSFORM_JOB.name, ListFilter(limit=1))
            if not [r for r in first if own(r)]:
                raise _no_group()
            group = TransformJobs(self.cp)
        elif name == CONTROL_PLANE_GROUP:
            group = ControlPlaneLog(self.cp)
            if not group.exists() or not tenancy.visible(tenancy.ROOT):
                raise _no_group()
        else:
            raise _no_group()
        return group

    def target(self, p: Params) -> tuple[str, None]:
        """The log group an operation reads, as its ARN (every group: DescribeLogGroups)."""
        try:
            name = self._group_name(p)
        except AwsError:
            return f"{self.arn_prefix}*", None
        return f"{self.arn_prefix}{name}", None

    def _groups(self) -> list[tuple[str, int]]:
        oldest, _ = self.cp.store.list(TRAINING_JOB.name, ListFilter(limit=1, ascending=True))
        oldest = [r for r in oldest if own(r)]
        out = [(TRAINING_GROUP, _ms(oldest[0].created_at))] if oldest else []
        oldest, _ = self.cp.store.list(TRANSFORM_JOB.name, ListFilter(limit=1, ascending=True))
        oldest = [r for r in oldest if own(r)]
        out += [(TRANSFORM_GROUP, _ms(oldest[0].created_at))] if oldest else []
        server_log = ControlPlaneLog(self.cp)
        if server_log.exists() and tenancy.visible(tenancy.ROOT):
            out += [(CONTROL_PLANE_GROUP, server_log.created())]
        token = None
        while True:
            page, token = self.cp.store.list(
                ENDPOINT.name, ListFilter(limit=_PAGE, next_token=token)
            )
            out += [(ENDPOINT_GROUP + r.name, _ms(r.created_at)) for r in page if own(r)]
            if token is None:
                return sorted(out)

    def retained(self, group: str, window: Window) -> Window:
        """``window`` less the events older than the group's retention."""
        kept = self.retention.start_ms(group, self.cp.clock.now())
        if kept is None or (window.start_ms is not None and window.start_ms >= kept):
            return window
        return replace(window, start_ms=kept)

    def _own_retention(self, group: Group) -> None:
        if not group.name.startswith(ENDPOINT_GROUP) and not tenancy.visible(tenancy.ROOT):
            raise AwsError(
                "AccessDeniedException",
                f"logGroupName: {group.name!r} is shared by every account of this server; its "
                "retention is set by the server's own account (an endpoint's group is yours)",
            )

    def put_retention_policy(self, p: Params, principal: Principal) -> dict[str, Any]:
        group = self.group(p, principal)
        self._own_retention(group)
        self.retention.put(group.name, p.get("retentionInDays"))
        return {}

    def delete_retention_policy(self, p: Params, principal: Principal) -> dict[str, Any]:
        group = self.group(p, principal)
        self._own_retention(group)
        self.retention.delete(group.name)
        return {}

    def describe_log_groups(self, p: Params, _: Principal) -> dict[str, Any]:
        prefix, pattern = _str(p, "logGroupNamePrefix"), _str(p, "logGroupNamePattern")
        if prefix and pattern:
            raise _invalid(
                "logGroupNamePrefix and logGroupNamePattern are mutually exclusive; give one"
            )
        if _bool(p, "includeLinkedAccounts", False):
            raise _invalid("includeLinkedAccounts: this server has one account, none linked")
        limit = _int(p, "limit", 1, 50, 50) or 50
        idents = p.get("logGroupIdentifiers")
        wanted = None
        if idents is not None:
            if not isinstance(idents, list) or not all(isinstance(i, str) for i in idents):
                raise _invalid("logGroupIdentifiers: must be a list of log group names or ARNs")
            wanted = {i.removeprefix(self.arn_prefix).removesuffix(":*") for i in idents}
        groups = [
            (name, created)
            for name, created in self._groups()
            if (not prefix or name.startswith(prefix))
            and (not pattern or pattern.lower() in name.lower())
            and (wanted is None or name in wanted)
            and p.get("logGroupClass") in (None, "STANDARD")
        ]
        token = _str(p, "nextToken")
        if token:
            after = read_opaque_token(token, "groups", "DescribeLogGroups")
            groups = [g for g in groups if g[0] > str(after)]
        retention = self.retention.all()
        out: dict[str, Any] = {
            "logGroups": [
                {
                    "logGroupName": name,
                    **({"retentionInDays": retention[name]} if name in retention else {}),
                    "creationTime": created,
                    "metricFilterCount": 0,
                    "arn": f"{self.arn_prefix}{name}:*",
                    "logGroupArn": f"{self.arn_prefix}{name}",
                    "logGroupClass": "STANDARD",
                }
                for name, created in groups[:limit]
            ]
        }
        if len(groups) > limit:
            out["nextToken"] = opaque_token("groups", groups[limit - 1][0])
        return out

    def describe_log_streams(self, p: Params, principal: Principal) -> dict[str, Any]:
        group = self.group(p, principal)
        prefix = _str(p, "logStreamNamePrefix") or ""
        order = _str(p, "orderBy") or "LogStreamName"
        if order not in ("LogStreamName", "LastEventTime"):
            raise _invalid(f"orderBy: must be LogStreamName or LastEventTime (got {order!r})")
        if order == "LastEventTime" and prefix:
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        descending = _bool(p, "descending", False)
        limit = _int(p, "limit", 1, 50, 50) or 50

        def key(s: StreamInfo) -> list[Any]:
            return [s.name] if order == "LogStreamName" else [s.last_ms, s.name]

        streams = sorted(group.streams(prefix), key=key, reverse=descending)
        scope = f"streams\0{group.name}\0{prefix}\0{order}\0{descending}"
        token = _str(p, "nextToken")
        if token:
            after = read_opaque_token(token, scope, f"DescribeLogStreams on {group.name!r}")
            if not isinstance(after, list):
                raise _invalid("nextToken: not a token of DescribeLogStreams")
            streams = [s for s in streams if (key(s) < after if descending else key(s) > after)]
        page = streams[:limit]
        out: dict[str, Any] = {
            "logStreams": [
                {
                    "logStreamName": s.name,
                    "creationTime": s.first_ms,
                    "firstEventTimestamp": s.first_ms,
                    "lastEventTimestamp": s.last_ms,
                    "lastIngestionTime": s.last_ms,
                    "arn": f"{self.arn_prefix}{group.name}:log-stream:{s.name}",
                }
                for s in page
            ]
        }
        if len(streams) > limit:  # only then: the SDK loops for as long as there is one
            out["nextToken"] = opaque_token(scope, key(page[-1]))
        return out

    def get_log_events(self, p: Params, principal: Principal) -> dict[str, Any]:
        group = self.group(p, principal)
        stream = _str(p, "logStreamName")
        if not stream:
            raise _invalid("logStreamName: required")
        limit = _int(p, "limit", 1, MAX_EVENTS, MAX_EVENTS) or MAX_EVENTS
        window = self.retained(group.name, _window(p))
        head = _bool(p, "startFromHead", False)
        token = _str(p, "nextToken")
        key = f"{group.name}\0{stream}"
        src = group.open(stream)
        try:
            kind, offset = read_stream_token(token, key) if token else ("f" if head else "b", -1)
            if kind == "f":
                page = forward(src, max(offset, 0), window, limit=limit)
                first = page.events[0].offset if page.events else page.position
                fwd, back = page.position, first
            else:
                end = end_of(src) if offset < 0 else offset
                page = backward(src, end, window, limit=limit)
                fwd, back = (page.events[-1].end if page.events else end), page.position
        finally:
            src.close()
        return {
            "events": [
                {"timestamp": e.ms, "message": e.message, "ingestionTime": e.ms}
                for e in page.events
            ],
            "nextForwardToken": stream_token("f", key, fwd),
            "nextBackwardToken": stream_token("b", key, back),
        }

    def filter_log_events(self, p: Params, principal: Principal) -> dict[str, Any]:
        return self.filter_events(p, principal)[0]

    def filter_events(
        self, p: Params, principal: Principal
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """FilterLogEvents' answer and the position reached in each stream searched (where a
        follower reads on from, also when the answer has no ``nextToken``)."""
        group = self.group(p, principal)
        names = p.get("logStreamNames")
        prefix = _str(p, "logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise _invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive; give one of them"
            )
        if names is not None and (
            not isinstance(names, list)
            or not 1 <= len(names) <= 100
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise _invalid("logStreamNames: must be a list of 1 to 100 log stream names")
        if not _bool(p, "startFromHead", True):
            raise _invalid("startFromHead: only true here (the earliest events first)")
        pattern = FilterPattern(_str(p, "filterPattern") or "")
        window = self.retained(group.name, _window(p, pattern))
        limit = _int(p, "limit", 1, MAX_EVENTS, MAX_EVENTS) or MAX_EVENTS
        token = _str(p, "nextToken")
        positions = read_positions_token(token, group.name) if token else {}
        chosen = (
            list(dict.fromkeys(names)) if names else [s.name for s in group.streams(prefix or "")]
        )
        sources: list[Source] = []
        try:
            for name in chosen:
                sources.append(group.open(name))
            merged = merge(sources, [positions.get(n, 0) for n in chosen], window, limit=limit)
        finally:
            for src in sources:
                src.close()
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": chosen[i],
                    "timestamp": e.ms,
                    "message": e.message,
                    "ingestionTime": e.ms,
                    "eventId": event_id(f"{group.name}\0{chosen[i]}", e.offset),
                }
                for i, e in merged.events
            ],
            "searchedLogStreams": [
                {"logStreamName": n, "searchedCompletely": done}
                for n, done in zip(chosen, merged.done, strict=True)
            ],
        }
        reached = dict(zip(chosen, merged.positions, strict=True))
        if merged.more:
            out["nextToken"] = positions_token(group.name, reached)
        return out, reached


def operations(cp: ControlPlane) -> dict[str, Operation]:
    logs = Logs(cp)
    handlers = {
        "DescribeLogGroups": logs.describe_log_groups,
        "DescribeLogStreams": logs.describe_log_streams,
        "GetLogEvents": logs.get_log_events,
        "FilterLogEvents": logs.filter_log_events,
        "PutRetentionPolicy": logs.put_retention_policy,
        "DeleteRetentionPolicy": logs.delete_retention_policy,
    }
    return {
        name: Operation(name, f"logs:{name}", handler, SUPPORTED[name], logs.target)
        for name, handler in handlers.items()
    }


class LogsService(JsonService):
    signing_name: ClassVar[str] = "logs"
    target_prefix: ClassVar[str] = "Logs_20140328."
    json_version: ClassVar[str] = "1.1"

    def __init__(self, cp: ControlPlane) -> None:
        super().__init__(operations(cp))
