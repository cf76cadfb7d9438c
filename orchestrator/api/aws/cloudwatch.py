"""CloudWatch metrics, read-only, over the endpoint time series (``monitoring.series``): what
dashboards, ``aws cloudwatch`` and boto3 read about SageMaker endpoints.

Protocols. botocore 1.44's model for ``cloudwatch`` lists ``smithy-rpc-v2-cbor``, ``json``
and ``query``; botocore picks ``json`` (awsJson1_0, ``X-Amz-Target:
GraniteServiceVersion20100801.<Operation>``, epoch-second timestamps, query-compatible
errors: ``x-amzn-query-error``), older botocore the ``query`` protocol (a form-encoded
``Action``, an XML answer). Both are served from the one operation table; a query request's
own errors come back in XML, but a refusal before it reaches the service (a bad signature) is
written in JSON. ``smithy-rpc-v2-cbor`` is not served (it needs a CBOR codec; no botocore
picks it while ``json`` is listed).

Metrics are the ones the series keep (``monitoring.shapes.METRICS``: Invocations,
Invocation4XXErrors, Invocation5XXErrors, InvocationsPerInstance, ModelLatency,
OverheadLatency, ConcurrentRequests, ModelSetupTime in ``AWS/SageMaker``; CPUUtilization and
MemoryUtilization in ``/aws/sagemaker/Endpoints``, where SageMaker puts them) with the
dimensions SageMaker publishes them with, EndpointName and VariantName; and training jobs'
resource use in ``/aws/sagemaker/TrainingJobs`` with dimension ``Host`` = ``<job>/algo-N``
(``jobusage.py``; GetMetricStatistics and GetMetricData, not listed by ListMetrics). As
CloudWatch, a query for a metric that does not exist (another namespace, name, dimension set
or unit) answers no datapoints, not an error; a malformed one is ``InvalidParameterValue``,
``InvalidParameterCombination`` or ``MissingParameter``, naming the parameter.

Tenancy: a caller sees an endpoint's or a training job's series only when the resource
(EndpointName; the job of Host) is its own account's (``api.owners``), and the custom
namespaces' data it put itself; another account's series answers as an unknown one: no
datapoints, not listed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from orchestrator.access import Principal, authorize
from orchestrator.api.alarms import Alarms, unavailable
from orchestrator.api.aws.errors import AwsError, aws_error
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse
from orchestrator.api.aws.jobusage import UNIT as JOB_UNIT
from orchestrator.api.aws.jobusage import datapoints as job_datapoints
from orchestrator.api.aws.jobusage import job_host
from orchestrator.api.aws.jsonrpc import JsonService, Operation
from orchestrator.api.aws.logevents import opaque_token, read_opaque_token
from orchestrator.api.aws.query import error_xml, to_xml, unflatten
from orchestrator.api.owners import Owners
from orchestrator.api.service import ControlPlane
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.shapes import (
    BASIC_STATISTICS,
    MAX_DATAPOINTS,
    METRICS,
    Datapoint,
    percentile_of,
)
from orchestrator.monitoring.usermetrics import dimensions_key, parse_metric_data, user_datapoints
from orchestrator.resources.alarms import MetricAlarm
from orchestrator.resources.kinds import ENDPOINT, TRAINING_JOB
from orchestrator.training.usage import METRICS as USAGE_METRICS

Params = dict[str, Any]
SAGEMAKER = "AWS/SageMaker"
ENDPOINTS = "/aws/sagemaker/Endpoints"
NAMESPACE = {m: ENDPOINTS if m in ("CPUUtilization", "MemoryUtilization") else SAGEMAKER
             for m in METRICS}  # fmt: skip
DIMENSIONS = ("EndpointName", "VariantName")
NAMESPACES = frozenset({SAGEMAKER, ENDPOINTS, "/aws/sagemaker/TrainingJobs"})
_XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_MAPS = frozenset({"ExtendedStatistics"})  # members the query protocol writes as maps
_LIST_PAGE = 500
MAX_DATA_POINTS_PER_CALL = 100_800
UNITS = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
]

SUPPORTED: dict[str, str] = {
    "GetMetricStatistics": (
        "AWS/SageMaker and /aws/sagemaker/Endpoints endpoint metrics by EndpointName + "
        "VariantName: Statistics SampleCount/Average/Sum/Minimum/Maximum, ExtendedStatistics "
        "pNN (latencies, setup time, concurrency, CPU, memory), Period 1/5/10/30 or n*60 s, "
        "Unit; kept 3 hours at one-second resolution, then as 1-minute (15 days), 5-minute "
        "(63 days) and 1-hour (455 days) rollups in the SQL store; user metrics of "
        "PutMetricData by their dimensions; and /aws/sagemaker/TrainingJobs "
        "CPUUtilization, MemoryUtilization, DiskUtilization, GPUUtilization, "
        "GPUMemoryUtilization by Host (<job>/algo-N) from the job's samples"
    ),
    "GetMetricData": (
        "MetricDataQueries with MetricStat (Stat: a basic statistic or pNN), ScanBy, "
        "MaxDatapoints, NextToken; metric math Expressions are refused, naming the query"
    ),
    "ListMetrics": (
        "the metrics recorded in the last 3 hours for endpoints that exist; Namespace, "
        "MetricName, Dimensions filters, NextToken"
    ),
    "PutMetricData": (
        "user metrics in any namespace but AWS/...: Value, Values + Counts, StatisticValues, "
        "Dimensions, Timestamp (two weeks back, two hours ahead), Unit; kept durably (the "
        "1-hour retention) and read by GetMetricStatistics, GetMetricData and ListMetrics"
    ),
}
SUPPORTED.update({
    "PutMetricAlarm": (
        "one metric (Namespace, MetricName, Dimensions) with Statistic or ExtendedStatistic "
        "pNN, Period 10, 30 or n*60, EvaluationPeriods, DatapointsToAlarm, the four "
        "threshold ComparisonOperators, TreatMissingData; actions: https:// webhooks (signed), "
        "action/stop-training-job/JOB, action/scale-variant/ENDPOINT/VARIANT/COUNT "
        "(docs/alarms.md); metric math (Metrics) is refused, naming it"
    ),
    "DescribeAlarms": "AlarmNames, AlarmNamePrefix, StateValue, MaxRecords (MetricAlarms only)",
    "DeleteAlarms": "AlarmNames",
    "DescribeAlarmHistory": "AlarmName, HistoryItemType, StartDate, EndDate, MaxRecords",
    "SetAlarmState": "StateValue, StateReason, StateReasonData (the alarm's actions run)",
})  # fmt: skip
NOT_SUPPORTED: list[str] = [
    "DeleteDashboards",
    "DescribeAlarmsForMetric",
    "GetDashboard",
    "GetMetricWidgetImage",
    "ListDashboards",
    "PutDashboard",
]


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValue", message)


def _combination(message: str) -> AwsError:
    return AwsError("InvalidParameterCombination", message)


def _missing(name: str) -> AwsError:
    return AwsError("MissingParameter", f"The parameter {name} is required.")


# --- parameters: JSON values, or the query protocol's strings --------------------------------
def _required(p: Params, name: str, label: str | None = None) -> Any:
    v = p.get(name)
    if v is None or v == "":
        raise _missing(label or name)
    return v


def _str(p: Params, name: str, *, required: bool = False, label: str | None = None) -> str | None:
    v = _required(p, name, label) if required else p.get(name)
    if v is None or isinstance(v, str):
        return v
    raise _invalid(f"The parameter {label or name} must be a string.")


def _int(
    p: Params, name: str, *, required: bool = False, lo: int = 1, label: str | None = None
) -> int | None:
    v = _required(p, name, label) if required else p.get(name)
    if v is None:
        return None
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if type(v) is not int or v < lo:
        raise _invalid(f"The parameter {label or name} must be a whole number of at least {lo}.")
    return v


def _time(p: Params, name: str) -> datetime:
    v = _required(p, name)
    try:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return datetime.fromtimestamp(float(v), UTC)
        if isinstance(v, str):
            t = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise _invalid(
        f"The parameter {name} must be a time: ISO 8601 (2026-01-01T00:00:00Z) or epoch seconds."
    )


def _list(p: Params, name: str, label: str | None = None) -> list[Any]:
    v = p.get(name)
    if v is None or v == "":
        return []
    if not isinstance(v, list):
        raise _invalid(f"The parameter {label or name} must be a list.")
    return v


def _dimensions(
    p: Params, label: str = "Dimensions", *, values: bool = True
) -> list[tuple[str, str | None]]:
    out = []
    for i, d in enumerate(_list(p, "Dimensions", label), 1):
        where = f"{label}.member.{i}"
        if not isinstance(d, dict):
            raise _invalid(f"The parameter {where} must be a Name and a Value.")
        key = _str(d, "Name", label=f"{where}.Name")
        value = _str(d, "Value", label=f"{where}.Value")
        if not key:
            raise _missing(f"{where}.Name")
        if values and value is None:
            raise _missing(f"{where}.Value")
        out.append((key, value))
    if len(out) > 30:
        raise _invalid(f"The collection {label} must not have more than 30 members.")
    return out


def _period(p: Params, label: str = "Period") -> int:
    period = _int(p, "Period", required=True, label=label)
    assert period is not None
    if period not in (1, 5, 10, 30) and period % 60:
        raise _invalid(f"The parameter {label} must be 1, 5, 10, 30 or a multiple of 60.")
    return period


def _percentile(stat: str, name: str) -> str:
    if percentile_of(stat) is None:
        raise _invalid(
            f"The parameter {name} {stat!r} is not a statistic this server keeps: use a "
            "percentile p0..p100 such as p99 or p99.9 (trimmed and winsorized means, tc, ts, "
            "PR and IQM are not supported)"
        )
    return stat


class Metrics:
    """The operations, over the control plane's series."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._user_dims: dict[str, list[tuple[str, str | None]]] = {}

    def put_metric_data(self, p: Params, _: Principal) -> dict[str, Any]:
        if self.cp.user_metrics is None:
            raise AwsError(
                "ServiceUnavailable", "this control plane keeps no durable metrics", status=503
            )
        try:
            data = parse_metric_data(
                p.get("Namespace"), p.get("MetricData"),
                now=self.cp.clock.now().timestamp(), units=UNITS,
            )  # fmt: skip
        except ValidationError as e:
            if "required" in e.message and e.field:
                raise _missing(e.field) from e
            raise _invalid(e.message) from e
        self.cp.user_metrics.put(data)
        return {}

    @property
    def series(self) -> SeriesStore:
        if self.cp.series is None:
            raise AwsError(
                "ServiceUnavailable", "this control plane records no endpoint metrics", status=503
            )
        return self.cp.series

    def _series_of(self, namespace: str, metric: str, dims: list[tuple[str, str | None]]) -> (
        tuple[str, str, str] | None
    ):  # fmt: skip
        """("endpoint", endpoint, variant) or ("job", job, host) when the namespace, name and
        dimensions name a kept metric."""
        job = job_host(namespace, metric, dims)
        if job is not None:
            return ("job", *job)
        if namespace not in NAMESPACES and not namespace.startswith("AWS/"):
            key = dimensions_key(dims)
            self._user_dims[key] = dims
            return "user", namespace, key
        names = {k: v for k, v in dims}
        if metric not in METRICS or NAMESPACE.get(metric) != namespace or len(names) != len(dims):
            return None
        if set(names) != set(DIMENSIONS) or not all(names.values()):
            return None
        return "endpoint", str(names["EndpointName"]), str(names["VariantName"])

    def _owners(self) -> Owners:
        return Owners(self.cp.store.find)

    def _datapoints(
        self,
        which: tuple[str, str, str] | None,
        metric: str,
        unit: str | None,
        *,
        start: datetime,
        end: datetime,
        period: int,
        statistics: list[str],
        owners: Owners | None = None,
    ) -> list[Datapoint]:
        if which is not None and which[0] in ("endpoint", "job"):
            kind = ENDPOINT.name if which[0] == "endpoint" else TRAINING_JOB.name
            if not (owners or self._owners()).visible(kind, which[1]):
                return []  # another account's: as an unknown series
        if which is not None and which[0] == "user":
            if self.cp.user_metrics is None:
                return []
            return user_datapoints(
                self.cp.user_metrics, which[1], metric, self._user_dims[which[2]], unit=unit,
                start=start, end=end, period=period, statistics=statistics,
            )  # fmt: skip
        if which is not None and which[0] == "job":
            return self._job_datapoints(
                which[1], which[2], metric, unit, start=start, end=end, period=period,
                statistics=statistics,
            )  # fmt: skip
        if which is None or (unit is not None and unit != METRICS[metric].unit):
            return []
        try:
            answer = self.series.query(
                which[1], metric, variant=which[2], start=start, end=end, period=period,
                statistics=statistics,
            )  # fmt: skip
        except ValidationError as e:
            if "datapoints" in e.message:
                raise _combination(e.message) from e
            raise _invalid(e.message) from e
        return answer.Datapoints

    def _job_datapoints(
        self,
        job: str,
        host: str,
        metric: str,
        unit: str | None,
        *,
        start: datetime,
        end: datetime,
        period: int,
        statistics: list[str],
    ) -> list[Datapoint]:
        if (end - start).total_seconds() / period > MAX_DATAPOINTS:
            raise _combination(
                f"You have requested up to {math.ceil((end - start).total_seconds() / period)} "
                f"datapoints, which exceeds the limit of {MAX_DATAPOINTS}. You may reduce the "
                "datapoints requested by increasing Period, or decreasing the time range."
            )
        if (unit is not None and unit != JOB_UNIT) or self.cp.store.find(
            TRAINING_JOB.name, job
        ) is None:
            return []
        points = self.cp.job_metrics.usage(job).get((metric, host), [])
        return job_datapoints(points, start=start, end=end, period=period, statistics=statistics)

    def get_metric_statistics(self, p: Params, _: Principal) -> dict[str, Any]:
        namespace = _str(p, "Namespace", required=True) or ""
        metric = _str(p, "MetricName", required=True) or ""
        dims = _dimensions(p)
        start, end = _time(p, "StartTime"), _time(p, "EndTime")
        period = _period(p)
        basic = [str(s) for s in _list(p, "Statistics")]
        extended = [str(s) for s in _list(p, "ExtendedStatistics")]
        if not basic and not extended:
            raise _missing("Statistics or ExtendedStatistics")
        if basic and extended:
            raise _combination(
                "Statistics and ExtendedStatistics are mutually exclusive; give one of them"
            )
        for i, s in enumerate(basic, 1):
            if s not in BASIC_STATISTICS:
                raise _invalid(
                    f"The parameter Statistics.member.{i} must be a value in the set "
                    f"[ {', '.join(BASIC_STATISTICS)} ] (got {s!r})."
                )
        for i, s in enumerate(extended, 1):
            _percentile(s, f"ExtendedStatistics.member.{i}")
        if start >= end:
            raise _invalid("The parameter StartTime must be less than the parameter EndTime.")
        unit = _unit(p, "Unit")
        known = metric in METRICS or metric in USAGE_METRICS or namespace not in NAMESPACES
        points = self._datapoints(
            self._series_of(namespace, metric, dims) if known else None,
            metric, unit, start=start, end=end, period=period, statistics=basic or extended,
        )  # fmt: skip
        return {
            "Label": metric,
            "Datapoints": [pt.model_dump(mode="python", exclude_none=True) for pt in points],
        }

    def get_metric_data(self, p: Params, _: Principal) -> dict[str, Any]:
        queries = _list(p, "MetricDataQueries")
        if not queries:
            raise _missing("MetricDataQueries")
        if len(queries) > 500:
            raise _invalid("The collection MetricDataQueries must not have more than 500 members.")
        start, end = _time(p, "StartTime"), _time(p, "EndTime")
        if start >= end:
            raise _invalid("The parameter StartTime must be less than the parameter EndTime.")
        scan = _str(p, "ScanBy") or "TimestampDescending"
        if scan not in ("TimestampDescending", "TimestampAscending"):
            raise _invalid(
                f"The parameter ScanBy must be TimestampDescending or TimestampAscending "
                f"(got {scan!r})."
            )
        most = _int(p, "MaxDatapoints") or MAX_DATA_POINTS_PER_CALL
        ids: set[str] = set()
        results = []
        owners = self._owners()
        for i, q in enumerate(queries, 1):
            if not isinstance(q, dict):
                raise _invalid(f"The parameter MetricDataQueries.member.{i} must be a structure.")
            result = self._query(q, i, ids, start, end, owners=owners)
            if result is not None:
                results.append(result)
        for r in results:
            if scan == "TimestampDescending":
                r["Timestamps"].reverse()
                r["Values"].reverse()
        token = _str(p, "NextToken")
        scope = f"data\0{p.get('MetricDataQueries')!r}\0{start}\0{end}\0{scan}"
        skip = 0
        if token:
            value = read_opaque_token(token, scope, "GetMetricData")
            skip = value if type(value) is int and value >= 0 else 0
        out, taken, remaining = [], 0, most
        for r in results:
            n = len(r["Values"])
            lo = min(n, max(0, skip - taken))
            hi = min(n, lo + remaining)
            taken += n
            remaining -= hi - lo
            complete = hi == n
            out.append({**r, "Timestamps": r["Timestamps"][lo:hi], "Values": r["Values"][lo:hi],
                        "StatusCode": "Complete" if complete else "PartialData"})  # fmt: skip
        answer: dict[str, Any] = {"MetricDataResults": out, "Messages": []}
        returned = skip + most
        if returned < taken:
            answer["NextToken"] = opaque_token(scope, returned)
        return answer

    def _query(
        self, q: Params, i: int, ids: set[str], start: datetime, end: datetime, *, owners: Owners
    ) -> dict[str, Any] | None:
        where = f"MetricDataQueries.member.{i}"
        qid = _str(q, "Id")
        if not qid:
            raise _missing(f"{where}.Id")
        if not _QUERY_ID.match(qid):
            raise _invalid(
                f"The parameter {where}.Id {qid!r} must start with a lower-case letter and "
                "hold only letters, digits and underscores."
            )
        if qid in ids:
            raise _invalid("The values for parameter id in MetricDataQueries are not unique.")
        ids.add(qid)
        stat_spec, expression = q.get("MetricStat"), q.get("Expression")
        if expression is not None and stat_spec is not None:
            raise _combination(f"{where} (Id {qid!r}): give MetricStat or Expression, not both")
        if expression is not None:
            raise _invalid(
                f"{where}.Expression (Id {qid!r}): metric math is not supported here; ask for "
                "each metric with a MetricStat query and combine the results yourself"
            )
        if not isinstance(stat_spec, dict):
            raise _missing(f"{where}.MetricStat")
        metric_spec = stat_spec.get("Metric")
        if not isinstance(metric_spec, dict):
            raise _missing(f"{where}.MetricStat.Metric")
        namespace = _str(metric_spec, "Namespace") or ""
        metric = _str(metric_spec, "MetricName") or ""
        if not namespace:
            raise _missing(f"{where}.MetricStat.Metric.Namespace")
        if not metric:
            raise _missing(f"{where}.MetricStat.Metric.MetricName")
        dims = _dimensions(metric_spec, f"{where}.MetricStat.Metric.Dimensions")
        period = _period(stat_spec, f"{where}.MetricStat.Period")
        stat = _str(stat_spec, "Stat")
        if not stat:
            raise _missing(f"{where}.MetricStat.Stat")
        if stat not in BASIC_STATISTICS:
            _percentile(stat, f"{where}.MetricStat.Stat")
        unit = _unit(stat_spec, f"{where}.MetricStat.Unit")
        return_data = q.get("ReturnData", True)
        if return_data in (False, "false"):
            return None
        which = self._series_of(namespace, metric, dims)
        timestamps: list[datetime] = []
        values: list[float] = []
        for lo, hi in _spans(start, end, period):
            for pt in self._datapoints(which, metric, unit, start=lo, end=hi, period=period,
                                       statistics=[stat], owners=owners):  # fmt: skip
                value = getattr(pt, stat, None) if stat in BASIC_STATISTICS else (
                    (pt.ExtendedStatistics or {}).get(stat)
                )  # fmt: skip
                if value is not None:
                    timestamps.append(pt.Timestamp)
                    values.append(float(value))
        label = _str(q, "Label") or metric
        return {"Id": qid, "Label": label, "Timestamps": timestamps, "Values": values}

    def list_metrics(self, p: Params, _: Principal) -> dict[str, Any]:
        namespace = _str(p, "Namespace")
        metric = _str(p, "MetricName")
        filters = _dimensions(p, values=False)
        recently = _str(p, "RecentlyActive")
        if recently not in (None, "PT3H"):
            raise _invalid(f"The parameter RecentlyActive must be PT3H (got {recently!r}).")
        exists: dict[str, bool] = {}
        found = []
        owners = self._owners()
        for endpoint, variant, name in self.series.recorded():
            if endpoint not in exists:
                exists[endpoint] = owners.owner(ENDPOINT.name, endpoint) is not None and (
                    owners.visible(ENDPOINT.name, endpoint)
                )
            dims = {"EndpointName": endpoint, "VariantName": variant}
            if (
                exists[endpoint]
                and (namespace is None or NAMESPACE[name] == namespace)
                and (metric is None or name == metric)
                and all(k in dims and v in (None, dims[k]) for k, v in filters)
            ):
                found.append((NAMESPACE[name], name, endpoint, variant))
        found += self._user_metrics(namespace, metric, filters)
        found.sort()
        token = _str(p, "NextToken")
        if token:
            after = read_opaque_token(token, "metrics", "ListMetrics")
            found = [f for f in found if list(f) > after] if isinstance(after, list) else found
        page = found[:_LIST_PAGE]
        out: dict[str, Any] = {
            "Metrics": [
                {
                    "Namespace": ns,
                    "MetricName": name,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": ep},
                        {"Name": "VariantName", "Value": v},
                    ]
                    if ns in NAMESPACES
                    else [{"Name": k, "Value": val} for k, val in json.loads(ep)],
                }
                for ns, name, ep, v in page
            ]
        }
        if len(found) > _LIST_PAGE:
            out["NextToken"] = opaque_token("metrics", list(page[-1]))
        return out

    def _user_metrics(
        self, namespace: str | None, metric: str | None, filters: list[tuple[str, str | None]]
    ) -> list[tuple[str, str, str, str]]:
        """User metrics with data in the last two weeks, as (namespace, name, dims JSON, "")."""
        if self.cp.user_metrics is None:
            return []
        since = self.cp.clock.now().timestamp() - 14 * 86400
        out = []
        for ns, name, dims in self.cp.user_metrics.metrics(since):
            have = dict(json.loads(dims))
            if (
                (namespace is None or ns == namespace)
                and (metric is None or name == metric)
                and all(k in have and v in (None, have[k]) for k, v in filters)
            ):
                out.append((ns, name, dims, ""))
        return out


