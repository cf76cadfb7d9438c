"""SigV4 access keys: made, sealed, opened, revoked; and the signing keys a request is checked
with.

An access key id looks like AWS's (``AKIA`` + 16 characters of ``[A-Z2-7]``), its secret is 40
characters of base64 (240 random bits). A signature can only be checked with the secret
itself, so the secret cannot be stored hashed: it is sealed with the object store's keyring
(AES-256-GCM, the key id as associated data, so a sealed secret cannot be moved to another
key id) and shown once, when it is made. On a cluster the keys come from the keys file (a
Secret), in the clear there.

``signing_key(akid, date, region, service)`` returns the derived day/region/service key and the
key's ``Principal``; the derived keys are cached (they are what AWS itself caches), so that a
request costs one HMAC and a SHA-256 of its canonical form, and ``forget(akid)`` drops a
revoked key's entries at once; an entry lives ``ttl`` seconds, which bounds how long a key
revoked behind this process's back (in the database, or in the keys file) keeps working.
``revoke`` also tells ``revocation_listeners`` (the invocation data plane, which keeps derived
keys of its own and in every router worker), from the revoking thread.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator import tenancy
from orchestrator.access import ROLES, Principal
from orchestrator.api.identities import LastUsed, principal_of_key
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.objects.keys import KeyProvider
from orchestrator.sigv4 import SignatureError, signing_key
from orchestrator.store import AccessKeyRecord, IdentityRecord

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_PLAIN = "plain:"
_SEALED = "v1:"


def _aad(access_key_id: str) -> bytes:
    return f"orchestrator access key {access_key_id}".encode()


def seal(keyring: KeyProvider, access_key_id: str, secret: str) -> str:
    key_id, wrapped = keyring.wrap(secret.encode(), _aad(access_key_id))
    return f"{_SEALED}{key_id}:{base64.b64encode(wrapped).decode()}"


def open_secret(keyring: KeyProvider, record: AccessKeyRecord) -> str:
    sealed = record.sealed_secret
    if sealed.startswith(_PLAIN):
        return sealed[len(_PLAIN) :]
    if not sealed.startswith(_SEALED):
        raise ValidationError(
            f"access key {record.access_key_id!r}: its stored secret is in no known form",
            field="AccessKeyId",
        )
    key_id, _, b64 = sealed[len(_SEALED) :].partition(":")
    return keyring.unwrap(key_id, base64.b64decode(b64), _aad(record.access_key_id)).decode()


class AccessKeyStore(Protocol):
    """What ``AccessKeys`` keeps keys in (the SQL store, or ``FileKeys`` on a cluster)."""

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

    def get_identity(self, name: str) -> IdentityRecord | None: ...

    def list_identities(self) -> list[IdentityRecord]: ...

    def add_identity(
        self, name: str, *, kind: str, document: dict[str, Any], now: datetime
    ) -> IdentityRecord: ...

    def update_identity(self, name: str, document: dict[str, Any]) -> IdentityRecord: ...

    def delete_identity(self, name: str) -> None: ...

    def touch_keys(self, api: dict[str, datetime], access: dict[str, datetime]) -> None: ...


class AccessKeys:
    """Access keys over a store and a keyring; thread-safe."""

    def __init__(
        self,
        store: AccessKeyStore,
        keyring: KeyProvider,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._derived: dict[tuple[str, str, str, str], tuple[bytes, Principal, float]] = {}
        self.revocation_listeners: list[Callable[[str], None]] = []
        self.last_used = LastUsed()

    def create(
        self,
        *,
        name: str,
        role: str,
        now: datetime,
        identity: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[AccessKeyRecord, str]:
        """A new access key and its secret (shown once: only the sealed form is stored)."""
        if identity is None and role not in ROLES:
            raise ValidationError(
                f"Role must be one of {', '.join(ROLES)}, not {role!r}", field="Role"
            )
        if not name or len(name) > 128:
            raise ValidationError("Name must be 1 to 128 characters", field="Name")
        access_key_id = "AKIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        self.store.add_access_key(
            access_key_id, seal(self.keyring, access_key_id, secret), name=name, role=role,
            now=now, identity=identity, expires_at=expires_at,
        )  # fmt: skip
        record = self.store.get_access_key(access_key_id)
        assert record is not None
        return record, secret

    def list(self) -> list[AccessKeyRecord]:
        return self.store.list_access_keys()

    def revoke(self, access_key_id: str) -> AccessKeyRecord:
        record = self.store.get_access_key(access_key_id)
        if record is None:
            raise NotFoundError(f"access key {access_key_id!r} does not exist", field="AccessKeyId")
        if record.revoked:
            raise ConflictError(f"access key {access_key_id!r} is already revoked")
        revoked = self.store.revoke_access_key(access_key_id)
        self.forget(access_key_id)
        for listener in self.revocation_listeners:
            listener(access_key_id)
        return revoked

    def forget(self, access_key_id: str) -> None:
        with self._lock:
            for scope in [s for s in self._derived if s[0] == access_key_id]:
                del self._derived[scope]

    def signing_key(
        self, access_key_id: str, date: str, region: str, service: str
    ) -> tuple[bytes, Principal]:
        """The derived key for one day, region and service, and whose key it is. Raises
        ``SignatureError("unknown_key")`` for an unknown or revoked key (the same refusal)."""
        scope = (access_key_id, date, region, service)
        with self._lock:
            hit = self._derived.get(scope)
        if hit is not None and hit[2] > self.clock():
            return hit[0], hit[1]
        with tenancy.acting_as(None):  # any account's key: its account is what this finds out
            record = self.store.get_access_key(access_key_id)
        unknown = SignatureError(
            "unknown_key", "The security token included in the request is invalid."
        )
        now = datetime.now(UTC)
        if record is None or record.revoked:
            raise unknown
        if record.expires_at is not None and record.expires_at <= now:
            raise unknown  # expired: the same refusal as an unknown key
        principal = principal_of_key(
            self.store, record.access_key_id, name=record.name, role=record.role,
            identity=record.identity, account=record.account,
        )  # fmt: skip
        if principal is None:
            raise unknown
        if self.last_used.due(record.access_key_id, now):
            self.store.touch_keys({}, {record.access_key_id: now})
        derived = signing_key(open_secret(self.keyring, record), date, region, service)
        with self._lock:
            if len(self._derived) >= 4096:
                self._derived.clear()
            self._derived[scope] = (derived, principal, self.clock() + self.ttl)
        return derived, principal
