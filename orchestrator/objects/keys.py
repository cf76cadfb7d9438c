"""Key providers: the master keys that wrap each object's data key (a KMS analog).

``LocalKeyring`` keeps 256-bit master keys in one JSON file, ``{"active": id, "keys": {id:
base64}, "versions": {id: {"created": iso, "retired": iso}}}``. Rotation adds a key (a new
version of the default master key) and makes it active; old versions stay so that objects
written before still read, until ``retire_version`` destroys one (its id stays listed as
retired, so that a read under it says so rather than "not found"). Every process notices a
rotation at its next wrap or unwrap: the file is re-read when its inode or mtime changes.

A wrap is AES-256-GCM under the master key with a random 12-byte nonce; the associated data
binds the key id and the caller's context (the object's name and version), so a wrapped key
moved to another object does not unwrap. Named keys (what a ``KmsKeyId`` names locally:
``orch kms create-key``) are kept beside it (``named_keys``; one version each: they are not
rotated); the other providers are ``aws_kms.AwsKmsKeyProvider`` and
``vault.VaultTransitKeyProvider``, chosen by ``ORCH_OBJECTS__KEY_PROVIDER`` (``providers``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.errors import (
    ConflictError,
    IntegrityError,
    KeyRetiredError,
    NotFoundError,
    ValidationError,
)
from orchestrator.objects.named_keys import (
    DEFAULT_KEY,
    NAMED_PREFIX,
    NamedKey,
    NamedKeyFile,
)

_NONCE_BYTES = 12
log = logging.getLogger("orchestrator.objects")
_KEY_BYTES = 32


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys; ``aad`` must be the same on both sides.

    ``key`` is a ``KmsKeyId`` as SageMaker takes it (a key id, ``alias/NAME`` or a key ARN;
    None: the provider's default key). ``wrap`` returns the id that goes into the envelope's
    header, which is all ``unwrap`` needs to find the key (and its version). ``check_key``
    resolves a ``KmsKeyId`` to the provider's canonical key id, or raises ``ValidationError``
    naming ``KmsKeyId`` and how to create or list keys."""

    @property
    def active_key_id(self) -> str: ...

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes: ...

    def check_key(self, key: str) -> str: ...


VersionState = Literal["active", "enabled", "retired"]


@dataclass(frozen=True)
class KeyVersion:
    """One version of a master key: ``active`` wraps new data keys, ``enabled`` only
    unwraps, ``retired`` is destroyed (nothing wrapped under it can be read)."""

    key_id: str
    key: str | None  # the logical key (a KmsKeyId) it is a version of; None: the default key
    state: VersionState
    created: datetime | None = None
    retired: datetime | None = None


@runtime_checkable
class KeyVersions(Protocol):
    """Optional capability of a ``KeyProvider``: master keys with versions that can be
    rotated, listed and retired. The re-wrap (``orchestrator.objects.rewrap``) needs only
    ``logical_key`` and ``current_key_id``; the rest serves ``orch keys``."""

    def logical_key(self, key_id: str) -> str | None:
        """The logical key ``key_id`` is a version of (None: the default key)."""
        ...

    def current_key_id(self, key: str | None = None) -> str:
        """The id new wraps under ``key`` get: its newest version."""
        ...

    def key_versions(self) -> list[KeyVersion]: ...

    def rotate_master(self, key: str | None = None) -> KeyVersion: ...

    def retire_version(self, key_id: str) -> KeyVersion: ...


def _bound_aad(key_id: str, aad: bytes) -> bytes:
    return key_id.encode() + b"\x00" + aad


