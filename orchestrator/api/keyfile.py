"""API keys from a file (on a cluster: a mounted Secret), so that the API pods keep no state.

The file is JSON: ``{"keys": [{"KeyId": ..., "SecretHash": <sha256 hex of the secret>,
"Name": ..., "Role": "admin" | "invoke", "Revoked": false}], "access_keys": [{"AccessKeyId":
..., "SecretAccessKey": ..., "Name": ..., "Role": ..., "Revoked": false}]}``; the SigV4 access
keys' secrets are in the clear there (a signature cannot be checked against a hash), which is
what a Kubernetes Secret is for. The Helm chart writes it into
a Secret with a generated admin key (``kubectl get secret`` shows the key to use); edit the
Secret to add or revoke keys: the file is read again when it changes (kubelet updates mounted
Secrets within a minute), so a revoked key stops working in every API pod without a restart.
Keys cannot be created through the API here: the Secret is their one source.

Identities too: ``"identities": [{"UserName": ..., "Kind": "user" | "service",
"ManagedPolicies": [...], "InlinePolicies": {name: document}, "Roles": [...]}]``; a key with
``"Identity"`` acts as that identity (as its ``Role`` when it has one, else with the
identity's own policies), and ``"Expires"`` (an ISO 8601 time) ends it. A key without an
identity acts as an identity of its own name with its role's policies (admin, invoke, ...).
An identity's ``"Account"`` (12 digits, ``orchestrator.tenancy``) is the account it and its
keys act for (left out: the server's own); a caller sees its own account's identities only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from orchestrator import tenancy
from orchestrator.api.identities import document_of
from orchestrator.errors import PermissionDeniedError, ValidationError
from orchestrator.store import AccessKeyRecord, ApiKeyRecord, IdentityRecord


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid")
    KeyId: str
    SecretHash: str
    Name: str = "key"
    Role: str | None = None  # default: admin for a key of no identity, else its own policies
    Revoked: bool = False
    Identity: str | None = None
    Expires: datetime | None = None

    @property
    def role(self) -> str:
        if self.Role is not None:
            return self.Role
        return "" if self.Identity else "admin"


class _Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    UserName: str
    Kind: str = "user"
    ManagedPolicies: list[str] = []
    InlinePolicies: dict[str, Any] = {}
    Roles: list[str] = []
    # The account (tenant, 12 digits) it belongs to; "" : the server's own.
    Account: str = ""


class _AccessKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    AccessKeyId: str
    SecretAccessKey: str
    Name: str = "key"
    Role: str | None = None  # default: admin for a key of no identity, else its own policies
    Revoked: bool = False
    Identity: str | None = None
    Expires: datetime | None = None

    @property
    def role(self) -> str:
        if self.Role is not None:
            return self.Role
        return "" if self.Identity else "admin"


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[_Key] = []
    access_keys: list[_AccessKey] = []
    identities: list[_Identity] = []


class FileKeys:
    """``KeyStore`` over a JSON file, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKeyRecord] = {}
        self._access: dict[str, AccessKeyRecord] = {}
        self._identities: dict[str, IdentityRecord] = {}
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as e:
            raise ValidationError(
                f"ORCH_API_KEYS_FILE: {self.path} does not exist; mount the API keys Secret "
                "there (the Helm chart does)",
                field="ORCH_API_KEYS_FILE",
            ) from e
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                doc = _KeyFile.model_validate(json.loads(self.path.read_text()))
            except (json.JSONDecodeError, PydanticValidationError) as e:
                raise ValidationError(
                    f"ORCH_API_KEYS_FILE: {self.path} is not a keys file ({e}); it must hold "
                    '{"keys": [{"KeyId", "SecretHash", "Name", "Role"}]}',
                    field="ORCH_API_KEYS_FILE",
                ) from e
            zero = datetime.fromtimestamp(st.st_mtime, UTC)
            identities = {}
            for i, ident in enumerate(doc.identities):
                try:
                    checked = document_of(ident.ManagedPolicies, ident.InlinePolicies, ident.Roles)
                except ValidationError as e:
                    raise ValidationError(
                        f"ORCH_API_KEYS_FILE: {self.path}: identities[{i}] "
                        f"({ident.UserName!r}): {e.message}",
                        field="ORCH_API_KEYS_FILE",
                    ) from e
                if ident.Account and not tenancy.ACCOUNT_ID.match(ident.Account):
                    raise ValidationError(
                        f"ORCH_API_KEYS_FILE: {self.path}: identities[{i}] "
                        f"({ident.UserName!r}): Account {ident.Account!r} is not 12 digits; "
                        "leave it out for the server's own account",
                        field="ORCH_API_KEYS_FILE",
                    )
                identities[ident.UserName] = IdentityRecord(
                    ident.UserName, ident.Kind, zero, checked, ident.Account
                )

            def account_of(identity: str | None) -> str:
                found = identities.get(identity) if identity else None
                return found.account if found is not None else tenancy.ROOT

            self._identities = identities
            self._keys = {
                k.KeyId: ApiKeyRecord(
                    k.KeyId,
                    k.SecretHash,
                    k.Name,
                    k.role,
                    zero,
                    k.Revoked,
                    k.Identity,
                    _aware(k.Expires),
                    account=account_of(k.Identity),
                )
                for k in doc.keys
            }
            self._access = {
                k.AccessKeyId: AccessKeyRecord(
                    k.AccessKeyId,
                    f"plain:{k.SecretAccessKey}",
                    k.Name,
                    k.role,
                    zero,
                    k.Revoked,
                    k.Identity,
                    _aware(k.Expires),
                    account=account_of(k.Identity),
                )
                for k in doc.access_keys
            }
            self._stamp = stamp

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self._load()
        return _seen(self._keys.get(key_id))

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
    ) -> None:
        raise PermissionDeniedError(
            f"API keys here come from {self.path} (a Secret on a cluster); add the key there"
        )

    def count_api_keys(self) -> int:
        self._load()
        return len(self._keys)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        self._load()
        return sorted(_own(self._keys.values()), key=lambda k: k.key_id)

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        raise PermissionDeniedError(
            f"API keys here come from {self.path} (a Secret on a cluster); revoke {key_id!r} "
            'there ("Revoked": true): every API pod reads it again within a minute'
        )

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        self._load()
        return _seen(self._access.get(access_key_id))

    def list_access_keys(self) -> list[AccessKeyRecord]:
        self._load()
        return sorted(_own(self._access.values()), key=lambda k: k.access_key_id)

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
    ) -> None:
        raise PermissionDeniedError(
            f"access keys here come from {self.path} (a Secret on a cluster); add the key "
            'there under "access_keys"'
        )

    def revoke_access_key(self, access_key_id: str) -> AccessKeyRecord:
        raise PermissionDeniedError(
            f"access keys here come from {self.path} (a Secret on a cluster); revoke "
            f'{access_key_id!r} there ("Revoked": true)'
        )

    # --- identities: read from the file; changed only there ---------------------------
    def get_identity(self, name: str) -> IdentityRecord | None:
        self._load()
        return _seen(self._identities.get(name))

    def list_identities(self) -> list[IdentityRecord]:
        self._load()
        return sorted(_own(self._identities.values()), key=lambda r: r.name)

    def _read_only(self) -> PermissionDeniedError:
        return PermissionDeniedError(
            f"identities here come from {self.path} (a Secret on a cluster); change them "
            'there, under "identities"'
        )

    def add_identity(
        self, name: str, *, kind: str, document: dict[str, Any], now: datetime
    ) -> IdentityRecord:
        raise self._read_only()

    def update_identity(self, name: str, document: dict[str, Any]) -> IdentityRecord:
        raise self._read_only()

    def delete_identity(self, name: str) -> None:
        raise self._read_only()

    def touch_keys(self, api: dict[str, datetime], access: dict[str, datetime]) -> None:
        """Last use is not recorded for keys from the file (the Secret is read-only)."""


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


_R = TypeVar("_R", ApiKeyRecord, AccessKeyRecord, IdentityRecord)


def _seen(record: _R | None) -> _R | None:
    """The record, if the caller may see it (``tenancy``: its own account's)."""
    return record if record is not None and tenancy.visible(record.account) else None


def _own(records: Iterable[_R]) -> list[_R]:
    return [r for r in records if tenancy.visible(r.account)]
