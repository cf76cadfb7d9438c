"""The local keyring's named keys as the REST API shows them (``/api/v1/kms/keys``).

A key's ``KeyId`` (or ``alias/ALIAS``, or its ``Arn``) is what a resource's ``KmsKeyId`` names
(``OutputDataConfig.KmsKeyId``, ``TransformOutput.KmsKeyId``). Only the local key provider's
keys are made here; AWS KMS and Vault keep theirs (``aws kms create-key``, ``bao write``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from orchestrator.resources.common import Output, Spec


class CreateKmsKeyRequest(Spec):
    """``Alias``: ``NAME`` or ``alias/NAME`` (A-Z a-z 0-9 / _ -); optional."""

    Alias: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


class KmsKeyMetadata(Output):
    KeyId: str
    Arn: str
    Alias: str | None = None  # ``alias/NAME``
    CreationDate: datetime | None = None  # None: the default key (made with the keyring)
    Default: bool = False  # the keyring's default key (what no KmsKeyId means)


class ListKmsKeysResponse(Output):
    KeyProvider: str  # local, aws-kms or vault (ORCH_OBJECTS__KEY_PROVIDER)
    Keys: list[KmsKeyMetadata]
