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
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from orchestrator.errors import PermissionDeniedError, ValidationError
from orchestrator.store import AccessKeyRecord, ApiKeyRecord


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid")
    KeyId: str
    SecretHash: str
    Name: str = "key"
    Role: str = "admin"
    Revoked: bool = False


class _AccessKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    AccessKeyId: str
    SecretAccessKey: str
    Name: str = "key"
    Role: str = "admin"
    Revoked: bool = False


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[_Key] = []
    access_keys: list[_AccessKey] = []


class FileKeys:
    """``KeyStore`` over a JSON file, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKeyRecord] = {}
        self._access: dict[str, AccessKeyRecord] = {}
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
            self._keys = {
                k.KeyId: ApiKeyRecord(k.KeyId, k.SecretHash, k.Name, k.Role, zero, k.Revoked)
                for k in doc.keys
            }
            self._access = {
                k.AccessKeyId: AccessKeyRecord(
                    k.AccessKeyId, f"plain:{k.SecretAccessKey}", k.Name, k.Role, zero, k.Revoked
                )
                for k in doc.access_keys
            }
            self._stamp = stamp

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self._load()
        return self._keys.get(key_id)

    def add_api_key(
        self, key_id: str, secret_hash: str, *, name: str, role: str, now: datetime
    ) -> None:
        raise PermissionDeniedError(
            f"API keys here come from {self.path} (a Secret on a cluster); add the key there"
        )

    def count_api_keys(self) -> int:
        self._load()
        return len(self._keys)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        self._load()
        return sorted(self._keys.values(), key=lambda k: k.key_id)

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        raise PermissionDeniedError(
            f"API keys here come from {self.path} (a Secret on a cluster); revoke {key_id!r} "
            'there ("Revoked": true): every API pod reads it again within a minute'
        )

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        self._load()
        return self._access.get(access_key_id)

    def list_access_keys(self) -> list[AccessKeyRecord]:
        self._load()
        return sorted(self._access.values(), key=lambda k: k.access_key_id)

    def add_access_key(
        self, access_key_id: str, sealed_secret: str, *, name: str, role: str, now: datetime
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
