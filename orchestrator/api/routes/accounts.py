"""``/api/v1/accounts``: accounts (tenants). Create (an administrator of the server's own
account only; with ``AdminUserName`` also the account's first administrator and its API key,
in the answer once) and list (the server's own account's callers: every account; a tenant:
its own). The logic is ``orchestrator.api.accounts``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from orchestrator import tenancy
from orchestrator.access import Principal
from orchestrator.api import accounts
from orchestrator.api.auth import new_api_key
from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.objects import buckets
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.store import AccountRecord

router = APIRouter(prefix=f"{REST_PREFIX}/accounts", tags=["Account"])
Plane = Annotated[ControlPlane, Depends(plane)]


class CreateAccountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    AccountName: Annotated[str, Field(min_length=1, max_length=64)]
    # The account's first administrator, made with an API key (in the answer only).
    AdminUserName: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class AccountOut(BaseModel):
    AccountId: str
    AccountName: str
    CreatedAt: datetime


class CreateAccountResponse(AccountOut):
    # The account's own bucket, made with it: a tenant's jobs without OutputDataConfig
    # write there, and the client uploads there.
    DefaultBucket: str
    AdminUserName: str | None = None
    ApiKey: str | None = None


class AccountList(BaseModel):
    Accounts: list[AccountOut]


def _out(record: AccountRecord) -> dict[str, Any]:
    return {"AccountId": record.id, "AccountName": record.name, "CreatedAt": record.created_at}


@router.post("", status_code=201, response_model=CreateAccountResponse,
             response_model_exclude_none=True,
             dependencies=[Depends(authorized("orchestrator:CreateAccount"))])  # fmt: skip
async def create_account(body: CreateAccountRequest, cp: Plane, request: Request) -> dict[str, Any]:
    now = cp.clock.now()

    def issue(identity: str) -> str:
        return new_api_key(cp.keys, name=identity, role="admin", now=now, identity=identity)

    record, key = await run_in_threadpool(
        accounts.create, cp.keys, request.state.principal, body.AccountName, now=now,
        server_account_id=cp.settings.account_id, admin=body.AdminUserName, issue_key=issue,
    )  # fmt: skip
    out = _out(record)
    out["DefaultBucket"] = await run_in_threadpool(
        buckets.make_default_bucket, cp.objects, record.id
    )
    if body.AdminUserName is not None:
        out.update(AdminUserName=body.AdminUserName, ApiKey=key)
    return out


@router.get("", response_model=AccountList,
            dependencies=[Depends(authorized("orchestrator:ListAccounts"))])  # fmt: skip
def list_accounts(cp: Plane, request: Request) -> dict[str, Any]:
    return {"Accounts": [_out(r) for r in accounts.visible(cp.keys, request.state.principal)]}


caller_router = APIRouter(prefix=f"{REST_PREFIX}/caller", tags=["Account"])


class CallerIdentity(BaseModel):
    UserName: str
    AccountId: str
    Arn: str
    # Where the caller's uploads go by default: its account's own bucket.
    DefaultBucket: str


@caller_router.get(
    "", response_model=CallerIdentity,
    dependencies=[Depends(authorized("orchestrator:GetCallerIdentity"))],
)  # fmt: skip
def caller_identity(cp: Plane, request: Request) -> dict[str, Any]:
    """Who the key is (STS GetCallerIdentity's answer over REST): its identity, its account's
    12 digits and that account's default bucket."""
    return caller_document(cp, request.state.principal)


def caller_document(cp: ControlPlane, principal: Principal) -> dict[str, Any]:
    """``GET /api/v1/caller``'s answer for ``principal``."""
    account_id = tenancy.arn_account(principal.account, cp.settings.account_id)
    return {
        "UserName": principal.name,
        "AccountId": account_id,
        "Arn": f"arn:aws:iam::{account_id}:user/{principal.name}",
        "DefaultBucket": (
            buckets.default_bucket(principal.account)
            if principal.account
            else cp.settings.objects.default_bucket
        ),
    }
