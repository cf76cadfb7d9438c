"""DataSource: a table to train from, snapshotted, in Amazon ML's shape. Pure.

A data source is made from an object-store prefix (CSV with a header row, or Parquet) or from a
SQL query against PostgreSQL (the Redshift and RDS-for-PostgreSQL analog) or MySQL/MariaDB
(RDS for MySQL). Creating one runs a snapshot job (a TrainingJob of the internal
``datasource-snapshot`` algorithm, ``controller/plan/datasource.py``) that streams the rows into
Parquet files in the encrypted object store and records the row count, the schema (each
attribute's type inferred with the reasons) and the insights (missing and invalid shares,
distributions, correlation with the target, warnings). Training reads the snapshot, so a job
trained from a data source can be reproduced after the table changed; a new snapshot (a changed
query or location, or a refresh) is a new version, and the versions before it stay readable.

The database's credentials are a reference to a JSON object in the encrypted store
(``{"Username": ..., "Password": ...}``): never in the spec, Describe, the logs, or the snapshot
job's environment (its download step hands the object to the snapshot step, which deletes it
once read).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.errors import ValidationError
from orchestrator.resources.common import (
    Condition,
    Output,
    ResourceName,
    S3Uri,
    Spec,
    TagList,
)
from orchestrator.resources.instances import InstanceTypeName

# Amazon ML's limit on SelectSqlQuery.
MAX_QUERY_CHARS = 16384
# The versions a status lists (the oldest are dropped from the status; their snapshots stay).
MAX_VERSIONS_LISTED = 100
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
SNAPSHOT_ALGORITHM = "datasource-snapshot"
# What a snapshot job leaves beside its Parquet parts (``<SnapshotUri>/<file>``).
SCHEMA_FILE = "schema.json"
INSIGHTS_FILE = "insights.json"
# The snapshot job's files of ``/opt/ml/output/dataset/`` are uploaded one by one, as they
# are, under ``<S3OutputPath>/<job>/output/dataset/`` (training/transfer.py).
DATASET_DIR = "dataset"

_KmsKey = Annotated[str, StringConstraints(max_length=2048)]
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class DataSourceStatus(StrEnum):
    """Amazon ML's EntityStatus, of the latest version."""

    PENDING = "PENDING"
    IN_PROGRESS = "INPROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DELETED = "DELETED"


TERMINAL_DATA_SOURCE_STATUSES = frozenset({DataSourceStatus.COMPLETED, DataSourceStatus.FAILED})


class AttributeType(StrEnum):
    """Amazon ML's attribute types."""

    NUMERIC = "NUMERIC"
    BINARY = "BINARY"
    CATEGORICAL = "CATEGORICAL"
    TEXT = "TEXT"


class S3DataSpec(Spec):
    """Objects under a prefix (or one object): CSV with a header row, or Parquet."""

    DataLocationS3: S3Uri
    DataFormat: Literal["CSV", "Parquet"] = "CSV"


class DatabaseInformation(Spec):
    Engine: Literal["postgresql", "mysql"]
    Host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    Port: Annotated[int, Field(ge=1, le=65535)] | None = None
    DatabaseName: Annotated[str, StringConstraints(min_length=1, max_length=128)]

    @property
    def port(self) -> int:
        return self.Port or DEFAULT_PORTS[self.Engine]


class DatabaseCredentials(Spec):
    """Where the credentials are: a JSON object ``{"Username": ..., "Password": ...}`` in the
    encrypted object store, read only by the snapshot job's reading step."""

    SecretUri: S3Uri


_DatabaseInformation = DatabaseInformation
_DatabaseCredentials = DatabaseCredentials


class SqlDataSpec(Spec):
    DatabaseInformation: _DatabaseInformation
    SelectSqlQuery: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)]
    DatabaseCredentials: _DatabaseCredentials
    # How long connecting may take before the snapshot fails (an unreachable host).
    ConnectTimeoutSeconds: Annotated[int, Field(ge=1, le=300)] = 10


class DataSpec(Spec):
    """Exactly one of ``S3`` and ``Sql``."""

    S3: S3DataSpec | None = None
    Sql: SqlDataSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.S3 is None) == (self.Sql is None):
            raise ValueError(
                "DataSpec: give exactly one of S3 (DataLocationS3: an object-store prefix) and "
                "Sql (DatabaseInformation, SelectSqlQuery, DatabaseCredentials)"
            )
        return self


class SnapshotOutputConfig(Spec):
    """Where the snapshots go (default: the server's bucket, ``datasources/<name>/``)."""

    S3OutputPath: S3Uri
    KmsKeyId: _KmsKey | None = None


class SnapshotResources(Spec):
    InstanceType: InstanceTypeName = "local"
    VolumeSizeInGB: Annotated[int, Field(ge=1, le=16384)] = 30
    MaxRuntimeInSeconds: Annotated[int, Field(ge=1, le=2419200)] = 86400


_DataSpec = DataSpec
_SnapshotResources = SnapshotResources


class CreateDataSourceRequest(Spec):
    DataSourceName: ResourceName
    DataSpec: _DataSpec
    # The attribute the models will predict (its distribution and the correlations are shown).
    TargetAttributeName: AttributeName | None = None
    # Types chosen over the inferred ones (Amazon ML's schema edits): by attribute name.
    AttributeTypes: Annotated[dict[AttributeName, AttributeType], Field(max_length=1000)] = {}
    ComputeStatistics: bool = True
    OutputDataConfig: SnapshotOutputConfig | None = None
    SnapshotResources: _SnapshotResources = Field(default_factory=SnapshotResources)
    # Raised to take a new snapshot of an unchanged spec (``orch datasources refresh``; on a
    # cluster, a patch of ``refreshCount``).
    RefreshCount: Annotated[int, Field(ge=0)] = 0
    Tags: TagList = []

    @model_validator(mode="after")
    def _target_typed(self) -> Self:
        if self.TargetAttributeName and self.AttributeTypes.get(self.TargetAttributeName) in (
            AttributeType.TEXT,
        ):
            raise ValueError(
                f"AttributeTypes.{self.TargetAttributeName}: the target attribute cannot be "
                "TEXT; make it NUMERIC, BINARY or CATEGORICAL"
            )
        return self


