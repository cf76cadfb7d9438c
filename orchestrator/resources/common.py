"""Shared pieces of the resource models: base classes, names, tags, status conditions, ARNs.

Field names are SageMaker's (PascalCase), so requests written for SageMaker carry over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from orchestrator.resources.uris import s3_uri, storage_uri

# SageMaker's pattern for job, model, config and endpoint names.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
ResourceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]

# Object store URIs (s3://bucket/key, our store whatever its driver) or host paths (file://).
# The validators refuse other schemes and IP-address buckets naming the fix (resources.uris);
# the patterns stay for the schemas (CRDs, OpenAPI).
StorageUri = Annotated[
    str,
    StringConstraints(pattern=r"^(s3://[^/]+(/.*)?|file:///.*)$", max_length=1024),
    BeforeValidator(storage_uri),
]
S3Uri = Annotated[
    str,
    StringConstraints(pattern=r"^s3://[^/]+(/.*)?$", max_length=1024),
    BeforeValidator(s3_uri),
]

EnvironmentMap = Annotated[
    dict[
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=1024)],
        Annotated[str, StringConstraints(max_length=1024)],
    ],
    Field(max_length=100),
]


class Spec(BaseModel):
    """A request or spec: unknown fields are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Output(BaseModel):
    """A response shape: tolerant of fields a newer server adds."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Tag(Spec):
    Key: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    Value: Annotated[str, StringConstraints(max_length=256)] = ""


TagList = Annotated[list[Tag], Field(max_length=50)]

ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType:
    """The condition types a status may carry (their names are part of the API)."""

    VALID = "Valid"  # the spec parsed and the backend can run it (custom resources)
    READY = "Ready"  # an endpoint serves
    RUNNING = "Running"  # a training job's attempt runs
    SUCCEEDED = "Succeeded"  # a training job ended, and how
    UPDATED = "Updated"  # an endpoint's last update, and how it ended


class Condition(Output):
    """A status condition keyed by ``Type`` (Kubernetes style), read by the CLI and kubectl."""

    Type: str
    Status: ConditionStatus
    Reason: str = ""
    Message: str = ""
    LastTransitionTime: datetime


class ConditionsState(Output):
    """The status of a kind without a lifecycle (a Model, an EndpointConfig): conditions only."""

    Conditions: list[Condition] = []


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    now: datetime,
) -> list[Condition]:
    """A new list with ``type_`` set; the transition time moves only when the status changes."""
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.Type != type_:
            out.append(c)
            continue
        found = True
        changed = c.Status != status
        out.append(
            Condition(
                Type=type_,
                Status=status,
                Reason=reason,
                Message=message,
                LastTransitionTime=now if changed else c.LastTransitionTime,
            )
        )
    if not found:
        out.append(
            Condition(
                Type=type_, Status=status, Reason=reason, Message=message, LastTransitionTime=now
            )
        )
    return out


def make_arn(region: str, account: str, kind_slug: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{kind_slug}/{name.lower()}"
