"""``/api/v1/master-keys``: the master key versions that wrap objects' data keys. Admins only.

``GET`` the versions, how many objects each wraps, and the background re-wrap's progress
(``?Census=true`` counts every object's header now: exact, slower); ``POST /rotate`` makes a
new version, used by new objects at once, and starts a re-wrap pass; ``POST /{key_id}/retire``
destroys a version that no object (and no access key) uses any more, else answers 409 with
how many still do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.objects.keys import KeyVersion
from orchestrator.objects.rewrap import MasterKeyStatus, RewrapProgress
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.resources.master_keys import (
    MasterKeyStatusResponse,
    MasterKeyVersionResponse,
    MasterKeyVersionSummary,
    RewrapProgressSummary,
)

router = APIRouter(prefix=f"{REST_PREFIX}/master-keys", tags=["MasterKey"])
Plane = Annotated[ControlPlane, Depends(plane)]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def version_summary(
    v: KeyVersion, counts: dict[str, int] | None, this_pass: dict[str, int]
) -> MasterKeyVersionSummary:
    objects = counts.get(v.key_id, 0) if counts is not None else None
    return MasterKeyVersionSummary(
        KeyId=v.key_id,
        Key=v.key,
        State=v.state,
        CreationTime=v.created,
        RetirementTime=v.retired,
        Objects=objects,
        ObjectsThisPass=this_pass.get(v.key_id, 0),
    )


def progress_summary(p: RewrapProgress) -> RewrapProgressSummary:
    return RewrapProgressSummary(
        State=p.state,
        Pending=p.pending,
        PassId=p.pass_id,
        StartTime=_when(p.started),
        EndTime=_when(p.finished),
        Done=p.done,
        Total=p.total,
        Rewrapped=p.rewrapped,
        Resealed=p.resealed,
        AlreadyCurrent=p.current,
        Raced=p.raced,
        Gone=p.gone,
        Unreadable=p.unreadable,
        Errors=p.errors,
    )


def status_response(
    status: MasterKeyStatus, census: dict[str, int] | None
) -> MasterKeyStatusResponse:
    p = status.progress
    counts = census if census is not None else p.last_counts
    this_pass = p.counts if p.state == "running" else {}
    active = next((v.key_id for v in status.versions if v.state == "active"), "")
    return MasterKeyStatusResponse(
        ActiveKeyId=active,
        Versions=[version_summary(v, counts, this_pass) for v in status.versions],
        Rewrap=progress_summary(p),
    )


@router.get(
    "",
    response_model=MasterKeyStatusResponse,
    dependencies=[Depends(authorized("orchestrator:DescribeMasterKeys"))],
)
async def describe_master_keys(
    cp: Plane,
    census: Annotated[
        bool, Query(alias="Census", description="Count every object's key version now.")
    ] = False,
) -> MasterKeyStatusResponse:
    mk = cp.master_keys
    status = await run_in_threadpool(mk.status)
    counts = await run_in_threadpool(mk.rewrapper.census) if census else None
    return status_response(status, counts)


@router.post(
    "/rotate",
    response_model=MasterKeyVersionResponse,
    status_code=201,
    dependencies=[Depends(authorized("orchestrator:RotateMasterKey"))],
)
async def rotate_master_key(cp: Plane) -> MasterKeyVersionResponse:
    version = await run_in_threadpool(cp.master_keys.rotate)
    return MasterKeyVersionResponse(Version=version_summary(version, None, {}))


@router.post(
    "/{key_id}/retire",
    response_model=MasterKeyVersionResponse,
    dependencies=[Depends(authorized("orchestrator:RetireMasterKey"))],
)
async def retire_master_key(key_id: str, cp: Plane) -> MasterKeyVersionResponse:
    version = await run_in_threadpool(cp.master_keys.retire, key_id)
    return MasterKeyVersionResponse(Version=version_summary(version, None, {}))
