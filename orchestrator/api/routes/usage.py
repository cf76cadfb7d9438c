"""``/api/v1/usage``: what resources used in a window, grouped, and what it cost."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.api.usage import parse_time, usage_report
from orchestrator.errors import ValidationError
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.store.state import StateStore
from orchestrator.usage import load_price_table
from orchestrator.usage.models import UsageReport

router = APIRouter(prefix=f"{REST_PREFIX}/usage", tags=["Usage"])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.get(
    "",
    response_model=UsageReport,
    dependencies=[Depends(authorized("orchestrator:GetUsage"))],
    responses={400: {"description": "A bad window, GroupBy or price file"}},
)
def get_usage(
    cp: Plane,
    Since: Annotated[str, Query(min_length=1)],
    Until: Annotated[str | None, Query(min_length=1)] = None,
    GroupBy: str = "resource",
    Storage: bool = True,
) -> UsageReport:
    """Usage within [Since, Until) (Until: now) grouped by tenant, resource or instance-type,
    priced by the price table (``ORCH_USAGE_PRICE_FILE``, else the defaults); with Storage
    (default) the object store's bytes per bucket, listed now."""
    since = parse_time(Since, "Since")
    until = parse_time(Until, "Until") if Until else cp.clock.now()
    if not isinstance(cp.store, StateStore):
        raise ValidationError(
            "usage is recorded in the SQL store; this control plane fronts the cluster's "
            "custom resources (ORCH_DESIRED_STATE=kubernetes), which keep no usage yet",
            field="ORCH_DESIRED_STATE",
        )
    prices = load_price_table(cp.settings.usage_price_file)
    objects = cp.objects if Storage else None
    return usage_report(cp.store, prices, since, until, GroupBy, objects=objects)
