"""``/api/v1/users``: identities (users and service identities) and their keys.

Create, list, describe, update (policies and assumable roles), delete an identity (its keys
are revoked); create, list, rotate (a new secret under a new key id, the old key revoked at
once) and revoke its API keys (``Kind: "api"``, bearer) and SigV4 access keys
(``Kind: "access"``). A secret is in the create or rotate answer only. ``/api/v1/policies``
lists the managed policies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from orchestrator import tenancy
from orchestrator.api import accounts
from orchestrator.api import identities as ids
from orchestrator.api.auth import new_api_key
from orchestrator.api.deps import authorized, plane, user_resource
from orchestrator.api.service import ControlPlane
from orchestrator.errors import NotFoundError
from orchestrator.iam import MANAGED, ROLES
from orchestrator.iam.managed import DOCUMENTS
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.store import AccessKeyRecord, ApiKeyRecord, IdentityRecord

router = APIRouter(prefix=f"{REST_PREFIX}", tags=["Users"])
Plane = Annotated[ControlPlane, Depends(plane)]
USER = user_resource()


class PoliciesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ManagedPolicies: list[str] = []
    InlinePolicies: dict[str, Any] = {}
    Roles: list[str] = []


class CreateUserRequest(PoliciesBody):
    UserName: Annotated[str, Field(min_length=1, max_length=64)]
    Kind: Literal["user", "service"] = "user"
    # The account it belongs to (12 digits): the caller's when left out; another only for an
    # administrator of the server's own account (``orchestrator.api.accounts``).
    Account: str | None = None


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Name: Annotated[str, Field(min_length=1, max_length=128)]
    Kind: Literal["api", "access"] = "api"
    Role: str = ""  # "" : the identity's own policies
    ExpiresInSeconds: Annotated[int, Field(ge=1, le=ids.MAX_KEY_SECONDS)] | None = None


class UserOut(BaseModel):
    """An identity: its policies and the roles its keys may assume."""

    UserName: str
    Kind: str
    CreationTime: datetime
    ManagedPolicies: list[str] = []
    InlinePolicies: dict[str, Any] = {}
    Roles: list[str] = []
    Account: str = ""  # the account it belongs to ("": the server's own)


class KeyOut(BaseModel):
    """A key of an identity, without its secret."""

    KeyId: str
    Kind: Literal["api", "access"]
    Name: str
    Role: str
    CreationTime: datetime
    Revoked: bool
    Expires: datetime | None
    LastUsed: datetime | None


class UserDescription(UserOut):
    Keys: list[KeyOut]


class UserList(BaseModel):
    Users: list[UserOut]


class KeyList(BaseModel):
    Keys: list[KeyOut]


class NewKey(KeyOut):
    """A key just made: its secret, here only (``ApiKey`` or ``SecretAccessKey`` by Kind);
    ``Replaced``: the key a rotation revoked."""

    ApiKey: str | None = None
    SecretAccessKey: str | None = None
    Replaced: str | None = None


class DeletedUser(BaseModel):
    UserName: str


class ManagedPolicyOut(BaseModel):
    PolicyName: str
    PolicyDocument: dict[str, Any]


class RoleOut(BaseModel):
    RoleName: str
    ManagedPolicies: list[str]


class PolicyList(BaseModel):
    Policies: list[ManagedPolicyOut]
    Roles: list[RoleOut]


def _user(record: IdentityRecord) -> dict[str, Any]:
    return {
        "UserName": record.name,
        "Kind": record.kind,
        "CreationTime": record.created_at,
        **record.document,
        "Account": record.account,
    }


def _key(record: ApiKeyRecord | AccessKeyRecord) -> dict[str, Any]:
    api = isinstance(record, ApiKeyRecord)
    return {
        "KeyId": record.key_id if isinstance(record, ApiKeyRecord) else record.access_key_id,
        "Kind": "api" if api else "access",
        "Name": record.name,
        "Role": record.role,
        "CreationTime": record.created_at,
        "Revoked": record.revoked,
        "Expires": record.expires_at,
        "LastUsed": record.last_used_at,
    }


def _keys_of(cp: ControlPlane, user: str) -> list[dict[str, Any]]:
    api = [_key(k) for k in cp.keys.list_api_keys() if k.identity == user]
    return api + [_key(k) for k in cp.keys.list_access_keys() if k.identity == user]


def _get(cp: ControlPlane, user: str) -> IdentityRecord:
    record = cp.keys.get_identity(user)
    if record is None:
        raise NotFoundError(f"identity {user!r} does not exist", field="UserName")
    return record


@router.post("/users", status_code=201, response_model=UserOut,
             responses={404: {"description": "No account with that Account id"}},
             dependencies=[Depends(authorized("orchestrator:CreateUser", USER))])  # fmt: skip
def create_user(body: CreateUserRequest, cp: Plane, request: Request) -> dict[str, Any]:
    ids.check_name(body.UserName)
    doc = ids.document_of(body.ManagedPolicies, body.InlinePolicies, body.Roles)
    account = accounts.target_account(
        cp.keys, request.state.principal, body.Account, cp.settings.account_id
    )
    with tenancy.acting_as(account):
        return _user(cp.keys.add_identity(body.UserName, kind=body.Kind, document=doc,
                                          now=cp.clock.now()))  # fmt: skip


@router.get(
    "/users", response_model=UserList, dependencies=[Depends(authorized("orchestrator:ListUsers"))]
)
def list_users(cp: Plane) -> dict[str, Any]:
    return {"Users": [_user(r) for r in cp.keys.list_identities()]}


@router.get(
    "/users/{user}",
    response_model=UserDescription,
    dependencies=[Depends(authorized("orchestrator:DescribeUser", USER))],
)
def describe_user(user: str, cp: Plane) -> dict[str, Any]:
    return {**_user(_get(cp, user)), "Keys": _keys_of(cp, user)}


@router.put("/users/{user}/policies", response_model=UserOut,
            dependencies=[Depends(authorized("orchestrator:UpdateUser", USER))])  # fmt: skip
async def update_user(user: str, body: PoliciesBody, cp: Plane, request: Request) -> dict[str, Any]:
    """Replace the identity's policies and roles; its keys' cached principals are dropped."""
    _get(cp, user)
    doc = ids.document_of(body.ManagedPolicies, body.InlinePolicies, body.Roles)
    record = await run_in_threadpool(cp.keys.update_identity, user, doc)
    _forget_keys(cp, user, request)
    return _user(record)


@router.delete("/users/{user}", response_model=DeletedUser,
               dependencies=[Depends(authorized("orchestrator:DeleteUser", USER))])  # fmt: skip
async def delete_user(user: str, cp: Plane, request: Request) -> dict[str, Any]:
    _get(cp, user)
    legacy = [
        k
        for k in cp.keys.list_api_keys()
        if k.identity is None and k.role == "admin" and not k.revoked
    ]
    ids.refuse_last_admin_identity(cp.keys, user, other_admin_keys=len(legacy))
    await run_in_threadpool(cp.keys.delete_identity, user)
    _forget_keys(cp, user, request)
    return {"UserName": user}


def _forget_keys(cp: ControlPlane, user: str, request: Request) -> None:
    for key in _keys_of(cp, user):
        if key["Kind"] == "access":
            cp.access_keys.forget(key["KeyId"])
        request.app.state.dataplane.key_revoked(key["KeyId"])


@router.post("/users/{user}/keys", status_code=201, response_model=NewKey,
             response_model_exclude_unset=True,
             dependencies=[Depends(authorized("orchestrator:CreateApiKey", USER))])  # fmt: skip
def create_key(user: str, body: CreateKeyRequest, cp: Plane) -> dict[str, Any]:
    return _issue(cp, user, body)


def _issue(cp: ControlPlane, user: str, body: CreateKeyRequest) -> dict[str, Any]:
    ids.check_issue(cp.keys, user, body.Role)
    now = cp.clock.now()
    expires = ids.expiry(now, body.ExpiresInSeconds)
    if body.Kind == "access":
        record, secret = cp.access_keys.create(
            name=body.Name, role=body.Role, now=now, identity=user, expires_at=expires
        )
        return {**_key(record), "SecretAccessKey": secret}
    key = new_api_key(
        cp.keys, name=body.Name, role=body.Role, now=now, identity=user, expires_at=expires
    )
    made = cp.keys.get_api_key(key.split("_", 2)[1])
    assert made is not None
    return {**_key(made), "ApiKey": key}


def _owned_key(cp: ControlPlane, user: str, key_id: str) -> dict[str, Any]:
    found = next((k for k in _keys_of(cp, user) if k["KeyId"] == key_id), None)
    if found is None:
        raise NotFoundError(f"identity {user!r} has no key {key_id!r}", field="KeyId")
    return found


@router.get("/users/{user}/keys", response_model=KeyList,
            dependencies=[Depends(authorized("orchestrator:ListApiKeys", USER))])  # fmt: skip
def list_keys(user: str, cp: Plane) -> dict[str, Any]:
    _get(cp, user)
    return {"Keys": _keys_of(cp, user)}


@router.delete("/users/{user}/keys/{key_id}", response_model=KeyOut,
               dependencies=[Depends(authorized("orchestrator:RevokeApiKey", USER))])  # fmt: skip
async def revoke_key(user: str, key_id: str, cp: Plane, request: Request) -> dict[str, Any]:
    key = _owned_key(cp, user, key_id)
    if key["Kind"] == "access":
        await run_in_threadpool(cp.access_keys.revoke, key_id)
    else:
        await run_in_threadpool(cp.keys.revoke_api_key, key_id)
    request.app.state.dataplane.key_revoked(key_id)
    return {**key, "Revoked": True}


@router.post("/users/{user}/keys/{key_id}/rotate", status_code=201, response_model=NewKey,
             response_model_exclude_unset=True,
             dependencies=[Depends(authorized("orchestrator:RotateApiKey", USER))])  # fmt: skip
async def rotate_key(user: str, key_id: str, cp: Plane, request: Request) -> dict[str, Any]:
    """A new key (new id and secret, same name, role and lifetime left) and the old one
    revoked at once (no grace: a caller switches to the new secret, then retries)."""
    old = _owned_key(cp, user, key_id)
    seconds = None
    if old["Expires"] is not None:
        seconds = max(1, int((old["Expires"] - cp.clock.now()).total_seconds()))
    again = CreateKeyRequest(
        Name=old["Name"], Kind=old["Kind"], Role=old["Role"], ExpiresInSeconds=seconds
    )
    made = await run_in_threadpool(_issue, cp, user, again)
    if old["Kind"] == "access":
        await run_in_threadpool(cp.access_keys.revoke, key_id)
    else:
        await run_in_threadpool(cp.keys.revoke_api_key, key_id)
    request.app.state.dataplane.key_revoked(key_id)
    return {**made, "Replaced": key_id}


@router.get(
    "/policies",
    response_model=PolicyList,
    dependencies=[Depends(authorized("orchestrator:ListPolicies"))],
)
def list_policies() -> dict[str, Any]:
    return {
        "Policies": [{"PolicyName": n, "PolicyDocument": DOCUMENTS[n]} for n in sorted(MANAGED)],
        "Roles": [{"RoleName": r, "ManagedPolicies": list(p)} for r, p in sorted(ROLES.items())],
    }
