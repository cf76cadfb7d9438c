"""``/api/v1/kms/keys``: the local keyring's named keys, what ``KmsKeyId`` names: create (an
optional alias), list. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.resources.kms import CreateKmsKeyRequest, KmsKeyMetadata, ListKmsKeysResponse

router = APIRouter(prefix=f"{REST_PREFIX}/kms", tags=["KmsKey"])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(
    "/keys",
    response_model=KmsKeyMetadata,
    status_code=201,
    dependencies=[Depends(authorized("kms:CreateKey"))],
)
def create_kms_key(body: CreateKmsKeyRequest, cp: Plane) -> KmsKeyMetadata:
    return cp.kms.create(body.Alias)


@router.get(
    "/keys", response_model=ListKmsKeysResponse, dependencies=[Depends(authorized("kms:ListKeys"))]
)
def list_kms_keys(cp: Plane) -> ListKmsKeysResponse:
    return cp.kms.list()
