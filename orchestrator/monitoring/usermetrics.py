"""User metrics (CloudWatch's PutMetricData): checked, stored durably, read by period.

Training scripts and inference code send them through the client (``put_metric_data``), the
REST route ``POST /api/v1/metrics/data`` or the CloudWatch protocol; each datum (``Value``,
``Values`` with ``Counts``, or ``StatisticValues``) becomes a ``Stat`` kept whole in the SQL
store (``store.metrics_sql.UserMetricsStore``: one row per datum), so a period's statistics,
percentiles included, are merges. ``StatisticValues`` carry no distribution: their
percentiles are the mean. Dimensions are stored as canonical JSON (sorted name/value pairs)
and a query must name the same set, as CloudWatch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.monitoring.rollup import decode_stat, encode_stat
from orchestrator.monitoring.shapes import Datapoint, percentile_of
from orchestrator.monitoring.sketch import Stat, bucket_of
from orchestrator.store.metrics_sql import UserDatum, UserMetricsStore

MAX_DATA = 1000  # per call, as CloudWatch
MAX_VALUES = 150
_PAST_SECONDS = 14 * 86400
_FUTURE_SECONDS = 2 * 3600


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", field=field)


def dimensions_key(dims: Sequence[tuple[str, str | None]]) -> str:
    return json.dumps(sorted([k, v or ""] for k, v in dims), separators=(",", ":"))


def _number(v: Any, field: str) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise _bad(field, f"must be a number (got {v!r})") from None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _bad(field, f"must be a finite number (got {v!r})")
    return float(v)


def _time(v: Any, field: str, now: float) -> float:
    if v is None or v == "":
        return now
    try:
        if isinstance(v, datetime):
            t = v if v.tzinfo else v.replace(tzinfo=UTC)
            at = t.timestamp()
        elif isinstance(v, int | float) and not isinstance(v, bool):
            at = float(v)
        else:
            t = datetime.fromisoformat(str(v).strip().replace("Z", "+00:00"))
            at = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError, OSError):
        raise _bad(field, "must be a time: ISO 8601 or epoch seconds") from None
    if at < now - _PAST_SECONDS or at > now + _FUTURE_SECONDS:
        raise _bad(field, "must be within the last two weeks and at most two hours ahead")
    return at


def _stat(d: dict[str, Any], where: str) -> Stat:
    given = [k for k in ("Value", "Values", "StatisticValues") if d.get(k) not in (None, [])]
    if len(given) != 1:
        raise _bad(where, "give exactly one of Value, Values (with Counts) or StatisticValues")
    s = Stat()
    if given[0] == "Value":
        s.add(_number(d["Value"], f"{where}.Value"))
        return s
    if given[0] == "Values":
        values, counts = d["Values"], d.get("Counts") or []
        if not isinstance(values, list) or not isinstance(counts, list):
            raise _bad(f"{where}.Values", "Values and Counts must be lists")
        if len(values) > MAX_VALUES:
            raise _bad(f"{where}.Values", f"at most {MAX_VALUES} values per datum")
        if counts and len(counts) != len(values):
            raise _bad(f"{where}.Counts", "must have as many members as Values")
        for i, v in enumerate(values, 1):
            n = _number(counts[i - 1], f"{where}.Counts.member.{i}") if counts else 1.0
            if n < 0 or n != int(n):
                raise _bad(f"{where}.Counts.member.{i}", "must be a whole number >= 0")
            x = _number(v, f"{where}.Values.member.{i}")
            for _ in range(int(n)):
                s.add(x)
        return s
    sv = d["StatisticValues"]
    if not isinstance(sv, dict):
        raise _bad(f"{where}.StatisticValues", "must be SampleCount, Sum, Minimum, Maximum")
    n = _number(sv.get("SampleCount"), f"{where}.StatisticValues.SampleCount")
    total = _number(sv.get("Sum"), f"{where}.StatisticValues.Sum")
    lo = _number(sv.get("Minimum"), f"{where}.StatisticValues.Minimum")
    hi = _number(sv.get("Maximum"), f"{where}.StatisticValues.Maximum")
    if n <= 0 or n != int(n) or lo > hi:
        raise _bad(
            f"{where}.StatisticValues", "SampleCount must be a whole number > 0, Minimum <= Maximum"
        )
    s.count, s.total, s.minimum, s.maximum = int(n), total, lo, hi
    s.hist = {bucket_of(total / n): int(n)}
    return s


def parse_metric_data(
    namespace: Any, data: Any, *, now: float, units: Sequence[str]
) -> list[UserDatum]:
    """PutMetricData's request as rows; errors name the member (``MetricData.member.N...``)
    and say the fix."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise _bad("Namespace", "is required, e.g. MyApp/Training")
    if namespace.startswith("AWS/") or len(namespace) > 255:
        raise _bad("Namespace", "must be at most 255 characters and not start with AWS/")
    if not isinstance(data, list) or not data:
        raise _bad("MetricData", "give at least one datum")
    if len(data) > MAX_DATA:
        raise _bad("MetricData", f"at most {MAX_DATA} data per call")
    out = []
    for i, d in enumerate(data, 1):
        where = f"MetricData.member.{i}"
        if not isinstance(d, dict):
            raise _bad(where, "must be a structure with MetricName and a Value")
        name = d.get("MetricName")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise _bad(f"{where}.MetricName", "is required (at most 255 characters)")
        dims = d.get("Dimensions") or []
        if not isinstance(dims, list) or len(dims) > 30:
            raise _bad(f"{where}.Dimensions", "must be a list of at most 30 Name/Value pairs")
        pairs: list[tuple[str, str | None]] = []
        for j, dim in enumerate(dims, 1):
            dn = dim.get("Name") if isinstance(dim, dict) else None
            dv = dim.get("Value") if isinstance(dim, dict) else None
            if not isinstance(dn, str) or not dn or not isinstance(dv, str) or not dv:
                raise _bad(f"{where}.Dimensions.member.{j}", "needs a Name and a Value")
            pairs.append((dn, dv))
        if len({k for k, _ in pairs}) != len(pairs):
            raise _bad(f"{where}.Dimensions", "a dimension name appears twice")
        unit = d.get("Unit") or "None"
        if unit not in units:
            raise _bad(f"{where}.Unit", f"must be one of {', '.join(units)}")
        resolution = d.get("StorageResolution")
        if resolution not in (None, 1, 60, "1", "60"):
            raise _bad(f"{where}.StorageResolution", "must be 1 or 60")
        at = _time(d.get("Timestamp"), f"{where}.Timestamp", now)
        stat = _stat(d, where)
        out.append(UserDatum(namespace, name, dimensions_key(pairs), at, unit,
                             encode_stat(stat)))  # fmt: skip
    return out


