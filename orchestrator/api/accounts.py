"""Accounts (tenants): made by an administrator of the server's own account, each with a
12-digit id and a unique name (``orchestrator.tenancy``).

``create`` makes the account and, when asked, its first administrator (an identity with
AdministratorAccess that may assume ``admin``) and an API key for it, so that a tenant can
start alone: everything it makes from then on belongs to its account. Only a caller of the
server's own account (``ROOT``) may create accounts or name another account; a tenant sees
its own account only, and naming another is the same 404 as naming none.

Accounts live in the SQL store: a keys file on a cluster (``keyfile.FileKeys``) has none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from orchestrator import tenancy
from orchestrator.access import Principal, authorize
from orchestrator.api import identities as ids
from orchestrator.api.auth import KeyStore
from orchestrator.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from orchestrator.store import AccountRecord

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_PATTERN = _NAME.pattern
ADMIN_DOCUMENT = {
    "ManagedPolicies": ["AdministratorAccess"],
    "InlinePolicies": {},
    "Roles": ["admin"],
}


@runtime_checkable
class AccountStore(Protocol):
    def add_account(self, account_id: str, name: str, *, now: datetime) -> AccountRecord: ...

    def get_account(self, account_id: str) -> AccountRecord | None: ...

    def get_account_named(self, name: str) -> AccountRecord | None: ...

    def list_accounts(self) -> list[AccountRecord]: ...


def store_of(keys: KeyStore) -> AccountStore:
    """The key store as the store of accounts, or a 400 saying why there is none."""
    if not isinstance(keys, AccountStore):
        raise ValidationError(
            "AccountName: this server's identities come from a keys file "
            "(ORCH_API_KEYS_FILE), which has no accounts; accounts need the SQL store",
            field="AccountName",
        )
    return keys


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(
            f"AccountName: {name!r} must be 1 to 64 of letters, digits and ._- "
            "(starting with a letter or digit)",
            field="AccountName",
        )
    return name


def check_id(account_id: str, field: str = "AccountId") -> str:
    if not tenancy.ACCOUNT_ID.match(account_id):
        raise ValidationError(
            f"{field}: {account_id!r} is not an account id: 12 digits, as "
            "`orch accounts list` shows them",
            field=field,
        )
    return account_id


def _absent(account_id: str, field: str) -> NotFoundError:
    return NotFoundError(f"{field}: account {account_id!r} does not exist", field=field)


def _refuse_tenant(principal: Principal) -> None:
    if principal.account != tenancy.ROOT:
        raise PermissionDeniedError(
            f"identity {principal.name!r} may not create accounts: only an administrator of "
            "the server's own account may",
            field="Action",
        )


def _administers_root(principal: Principal) -> bool:
    """An administrator of the server's own account: of ROOT, and allowed to make accounts."""
    if principal.account != tenancy.ROOT:
        return False
    try:
        authorize(principal, "orchestrator:CreateAccount", "*")
    except PermissionDeniedError:
        return False
    return True


def target_account(
    keys: KeyStore, principal: Principal, account_id: str | None, server_account_id: str
) -> str:
    """The account a new identity goes to: the caller's, or (``account_id``, for an
    administrator of the server's own account only) another existing one. Another account
    named by anyone else is the same 404 as an absent one."""
    if account_id is None or account_id in (
        principal.account,
        tenancy.arn_account(principal.account, server_account_id),
    ):
        return principal.account
    check_id(account_id, "Account")
    if not _administers_root(principal):
        raise _absent(account_id, "Account")
    if account_id == server_account_id:
        return tenancy.ROOT
    if store_of(keys).get_account(account_id) is None:
        raise _absent(account_id, "Account")
    return account_id


def create(
    keys: KeyStore,
    principal: Principal,
    name: str,
    *,
    now: datetime,
    server_account_id: str,
    admin: str | None = None,
    issue_key: Callable[[str], str] | None = None,
) -> tuple[AccountRecord, str | None]:
    """A new account and, with ``admin``, its first administrator and that identity's API
    key (``issue_key(identity)``, called acting for the new account). The caller must be of
    the server's own account (else 403)."""
    _refuse_tenant(principal)
    store = store_of(keys)
    check_name(name)
    if admin is not None:
        ids.check_name(admin, "AdminUserName")
        with tenancy.acting_as(None):  # names are unique across accounts
            if keys.get_identity(admin) is not None:
                raise ConflictError(
                    f"AdminUserName: an identity {admin!r} already exists; pick another name",
                    field="AdminUserName",
                )
    if store.get_account_named(name) is not None:
        raise ConflictError(
            f"AccountName: an account named {name!r} already exists; pick another name",
            field="AccountName",
        )
    taken = {a.id for a in store.list_accounts()}
    record = store.add_account(tenancy.new_account_id(taken, server_account_id), name, now=now)
    key = None
    if admin is not None:
        with tenancy.acting_as(record.id):
            keys.add_identity(admin, kind="user", document=dict(ADMIN_DOCUMENT), now=now)
            key = issue_key(admin) if issue_key is not None else None
    return record, key


def visible(keys: KeyStore, principal: Principal) -> list[AccountRecord]:
    """The accounts the caller may see: every one for a caller of the server's own account,
    else its own."""
    store = store_of(keys)
    if principal.account == tenancy.ROOT:
        return store.list_accounts()
    own = store.get_account(principal.account)
    return [] if own is None else [own]
