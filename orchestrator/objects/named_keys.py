"""The local keyring's named keys: what a ``KmsKeyId`` names when the provider is local.

The keyring's own file (``keyring.json``) holds the default key and its versions, as before;
named keys live beside it in ``keyring-named.json`` (0600), so that file's format is
unchanged and a keyring without named keys reads as it always did::

    {"keys": {"mk-<uuid>": {"alias": "NAME" | null, "created": ISO-8601, "material": base64,
                            "account": ACCOUNT}}}

Each key belongs to the account that created it (``account``; absent in a file from before
accounts: the server's own, ``tenancy.ROOT``). A caller lists and names (``resolve``) only its
own account's keys; another account's answers exactly as a key nobody has. Aliases are unique
server-wide (one keyring), so another account's alias is refused at create as taken. Wrapping
and unwrapping by id is not filtered: an envelope names the key its object was sealed with,
and who may read the object is the bucket's question.

A named key is one 256-bit AES-GCM key; its id (``mk-<uuid>``) is what goes into an envelope's
header. A ``KmsKeyId`` names one as its id, ``alias/NAME``, or an ARN of either
(``arn:aws:kms:REGION:ACCOUNT:key/ID``, ``...:alias/NAME``; region and account are not
checked: there is one keyring). ``alias/default`` (or ``default``) is the keyring's default
key. Creates take a lock file so that two processes creating at once both keep their key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator import tenancy
from orchestrator.errors import ConflictError, IntegrityError, NotFoundError, ValidationError

NAMED_PREFIX = "mk-"
DEFAULT_KEY = "default"  # the keyring's default key, as check_key names it
DEFAULT_ALIAS = f"alias/{DEFAULT_KEY}"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_ALIAS = re.compile(r"^[A-Za-z0-9/_-]{1,250}$")
ALIAS_PATTERN = _ALIAS.pattern  # a named key's alias, without ``alias/``
_ARN = re.compile(r"^arn:[a-z-]+:kms:[^:]*:[^:]*:(key/.+|alias/.+)$")
HOW = (
    "create one with `orch kms create-key --alias NAME` (POST /api/v1/kms/keys) and list them "
    "with `orch kms list-keys`"
)


@dataclass(frozen=True)
class NamedKey:
    key_id: str
    alias: str | None  # without the ``alias/`` prefix
    created: datetime
    account: str = tenancy.ROOT


# alias, created, material, account
_Entry = tuple[str | None, datetime, bytes, str]


def check_alias(alias: str) -> str:
    """``NAME`` or ``alias/NAME``; returns NAME."""
    name = alias.removeprefix("alias/")
    if not _ALIAS.match(name) or name.startswith("aws/") or name == DEFAULT_KEY:
        raise ValidationError(
            f"alias {alias!r} is not valid: 1 to 250 of A-Z a-z 0-9 / _ -, not starting with "
            f"'aws/' and not {DEFAULT_KEY!r} (the keyring's default key)",
            field="Alias",
        )
    return name


def _bound_aad(key_id: str, aad: bytes) -> bytes:
    return key_id.encode() + b"\x00" + aad


class NamedKeyFile:
    """Named keys in ``<keyring dir>/<stem>-named.json``, cached and re-read on a miss."""

    def __init__(self, keyring_path: Path) -> None:
        self.path = keyring_path.with_name(f"{keyring_path.stem}-named.json")
        self._lock = threading.Lock()
        self._keys: dict[str, _Entry] | None = None

    # -- the KeyProvider part --------------------------------------------------------

    def resolve(self, key: str) -> str:
        """A ``KmsKeyId`` as a named key's id, or ``DEFAULT_KEY``; ValidationError if none."""
        ref = key.strip()
        if match := _ARN.match(ref):
            ref = match.group(1).removeprefix("key/")
        if ref in (DEFAULT_KEY, DEFAULT_ALIAS):
            return DEFAULT_KEY
        for fresh in (False, True):
            keys = {k: e for k, e in self._read(force=fresh).items() if tenancy.visible(e[3])}
            if ref.startswith("alias/"):
                found = [k for k, (alias, *_) in keys.items() if alias == ref[len("alias/") :]]
                if found:
                    return found[0]
            elif ref in keys:
                return ref
        raise ValidationError(
            f"KmsKeyId {key!r} names no key of the local keyring; {HOW}", field="KmsKeyId"
        )

    def wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes:
        material = self._material(key_id)
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(material).encrypt(nonce, data_key, _bound_aad(key_id, aad))

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        material = self._material(key_id)
        if len(wrapped) <= _NONCE_BYTES:
            raise IntegrityError(f"wrapped data key under key {key_id!r} is truncated")
        nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            return AESGCM(material).decrypt(nonce, body, _bound_aad(key_id, aad))
        except InvalidTag as e:
            raise IntegrityError(
                f"wrapped data key under key {key_id!r} failed authentication"
            ) from e

    def _material(self, key_id: str) -> bytes:
        for fresh in (False, True):
            entry = self._read(force=fresh).get(key_id)
            if entry is not None:
                return entry[2]
        raise NotFoundError(
            f"key {key_id!r} is not in the local keyring's named keys at {self.path}; restore "
            "the file that holds it",
            field="key_id",
        )

    # -- create and list -------------------------------------------------------------

    def create(self, alias: str | None = None) -> NamedKey:
        name = check_alias(alias) if alias is not None else None
        with self._exclusive():
            keys = dict(self._read(force=True))
            if name is not None and any(a == name for a, *_ in keys.values()):
                raise ConflictError(
                    f"alias 'alias/{name}' already names a key (aliases are unique on this "
                    "server); choose another Alias",
                    field="Alias",
                )
            key_id = f"{NAMED_PREFIX}{uuid.uuid4()}"
            created = datetime.now(UTC)
            account = tenancy.stamp()
            keys[key_id] = (name, created, AESGCM.generate_key(bit_length=256), account)
            self._write(keys)
            with self._lock:
                self._keys = keys
        return NamedKey(key_id, name, created, account)

    def list(self) -> list[NamedKey]:
        """The caller's account's keys (every account's for the system)."""
        keys = self._read(force=True)
        found = [
            NamedKey(k, alias, created, account)
            for k, (alias, created, _, account) in keys.items()
            if tenancy.visible(account)
        ]
        return sorted(found, key=lambda k: (k.created, k.key_id))

    # -- the file --------------------------------------------------------------------

    def _read(self, *, force: bool = False) -> dict[str, _Entry]:
        with self._lock:
            if self._keys is not None and not force:
                return self._keys
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                self._keys = {}
                return self._keys
            self._keys = self._parse(raw)
            return self._keys

    def _parse(self, raw: bytes) -> dict[str, _Entry]:
        try:
            doc = json.loads(raw)
            keys = {
                str(k): (
                    v.get("alias"),
                    datetime.fromisoformat(v["created"]),
                    base64.b64decode(v["material"], validate=True),
                    str(v.get("account") or tenancy.ROOT),
                )
                for k, v in doc["keys"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
            raise ValidationError(f"named keys file {self.path} is malformed: {e}") from e
        bad = [k for k, (_, _, m, _) in keys.items() if len(m) != _KEY_BYTES]
        if bad:
            raise ValidationError(f"named keys file {self.path}: keys {bad} are not 256-bit")
        return keys

    def _write(self, keys: dict[str, _Entry]) -> None:
        doc = {
            "keys": {
                k: {
                    "alias": alias,
                    "created": created.isoformat(),
                    "material": base64.b64encode(material).decode(),
                    **({"account": account} if account else {}),
                }
                for k, (alias, created, material, account) in keys.items()
            }
        }
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc, indent=2, sort_keys=True).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
