"""Key providers: the master keys that wrap each object's data key (a KMS analog).

``LocalKeyring`` keeps 256-bit master keys in one JSON file, ``{"active": id, "keys": {id:
base64}}``. Rotation adds a key and makes it active; old keys stay so that objects written
before still read. A wrap is AES-256-GCM under the master key with a random 12-byte nonce;
the associated data binds the key id and the caller's context (the object's name and
version), so a wrapped key moved to another object does not unwrap.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.errors import IntegrityError, NotFoundError, ValidationError

_NONCE_BYTES = 12
log = logging.getLogger("orchestrator.objects")
_KEY_BYTES = 32


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys; ``aad`` must be the same on both sides."""

    @property
    def active_key_id(self) -> str: ...

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes: ...


def _bound_aad(key_id: str, aad: bytes) -> bytes:
    return key_id.encode() + b"\x00" + aad


class LocalKeyring:
    """Master keys in a local file (created 0600 on first use, parent directories 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._active: str | None = None
        self._keys: dict[str, bytes] = {}

    @property
    def active_key_id(self) -> str:
        with self._lock:
            self._load()
            assert self._active is not None
            return self._active

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        with self._lock:
            self._load()
            assert self._active is not None
            key_id, master = self._active, self._keys[self._active]
        nonce = os.urandom(_NONCE_BYTES)
        return key_id, nonce + AESGCM(master).encrypt(nonce, data_key, _bound_aad(key_id, aad))

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        with self._lock:
            self._load()
            master = self._keys.get(key_id)
            if master is None:
                # Another process may have rotated since we loaded: look once more.
                self._load(force=True)
                master = self._keys.get(key_id)
        if master is None:
            raise NotFoundError(
                f"master key {key_id!r} is not in the keyring at {self.path}; "
                "restore the keyring file that holds it",
                field="key_id",
            )
        if len(wrapped) <= _NONCE_BYTES:
            raise IntegrityError(f"wrapped data key under master key {key_id!r} is truncated")
        nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            return AESGCM(master).decrypt(nonce, body, _bound_aad(key_id, aad))
        except InvalidTag as e:
            raise IntegrityError(
                f"wrapped data key under master key {key_id!r} failed authentication"
            ) from e

    def rotate(self) -> str:
        """Add a new master key and make it active; returns its id."""
        with self._lock:
            self._load(force=True)
            key_id = self._new_id()
            self._keys[key_id] = AESGCM.generate_key(bit_length=256)
            self._active = key_id
            self._save()
            return key_id

    # -- file handling ---------------------------------------------------------------

    @staticmethod
    def _new_id() -> str:
        return "k-" + secrets.token_hex(8)

    def _load(self, *, force: bool = False) -> None:
        if self._active is not None and not force:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._create()
            return
        if stat.S_IMODE(st.st_mode) & 0o077:
            # Group/other could read the keys: tighten rather than refuse, the friendlier fix.
            try:
                os.chmod(self.path, 0o600)
            except OSError as e:
                # A read-only mount (a Kubernetes Secret, mode 0440 for the pod's fsGroup):
                # access is the platform's to manage, and the keys are still usable.
                log.warning("keyring %s is readable by its group (%s); leaving it", self.path, e)
        self._active, self._keys = self._parse(self.path.read_bytes())

    def _parse(self, raw: bytes) -> tuple[str, dict[str, bytes]]:
        try:
            doc = json.loads(raw)
            active = doc["active"]
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
            raise ValidationError(f"keyring file {self.path} is malformed: {e}") from e
        if not isinstance(active, str) or active not in keys:
            raise ValidationError(f"keyring file {self.path}: active key {active!r} is missing")
        bad = [k for k, v in keys.items() if len(v) != _KEY_BYTES]
        if bad:
            raise ValidationError(f"keyring file {self.path}: keys {bad} are not 256-bit")
        return active, keys

    def _create(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_id = self._new_id()
        self._active, self._keys = key_id, {key_id: AESGCM.generate_key(bit_length=256)}
        try:
            self._save(exclusive=True)
        except FileExistsError:
            # Another process created it first: use theirs so both agree on the keys.
            self._active, self._keys = self._parse(self.path.read_bytes())

    def _save(self, *, exclusive: bool = False) -> None:
        doc = {
            "active": self._active,
            "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()},
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                # link() fails if the target exists: an atomic create-if-absent.
                os.link(tmp, self.path)
            else:
                os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
