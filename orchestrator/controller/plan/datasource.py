"""The DataSource planner: its snapshot versions, each one a snapshot job. Pure.

A data source's versions are snapshots. A version is wanted whenever the spec's snapshot digest
(what is read and how: the ``DataSpec``, the target, ``ComputeStatistics``, ``RefreshCount``)
differs from the latest version's: the first pass makes version 1, a changed query or location
or a refresh makes the next. Each version runs as one TrainingJob of the internal
``datasource-snapshot`` algorithm (named ``<name>-snap-<NNN>-<hash>``, made in the source as a
tuning job's trials are, so it runs on every backend and is listed, logged and stopped as any
job), whose ``/opt/ml/output/dataset/`` files are uploaded as they are: the version's
``SnapshotUri``. The job's ``RowCount`` and ``DataSizeInBytes`` metrics become the version's.

A new version supersedes one still running (that job is stopped; its version fails saying so).
A delete stops a running snapshot job and lets the data source go; the snapshots stay in the
object store (jobs trained from them stay reproducible).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.controller.plan.types import (
    Action,
    CreateRecord,
    DeleteRecord,
    Plan,
    RequestStop,
)
from orchestrator.resources.common import ConditionType, set_condition
from orchestrator.resources.datasources import (
    DATASET_DIR,
    MAX_VERSIONS_LISTED,
    SNAPSHOT_ALGORITHM,
    CreateDataSourceRequest,
    DataSourceState,
    DataSourceStatus,
    DataSourceVersion,
)
from orchestrator.resources.training import TrainingJobState, TrainingJobStatus

DATA_SOURCE_TAG = "orchestrator:data-source"
# The snapshot job's metric lines (``orchestrator.datasources.snapshot``).
ROW_COUNT_METRIC = "RowCount"
SIZE_METRIC = "DataSizeInBytes"
METRIC_DEFINITIONS = [
    {"Name": ROW_COUNT_METRIC, "Regex": r"^RowCount=([0-9]+)$"},
    {"Name": SIZE_METRIC, "Regex": r"^DataSizeInBytes=([0-9]+)$"},
]
# A running snapshot is looked at this often (its job's own pass does the work).
RUNNING_RESYNC_SECONDS = 2.0
QUERY_CHUNK = 2500  # HyperParameters values are at most 2500 characters


@dataclass(frozen=True)
class ObservedSnapshot:
    """A version's snapshot job as the source holds it (None status: not found)."""

    name: str
    status: TrainingJobStatus | None
    failure_reason: str | None = None
    metrics: dict[str, float] | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class DesiredDataSource:
    name: str
    uid: str
    spec: CreateDataSourceRequest
    status: DataSourceState
    delete_requested: bool
    # Where snapshots go when the spec names no OutputDataConfig: s3://<bucket>/datasources
    default_output: str