class DataSourceVersion(Output):
    """One snapshot."""

    Version: int
    Status: DataSourceStatus = DataSourceStatus.PENDING
    SnapshotJobName: str
    # The prefix of the snapshot's Parquet parts, schema.json and insights.json.
    SnapshotUri: str | None = None
    # What was read: the query or the location, as the version's spec had it.
    SelectSqlQuery: str | None = None
    DataLocationS3: str | None = None
    SpecDigest: str = ""
    RowCount: int | None = None
    DataSizeInBytes: int | None = None
    CreatedAt: datetime
    FinishedAt: datetime | None = None
    FailureReason: str | None = None


class DataSourceState(Output):
    """Written only by the controller."""

    Status: DataSourceStatus = DataSourceStatus.PENDING
    # The latest version, and the latest that completed (what a channel reads by default).
    Version: int = 0
    CompletedVersion: int | None = None
    Message: str | None = None
    Versions: list[DataSourceVersion] = []
    Conditions: list[Condition] = []

    def version(self, number: int) -> DataSourceVersion | None:
        return next((v for v in self.Versions if v.Version == number), None)


_AttributeType = AttributeType


class AttributeSchema(Output):
    AttributeName: str
    AttributeType: _AttributeType
    # The type inferred by the snapshot, and why (a spec's AttributeTypes may override it).
    InferredType: _AttributeType | None = None
    SourceType: str = ""
    Reasons: list[str] = []


class DataSourceSchema(Output):
    """``schema.json`` of a snapshot, with the spec's AttributeTypes applied on read."""

    Version: int = 1
    RowCount: int
    DataSizeInBytes: int = 0
    Files: list[str] = []
    TargetAttributeName: str | None = None
    Attributes: list[AttributeSchema]


class DescribeDataSourceResponse(CreateDataSourceRequest, DataSourceState):
    model_config = Output.model_config
    DataSourceArn: str
    CreationTime: datetime
    LastModifiedTime: datetime
    # The effective schema of the version described (inferred types, the edits applied).
    DataSchema: DataSourceSchema | None = None


class DataSourceSummary(Output):
    DataSourceName: str
    DataSourceArn: str
    Status: DataSourceStatus
    Version: int
    CompletedVersion: int | None = None
    RowCount: int | None = None
    CreationTime: datetime
    LastModifiedTime: datetime


class ListDataSourcesResponse(Output):
    DataSources: list[DataSourceSummary]
    NextToken: str | None = None


class CreateDataSourceResponse(Output):
    DataSourceArn: str


# --- a channel that reads a data source --------------------------------------------------------


class Splitting(Spec):
    """Amazon ML's DataRearrangement ``splitting``: rows ``[percentBegin, percentEnd)`` of the
    snapshot, in order (sequential) or by a seeded hash of each row's position (random: the
    same seed and bounds pick the same rows, and complementary bounds never overlap)."""

    percentBegin: Annotated[int, Field(ge=0, le=100)] = 0
    percentEnd: Annotated[int, Field(ge=0, le=100)] = 100
    strategy: Literal["sequential", "random"] = "sequential"
    randomSeed: Annotated[str, StringConstraints(max_length=256)] = ""
    complement: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.percentBegin >= self.percentEnd:
            raise ValueError(
                "DataRearrangement.splitting: percentBegin must be below percentEnd "
                f"(got {self.percentBegin} and {self.percentEnd})"
            )
        return self


class DataRearrangement(Spec):
    splitting: Splitting = Field(default_factory=Splitting)


def effective_schema(
    schema_doc: dict[str, Any],
    attribute_types: Mapping[str, str],
    target: str | None,
    *,
    prefix: str = "",
) -> dict[str, Any]:
    """A snapshot's ``schema.json`` with edits applied: ``attribute_types`` over the inferred
    types (``InferredType`` kept) and ``target`` as ``TargetAttributeName`` when given. A name
    that is not an attribute is a ``ValidationError`` naming ``<prefix>AttributeTypes.<name>``
    (or ``<prefix>TargetAttributeName``) and listing the attributes. ``prefix``: where the
    edits came from (``InputDataConfig.<channel>.DataSource.DataSourceReference.``; empty:
    the data source's own fields). The API's Describe and the training download share it."""
    doc = copy.deepcopy(schema_doc)
    attributes: list[dict[str, Any]] = doc.setdefault("Attributes", [])
    names = [a["AttributeName"] for a in attributes]
    listed = ", ".join(names) or "(none)"
    for key in attribute_types:
        if key not in names:
            field = f"{prefix}AttributeTypes.{key}"
            raise ValidationError(
                f"{field}: {key!r} is not an attribute of the data source; the attributes are "
                f"{listed}",
                field=field,
            )
    if target is not None and target not in names:
        field = f"{prefix}TargetAttributeName"
        raise ValidationError(
            f"{field}: {target!r} is not an attribute of the data source; the attributes are "
            f"{listed}",
            field=field,
        )
    for a in attributes:
        a.setdefault("InferredType", a.get("AttributeType"))
        if a["AttributeName"] in attribute_types:
            a["AttributeType"] = str(attribute_types[a["AttributeName"]])
    if target is not None:
        doc["TargetAttributeName"] = target
    return doc
