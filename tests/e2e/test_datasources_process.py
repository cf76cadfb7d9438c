"""Data sources end to end on the process backend, against the machine's real PostgreSQL and
MariaDB: a query snapshotted by its job, the schema and insights, a built-in algorithm trained
from the snapshot with Amazon ML's split, a refresh after the table changed (a new version, the
first still what the first job read), and the failures a user meets (a bad query, a bad
credentials object, a channel naming a data source that is not there or not done)."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.client import Client, DataSourceInput, Estimator
from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pyarrow")
pytestmark = pytest.mark.slow

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it (make services)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A database of its own, dropped after the test."""
    name = f"orch_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(**PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        _unavailable("PostgreSQL on 127.0.0.1:5432", e)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**PG, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _customers(n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """Churn is decided by the plan and by a word in the support notes: learnable only from
    a categorical and a text attribute."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        plan = rnd.choice(["basic", "plus", "premium"])
        angry = rnd.random() < 0.4
        notes = rnd.choice(
            ["asked about invoices", "wanted a new router", "moved house", "liked the app"]
        )
        notes = f"ticket {rnd.randint(1000, 99999)} customer {notes}"
        if angry:
            notes += " and said cancel immediately"
        churned = angry or (plan == "basic" and rnd.random() < 0.1)
        rows.append((i, round(rnd.uniform(1, 72)), round(rnd.uniform(10, 120), 2), plan, notes,
                     churned))  # fmt: skip
    return rows


def _fill(database: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(**{**PG, "dbname": database}, autocommit=True) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, tenure_months int, "
            "monthly_charges numeric(8,2), plan text, support_notes text, churned boolean)"
        )
        with db.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s)", rows)


def _secret(c: Client, uri: str, user: str = "postgres", password: str = "") -> None:
    c.upload_bytes(json.dumps({"Username": user, "Password": password}).encode(), uri)


def _sql_spec(name: str, database: str, query: str, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "DataSourceName": name,
        "DataSpec": {
            "Sql": {
                "DatabaseInformation": {
                    "Engine": "postgresql",
                    "Host": "127.0.0.1",
                    "DatabaseName": database,
                },
                "SelectSqlQuery": query,
                "DatabaseCredentials": {"SecretUri": "s3://orchestrator/secrets/pg.json"},
                "ConnectTimeoutSeconds": 5,
            }
        },
    }
    spec.update(over)
    return spec


def _channel(name: str, begin: int, end: int) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "DataSourceReference": {
                "DataSourceName": "churn",
                "DataRearrangement": {
                    "splitting": {
                        "percentBegin": begin,
                        "percentEnd": end,
                        "strategy": "random",
                        "randomSeed": "s1",
                    }
                },
            }
        },
    }


