"""The DataSource planner (controller/plan/datasource.py): versions as snapshot jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.controller.plan.datasource import (
    DATA_SOURCE_TAG,
    DesiredDataSource,
    ObservedSnapshot,
    plan_data_source,
    snapshot_job_name,
)
from orchestrator.controller.plan.types import CreateRecord, DeleteRecord, RequestStop
from orchestrator.resources.datasources import (
    CreateDataSourceRequest,
    DataSourceState,
    DataSourceStatus,
)
from orchestrator.resources.training import CreateTrainingJobRequest, TrainingJobStatus
from orchestrator.training.contract import builtin_algorithm, metric_patterns

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def sql_spec(**over: Any) -> CreateDataSourceRequest:
    doc: dict[str, Any] = {
        "DataSourceName": "churn",
        "DataSpec": {
            "Sql": {
                "DatabaseInformation": {
                    "Engine": "postgresql",
                    "Host": "db.internal",
                    "DatabaseName": "crm",
                },
                "SelectSqlQuery": "SELECT * FROM customers",
                "DatabaseCredentials": {"SecretUri": "s3://secrets/crm.json"},
            }
        },
        "TargetAttributeName": "churned",
        "Tags": [{"Key": "team", "Value": "growth"}],
    }
    doc.update(over)
    return CreateDataSourceRequest.model_validate(doc)


def desired(
    spec: CreateDataSourceRequest, status: DataSourceState | None = None, *, delete: bool = False
) -> DesiredDataSource:
    return DesiredDataSource(
        name=spec.DataSourceName,
        uid="uid-1",
        spec=spec,
        status=status or DataSourceState(),
        delete_requested=delete,
        default_output="s3://orchestrator/datasources",
    )


def first(spec: CreateDataSourceRequest) -> DataSourceState:
    return plan_data_source(desired(spec), None, NOW).status


def test_a_new_data_source_makes_version_1_as_a_snapshot_job() -> None:
    spec = sql_spec()
    plan = plan_data_source(desired(spec), None, NOW)
    (create,) = plan.actions
    assert isinstance(create, CreateRecord) and create.kind == "TrainingJob"
    job = CreateTrainingJobRequest.model_validate(create.spec)
    assert job.TrainingJobName == snapshot_job_name("churn", "uid-1", 1)
    assert builtin_algorithm(job) == "datasource-snapshot"
    assert {name for name, _ in metric_patterns(job)} == {"RowCount", "DataSizeInBytes"}
    hp = job.HyperParameters
    assert hp["source"] == "sql" and hp["engine"] == "postgresql" and hp["port"] == "5432"
    assert hp["query"] == "SELECT * FROM customers" and hp["target"] == "churned"
    (channel,) = job.InputDataConfig
    assert channel.ChannelName == "credentials"
    assert channel.DataSource.S3DataSource.S3Uri == "s3://secrets/crm.json"
    assert "Password" not in str(create.spec)
    assert job.OutputDataConfig is not None
    assert job.OutputDataConfig.S3OutputPath == "s3://orchestrator/datasources/churn"
    assert {t.Key: t.Value for t in job.Tags} == {DATA_SOURCE_TAG: "churn", "team": "growth"}
    st = plan.status
    assert st.Status == DataSourceStatus.PENDING and st.Version == 1
    (v,) = st.Versions
    assert (
        v.SnapshotUri
        == f"s3://orchestrator/datasources/churn/{job.TrainingJobName}/output/dataset/"
    )
    assert v.SelectSqlQuery == "SELECT * FROM customers"
    assert plan.active and plan.requeue_after is not None


def test_an_s3_data_source_reads_its_prefix_as_a_channel() -> None:
    spec = CreateDataSourceRequest.model_validate(
        {
            "DataSourceName": "house",
            "DataSpec": {"S3": {"DataLocationS3": "s3://data/house/", "DataFormat": "Parquet"}},
            "OutputDataConfig": {"S3OutputPath": "s3://snaps/here/"},
        }
    )
    (create,) = plan_data_source(desired(spec), None, NOW).actions
    assert isinstance(create, CreateRecord)
    job = CreateTrainingJobRequest.model_validate(create.spec)
    assert [(c.ChannelName, c.DataSource.S3DataSource.S3Uri) for c in job.InputDataConfig] == [
        ("data", "s3://data/house/")
    ]
    assert job.HyperParameters["source"] == "s3" and job.HyperParameters["format"] == "Parquet"
    assert job.OutputDataConfig is not None
    assert job.OutputDataConfig.S3OutputPath == "s3://snaps/here"


def test_the_snapshot_job_s_progress_and_end_become_the_version_s() -> None:
    spec = sql_spec()
    st = first(spec)
    job = st.Versions[0].SnapshotJobName
    running = plan_data_source(
        desired(spec, st), ObservedSnapshot(job, TrainingJobStatus.IN_PROGRESS), NOW
    )
    assert running.status.Status == DataSourceStatus.IN_PROGRESS and running.active
    assert running.actions == ()
    end = datetime(2026, 12, 4, 12, 5, tzinfo=UTC)
    done = plan_data_source(
        desired(spec, running.status),
        ObservedSnapshot(
            job,
            TrainingJobStatus.COMPLETED,
            metrics={"RowCount": 1_000_000.0, "DataSizeInBytes": 52_000_000.0},
            end_time=end,
        ),
        NOW,
    )
    st = done.status
    assert st.Status == DataSourceStatus.COMPLETED and st.CompletedVersion == 1
    assert st.Versions[0].RowCount == 1_000_000 and st.Versions[0].DataSizeInBytes == 52_000_000
    assert st.Versions[0].FinishedAt == end
    assert not done.active and "1000000 rows" in (st.Message or "")
    # Nothing more to do until the spec changes.
    again = plan_data_source(
        desired(spec, st), ObservedSnapshot(job, TrainingJobStatus.COMPLETED), NOW
    )
    assert again.actions == () and again.status == st and not again.active


def test_a_failed_snapshot_fails_the_version_with_the_job_s_reason() -> None:
    spec = sql_spec()
    st = first(spec)
    job = st.Versions[0].SnapshotJobName
    reason = 'AlgorithmError: data source churn: relation "customers" does not exist'
    plan = plan_data_source(
        desired(spec, st), ObservedSnapshot(job, TrainingJobStatus.FAILED, reason), NOW
    )
    assert plan.status.Status == DataSourceStatus.FAILED
    assert plan.status.Versions[0].FailureReason == reason
    assert reason in (plan.status.Message or "") and not plan.active
    assert plan.status.CompletedVersion is None


def test_a_completed_job_without_its_row_count_is_an_internal_failure() -> None:
    spec = sql_spec()
    st = first(spec)
    job = st.Versions[0].SnapshotJobName
    plan = plan_data_source(
        desired(spec, st), ObservedSnapshot(job, TrainingJobStatus.COMPLETED, metrics={}), NOW
    )
    assert plan.status.Status == DataSourceStatus.FAILED
    assert "RowCount" in (plan.status.Versions[0].FailureReason or "")


def test_a_changed_query_or_a_refresh_is_a_new_version_and_supersedes_a_running_one() -> None:
    spec = sql_spec()
    st = first(spec)
    v1 = st.Versions[0].SnapshotJobName
    changed = sql_spec(
        DataSpec={
            "Sql": {
                **spec.DataSpec.model_dump(mode="json")["Sql"],
                "SelectSqlQuery": "SELECT * FROM customers WHERE active",
            }
        }
    )
    plan = plan_data_source(
        desired(changed, st), ObservedSnapshot(v1, TrainingJobStatus.IN_PROGRESS), NOW
    )
    stop, create = plan.actions
    assert stop == RequestStop("TrainingJob", v1, "superseded by version 2")
    assert isinstance(create, CreateRecord)
    assert create.name == snapshot_job_name("churn", "uid-1", 2)
    old, new = plan.status.Versions
    assert old.Status == DataSourceStatus.FAILED and "superseded" in (old.FailureReason or "")
    assert new.Version == 2 and new.SelectSqlQuery == "SELECT * FROM customers WHERE active"
    # A refresh of an unchanged spec: a new version too; the same spec again: none.
    refreshed = sql_spec(RefreshCount=1)
    done = plan_data_source(
        desired(spec, st),
        ObservedSnapshot(v1, TrainingJobStatus.COMPLETED, metrics={"RowCount": 3.0}),
        NOW,
    ).status
    plan = plan_data_source(
        desired(refreshed, done), ObservedSnapshot(v1, TrainingJobStatus.COMPLETED), NOW
    )
    assert [a.name for a in plan.actions if isinstance(a, CreateRecord)] == [
        snapshot_job_name("churn", "uid-1", 2)
    ]
    assert plan.status.CompletedVersion == 1  # version 1 stays readable while 2 runs
    # Schema edits are not a new snapshot.
    edited = sql_spec(AttributeTypes={"plan": "CATEGORICAL"})
    assert (
        plan_data_source(
            desired(edited, done), ObservedSnapshot(v1, TrainingJobStatus.COMPLETED), NOW
        ).actions
        == ()
    )


def test_a_lost_snapshot_job_is_created_again() -> None:
    spec = sql_spec()
    st = first(spec)
    job = st.Versions[0].SnapshotJobName
    plan = plan_data_source(desired(spec, st), ObservedSnapshot(job, None), NOW)
    (create,) = plan.actions
    assert isinstance(create, CreateRecord) and create.name == job


def test_a_delete_stops_a_running_snapshot_and_lets_the_data_source_go() -> None:
    spec = sql_spec()
    st = first(spec)
    job = st.Versions[0].SnapshotJobName
    plan = plan_data_source(
        desired(spec, st, delete=True), ObservedSnapshot(job, TrainingJobStatus.IN_PROGRESS), NOW
    )
    assert plan.actions == (
        RequestStop("TrainingJob", job, "data source deleted"),
        DeleteRecord("DataSource", "churn"),
    )
    ended = plan_data_source(
        desired(spec, st, delete=True), ObservedSnapshot(job, TrainingJobStatus.COMPLETED), NOW
    )
    assert ended.actions == (DeleteRecord("DataSource", "churn"),)


def test_a_long_query_is_carried_in_pieces() -> None:
    query = "SELECT " + ", ".join(f"col_{i}" for i in range(1500)) + " FROM wide"
    spec = sql_spec(
        DataSpec={
            "Sql": {**sql_spec().DataSpec.model_dump(mode="json")["Sql"], "SelectSqlQuery": query}
        }
    )
    (create,) = plan_data_source(desired(spec), None, NOW).actions
    assert isinstance(create, CreateRecord)
    hp = create.spec["HyperParameters"]
    assert "query" not in hp
    pieces = sorted((k for k in hp if k.startswith("query.")), key=lambda k: int(k.split(".")[1]))
    assert len(pieces) > 1 and all(len(hp[k]) <= 2500 for k in pieces)
    assert "".join(hp[k] for k in pieces) == query
    CreateTrainingJobRequest.model_validate(create.spec)  # within SageMaker's limits
