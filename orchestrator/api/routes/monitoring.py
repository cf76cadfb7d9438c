"""``GET /api/v1/endpoints/{name}/metrics``: an endpoint's metrics, CloudWatch-style; and
``.../traffic`` and ``.../fleet-health``: what this API process's router served, as the
autoscaler and the blue/green alarms read it (the operator on a cluster asks each API pod).

Parameters are GetMetricStatistics': ``MetricName``, ``Statistics`` (repeated; Sum, Average,
Minimum, Maximum, SampleCount or pNN), ``Period`` (seconds), ``StartTime`` and ``EndTime``
(ISO 8601 or epoch seconds; default the last hour), and ours, ``VariantName``. The answer is
``{"Label", "Datapoints": [...]}``. The series live in ``app.state.series`` (a
``SeriesStore`` the control plane's router and controller record into).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from orchestrator import tenancy
from orchestrator.api.aws.cloudwatch import UNITS
from orchestrator.api.deps import authorized, of_kind, plane
from orchestrator.api.owners import Owners
from orchestrator.api.service import ControlPlane
from orchestrator.errors import NotFoundError, UnavailableError, ValidationError
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.shapes import METRICS, MetricStatistics
from orchestrator.monitoring.usermetrics import parse_metric_data
from orchestrator.resources.kinds import ENDPOINT

router = APIRouter(tags=["Endpoint"])
Plane = Annotated[ControlPlane, Depends(plane)]
DEFAULT_SPAN = timedelta(hours=1)


def _series(request: Request) -> SeriesStore:
    store = getattr(request.app.state, "series", None)
    if not isinstance(store, SeriesStore):
        raise UnavailableError("this control plane does not record endpoint metrics")
    return store


def _own(cp: ControlPlane, name: str) -> str:
    """``name`` when the caller may read the endpoint's traffic; else "", which names no
    endpoint (a name has at least one character): another account's traffic answers as an
    absent endpoint's, nothing served. The server's own account reads every endpoint's: the
    Kubernetes operator's autoscaler and blue/green alarms ask with its key."""
    if tenancy.current() == tenancy.ROOT:
        return name
    return name if Owners(cp.store.find).visible(ENDPOINT.name, name) else ""


def _time(value: str | None, field: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        t = datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{field}: {value!r} is not a time; use ISO 8601 (2026-01-01T12:00:00Z) or "
                "epoch seconds",
                field=field,
            ) from None
    except (OverflowError, OSError):
        raise ValidationError(f"{field}: {value!r} is out of range", field=field) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _period(value: str | None) -> int:
    if value is None or not value.strip():
        return 60
    try:
        return int(value)
    except ValueError:
        raise ValidationError(
            f"Period: {value!r} is not a whole number of seconds (e.g. Period=60)",
            field="Period",
        ) from None


@router.get(
    f"{ENDPOINT.collection}/{{name}}/metrics",
    response_model=MetricStatistics,
    response_model_exclude_none=True,
    dependencies=[
        Depends(authorized("orchestrator:GetEndpointMonitoring", of_kind(ENDPOINT.name)))
    ],
)
def endpoint_metrics(
    name: str,
    request: Request,
    cp: Plane,
    *,
    metric_name: Annotated[str | None, Query(alias="MetricName")] = None,
    statistics: Annotated[list[str] | None, Query(alias="Statistics")] = None,
    period: Annotated[str | None, Query(alias="Period")] = None,
    start_time: Annotated[str | None, Query(alias="StartTime")] = None,
    end_time: Annotated[str | None, Query(alias="EndTime")] = None,
    variant_name: Annotated[str | None, Query(alias="VariantName")] = None,
) -> MetricStatistics:
    """GetMetricStatistics for one endpoint (all variants, or ``VariantName``)."""
    if not metric_name:
        raise ValidationError(
            f"MetricName: required; use one of {', '.join(METRICS)}", field="MetricName"
        )
    series = _series(request)
    if cp.endpoint_status(name) is None or not Owners(cp.store.find).visible(ENDPOINT.name, name):
        raise NotFoundError(f"Endpoint {name!r} does not exist")
    end = _time(end_time, "EndTime") or series.clock.now()
    start = _time(start_time, "StartTime") or end - DEFAULT_SPAN
    return series.query(
        name,
        metric_name,
        variant=variant_name or None,
        start=start,
        end=end,
        period=_period(period),
        statistics=statistics or ["Sum"],
    )