def test_a_query_snapshot_trains_a_built_in_algorithm_and_a_refresh_is_a_new_version(
    server: RunningServer, pg_database: str
) -> None:
    _fill(pg_database, _customers(800))
    c = server.client()
    _secret(c, "s3://orchestrator/secrets/pg.json")
    query = "SELECT tenure_months, monthly_charges, plan, support_notes, churned FROM customers"
    c.create_data_source(_sql_spec("churn", pg_database, query, TargetAttributeName="churned"))
    ds = c.wait_for_data_source("churn", timeout=120)
    assert ds.Status == "COMPLETED", ds.Versions
    (v1,) = ds.Versions
    assert v1.RowCount == 800 and (v1.DataSizeInBytes or 0) > 0
    assert ds.DataSchema is not None
    types = {a.AttributeName: a.AttributeType.value for a in ds.DataSchema.Attributes}
    assert types == {
        "tenure_months": "NUMERIC",
        "monthly_charges": "NUMERIC",
        "plan": "CATEGORICAL",
        "support_notes": "TEXT",
        "churned": "BINARY",
    }
    assert all(a.Reasons for a in ds.DataSchema.Attributes)
    # The snapshot job is a training job like any other, and holds no password.
    job = c.describe_training_job(v1.SnapshotJobName)
    assert job.TrainingJobStatus == "Completed"
    assert "Password" not in json.dumps(job.model_dump(mode="json"))
    insights = c.data_source_insights("churn")
    assert insights["RowCount"] == 800
    by_name = {a["AttributeName"]: a for a in insights["Attributes"]}
    assert by_name["plan"]["Categories"]["Top"][0]["Count"] > 200
    assert by_name["tenure_months"]["Numeric"]["Min"] >= 1

    # Train from the snapshot: 70% to train, the other 30% to validate (Amazon ML's split).
    est = Estimator(
        algorithm="linear-learner",
        hyperparameters={"predictor_type": "binary_classifier", "epochs": 10},
        client=c,
    )
    trained = est.fit(
        {
            "train": DataSourceInput("churn", end=70, strategy="random", seed="s1"),
            "validation": DataSourceInput("churn", begin=70, strategy="random", seed="s1"),
        },
        job_name="churn-ll",
        log_sink=lambda _: None,
    )
    assert trained is not None
    ref = trained.InputDataConfig[0].DataSource.DataSourceReference
    assert ref is not None and ref.Version == 1 and ref.TargetAttributeName == "churned"
    assert trained.InputDataConfig[0].DataSource.S3DataSource.S3Uri == v1.SnapshotUri
    metrics = {m.MetricName: m.Value for m in trained.FinalMetricDataList}
    assert metrics["validation:accuracy"] > 0.85, metrics

    # The table changes; a refresh is version 2; version 1 is still what the job read.
    _fill(pg_database, [(i + 10_000, *row[1:]) for i, row in enumerate(_customers(200, 8))])
    assert c.refresh_data_source("churn") == 2
    ds = c.wait_for_data_source("churn", version=2, timeout=120)
    assert [(v.Version, v.Status.value, v.RowCount) for v in ds.Versions] == [
        (1, "COMPLETED", 800),
        (2, "COMPLETED", 1000),
    ]
    assert c.describe_data_source("churn", version=1).DataSchema is not None
    # A schema edit takes no new snapshot.
    c.update_data_source("churn", attribute_types={"tenure_months": "CATEGORICAL"})
    edited = c.describe_data_source("churn")
    assert edited.Version == 2
    assert edited.DataSchema is not None
    tenure = next(a for a in edited.DataSchema.Attributes if a.AttributeName == "tenure_months")
    assert (tenure.AttributeType.value, tenure.InferredType) == ("CATEGORICAL", "NUMERIC")
    with pytest.raises(ValidationError, match=r"AttributeTypes\.nope"):
        c.update_data_source("churn", attribute_types={"nope": "TEXT"})
    assert "churn" in [d.DataSourceName for d in c.list_data_sources().DataSources]


def test_a_bad_query_fails_the_version_with_the_database_s_message(
    server: RunningServer, pg_database: str
) -> None:
    c = server.client()
    _secret(c, "s3://orchestrator/secrets/pg.json")
    c.create_data_source(_sql_spec("broken", pg_database, "SELECT * FROM no_such_table"))
    ds = c.wait_for_data_source("broken", timeout=120)
    assert ds.Status == "FAILED"
    reason = ds.Versions[0].FailureReason or ""
    assert "no_such_table" in reason and "broken" in reason, reason
    with pytest.raises(ValidationError, match=r"DataSourceReference\.Version"):
        c.create_training_job(
            {
                "TrainingJobName": "from-broken",
                "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
                "HyperParameters": {"predictor_type": "binary_classifier"},
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "DataSource": {"DataSourceReference": {"DataSourceName": "broken"}},
                    }
                ],
            }
        )


def test_bad_inputs_are_refused_before_anything_is_stored(
    server: RunningServer, pg_database: str
) -> None:
    c = server.client()
    with pytest.raises(ValidationError, match=r"DatabaseCredentials\.SecretUri: no object"):
        c.create_data_source(_sql_spec("nocreds", pg_database, "SELECT 1"))
    c.upload_bytes(b"user=postgres password=x", "s3://orchestrator/secrets/plain.txt")
    spec = _sql_spec("badcreds", pg_database, "SELECT 1")
    spec["DataSpec"]["Sql"]["DatabaseCredentials"]["SecretUri"] = (
        "s3://orchestrator/secrets/plain.txt"
    )
    with pytest.raises(ValidationError, match="not a JSON object") as e:
        c.create_data_source(spec)
    assert "password=x" not in str(e.value)
    with pytest.raises(ValidationError, match=r"DataLocationS3: no object"):
        c.create_data_source(
            {
                "DataSourceName": "nodata",
                "DataSpec": {"S3": {"DataLocationS3": "s3://orchestrator/none/"}},
            }
        )
    with pytest.raises(ValidationError, match="DataSpec: give exactly one"):
        c.create_data_source({"DataSourceName": "empty", "DataSpec": {}})
    with pytest.raises(ValidationError, match=r"DataSourceName: DataSource 'ghost' does not exist"):
        c.create_training_job(
            {
                "TrainingJobName": "from-ghost",
                "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
                "HyperParameters": {"predictor_type": "binary_classifier"},
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "DataSource": {"DataSourceReference": {"DataSourceName": "ghost"}},
                    }
                ],
            }
        )
    assert c.list_data_sources().DataSources == []


