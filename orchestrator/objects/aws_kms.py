"""AWS KMS as the key provider: data keys wrapped by ``Encrypt``, opened by ``Decrypt``.

The data key (32 bytes) is sent to KMS's ``Encrypt`` under the ``KmsKeyId`` (a key id, alias
or ARN; the configured default when none is named) with the object's associated data as the
``EncryptionContext`` (``{"orchestrator-aad": base64(aad)}``): KMS refuses to decrypt it under
any other context, so a wrapped key moved to another object does not open. The envelope's
header holds the key's ARN (what ``Encrypt`` answers), and ``Decrypt`` is called with it: a
ciphertext is opened only by the key that wrapped it. KMS keeps key versions itself (automatic
rotation keeps old backing keys), so the ARN is all a read needs.

Credentials are boto3's usual chain (environment, shared files, instance roles); an endpoint
URL reaches any KMS-compatible service. KMS's refusals become the product's errors: a key that
is disabled or pending deletion is ``PermissionDeniedError`` naming the key and the fix, a
deleted key ``NotFoundError``, a ciphertext that does not authenticate ``IntegrityError``.
``boto3`` is imported lazily (the ``aws`` or ``s3`` extra).
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import (
    BackendError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)

CONTEXT_KEY = "orchestrator-aad"
HOW = (
    "create one with `aws kms create-key` (and `aws kms create-alias`) and list them with "
    "`aws kms list-keys` / `aws kms list-aliases`"
)
_UNUSABLE = {
    "DisabledException": "is disabled; enable it (aws kms enable-key)",
    "KMSInvalidStateException": (
        "is not usable in its current state (pending deletion, or pending import); "
        "cancel the deletion (aws kms cancel-key-deletion) and enable it"
    ),
}


def _make_client(endpoint_url: str | None, region: str) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise ValidationError(
            "the aws-kms key provider needs boto3: pip install orchestrator[aws]",
            field="ORCH_OBJECTS__KEY_PROVIDER",
        ) from e
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
    return boto3.session.Session().client(
        "kms", endpoint_url=endpoint_url, region_name=region, config=config
    )


class AwsKmsKeyProvider:
    """Data keys wrapped by AWS KMS (or a KMS-compatible service at ``endpoint_url``)."""

    def __init__(
        self,
        default_key: str | None,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.default_key = default_key
        self._client = client if client is not None else _make_client(endpoint_url, region)
        self.endpoint_url = endpoint_url or self._client.meta.endpoint_url
        self._lock = threading.Lock()
        self._default_arn: str | None = None

    @contextlib.contextmanager
    def _errors(self, key: str, *, reading: bool = False) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError

        where = f"AWS KMS at {self.endpoint_url}"
        try:
            yield
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            text = e.response.get("Error", {}).get("Message", "")
            if code == "NotFoundException":
                if reading:
                    raise NotFoundError(
                        f"KMS key {key!r} does not exist in {where} ({text}); it was deleted, "
                        "and what it wrapped cannot be read",
                        field="key_id",
                    ) from e
                raise ValidationError(
                    f"KmsKeyId {key!r} names no key in {where}; {HOW}", field="KmsKeyId"
                ) from e
            if code in _UNUSABLE:
                raise PermissionDeniedError(f"KMS key {key!r} {_UNUSABLE[code]} ({text})") from e
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise IntegrityError(
                    f"KMS refused the wrapped data key under {key!r}: it does not "
                    f"authenticate ({code})"
                ) from e
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise PermissionDeniedError(f"{where} refused the use of key {key!r}: {e}") from e
            raise BackendError(f"{where} failed with key {key!r}: {e}") from e
        except ConnectionError as e:
            raise UnavailableError(f"cannot reach {where}: {e}") from e
        except BotoCoreError as e:
            raise BackendError(f"{where} failed with key {key!r}: {e}") from e

    def _default(self) -> str:
        if self.default_key is None:
            raise ValidationError(
                "the aws-kms key provider has no default key: set ORCH_OBJECTS__KMS_KEY_ID "
                f"to a key id, alias or ARN ({HOW})",
                field="ORCH_OBJECTS__KMS_KEY_ID",
            )
        return self.default_key

    @property
    def active_key_id(self) -> str:
        with self._lock:
            if self._default_arn is None:
                self._default_arn = self.check_key(self._default())
            return self._default_arn

    def check_key(self, key: str) -> str:
        """The key's ARN; ValidationError if KMS has no such key or it cannot encrypt now."""
        with self._errors(key):
            meta = self._client.describe_key(KeyId=key)["KeyMetadata"]
        state = meta.get("KeyState", "Enabled")
        if state != "Enabled" or meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            raise ValidationError(
                f"KmsKeyId {key!r} is a KMS key in state {state} with usage "
                f"{meta.get('KeyUsage')}: use an enabled ENCRYPT_DECRYPT key ({HOW})",
                field="KmsKeyId",
            )
        return str(meta["Arn"])

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]:
        target = key if key is not None else self._default()
        with self._errors(target):
            answer = self._client.encrypt(
                KeyId=target, Plaintext=data_key, EncryptionContext=_context(aad)
            )
        return str(answer["KeyId"]), bytes(answer["CiphertextBlob"])

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        with self._errors(key_id, reading=True):
            answer = self._client.decrypt(
                KeyId=key_id, CiphertextBlob=wrapped, EncryptionContext=_context(aad)
            )
        return bytes(answer["Plaintext"])


def _context(aad: bytes) -> dict[str, str]:
    return {CONTEXT_KEY: base64.b64encode(aad).decode()}