@router.get(
    f"{ENDPOINT.collection}/{{name}}/traffic",
    dependencies=[
        Depends(authorized("orchestrator:GetEndpointMonitoring", of_kind(ENDPOINT.name)))
    ],
)
def endpoint_traffic(
    name: str,
    request: Request,
    cp: Plane,
    *,
    variant_name: Annotated[str, Query(alias="VariantName", min_length=1)],
    config_name: Annotated[str, Query(alias="EndpointConfigName", min_length=1)],
    window: Annotated[float, Query(alias="Window", gt=0, le=3600)] = 10.0,
) -> dict[str, object]:
    """One fleet variant's traffic over the last ``Window`` seconds, as this process saw it."""
    series = _series(request)
    name = _own(cp, name)
    load = series.variant_load(name, variant_name, config_name, window, series.clock.now())
    last = load.last_invocation_at
    return {
        "InvocationsPerMinute": load.invocations_per_minute,
        "Concurrency": load.concurrency,
        "LastInvocationTime": last.isoformat() if last is not None else None,
    }


@router.get(
    f"{ENDPOINT.collection}/{{name}}/fleet-health",
    dependencies=[
        Depends(authorized("orchestrator:GetEndpointMonitoring", of_kind(ENDPOINT.name)))
    ],
)
def endpoint_fleet_health(
    name: str,
    request: Request,
    cp: Plane,
    *,
    config_name: Annotated[str, Query(alias="EndpointConfigName", min_length=1)],
    since: Annotated[str, Query(alias="Since")],
) -> dict[str, object]:
    """What the fleet of ``EndpointConfigName`` served since ``Since`` (blue/green alarms)."""
    series = _series(request)
    start = _time(since, "Since")
    if start is None:
        raise ValidationError("Since: required; a time (ISO 8601 or epoch seconds)", field="Since")
    h = series.fleet_health(_own(cp, name), config_name, start, series.clock.now())
    return {
        "Invocations": h.invocations,
        "Errors5xx": h.errors_5xx,
        "ModelLatencyP99": h.model_latency_p99_us,
        "OverheadLatencyP99": h.overhead_latency_p99_us,
    }


class PutMetricDataBody(BaseModel):
    """PutMetricData's members; each datum is checked member by member
    (``monitoring.usermetrics.parse_metric_data``), naming the member."""

    Namespace: str = Field(min_length=1, max_length=255)
    MetricData: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


@router.post(
    "/api/v1/metrics/data",
    dependencies=[Depends(authorized("cloudwatch:PutMetricData"))],
    tags=["Metrics"],
)
def put_metric_data(cp: Plane, body: PutMetricDataBody) -> dict[str, Any]:
    """PutMetricData: ``{"Namespace": "MyApp", "MetricData": [{"MetricName", "Value" |
    "Values" + "Counts" | "StatisticValues", "Dimensions", "Timestamp", "Unit"}]}``; read
    back with GetMetricStatistics, GetMetricData and ListMetrics (CloudWatch protocol)."""
    if cp.user_metrics is None:
        raise UnavailableError(
            "this control plane keeps no durable metrics (ORCH_METRICS__DURABLE=false, or a "
            "cluster without a PostgreSQL ORCH_DATABASE_URL)"
        )
    data = parse_metric_data(
        body.Namespace, body.MetricData, now=cp.clock.now().timestamp(), units=UNITS
    )
    cp.user_metrics.put(data)
    return {"Stored": len(data)}