def test_wrong_credentials_and_an_unreachable_host_fail_in_seconds(
    server: RunningServer, pg_database: str
) -> None:
    c = server.client()
    _secret(c, "s3://orchestrator/secrets/wrong.json", user="no_such_user", password="hunter2")
    spec = _sql_spec("wrongcreds", pg_database, "SELECT 1")
    spec["DataSpec"]["Sql"]["DatabaseCredentials"]["SecretUri"] = (
        "s3://orchestrator/secrets/wrong.json"
    )
    c.create_data_source(spec)
    _secret(c, "s3://orchestrator/secrets/pg.json")
    far = _sql_spec("faraway", pg_database, "SELECT 1")
    far["DataSpec"]["Sql"]["DatabaseInformation"]["Port"] = 1  # nothing listens there
    far["DataSpec"]["Sql"]["ConnectTimeoutSeconds"] = 2
    c.create_data_source(far)
    wrong = c.wait_for_data_source("wrongcreds", timeout=120)
    gone = c.wait_for_data_source("faraway", timeout=120)
    assert wrong.Status == "FAILED" and gone.Status == "FAILED"
    reason = wrong.Versions[0].FailureReason or ""
    assert "no_such_user" in reason and "hunter2" not in reason, reason
    log = c.training_job_logs(wrong.Versions[0].SnapshotJobName).text
    assert "hunter2" not in log
    assert "127.0.0.1:1" in (gone.Versions[0].FailureReason or ""), gone.Versions[0]


@pytest.fixture
def mysql_database() -> Iterator[str]:
    pymysql = pytest.importorskip("pymysql")
    name = f"orch_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                connect_timeout=5, autocommit=True)  # fmt: skip
    except pymysql.err.OperationalError as e:
        _unavailable("MariaDB on 127.0.0.1:3306", e)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(
            f"CREATE TABLE `{name}`.orders (id INT PRIMARY KEY, amount DECIMAL(10,2), "
            "channel VARCHAR(16), returned BOOLEAN, placed DATETIME)"
        )
        cur.executemany(
            f"INSERT INTO `{name}`.orders VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    i,
                    10 + i * 1.5,
                    ("web", "store", "phone")[i % 3],
                    i % 7 == 0,
                    f"2026-0{1 + i % 9}-1{i % 10} 12:00:00",
                )
                for i in range(300)
            ],
        )
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def test_a_mariadb_query_is_snapshotted_with_its_types(
    server: RunningServer, mysql_database: str
) -> None:
    c = server.client()
    _secret(c, "s3://orchestrator/secrets/maria.json", user="root")
    spec = _sql_spec(
        "orders", mysql_database, "SELECT amount, channel, returned, placed FROM orders"
    )
    spec["DataSpec"]["Sql"]["DatabaseInformation"]["Engine"] = "mysql"
    spec["DataSpec"]["Sql"]["DatabaseCredentials"]["SecretUri"] = (
        "s3://orchestrator/secrets/maria.json"
    )
    spec["TargetAttributeName"] = "returned"
    c.create_data_source(spec)
    ds = c.wait_for_data_source("orders", timeout=120)
    assert ds.Status == "COMPLETED", ds.Versions
    assert ds.Versions[0].RowCount == 300
    assert ds.DataSchema is not None
    types = {a.AttributeName: a.AttributeType.value for a in ds.DataSchema.Attributes}
    assert types["amount"] == "NUMERIC" and types["channel"] == "CATEGORICAL", types
    assert types["placed"] == "NUMERIC", types  # a time: seconds since the epoch
    insights = c.data_source_insights("orders")
    channel = next(a for a in insights["Attributes"] if a["AttributeName"] == "channel")
    assert {t["Value"] for t in channel["Categories"]["Top"]} == {"web", "store", "phone"}
