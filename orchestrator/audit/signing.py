"""The trail's signing key: Ed25519, in its own file (0600), apart from the data keys.

The data keys (``orchestrator.objects``' keyring) encrypt what is stored; this key only signs
digests, so whoever can read the objects still cannot forge a digest, and a verifier needs
only the public key (``public_pem``), which can be handed out.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orchestrator.errors import ValidationError


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()

    @classmethod
    def load_or_create(cls, path: Path, *, create: bool = True) -> SigningKey:
        """The key in ``path`` (PEM, PKCS#8); made there (0600) when absent and ``create``."""
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as e:
                raise ValidationError(
                    f"audit signing key {path.name}: not a PEM private key ({e}); restore it "
                    "or point ORCH_AUDIT__SIGNING_KEY_FILE at the right file",
                    field="ORCH_AUDIT__SIGNING_KEY_FILE",
                ) from e
            if not isinstance(key, Ed25519PrivateKey):
                raise ValidationError(
                    f"audit signing key {path.name}: an Ed25519 key is needed, this is "
                    f"{type(key).__name__}",
                    field="ORCH_AUDIT__SIGNING_KEY_FILE",
                )
            return cls(key)
        if not create:
            raise ValidationError(
                f"audit signing key {path.name} does not exist; mount it (a Secret) or unset "
                "ORCH_AUDIT__SIGNING_KEY_FILE to have one made",
                field="ORCH_AUDIT__SIGNING_KEY_FILE",
            )
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # The config directory holds keys: 0700 when this makes it (as the credentials do).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(key)

    def sign(self, data: bytes) -> str:
        return self._private.sign(data).hex()

    def public_pem(self) -> str:
        return public_pem(self.public)

    def fingerprint(self) -> str:
        return fingerprint(self.public)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise ValidationError(
            f"public key: not a PEM public key ({e}); export it with `orch audit public-key`",
            field="public_key",
        ) from e
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError("public key: an Ed25519 key is needed", field="public_key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def verify_signature(key: Ed25519PublicKey, signature: str, data: bytes) -> bool:
    try:
        key.verify(bytes.fromhex(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True