def _unit(p: Params, name: str) -> str | None:
    unit = _str(p, "Unit", label=name)
    if unit is not None and unit not in UNITS:
        raise _invalid(f"The parameter {name} must be a value in the set [ {', '.join(UNITS)} ].")
    return unit


def _spans(start: datetime, end: datetime, period: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into spans of at most MAX_DATAPOINTS periods (GetMetricData may ask for
    more than GetMetricStatistics' limit), each starting on a period boundary but the first."""
    step = period * (MAX_DATAPOINTS - 1)
    t0, t1 = start.timestamp(), end.timestamp()
    out = []
    lo = t0
    while lo < t1:
        hi = min(t1, (math.floor(lo / period) * period) + step)
        out.append((datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)))
        lo = hi
    return out


def alarm_fetch(cp: ControlPlane) -> Callable[[MetricAlarm, float, float], dict[float, float]]:
    """What an alarm's evaluator reads: the statistic per period over [start, end), through
    the same path as GetMetricStatistics (so an alarm sees what a dashboard sees)."""
    m = Metrics(cp)

    def fetch(alarm: MetricAlarm, start: float, end: float) -> dict[float, float]:
        ns, metric, stat = alarm.Namespace or "", alarm.MetricName or "", alarm.stat
        dims: list[tuple[str, str | None]] = [(d.Name, d.Value) for d in alarm.Dimensions]
        known = metric in METRICS or metric in USAGE_METRICS or ns not in NAMESPACES
        points = m._datapoints(
            m._series_of(ns, metric, dims) if known else None, metric, alarm.Unit,
            start=datetime.fromtimestamp(start, UTC), end=datetime.fromtimestamp(end, UTC),
            period=alarm.Period or 60, statistics=[stat],
        )  # fmt: skip
        out: dict[float, float] = {}
        for pt in points:
            value = getattr(pt, stat, None) if stat in BASIC_STATISTICS else (
                (pt.ExtendedStatistics or {}).get(stat)
            )  # fmt: skip
            if value is not None:
                out[pt.Timestamp.timestamp()] = float(value)
        return out

    return fetch


class AlarmOperations:
    """PutMetricAlarm, DescribeAlarms, DeleteAlarms, DescribeAlarmHistory, SetAlarmState
    over the control plane's alarms (``api.alarms``)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    @property
    def alarms(self) -> Alarms:
        if self.cp.alarms is None:
            raise AwsError("ServiceUnavailable", unavailable().message, status=503)
        return self.cp.alarms

    def put_metric_alarm(self, p: Params, _: Principal) -> dict[str, Any]:
        body = {k: v for k, v in p.items() if v != ""}
        for name in ("Dimensions", "AlarmActions", "OKActions", "InsufficientDataActions"):
            if name in body and body[name] is None:
                body.pop(name)
        try:
            self.alarms.put(body)
        except ValidationError as e:
            if e.field and "required field is missing" in e.message:
                raise _missing(e.field) from e
            raise _invalid(e.message) from e
        return {}

    def describe_alarms(self, p: Params, _: Principal) -> dict[str, Any]:
        names = [str(n) for n in _list(p, "AlarmNames")]
        prefix = _str(p, "AlarmNamePrefix")
        if names and prefix:
            raise _combination("AlarmNames and AlarmNamePrefix are mutually exclusive")
        most = _int(p, "MaxRecords") or 100
        if most > 100:
            raise _invalid("The parameter MaxRecords must be at most 100.")
        types = [str(t) for t in _list(p, "AlarmTypes")]
        if types and "MetricAlarm" not in types:
            return {"MetricAlarms": [], "CompositeAlarms": []}
        try:
            found = self.alarms.describe(
                prefix=prefix, state=_str(p, "StateValue"), names=names or None
            )
        except ValidationError as e:
            raise _invalid(e.message) from e
        return {
            "MetricAlarms": [a.model_dump(mode="python", exclude_none=True) for a in found[:most]],
            "CompositeAlarms": [],
        }

    def delete_alarms(self, p: Params, _: Principal) -> dict[str, Any]:
        names = [str(n) for n in _list(p, "AlarmNames")]
        if not names:
            raise _missing("AlarmNames")
        missing = [n for n in names if self.alarms.store.get(n) is None]
        if missing:  # as CloudWatch: nothing is deleted when one name is unknown
            raise AwsError(
                "ResourceNotFound", f"alarms not found: {', '.join(missing)}", status=404
            )
        self.alarms.delete(names)
        return {}

    def describe_alarm_history(self, p: Params, _: Principal) -> dict[str, Any]:
        start = _time(p, "StartDate").timestamp() if p.get("StartDate") else None
        end = _time(p, "EndDate").timestamp() if p.get("EndDate") else None
        most = _int(p, "MaxRecords") or 100
        try:
            items = self.alarms.history(
                _str(p, "AlarmName"), type_=_str(p, "HistoryItemType"), start=start, end=end,
                limit=most,
            )  # fmt: skip
        except ValidationError as e:
            raise _invalid(e.message) from e
        if _str(p, "ScanBy") == "TimestampAscending":
            items.reverse()
        return {"AlarmHistoryItems": [i.model_dump(mode="python") for i in items]}

    def set_alarm_state(self, p: Params, _: Principal) -> dict[str, Any]:
        name = _str(p, "AlarmName", required=True) or ""
        state = _str(p, "StateValue", required=True) or ""
        reason = _str(p, "StateReason", required=True) or ""
        try:
            self.alarms.set_state(name, state, reason, _str(p, "StateReasonData"))
        except NotFoundError as e:
            raise AwsError("ResourceNotFound", e.message, status=404) from e
        except ValidationError as e:
            raise _invalid(e.message) from e
        return {}


class CloudWatchService(JsonService):
    signing_name: ClassVar[str] = "monitoring"
    target_prefix: ClassVar[str] = "GraniteServiceVersion20100801."
    json_version: ClassVar[str] = "1.0"

    def __init__(self, cp: ControlPlane) -> None:
        m = Metrics(cp)
        handlers: dict[str, Callable[[Params, Principal], dict[str, Any]]] = {
            "GetMetricStatistics": m.get_metric_statistics,
            "GetMetricData": m.get_metric_data,
            "ListMetrics": m.list_metrics,
            "PutMetricData": m.put_metric_data,
        }
        alarms = AlarmOperations(cp)
        handlers.update({
            "PutMetricAlarm": alarms.put_metric_alarm,
            "DescribeAlarms": alarms.describe_alarms,
            "DeleteAlarms": alarms.delete_alarms,
            "DescribeAlarmHistory": alarms.describe_alarm_history,
            "SetAlarmState": alarms.set_alarm_state,
        })  # fmt: skip
        super().__init__(
            {n: Operation(n, f"cloudwatch:{n}", h, SUPPORTED[n]) for n, h in handlers.items()}
        )

    async def handle(self, request: AwsRequest) -> AwsResponse:
        if request.header("x-amz-target") is not None:
            return await super().handle(request)
        try:
            return await self._query(request)
        except Exception as e:  # the query protocol's errors are XML
            return error_xml(aws_error(e, self.signing_name), request.request_id, _XMLNS)

    async def _query(self, request: AwsRequest) -> AwsResponse:
        pairs = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        pairs += parse_qsl(request.query, keep_blank_values=True)
        params = unflatten([(k, v) for k, v in pairs if k not in ("Action", "Version")])
        action = dict(pairs).get("Action", "")
        operation = self.operations.get(action)
        if operation is None:
            raise AwsError(
                "InvalidAction",
                f"CloudWatch action {action!r} is not supported here; see docs/sagemaker-compat.md",
            )
        request.authorized = (operation.action, "*")
        authorize(request.principal, operation.action, "*")
        result = await asyncio.to_thread(operation.handler, params, request.principal)
        body = (
            f'<{action}Response xmlns="{_XMLNS}">'
            + to_xml(f"{action}Result", result, _MAPS)
            + f"<ResponseMetadata><RequestId>{request.request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
        return AwsResponse(200, [("content-type", "text/xml")], body.encode())

    def render_error(self, error: AwsError, request_id: str) -> AwsResponse:
        response = super().render_error(error, request_id)
        kind = "Receiver" if error.http_status >= 500 else "Sender"
        response.headers.append(("x-amzn-query-error", f"{error.aws_code};{kind}"))
        return response
