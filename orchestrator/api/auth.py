"""API keys: ``orch_<key id>_<secret>``; only a SHA-256 of the secret is stored.

The secret is 256 random bits, so a fast hash is enough (no password stretching needed); the
comparison is constant-time. Every failure gives the same 401, whether or not anything exists.
``Principal`` carries a role so that policies (and request signing) can be added in
``authorize`` (``orchestrator.access``) without touching the routes. Verified keys are cached
(``KeyCache``, shared with the invocation data plane); revoking a key drops it from there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from orchestrator import tenancy
from orchestrator.access import Principal, authorize
from orchestrator.api.identities import LastUsed, principal_of_key
from orchestrator.dataplane.keys import KeyCache
from orchestrator.errors import AuthenticationError, ConflictError, NotFoundError
from orchestrator.store import AccessKeyRecord, ApiKeyRecord, IdentityRecord

PREFIX = "orch"


class KeyStore(Protocol):
    """Where API keys (their hashes) live: the SQL store on one host; on a cluster a mounted
    Secret (``keyfile.FileKeys``), so that the API pods keep no state."""

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    def add_api_key(
        self,
        key_id: str,
        secret_hash: str,
        *,
        name: str,
        role: str,
        now: datetime,
        identity: str | None = None,
        expires_at: datetime | None = None,
    ) -> None: ...

    def count_api_keys(self) -> int: ...

    def list_api_keys(self) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord: ...

    # SigV4 access keys (``orchestrator.api.aws.credentials`` seals and opens the secrets).
    def add_access_key(
        self,
        access_key_id: str,
        sealed_secret: str,
        *,
        name: str,
        role: str,
        now: datetime,
        identity: str | None = None,
        expires_at: datetime | None = None,
    ) -> None: ...

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None: ...

    def list_access_keys(self) -> list[AccessKeyRecord]: ...

    def revoke_access_key(self, access_key_id: str) -> AccessKeyRecord: ...

    # Identities (``orchestrator.api.identities``).
    def get_identity(self, name: str) -> IdentityRecord | None: ...

    def list_identities(self) -> list[IdentityRecord]: ...

    def add_identity(
        self, name: str, *, kind: str, document: dict[str, object], now: datetime
    ) -> IdentityRecord: ...

    def update_identity(self, name: str, document: dict[str, object]) -> IdentityRecord: ...

    def delete_identity(self, name: str) -> None: ...

    def touch_keys(self, api: dict[str, datetime], access: dict[str, datetime]) -> None: ...


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key(
    store: KeyStore,
    *,
    name: str,
    role: str,
    now: datetime,
    identity: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    store.add_api_key(
        key_id, _hash(secret), name=name, role=role, now=now, identity=identity,
        expires_at=expires_at,
    )  # fmt: skip
    return f"{PREFIX}_{key_id}_{secret}"


LAST_USED = LastUsed()  # the API keys' last-use writes of this process


def revoke_api_key(store: KeyStore, key_id: str) -> ApiKeyRecord:
    """Revoke ``key_id`` for good (the caller then drops it from every key cache). The last
    admin key that still works is refused: nobody could administer the server after it."""
    record = store.get_api_key(key_id)
    if record is None:
        raise NotFoundError(f"API key {key_id!r} does not exist", field="KeyId")
    if _administers(store, record) and not record.revoked:
        admins = [k for k in store.list_api_keys() if not k.revoked and _administers(store, k)]
        if len(admins) == 1:
            raise ConflictError(
                f"API key {key_id!r} is the last admin key; create another admin key first "
                "(orch keys create NAME --role admin)",
                field="KeyId",
            )
    return store.revoke_api_key(key_id)


def _administers(store: KeyStore, key: ApiKeyRecord) -> bool:
    """Whether the key has administrator access: issued as admin, or with the own policies
    of an identity that has AdministratorAccess."""
    if key.role == "admin":
        return True
    if key.role or key.identity is None:
        return False
    identity = store.get_identity(key.identity)
    return identity is not None and "AdministratorAccess" in identity.document.get(
        "ManagedPolicies", []
    )


def authenticate(
    store: KeyStore, presented: str | None, *, now: datetime | None = None
) -> Principal:
    denied = AuthenticationError(
        "missing or invalid API key: send 'Authorization: Bearer <key>' (orch reads it from "
        "ORCH_API_KEY or the credentials file written by the first `orch server` run)"
    )
    if not presented:
        raise denied
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise denied
    with tenancy.acting_as(None):  # any account's key: its account is what this finds out
        record = store.get_api_key(parts[1])
    if record is None or record.revoked:
        # Same work as a real check, so timing does not tell whether the key id exists.
        hmac.compare_digest(_hash(parts[2]), _hash(""))
        raise denied
    if not hmac.compare_digest(record.secret_hash, _hash(parts[2])):
        raise denied
    now = now or datetime.now(UTC)
    if record.expires_at is not None and record.expires_at <= now:
        raise denied  # expired: the same 401 as an unknown key
    principal = principal_of_key(
        store, record.key_id, name=record.name, role=record.role, identity=record.identity,
        account=record.account,
    )  # fmt: skip
    if principal is None:
        raise denied  # its identity was deleted, or may no longer assume the role
    if LAST_USED.due(record.key_id, now):
        store.touch_keys({record.key_id: now}, {})
    return principal


def write_credentials(path: Path, *, endpoint_url: str, api_key: str) -> None:
    """The admin key for the local user: mode 0600 in a 0700 directory, created atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"endpoint_url": endpoint_url, "api_key": api_key}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_admin_key(
    store: KeyStore, credentials: Path, *, endpoint_url: str, now: datetime
) -> str | None:
    """On the first run (no keys at all) create an admin key and save it; returns it if new."""
    if store.count_api_keys() > 0:
        return None
    if store.get_identity("admin") is None:
        store.add_identity(
            "admin", kind="user", now=now,
            document={"ManagedPolicies": ["AdministratorAccess"], "InlinePolicies": {},
                      "Roles": ["admin"]},
        )  # fmt: skip
    key = new_api_key(store, name="admin", role="admin", now=now, identity="admin")
    write_credentials(credentials, endpoint_url=endpoint_url, api_key=key)
    return key


__all__ = [
    "PREFIX",
    "KeyCache",
    "KeyStore",
    "Principal",
    "authenticate",
    "authorize",
    "ensure_admin_key",
    "new_api_key",
    "revoke_api_key",
    "write_credentials",
]
