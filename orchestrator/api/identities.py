"""Identities (users and service identities), their policies, and their keys' principals.

An identity has managed policies (by name, ``orchestrator.iam.managed``), inline policies
(documents, checked when given: a 400 names the policy, statement and member) and the roles it
may assume. A key belongs to one identity; a key issued *as a role* carries that role's
policies only (as an assumed IAM role does), a key issued without one carries its identity's
own policies. A key from before identities (no identity) acts as an identity of its own name
with its role's policies, so ``admin`` and ``invoke`` keys keep working (the built-in roles
map them onto the managed AdministratorAccess and Invoker).

A key past its expiry is refused with the same 401 as an unknown one. Last use is written at
most once a minute per key (``LastUsed``), from the thread that checked the key (never on the
event loop: the key caches answer most requests without coming here).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from typing import Any, Protocol

from orchestrator import tenancy
from orchestrator.access import Principal
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.iam import (
    MANAGED,
    ROLES,
    Policy,
    managed,
    parse_policy,
    policy_set,
    role_policies,
)
from orchestrator.store import IdentityRecord

KINDS = ("user", "service")
_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
NAME_PATTERN = _NAME.pattern  # an identity's or an inline policy's name (the document says so)
TOUCH_EVERY = timedelta(minutes=1)


class IdentityStore(Protocol):
    def get_identity(self, name: str) -> IdentityRecord | None: ...

    def list_identities(self) -> list[IdentityRecord]: ...

    def add_identity(
        self, name: str, *, kind: str, document: dict[str, Any], now: datetime
    ) -> IdentityRecord: ...

    def update_identity(self, name: str, document: dict[str, Any]) -> IdentityRecord: ...

    def delete_identity(self, name: str) -> None: ...

    def touch_keys(self, api: dict[str, datetime], access: dict[str, datetime]) -> None: ...


def check_name(name: str, field: str = "UserName") -> str:
    if not _NAME.match(name):
        raise ValidationError(
            f"{field}: {name!r} must be 1 to 64 of letters, digits and +=,.@_-", field=field
        )
    return name


def document_of(
    managed_policies: list[str], inline: dict[str, Any], roles: list[str]
) -> dict[str, Any]:
    """The stored document of an identity, every part checked (errors name the field)."""
    for i, name in enumerate(managed_policies):
        managed(name, f"ManagedPolicies[{i}]")
    for name, doc in inline.items():
        check_name(name, "InlinePolicies")
        parse_policy(doc, name=name, where=f"InlinePolicies.{name}.")
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise ValidationError(
                f"Roles[{i}]: no role {role!r}; the roles are {', '.join(sorted(ROLES))}",
                field=f"Roles[{i}]",
            )
    return {
        "ManagedPolicies": list(dict.fromkeys(managed_policies)),
        "InlinePolicies": dict(inline),
        "Roles": list(dict.fromkeys(roles)),
    }


def policies_of(record: IdentityRecord) -> list[Policy]:
    doc = record.document
    out = [MANAGED[n] for n in doc.get("ManagedPolicies", []) if n in MANAGED]
    out += [parse_policy(d, name=n) for n, d in doc.get("InlinePolicies", {}).items()]
    return out


def principal_of_key(
    store: IdentityStore,
    key_id: str,
    *,
    name: str,
    role: str,
    identity: str | None,
    account: str = tenancy.ROOT,
) -> Principal | None:
    """The principal a key acts as, or None when its identity is gone. It acts for its
    identity's account (a key of no identity: ``account``, the key's own)."""
    if identity is None:
        return Principal(key_id, name, role, account=account)
    with tenancy.acting_as(None):  # a key's identity, whoever asks
        record = store.get_identity(identity)
    if record is None:
        return None
    if role:
        if role not in record.document.get("Roles", []):
            return None  # the identity may no longer assume it
        return Principal(
            key_id, identity, role, policy_set(role_policies(role), identity),
            account=record.account,
        )  # fmt: skip
    return Principal(
        key_id, identity, "", policy_set(policies_of(record), identity), account=record.account
    )


def check_issue(store: IdentityStore, identity: str, role: str) -> IdentityRecord:
    """The identity a new key is for, refusing a role it may not assume."""
    record = store.get_identity(identity)
    if record is None:
        raise NotFoundError(f"identity {identity!r} does not exist", field="UserName")
    if role and role not in record.document.get("Roles", []):
        raise ValidationError(
            f"Role: identity {identity!r} may not assume {role!r} (it may assume "
            f"{record.document.get('Roles') or 'no role'}); add it first: "
            f"orch users update {identity} --role {role}",
            field="Role",
        )
    return record


# A key's longest lifetime: 100 years (a date past year 9999 cannot be kept at all).
MAX_KEY_SECONDS = 100 * 365 * 86400


def expiry(now: datetime, seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    if not 0 < seconds <= MAX_KEY_SECONDS:
        raise ValidationError(
            f"ExpiresInSeconds must be 1 to {MAX_KEY_SECONDS} (100 years; got {seconds}); "
            "leave it out for a key that does not expire",
            field="ExpiresInSeconds",
        )
    return now + timedelta(seconds=seconds)


def ensure_identity(store: IdentityStore, name: str, role: str, now: datetime) -> None:
    """The identity of a key made through the first key routes (``/api-keys``,
    ``/access-keys``): made when absent, allowed to assume ``role``."""
    record = store.get_identity(name)
    if record is None:
        store.add_identity(name, kind="service", document=document_of([], {}, [role]), now=now)
    elif role not in record.document.get("Roles", []):
        doc = dict(record.document)
        doc["Roles"] = [*doc.get("Roles", []), role]
        store.update_identity(name, doc)


class LastUsed:
    """When each key was last written as used: a write at most every ``TOUCH_EVERY``."""

    def __init__(self) -> None:
        self._written: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def due(self, key_id: str, now: datetime) -> bool:
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < TOUCH_EVERY:
                return False
            if len(self._written) > 100_000:
                self._written.clear()
            self._written[key_id] = now
            return True


def refuse_last_admin_identity(store: IdentityStore, name: str, *, other_admin_keys: int) -> None:
    """Deleting the identity of the only admin is refused (nobody could administer);
    ``other_admin_keys``: working admin keys of no identity (from before identities)."""
    if other_admin_keys:
        return
    admins = [
        r
        for r in store.list_identities()
        if "AdministratorAccess" in r.document.get("ManagedPolicies", [])
        or "admin" in r.document.get("Roles", [])
    ]
    if [r.name for r in admins] == [name]:
        raise ConflictError(
            f"identity {name!r} is the last one with administrator access; give another "
            "identity AdministratorAccess first",
            field="UserName",
        )
