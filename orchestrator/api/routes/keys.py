"""``/api/v1/api-keys``: create (the secret is in the answer, once), list, revoke. Admins only.

Revoking drops the key from the key cache of the invocation data plane and of every router
worker at once (``DataPlane.key_revoked``), so it stops working everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from orchestrator.api.auth import new_api_key, revoke_api_key
from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.keys import (
    ApiKeySummary,
    CreateApiKeyRequest,
    CreateApiKeyResponse,
    ListApiKeysResponse,
)
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.store import ApiKeyRecord

router = APIRouter(prefix=f"{REST_PREFIX}/api-keys", tags=["ApiKey"])
Plane = Annotated[ControlPlane, Depends(plane)]


def _summary(record: ApiKeyRecord) -> ApiKeySummary:
    return ApiKeySummary(
        KeyId=record.key_id,
        Name=record.name,
        Role=record.role,
        CreationTime=record.created_at,
        Revoked=record.revoked,
    )


@router.post(
    "",
    response_model=CreateApiKeyResponse,
    status_code=201,
    dependencies=[Depends(authorized("orchestrator:CreateApiKey"))],
)
def create_api_key(body: CreateApiKeyRequest, cp: Plane) -> CreateApiKeyResponse:
    key = new_api_key(cp.keys, name=body.Name, role=body.Role, now=cp.clock.now())
    record = cp.keys.get_api_key(key.split("_", 2)[1])
    assert record is not None
    return CreateApiKeyResponse(**_summary(record).model_dump(), ApiKey=key)


@router.get(
    "",
    response_model=ListApiKeysResponse,
    dependencies=[Depends(authorized("orchestrator:ListApiKeys"))],
)
def list_api_keys(cp: Plane) -> ListApiKeysResponse:
    return ListApiKeysResponse(ApiKeys=[_summary(r) for r in cp.keys.list_api_keys()])


@router.delete(
    "/{key_id}",
    response_model=ApiKeySummary,
    dependencies=[Depends(authorized("orchestrator:RevokeApiKey"))],
)
async def revoke(key_id: str, cp: Plane, request: Request) -> ApiKeySummary:
    record = await run_in_threadpool(revoke_api_key, cp.keys, key_id)
    request.app.state.dataplane.key_revoked(key_id)
    return _summary(record)
