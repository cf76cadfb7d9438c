"""``/api/v1/access-keys``: SigV4 access keys for boto3 and the SageMaker SDK: create (the secret
is in the answer, once), list, revoke. Admins only.

Revoking drops the key's derived signing keys from the gateway's cache and from the
invocation data plane (and every router worker) at once, like a revoked API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.keys import (
    AccessKeySummary,
    CreateAccessKeyResponse,
    CreateApiKeyRequest,
    ListAccessKeysResponse,
)
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.store import AccessKeyRecord

router = APIRouter(prefix=f"{REST_PREFIX}/access-keys", tags=["AccessKey"])
Plane = Annotated[ControlPlane, Depends(plane)]


def _summary(record: AccessKeyRecord) -> AccessKeySummary:
    return AccessKeySummary(
        AccessKeyId=record.access_key_id,
        Name=record.name,
        Role=record.role,
        CreationTime=record.created_at,
        Revoked=record.revoked,
    )


@router.post(
    "",
    response_model=CreateAccessKeyResponse,
    status_code=201,
    dependencies=[Depends(authorized("orchestrator:CreateAccessKey"))],
)
def create_access_key(body: CreateApiKeyRequest, cp: Plane) -> CreateAccessKeyResponse:
    record, secret = cp.access_keys.create(name=body.Name, role=body.Role, now=cp.clock.now())
    return CreateAccessKeyResponse(**_summary(record).model_dump(), SecretAccessKey=secret)


@router.get(
    "",
    response_model=ListAccessKeysResponse,
    dependencies=[Depends(authorized("orchestrator:ListAccessKeys"))],
)
def list_access_keys(cp: Plane) -> ListAccessKeysResponse:
    return ListAccessKeysResponse(AccessKeys=[_summary(r) for r in cp.access_keys.list()])


@router.delete(
    "/{access_key_id}",
    response_model=AccessKeySummary,
    dependencies=[Depends(authorized("orchestrator:RevokeAccessKey"))],
)
async def revoke_access_key(access_key_id: str, cp: Plane, request: Request) -> AccessKeySummary:
    record = await run_in_threadpool(cp.access_keys.revoke, access_key_id)
    request.app.state.dataplane.key_revoked(access_key_id)
    return _summary(record)