class LocalKeyring:
    """Master keys in a local file (created 0600 on first use, parent directories 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._active: str | None = None
        self._keys: dict[str, bytes] = {}
        self._named = NamedKeyFile(self.path)
        self._stamp: tuple[int, int, int] | None = None  # (inode, mtime ns, size) loaded
        self._created: dict[str, datetime] = {}
        self._retired: dict[str, datetime] = {}

    @property
    def active_key_id(self) -> str:
        with self._lock:
            self._load()
            assert self._active is not None
            return self._active

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]:
        if key is not None and (named := self.check_key(key)) != DEFAULT_KEY:
            return self._wrap_named(named, data_key, aad)
        with self._lock:
            self._load()
            assert self._active is not None
            key_id, master = self._active, self._keys[self._active]
        nonce = os.urandom(_NONCE_BYTES)
        return key_id, nonce + AESGCM(master).encrypt(nonce, data_key, _bound_aad(key_id, aad))

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        if key_id.startswith(NAMED_PREFIX):
            return self._unwrap_named(key_id, wrapped, aad)
        with self._lock:
            self._load()
            master = self._keys.get(key_id)
            if master is None:
                # Another process may have rotated since we loaded: look once more.
                self._load(force=True)
                master = self._keys.get(key_id)
            retired = self._retired.get(key_id)
        if retired is not None:
            raise KeyRetiredError(
                f"master key version {key_id!r} was retired on {retired.isoformat()}: its key "
                "is destroyed",
                field="key_id",
            )
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
        with self._lock, self._file_lock():
            self._load(force=True)
            key_id = self._new_id()
            self._keys[key_id] = AESGCM.generate_key(bit_length=256)
            self._created[key_id] = datetime.now(UTC)
            self._active = key_id
            self._save()
            return key_id

    # -- named keys (KmsKeyId): objects/named_keys.py --------------------------------

    def check_key(self, key: str) -> str:
        """A ``KmsKeyId`` as a named key's id, or ``"default"`` for the default key."""
        return self._named.resolve(key)

    def create_key(self, alias: str | None = None) -> NamedKey:
        return self._named.create(alias)

    def list_keys(self) -> list[NamedKey]:
        return self._named.list()

    def _wrap_named(self, key_id: str, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        return key_id, self._named.wrap(key_id, data_key, aad)

    def _unwrap_named(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return self._named.unwrap(key_id, wrapped, aad)

    # -- versions (the ``KeyVersions`` capability) -------------------------------------------

    def _check_key(self, key: str | None) -> None:
        """Only the default master key has versions; a named key (``orch kms``) has one."""
        if key is not None and self.check_key(key) != DEFAULT_KEY:
            raise ValidationError(
                f"key {key!r} is a named key, which has one version: only the default master "
                "key is rotated (leave the key unset)",
                field="KmsKeyId",
            )

    def logical_key(self, key_id: str) -> str | None:
        """Versions of the default key (active, enabled or retired) map to None; any other
        id (a key with no versions here) is its own logical key, never moved."""
        with self._lock:
            self._load()
            if key_id in self._keys or key_id in self._retired:
                return None
        return key_id

    def current_key_id(self, key: str | None = None) -> str:
        return self.active_key_id if key is None else key

    def key_versions(self) -> list[KeyVersion]:
        with self._lock:
            self._load()
            return self._versions()

    def _versions(self) -> list[KeyVersion]:
        found = [
            KeyVersion(k, None, "active" if k == self._active else "enabled", self._created.get(k))
            for k in self._keys
        ]
        found += [
            KeyVersion(k, None, "retired", self._created.get(k), when)
            for k, when in self._retired.items()
        ]
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found, key=lambda v: (v.created or epoch, v.key_id))

    def rotate_master(self, key: str | None = None) -> KeyVersion:
        self._check_key(key)
        key_id = self.rotate()
        return next(v for v in self.key_versions() if v.key_id == key_id)

    def retire_version(self, key_id: str) -> KeyVersion:
        """Destroy version ``key_id``'s key material (the caller has checked that nothing
        uses it). Retiring a retired version again answers the same."""
        with self._lock, self._file_lock():
            self._load(force=True)
            if key_id not in self._keys and key_id not in self._retired:
                raise NotFoundError(
                    f"master key version {key_id!r} is not in the keyring (orch keys "
                    "master-status lists them)",
                    field="key_id",
                )
            if key_id == self._active:
                raise ConflictError(
                    f"master key version {key_id!r} is the active one; rotate first "
                    "(orch keys rotate-master), re-wrap, then retire it",
                    field="key_id",
                )
            if key_id in self._keys:
                del self._keys[key_id]
                self._retired[key_id] = datetime.now(UTC)
                self._save()
            return next(v for v in self._versions() if v.key_id == key_id)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialize changes across processes (two rotations at once must not lose one)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _parse_versions(self, doc: dict[str, object], keys: dict[str, bytes]) -> None:
        created: dict[str, datetime] = {}
        retired: dict[str, datetime] = {}
        versions = doc.get("versions", {})
        if not isinstance(versions, dict):
            raise ValidationError(f"keyring file {self.path}: 'versions' is not an object")
        try:
            for k, v in versions.items():
                if v.get("created"):
                    created[str(k)] = datetime.fromisoformat(v["created"])
                if v.get("retired") and k not in keys:
                    retired[str(k)] = datetime.fromisoformat(v["retired"])
        except (AttributeError, TypeError, ValueError) as e:
            raise ValidationError(f"keyring file {self.path}: 'versions' is malformed: {e}") from e
        self._created, self._retired = created, retired

    def _versions_doc(self) -> dict[str, dict[str, str]]:
        doc: dict[str, dict[str, str]] = {}
        for k, when in self._created.items():
            doc.setdefault(k, {})["created"] = when.isoformat()
        for k, when in self._retired.items():
            doc.setdefault(k, {})["retired"] = when.isoformat()
        return doc

    # -- file handling ---------------------------------------------------------------

    @staticmethod
    def _new_id() -> str:
        return "k-" + secrets.token_hex(8)

    def _load(self, *, force: bool = False) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._active is not None and not force:
                return  # removed under us: keep what we have rather than make new keys
            self._create()
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._active is not None and not force and stamp == self._stamp:
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
        self._stamp = stamp

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
        self._parse_versions(doc, keys)
        return active, keys

    def _create(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_id = self._new_id()
        self._active, self._keys = key_id, {key_id: AESGCM.generate_key(bit_length=256)}
        self._created, self._retired = {key_id: datetime.now(UTC)}, {}
        try:
            self._save(exclusive=True)
        except FileExistsError:
            # Another process created it first: use theirs so both agree on the keys.
            self._active, self._keys = self._parse(self.path.read_bytes())
        st = os.stat(self.path)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _save(self, *, exclusive: bool = False) -> None:
        doc = {
            "active": self._active,
            "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()},
            "versions": self._versions_doc(),
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
        st = os.stat(self.path)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
