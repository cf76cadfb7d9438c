"""HashiCorp Vault's (or OpenBao's) Transit engine as the key provider, through ``hvac``.

A data key is sent to ``<mount>/encrypt/<name>`` with the object's associated data as
Transit's ``associated_data`` (an AEAD key: ``aes256-gcm96``, ``aes128-gcm96`` or
``chacha20-poly1305``), so a wrapped key moved to another object does not decrypt. The
envelope's header holds ``<name>:v<version>`` (the key version Transit answered); the wrapped
bytes are Transit's ``vault:vN:...`` ciphertext, which Transit opens with whichever version
made it (``bao write -f transit/keys/NAME/rotate`` keeps the old ones). A ``KmsKeyId`` here is
a Transit key name (``alias/NAME`` and ``transit/keys/NAME`` also read as NAME).

The token comes from a file (``ORCH_OBJECTS__VAULT_TOKEN_FILE``, a mounted secret), else from
hvac's usual places (``VAULT_TOKEN``, ``~/.vault-token``). Transit's refusals become the
product's errors: a deleted key is ``NotFoundError``, a version retired by
``min_decryption_version`` is ``PermissionDeniedError`` naming the setting, a ciphertext that
does not authenticate is ``IntegrityError``. ``hvac`` is imported lazily (the ``vault`` extra).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import (
    BackendError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)

AEAD_TYPES = ("aes256-gcm96", "aes128-gcm96", "chacha20-poly1305")
_KEY_ID = re.compile(r"^(?P<name>.+):v(?P<version>\d+)$")
_CIPHERTEXT = re.compile(r"^vault:v(\d+):")


def _how(mount: str) -> str:
    return (
        f"create one with `bao write -f {mount}/keys/NAME` (or `vault write ...`) and list them "
        f"with `bao list {mount}/keys`"
    )


def _make_client(addr: str, token_file: Path | None, namespace: str | None) -> Any:
    try:
        import hvac
    except ImportError as e:
        raise ValidationError(
            "the vault key provider needs hvac: pip install orchestrator[vault]",
            field="ORCH_OBJECTS__KEY_PROVIDER",
        ) from e
    token = None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as e:
            raise ValidationError(
                f"cannot read the Vault token file {token_file}: {e}",
                field="ORCH_OBJECTS__VAULT_TOKEN_FILE",
            ) from e
    return hvac.Client(url=addr, token=token, namespace=namespace, timeout=10)


class VaultTransitKeyProvider:
    """Data keys wrapped by a Transit engine mounted at ``mount``."""

    def __init__(
        self,
        default_key: str | None,
        *,
        addr: str = "http://127.0.0.1:8200",
        mount: str = "transit",
        token_file: Path | None = None,
        namespace: str | None = None,
        client: Any = None,
    ) -> None:
        self.default_key = default_key
        self.mount = mount.strip("/")
        self.addr = addr
        self._client = client if client is not None else _make_client(addr, token_file, namespace)

    @property
    def _transit(self) -> Any:
        return self._client.secrets.transit

    @contextlib.contextmanager
    def _errors(self, name: str, *, reading: bool = False) -> Iterator[None]:
        import hvac.exceptions as hx
        import requests

        where = f"Vault Transit at {self.addr} (mount {self.mount})"
        try:
            yield
        except hx.InvalidPath as e:
            if reading:
                raise NotFoundError(
                    f"Transit key {name!r} does not exist in {where}; it was deleted, and what "
                    "it wrapped cannot be read",
                    field="key_id",
                ) from e
            raise ValidationError(
                f"KmsKeyId {name!r} names no Transit key in {where}; {_how(self.mount)}",
                field="KmsKeyId",
            ) from e
        except hx.InvalidRequest as e:
            text = str(e)
            if "authentication failed" in text:
                raise IntegrityError(
                    f"Transit refused the wrapped data key under {name!r}: it does not authenticate"
                ) from e
            if "not found" in text:
                raise NotFoundError(
                    f"Transit key {name!r} is gone from {where} ({text}); what it wrapped "
                    "cannot be read",
                    field="key_id",
                ) from e
            if "disallowed by policy" in text or "min_decryption_version" in text:
                raise PermissionDeniedError(
                    f"Transit key {name!r} no longer decrypts this version ({text}); lower its "
                    f"min_decryption_version (bao write {self.mount}/keys/{name}/config)"
                ) from e
            raise BackendError(f"{where} refused a request with key {name!r}: {text}") from e
        except (hx.Forbidden, hx.Unauthorized) as e:
            raise PermissionDeniedError(
                f"{where} refused the use of key {name!r}: {e} (check the token and its policy)"
            ) from e
        except (hx.VaultDown, hx.InternalServerError, hx.BadGateway) as e:
            raise UnavailableError(f"{where} is not available: {e}") from e
        except requests.exceptions.RequestException as e:
            raise UnavailableError(f"cannot reach {where}: {e}") from e
        except hx.VaultError as e:
            raise BackendError(f"{where} failed with key {name!r}: {e}") from e

    def _default(self) -> str:
        if self.default_key is None:
            raise ValidationError(
                "the vault key provider has no default key: set ORCH_OBJECTS__KMS_KEY_ID to a "
                f"Transit key name ({_how(self.mount)})",
                field="ORCH_OBJECTS__KMS_KEY_ID",
            )
        return self.default_key

    @staticmethod
    def _name(key: str) -> str:
        name = key.strip()
        for prefix in ("alias/", "transit/keys/"):
            name = name.removeprefix(prefix)
        return name

    def _read(self, key: str) -> dict[str, Any]:
        name = self._name(key)
        if not name or "/" in name:
            raise ValidationError(
                f"KmsKeyId {key!r} is not a Transit key name; {_how(self.mount)}",
                field="KmsKeyId",
            )
        with self._errors(name):
            data: dict[str, Any] = self._transit.read_key(name=name, mount_point=self.mount)["data"]
        return data

    @property
    def active_key_id(self) -> str:
        data = self._read(self._default())
        return f"{data['name']}:v{data['latest_version']}"

    def check_key(self, key: str) -> str:
        """The Transit key's name; ValidationError if there is none or it cannot wrap here."""
        data = self._read(key)
        name = str(data.get("name", self._name(key)))
        if data.get("type") not in AEAD_TYPES or data.get("derived") or data.get("soft_deleted"):
            raise ValidationError(
                f"KmsKeyId {key!r} is a Transit key of type {data.get('type')} "
                f"(derived: {bool(data.get('derived'))}, deleted: {bool(data.get('soft_deleted'))}"
                f"): use a live, non-derived key of type {', '.join(AEAD_TYPES)} "
                f"({_how(self.mount)})",
                field="KmsKeyId",
            )
        if not data.get("supports_encryption", True):
            raise ValidationError(
                f"KmsKeyId {key!r} is a Transit key that does not encrypt", field="KmsKeyId"
            )
        return name

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]:
        name = self._name(key if key is not None else self._default())
        with self._errors(name):
            answer = self._transit.encrypt_data(
                name=name,
                plaintext=base64.b64encode(data_key).decode(),
                associated_data=base64.b64encode(aad).decode(),
                mount_point=self.mount,
            )["data"]
        ciphertext = str(answer["ciphertext"])
        version = _CIPHERTEXT.match(ciphertext)
        if version is None:
            raise BackendError(f"Transit answered an unexpected ciphertext for key {name!r}")
        return f"{name}:v{version.group(1)}", ciphertext.encode()

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        match = _KEY_ID.match(key_id)
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError:
            ciphertext = ""
        if match is None or not _CIPHERTEXT.match(ciphertext):
            raise IntegrityError(
                f"wrapped data key under {key_id!r} is not a Transit ciphertext of a "
                "<name>:v<version> key"
            )
        name = match.group("name")
        with self._errors(name, reading=True):
            answer = self._transit.decrypt_data(
                name=name,
                ciphertext=ciphertext,
                associated_data=base64.b64encode(aad).decode(),
                mount_point=self.mount,
            )["data"]
        try:
            return base64.b64decode(answer["plaintext"], validate=True)
        except (binascii.Error, KeyError, TypeError) as e:
            raise BackendError(f"Transit answered an unreadable plaintext for {key_id!r}") from e
