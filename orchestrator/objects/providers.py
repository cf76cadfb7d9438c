"""Which key provider the object store uses, as settings choose it, and a write key per use.

``KeyProviderConfig`` is the provider part of the settings as a plain model: the control
plane builds it once (``key_provider_config``) and hands it to the processes it starts (a
job's supervisor, a transform instance) in their job file, so every process opens the same
provider. It holds no secret: AWS credentials come from boto3's chain, a Vault token from a
file. ``open_key_provider`` builds the provider; ``KeyChoice`` wraps one so that every object
written through it uses the resource's ``KmsKeyId`` (reads find their key in the header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from orchestrator.objects.keys import KeyProvider, LocalKeyring
from orchestrator.settings import Settings


class KeyProviderConfig(BaseModel):
    kind: Literal["local", "aws-kms", "vault"] = "local"
    keyring_path: str
    default_key: str | None = None
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    vault_addr: str = "http://127.0.0.1:8200"
    vault_token_file: str | None = None
    vault_mount: str = "transit"
    vault_namespace: str | None = None


def key_provider_config(settings: Settings) -> KeyProviderConfig:
    o = settings.objects
    return KeyProviderConfig(
        kind=o.key_provider,
        keyring_path=str(settings.keyring_path),
        default_key=o.kms_key_id,
        aws_region=o.kms_region or settings.region,
        aws_endpoint_url=o.kms_endpoint_url,
        vault_addr=o.vault_addr,
        vault_token_file=None if o.vault_token_file is None else str(o.vault_token_file),
        vault_mount=o.vault_mount,
        vault_namespace=o.vault_namespace,
    )


class KeyChoice:
    """``inner``, with ``key`` (a ``KmsKeyId``) for every wrap that names none."""

    def __init__(self, inner: KeyProvider, key: str | None) -> None:
        self.inner = inner
        self.key = key

    @property
    def active_key_id(self) -> str:
        return self.inner.active_key_id

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]:
        return self.inner.wrap(data_key, aad, key=key if key is not None else self.key)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return self.inner.unwrap(key_id, wrapped, aad)

    def check_key(self, key: str) -> str:
        return self.inner.check_key(key)


def open_key_provider(
    config: KeyProviderConfig, *, keyring: LocalKeyring | None = None
) -> KeyProvider:
    """The provider ``config`` names; with a default key, writes that name none use it.
    ``keyring``: the local keyring already open in this process (used when local)."""
    provider: KeyProvider
    if config.kind == "aws-kms":
        from orchestrator.objects.aws_kms import AwsKmsKeyProvider

        provider = AwsKmsKeyProvider(
            config.default_key, region=config.aws_region, endpoint_url=config.aws_endpoint_url
        )
    elif config.kind == "vault":
        from orchestrator.objects.vault import VaultTransitKeyProvider

        provider = VaultTransitKeyProvider(
            config.default_key,
            addr=config.vault_addr,
            mount=config.vault_mount,
            token_file=None if config.vault_token_file is None else Path(config.vault_token_file),
            namespace=config.vault_namespace,
        )
    else:
        provider = keyring if keyring is not None else LocalKeyring(Path(config.keyring_path))
        if config.default_key is not None:
            provider = KeyChoice(provider, config.default_key)
    return provider


def with_key(provider: KeyProvider, key: str | None) -> KeyProvider:
    """``provider`` whose writes use ``key`` (None: unchanged)."""
    return provider if key is None else KeyChoice(provider, key)
