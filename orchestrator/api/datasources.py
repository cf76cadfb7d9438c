"""Data sources' operations, independent of HTTP (``ControlPlane.data_sources``).

A create is checked before anything is stored, each refusal a 400 naming the field: what the
backend can carry out (``plan.support``: a loopback database host where the snapshot job runs
in a container), the objects under ``DataLocationS3``, the credentials object (it must exist and
be a JSON object with ``Username`` and ``Password``: read here only to check its shape, never
logged or returned), the output bucket and its ``KmsKeyId``. The same name and spec again is the
existing data source; a different spec replaces it and takes a new snapshot (a new version,
the earlier ones kept). ``update`` edits the schema (``AttributeTypes``, the target) with no new
snapshot; ``refresh`` takes a new one of an unchanged spec.

Describe reads the version's ``schema.json`` from the object store with the spec's edits
applied; ``insights`` its ``insights.json``. A training channel naming a data source is pinned
when the job is created (``resolve_channels``): the version, its snapshot's URI, the types and
the target, so the job reads the same rows however the data source changes later.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from orchestrator import tenancy
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.objects import buckets
from orchestrator.resources.datasources import (
    INSIGHTS_FILE,
    SCHEMA_FILE,
    AttributeType,
    CreateDataSourceRequest,
    DataSourceSchema,
    DataSourceState,
    DataSourceStatus,
    DataSourceSummary,
    DataSourceVersion,
    DescribeDataSourceResponse,
    SnapshotOutputConfig,
    effective_schema,
)
from orchestrator.resources.kinds import DATA_SOURCE
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.store import Record

if TYPE_CHECKING:
    from orchestrator.api.service import ControlPlane, ListQuery

KIND = DATA_SOURCE
CREDENTIALS_FIELD = "DataSpec.Sql.DatabaseCredentials.SecretUri"
LOCATION_FIELD = "DataSpec.S3.DataLocationS3"
MAX_SECRET_BYTES = 64 << 10


class DataSources:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    # --- create ------------------------------------------------------------------------------
    def create(self, req: CreateDataSourceRequest) -> tuple[str, bool]:
        req = self._with_own_output(req)
        existing = self.cp.store.find(KIND.name, req.DataSourceName)
        self.check(req)
        if existing is None:
            return self.cp._create(KIND, req)
        if existing.delete_requested:
            raise ConflictError(
                f"DataSource {req.DataSourceName!r} is being deleted; create it again once "
                "it is gone"
            )
        spec = req.model_dump(mode="json")
        if spec == existing.spec:
            return self.cp.arn(KIND.name, req.DataSourceName, existing.account), False
        # Re-created with another spec: the spec is replaced and a new version is taken.
        self.cp.store.update_spec(
            existing, spec, status=existing.status, now=self.cp.clock.now(), phase=existing.phase
        )
        self.cp.wake()
        return self.cp.arn(KIND.name, req.DataSourceName, existing.account), False

    def _with_own_output(self, req: CreateDataSourceRequest) -> CreateDataSourceRequest:
        """Another account than the server's snapshots into its own default bucket."""
        account = tenancy.stamp()
        if req.OutputDataConfig is not None or account == tenancy.ROOT:
            return req
        path = f"s3://{buckets.default_bucket(account)}/datasources"
        return req.model_copy(update={"OutputDataConfig": SnapshotOutputConfig(S3OutputPath=path)})

    def check(self, req: CreateDataSourceRequest) -> None:
        cp = self.cp
        cp._check_supported(KIND.name, req)
        if req.OutputDataConfig is not None:
            cp.check_bucket(
                req.OutputDataConfig.S3OutputPath, "OutputDataConfig.S3OutputPath", output=True
            )
            cp.check_kms_key(req.OutputDataConfig.KmsKeyId, "OutputDataConfig.KmsKeyId")
        if req.DataSpec.S3 is not None:
            cp._check_uri(req.DataSpec.S3.DataLocationS3, LOCATION_FIELD, prefix=True)
        if req.DataSpec.Sql is not None:
            self._check_secret(req.DataSpec.Sql.DatabaseCredentials.SecretUri)

    def _check_secret(self, uri: str) -> None:
        """The credentials object exists and has the shape the snapshot step reads. Its
        content is not echoed in any error."""
        self.cp.check_bucket(uri, CREDENTIALS_FIELD)
        fix = (
            'upload a JSON object {"Username": "...", "Password": "..."} there '
            "(orch objects put) and name it"
        )
        try:
            data = self.cp.objects.get_bytes(uri)
        except NotFoundError:
            raise ValidationError(
                f"{CREDENTIALS_FIELD}: no object at {uri}; {fix}", field=CREDENTIALS_FIELD
            ) from None
        try:
            doc = json.loads(data[:MAX_SECRET_BYTES]) if len(data) <= MAX_SECRET_BYTES else None
        except ValueError:
            doc = None
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("Username"), str)
            or not doc.get("Username")
            or not isinstance(doc.get("Password", ""), str)
        ):
            raise ValidationError(
                f"{CREDENTIALS_FIELD}: the object at {uri} is not a JSON object with a string "
                f"Username and Password; {fix}",
                field=CREDENTIALS_FIELD,
            )

    # --- read --------------------------------------------------------------------------------
    def describe(self, name: str, version: int | None = None) -> DescribeDataSourceResponse:
        r = self.cp.store.get(KIND.name, name)
        spec = CreateDataSourceRequest.model_validate(r.spec)
        status = DataSourceState.model_validate(r.status)
        if r.delete_requested:
            status = status.model_copy(update={"Status": DataSourceStatus.DELETED})
        chosen = self._version(name, status, version)
        schema = self.schema(spec, chosen) if chosen is not None else None
        return DescribeDataSourceResponse.model_validate(
            {
                **r.spec,
                **status.model_dump(mode="json"),
                "DataSourceArn": self.cp.arn(KIND.name, name, r.account),
                "CreationTime": r.created_at,
                "LastModifiedTime": r.updated_at,
                "DataSchema": schema.model_dump(mode="json") if schema is not None else None,
            }
        )

    def _version(
        self, name: str, status: DataSourceState, version: int | None
    ) -> DataSourceVersion | None:
        """The version asked for (it must exist), else the latest completed one."""
        if version is None:
            if status.CompletedVersion is None:
                return None
            return status.version(status.CompletedVersion)
        found = status.version(version)
        if found is None:
            known = ", ".join(str(v.Version) for v in status.Versions) or "none yet"
            raise NotFoundError(f"DataSource {name!r} has no version {version}; versions: {known}")
        return found

    def schema(
        self, spec: CreateDataSourceRequest, version: DataSourceVersion
    ) -> DataSourceSchema | None:
        """The version's schema with the spec's edits (None: not completed)."""
        if version.Status != DataSourceStatus.COMPLETED or not version.SnapshotUri:
            return None
        doc = self._read_json(version.SnapshotUri + SCHEMA_FILE)
        # Edits made for another version's attributes: this version's own types.
        with contextlib.suppress(ValidationError):
            doc = effective_schema(doc, dict(spec.AttributeTypes), spec.TargetAttributeName)
        return DataSourceSchema.model_validate(doc)

    def insights(self, name: str, version: int | None = None) -> dict[str, Any]:
        r = self.cp.store.get(KIND.name, name)
        spec = CreateDataSourceRequest.model_validate(r.spec)
        status = DataSourceState.model_validate(r.status)
        chosen = self._version(name, status, version)
        if chosen is None or chosen.Status != DataSourceStatus.COMPLETED or not chosen.SnapshotUri:
            raise ConflictError(
                f"DataSource {name!r} has no completed snapshot yet (status {status.Status}); "
                "wait for it (orch datasources describe)"
            )
        doc = self._read_json(chosen.SnapshotUri + INSIGHTS_FILE)
        schema = self.schema(spec, chosen)
        types = (
            {a.AttributeName: a.AttributeType.value for a in schema.Attributes} if schema else {}
        )
        for a in doc.get("Attributes") or []:
            if isinstance(a, dict) and a.get("AttributeName") in types:
                a["AttributeType"] = types[a["AttributeName"]]
        return {"DataSourceName": name, "Version": chosen.Version, **doc}

    def _read_json(self, uri: str) -> dict[str, Any]:
        try:
            doc = json.loads(self.cp.objects.get_bytes(uri))
        except NotFoundError:
            raise NotFoundError(
                f"the snapshot's {uri.rsplit('/', 1)[-1]} is gone from {uri}"
            ) from None
        if not isinstance(doc, dict):
            raise ValidationError(f"{uri} is not a JSON object")
        return doc

    def list(self, q: ListQuery) -> tuple[list[DataSourceSummary], str | None]:
        statuses = [s.value for s in DataSourceStatus]
        if q.StatusEquals is not None and q.StatusEquals not in statuses:
            raise ValidationError(f"StatusEquals must be one of {statuses}", field="StatusEquals")

        def summarize(r: Record) -> DataSourceSummary:
            st = DataSourceState.model_validate(r.status)
            done = st.version(st.CompletedVersion) if st.CompletedVersion else None
            return DataSourceSummary(
                DataSourceName=r.name,
                DataSourceArn=self.cp.arn(KIND.name, r.name, r.account),
                Status=DataSourceStatus.DELETED if r.delete_requested else st.Status,
                Version=st.Version,
                CompletedVersion=st.CompletedVersion,
                RowCount=done.RowCount if done is not None else None,
                CreationTime=r.created_at,
                LastModifiedTime=r.updated_at,
            )

        return self.cp._list(KIND.name, q, summarize)

    # --- change ------------------------------------------------------------------------------
    def update(
        self,
        name: str,
        attribute_types: dict[str, AttributeType] | None,
        target: str | None,
    ) -> None:
        """Schema edits (Amazon ML's): types over the inferred ones, the target; no new
        snapshot. Names are checked against the latest completed snapshot, when there is one."""
        r = self._live(name)
        spec = CreateDataSourceRequest.model_validate(r.spec)
        types = dict(spec.AttributeTypes)
        if attribute_types is not None:
            types.update(attribute_types)
        new_target = target if target is not None else spec.TargetAttributeName
        status = DataSourceState.model_validate(r.status)
        done = status.version(status.CompletedVersion) if status.CompletedVersion else None
        if done is not None and done.SnapshotUri:
            doc = self._read_json(done.SnapshotUri + SCHEMA_FILE)
            effective_schema(doc, types, new_target)
        try:
            new = CreateDataSourceRequest.model_validate(
                {**r.spec, "AttributeTypes": types, "TargetAttributeName": new_target}
            )
        except Exception as e:  # pydantic's: the target typed TEXT
            raise ValidationError(str(e).splitlines()[-1], field="AttributeTypes") from None
        self.cp.store.update_spec(
            r,
            new.model_dump(mode="json"),
            status=r.status,
            now=self.cp.clock.now(),
            phase=r.phase,
        )
        self.cp.wake()

    def refresh(self, name: str) -> int:
        """A new snapshot of the unchanged spec; the version it will be."""
        r = self._live(name)
        spec = CreateDataSourceRequest.model_validate(r.spec)
        new = spec.model_copy(update={"RefreshCount": spec.RefreshCount + 1})
        status = DataSourceState.model_validate(r.status)
        self.cp.store.update_spec(
            r, new.model_dump(mode="json"), status=r.status, now=self.cp.clock.now(), phase=r.phase
        )
        self.cp.wake()
        return status.Version + 1

    def delete(self, name: str) -> None:
        self.cp.store.get(KIND.name, name)
        self.cp.store.set_flag(KIND.name, name, "delete_requested", self.cp.clock.now())
        self.cp.wake()

    def _live(self, name: str) -> Record:
        r = self.cp.store.get(KIND.name, name)
        if r.delete_requested:
            raise ConflictError(f"DataSource {name!r} is being deleted")
        return r

    # --- training channels -------------------------------------------------------------------
    def resolve_channels(self, req: CreateTrainingJobRequest) -> CreateTrainingJobRequest:
        """Each channel naming a data source, pinned: its version (the latest completed one
        unless named), the snapshot's URI, the data source's types and target."""
        if not any(c.DataSource.DataSourceReference for c in req.InputDataConfig):
            return req
        channels = []
        for i, c in enumerate(req.InputDataConfig):
            ref = c.DataSource.DataSourceReference
            if ref is None:
                channels.append(c)
                continue
            at = f"InputDataConfig[{i}].DataSource.DataSourceReference"
            r = self.cp.store.find(KIND.name, ref.DataSourceName)
            if r is None or r.delete_requested:
                raise ValidationError(
                    f"{at}.DataSourceName: DataSource {ref.DataSourceName!r} does not exist; "
                    "create it first (orch datasources create)",
                    field=f"{at}.DataSourceName",
                )
            spec = CreateDataSourceRequest.model_validate(r.spec)
            status = DataSourceState.model_validate(r.status)
            number = ref.Version or status.CompletedVersion
            version = status.version(number) if number is not None else None
            if version is None or version.Status != DataSourceStatus.COMPLETED:
                which = f"version {ref.Version}" if ref.Version else "a completed snapshot"
                raise ValidationError(
                    f"{at}.Version: DataSource {ref.DataSourceName!r} has no {which} "
                    f"(status {status.Status}); wait for its snapshot (orch datasources "
                    "describe) or name a completed version",
                    field=f"{at}.Version",
                )
            target = ref.TargetAttributeName or spec.TargetAttributeName
            types = {**spec.AttributeTypes, **ref.AttributeTypes}
            assert version.SnapshotUri is not None
            pinned = ref.model_copy(
                update={
                    "Version": version.Version,
                    "AttributeTypes": types,
                    "TargetAttributeName": target,
                }
            )
            source = c.DataSource.S3DataSource.model_copy(update={"S3Uri": version.SnapshotUri})
            channels.append(
                c.model_copy(
                    update={
                        "DataSource": c.DataSource.model_copy(
                            update={"S3DataSource": source, "DataSourceReference": pinned}
                        )
                    }
                )
            )
        return CreateTrainingJobRequest.model_validate(
            {
                **req.model_dump(mode="json"),
                "InputDataConfig": [c.model_dump(mode="json") for c in channels],
            }
        )