def spec_digest(spec: CreateDataSourceRequest) -> str:
    """What makes a new snapshot: a change of any of these is a new version."""
    doc = {
        "DataSpec": spec.DataSpec.model_dump(mode="json"),
        "TargetAttributeName": spec.TargetAttributeName,
        "ComputeStatistics": spec.ComputeStatistics,
        "RefreshCount": spec.RefreshCount,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def snapshot_job_name(name: str, uid: str, version: int) -> str:
    digest = hashlib.sha256(f"{uid}:{version}".encode()).hexdigest()[:6]
    return f"{name[:40].rstrip('-')}-snap-{version:03d}-{digest}"


def output_base(desired: DesiredDataSource) -> str:
    out = desired.spec.OutputDataConfig
    base = out.S3OutputPath if out is not None else f"{desired.default_output}/{desired.name}"
    return base.rstrip("/")


def snapshot_uri(base: str, job: str) -> str:
    """The prefix a snapshot job's dataset files are uploaded under (training/transfer.py)."""
    return f"{base}/{job}/output/{DATASET_DIR}/"


def snapshot_hyperparameters(spec: CreateDataSourceRequest, version: int) -> dict[str, str]:
    hp: dict[str, str] = {
        "algorithm": SNAPSHOT_ALGORITHM,
        "data_source": spec.DataSourceName,
        "version": str(version),
        "compute_statistics": "true" if spec.ComputeStatistics else "false",
    }
    if spec.TargetAttributeName:
        hp["target"] = spec.TargetAttributeName
    s3, sql = spec.DataSpec.S3, spec.DataSpec.Sql
    if s3 is not None:
        hp["source"] = "s3"
        hp["format"] = s3.DataFormat
        return hp
    assert sql is not None
    db = sql.DatabaseInformation
    hp.update(
        source="sql",
        engine=db.Engine,
        host=db.Host,
        port=str(db.port),
        database=db.DatabaseName,
        connect_timeout=str(sql.ConnectTimeoutSeconds),
    )
    query = sql.SelectSqlQuery
    if len(query) <= QUERY_CHUNK:
        hp["query"] = query
    else:
        for i in range(0, len(query), QUERY_CHUNK):
            hp[f"query.{i // QUERY_CHUNK}"] = query[i : i + QUERY_CHUNK]
    return hp


def snapshot_job_spec(desired: DesiredDataSource, version: int, job: str) -> dict[str, Any]:
    """The TrainingJob that takes version ``version``'s snapshot."""
    spec = desired.spec
    channels: list[dict[str, Any]] = []
    if spec.DataSpec.S3 is not None:
        uri = spec.DataSpec.S3.DataLocationS3
        channels.append({"ChannelName": "data", "DataSource": {"S3DataSource": {"S3Uri": uri}}})
    else:
        assert spec.DataSpec.Sql is not None
        secret = spec.DataSpec.Sql.DatabaseCredentials.SecretUri
        channels.append(
            {"ChannelName": "credentials", "DataSource": {"S3DataSource": {"S3Uri": secret}}}
        )
    out = spec.OutputDataConfig
    resources = spec.SnapshotResources
    tags = [{"Key": DATA_SOURCE_TAG, "Value": desired.name}]
    tags += [t.model_dump(mode="json") for t in spec.Tags if t.Key != DATA_SOURCE_TAG]
    return {
        "TrainingJobName": job,
        "AlgorithmSpecification": {
            "AlgorithmName": SNAPSHOT_ALGORITHM,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "HyperParameters": snapshot_hyperparameters(spec, version),
        "InputDataConfig": channels,
        "OutputDataConfig": {
            "S3OutputPath": output_base(desired),
            **({"KmsKeyId": out.KmsKeyId} if out is not None and out.KmsKeyId else {}),
        },
        "ResourceConfig": {
            "InstanceType": resources.InstanceType,
            "InstanceCount": 1,
            "VolumeSizeInGB": resources.VolumeSizeInGB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": resources.MaxRuntimeInSeconds},
        "Tags": tags,
    }


def plan_data_source(
    desired: DesiredDataSource, observed: ObservedSnapshot | None, now: datetime
) -> Plan[DataSourceState]:
    """The next step: a new version's job, the running version's progress, or the delete.
    ``observed``: the latest version's snapshot job (None: there is no version yet, or the
    latest has ended and its job is not needed)."""
    status = desired.status
    latest = status.Versions[-1] if status.Versions else None
    running = (
        latest is not None
        and observed is not None
        and observed.status in (TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING)
    )
    if desired.delete_requested:
        actions: tuple[Action, ...] = (DeleteRecord("DataSource", desired.name),)
        if running and latest is not None:
            stop = RequestStop("TrainingJob", latest.SnapshotJobName, "data source deleted")
            actions = (stop, *actions)
        return Plan(actions, status, DataSourceStatus.DELETED.value, False)

    digest = spec_digest(desired.spec)
    if latest is None or latest.SpecDigest != digest:
        return _new_version(desired, latest, running, digest, now)
    if latest.Status in (DataSourceStatus.COMPLETED, DataSourceStatus.FAILED):
        # Nothing to do until the spec changes (an update makes the record active again).
        return Plan((), status, status.Status.value, False)
    if observed is None or observed.status is None:
        # The job is not in the source (a crash between the version's write and its create,
        # or removed by hand): make it again; the create is idempotent.
        again = _create(desired, latest.Version, latest.SnapshotJobName, now)
        return _plan(desired, status, (again,), now)
    return _progress(desired, latest, observed, now)


def _new_version(
    desired: DesiredDataSource,
    latest: DataSourceVersion | None,
    running: bool,
    digest: str,
    now: datetime,
) -> Plan[DataSourceState]:
    number = (latest.Version if latest is not None else 0) + 1
    job = snapshot_job_name(desired.name, desired.uid, number)
    sql = desired.spec.DataSpec.Sql
    s3 = desired.spec.DataSpec.S3
    version = DataSourceVersion(
        Version=number,
        Status=DataSourceStatus.PENDING,
        SnapshotJobName=job,
        SnapshotUri=snapshot_uri(output_base(desired), job),
        SelectSqlQuery=sql.SelectSqlQuery if sql is not None else None,
        DataLocationS3=s3.DataLocationS3 if s3 is not None else None,
        SpecDigest=digest,
        CreatedAt=now,
    )
    versions = list(desired.status.Versions)
    actions: list[Action] = []
    if latest is not None and running:
        why = f"superseded by version {number}"
        actions.append(RequestStop("TrainingJob", latest.SnapshotJobName, why))
        versions[-1] = latest.model_copy(
            update={
                "Status": DataSourceStatus.FAILED,
                "FailureReason": f"Stopped: {why}",
                "FinishedAt": now,
            }
        )
    versions.append(version)
    actions.append(_create(desired, number, job, now))
    status = desired.status.model_copy(
        update={
            "Version": number,
            "Versions": versions[-MAX_VERSIONS_LISTED:],
            "Message": f"version {number}: snapshot job {job} created",
        }
    )
    return _plan(desired, status, tuple(actions), now)


def _create(desired: DesiredDataSource, number: int, job: str, now: datetime) -> CreateRecord:
    return CreateRecord(
        "TrainingJob",
        job,
        snapshot_job_spec(desired, number, job),
        TrainingJobState().model_dump(mode="json"),
        TrainingJobStatus.IN_PROGRESS.value,
        now,
    )


def _progress(
    desired: DesiredDataSource,
    latest: DataSourceVersion,
    observed: ObservedSnapshot,
    now: datetime,
) -> Plan[DataSourceState]:
    status = desired.status
    job = observed.status
    update: dict[str, Any]
    if job == TrainingJobStatus.COMPLETED:
        metrics = observed.metrics or {}
        rows = metrics.get(ROW_COUNT_METRIC)
        if rows is None:
            update = {
                "Status": DataSourceStatus.FAILED,
                "FailureReason": f"InternalServerError: snapshot job {latest.SnapshotJobName} "
                "completed without reporting its RowCount",
                "FinishedAt": observed.end_time or now,
            }
        else:
            size = metrics.get(SIZE_METRIC)
            update = {
                "Status": DataSourceStatus.COMPLETED,
                "RowCount": int(rows),
                "DataSizeInBytes": int(size) if size is not None else None,
                "FinishedAt": observed.end_time or now,
                "FailureReason": None,
            }
    elif job in (TrainingJobStatus.FAILED, TrainingJobStatus.STOPPED):
        reason = observed.failure_reason or f"the snapshot job ended {job}"
        update = {
            "Status": DataSourceStatus.FAILED,
            "FailureReason": reason[:1024],
            "FinishedAt": observed.end_time or now,
        }
    else:
        update = {"Status": DataSourceStatus.IN_PROGRESS}
    version = latest.model_copy(update=update)
    versions = [*status.Versions[:-1], version]
    completed = status.CompletedVersion
    if version.Status == DataSourceStatus.COMPLETED:
        completed = version.Version
    new = status.model_copy(update={"Versions": versions, "CompletedVersion": completed})
    return _plan(desired, new, (), now)


def _plan(
    desired: DesiredDataSource,
    status: DataSourceState,
    actions: tuple[Action, ...],
    now: datetime,
) -> Plan[DataSourceState]:
    latest = status.Versions[-1]
    message = {
        DataSourceStatus.PENDING: f"version {latest.Version}: waiting for snapshot job "
        f"{latest.SnapshotJobName}",
        DataSourceStatus.IN_PROGRESS: f"version {latest.Version}: snapshot job "
        f"{latest.SnapshotJobName} reading",
        DataSourceStatus.COMPLETED: f"version {latest.Version}: {latest.RowCount} rows",
        DataSourceStatus.FAILED: f"version {latest.Version} failed: {latest.FailureReason}",
    }.get(latest.Status, "")
    conditions = set_condition(
        status.Conditions,
        ConditionType.SUCCEEDED,
        "True"
        if latest.Status == DataSourceStatus.COMPLETED
        else "False"
        if latest.Status == DataSourceStatus.FAILED
        else "Unknown",
        reason=latest.Status.value,
        message=message,
        now=now,
    )
    status = status.model_copy(
        update={"Status": latest.Status, "Message": message, "Conditions": conditions}
    )
    ended = latest.Status in (DataSourceStatus.COMPLETED, DataSourceStatus.FAILED)
    return Plan(
        actions,
        status,
        status.Status.value,
        not ended,
        requeue_after=None if ended else RUNNING_RESYNC_SECONDS,
    )
