"""API keys as the REST API shows them: create (the secret is shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import StringConstraints

from orchestrator.resources.common import Output, Spec

KeyRole = Literal["admin", "invoke"]


class CreateApiKeyRequest(Spec):
    """``Role``: ``admin`` (every operation) or ``invoke`` (only InvokeEndpoint)."""

    Name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    Role: KeyRole = "invoke"


class ApiKeySummary(Output):
    KeyId: str
    Name: str
    Role: str
    CreationTime: datetime
    Revoked: bool = False


class CreateApiKeyResponse(ApiKeySummary):
    ApiKey: str  # the only time the secret is shown; it is stored as a hash


class ListApiKeysResponse(Output):
    ApiKeys: list[ApiKeySummary]


class AccessKeySummary(Output):
    """A SigV4 access key (for boto3 and the SageMaker SDK): its id, never its secret."""

    AccessKeyId: str
    Name: str
    Role: str
    CreationTime: datetime
    Revoked: bool = False


class CreateAccessKeyResponse(AccessKeySummary):
    SecretAccessKey: str  # the only time the secret is shown; it is stored sealed


class ListAccessKeysResponse(Output):
    AccessKeys: list[AccessKeySummary]