def user_datapoints(
    store: UserMetricsStore,
    namespace: str,
    name: str,
    dims: Sequence[tuple[str, str | None]],
    *,
    unit: str | None,
    start: datetime,
    end: datetime,
    period: int,
    statistics: Sequence[str],
) -> list[Datapoint]:
    """One datapoint per period with data, oldest first (periods aligned on the epoch)."""
    lo, hi = start.timestamp(), end.timestamp()
    first = math.floor(lo / period) * period
    by_period: dict[int, tuple[Stat, str]] = {}
    for row in store.read(namespace, name, dimensions_key(dims), lo, hi):
        if unit is not None and row.unit != unit:
            continue
        at = first + (math.floor(row.at) - first) // period * period
        acc = by_period.get(at)
        if acc is None:
            acc = by_period[at] = (Stat(), row.unit)
        acc[0].merge(decode_stat(row.stat))
    out = []
    for at in sorted(by_period):
        s, u = by_period[at]
        p = Datapoint(Timestamp=datetime.fromtimestamp(at, UTC), Unit=u)
        extended: dict[str, float] = {}
        for st in statistics:
            if st == "SampleCount":
                p.SampleCount = float(s.count)
            elif st == "Sum":
                p.Sum = s.total
            elif st == "Average":
                p.Average = s.total / s.count
            elif st == "Minimum":
                p.Minimum = s.minimum
            elif st == "Maximum":
                p.Maximum = s.maximum
            else:
                q = percentile_of(st)
                value = s.percentile(q) if q is not None else None
                if value is not None:
                    extended[st] = value
        if extended:
            p.ExtendedStatistics = extended
        out.append(p)
    return out
