"""``/api/v1/audit``: look the trail up (LookupEvents' filters), verify it, export its public
key. Admins only. A caller of another account than the server's looks up only its own
account's records; the server's own admins, every account's. Verifying the trail (it is
whole: every account's records are chained together) is the server's own admins' alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from orchestrator import tenancy
from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.audit import AuditTrail, LookupFilter, verify
from orchestrator.errors import ConflictError, PermissionDeniedError
from orchestrator.resources.kinds import REST_PREFIX

router = APIRouter(prefix=f"{REST_PREFIX}/audit", tags=["Audit"])
Plane = Annotated[ControlPlane, Depends(plane)]
MAX_PAGE = 1000


def _trail(cp: ControlPlane) -> AuditTrail:
    if cp.audit is None:
        raise ConflictError(
            "the audit trail is off on this server (ORCH_AUDIT__ENABLED=false); turn it on "
            "and restart to record calls",
            field="ORCH_AUDIT__ENABLED",
        )
    return cp.audit


def lookup_account() -> str | None:
    """Whose records the caller may look up: its own account's (its id: another account's
    name is its 12 digits), or None, every account's, for the server's own."""
    caller = tenancy.current()
    return None if caller in (None, tenancy.ROOT) else caller


@router.get("/events", dependencies=[Depends(authorized("cloudtrail:LookupEvents"))])
async def lookup_events(
    cp: Plane,
    *,
    username: Annotated[str | None, Query(alias="Username", description="name or key id")] = None,
    event_name: Annotated[str | None, Query(alias="EventName")] = None,
    resource_name: Annotated[str | None, Query(alias="ResourceName")] = None,
    start_time: Annotated[datetime | None, Query(alias="StartTime")] = None,
    end_time: Annotated[datetime | None, Query(alias="EndTime")] = None,
    max_results: Annotated[int, Query(alias="MaxResults", ge=1, le=MAX_PAGE)] = 50,
    next_token: Annotated[str | None, Query(alias="NextToken")] = None,
) -> dict[str, Any]:
    """Records newest first; ``NextToken`` pages on (absent: no more)."""
    trail = _trail(cp)
    where = LookupFilter(
        username=username,
        event_name=event_name,
        resource_name=resource_name,
        start=_aware(start_time),
        end=_aware(end_time),
        account_id=lookup_account(),
    )
    events, token = await run_in_threadpool(
        trail.lookup, where, max_results=max_results, next_token=next_token
    )
    out: dict[str, Any] = {"Events": events}
    if token is not None:
        out["NextToken"] = token
    return out


@router.post("/verify", dependencies=[Depends(authorized("orchestrator:VerifyAuditTrail"))])
async def verify_trail(cp: Plane) -> dict[str, Any]:
    """Check every digest and record; ``FirstProblem`` names the first one found wrong."""
    if tenancy.current() not in (None, tenancy.ROOT):
        raise PermissionDeniedError(
            "orchestrator:VerifyAuditTrail: the trail holds every account's records; only the "
            "server's own account may verify it"
        )
    trail = _trail(cp)
    report = await run_in_threadpool(verify, trail)
    return report.to_dict()


@router.get("/public-key", dependencies=[Depends(authorized("orchestrator:GetAuditPublicKey"))])
def public_key(cp: Plane) -> dict[str, str]:
    """The digests' verification key (PEM), to check the trail elsewhere."""
    trail = _trail(cp)
    return {"PublicKey": trail.public_pem(), "Fingerprint": trail.signing_key.fingerprint()}


def _aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)
