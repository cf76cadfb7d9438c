"""The snapshot step against the machine's real PostgreSQL and MariaDB (conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.datasources.hyperparameters import SnapshotParams, snapshot_hyperparameters
from tests.datasources.conftest import (
    MYSQL,
    PG,
    Job,
    free_port,
    mysql_execute,
    pg_execute,
)

SECRET = "s3cr3t-Pa55word-never-shown"
ENGINES = ("postgresql", "mysql")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(engine: str, request: pytest.FixtureRequest) -> str:
    fixture = "pg_database" if engine == "postgresql" else "mysql_database"
    return str(request.getfixturevalue(fixture))


def hyperparameters(engine: str, database: str, query: str, **changes: Any) -> dict[str, str]:
    params = SnapshotParams(
        source="sql",
        data_source="sales",
        version=1,
        engine=engine,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=PG["port"] if engine == "postgresql" else MYSQL["port"],  # type: ignore[arg-type]
        database=database,
        connect_timeout=5,
        query=query,
        compute_statistics=False,
    )
    hp = snapshot_hyperparameters(params)
    hp.update({k: str(v) for k, v in changes.items()})
    return hp


def credentials(engine: str, password: str = "") -> dict[str, str]:
    return {"Username": "postgres" if engine == "postgresql" else "root", "Password": password}


def read(job: Job) -> pa.Table:
    parts = sorted(job.dataset.glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def run_failing(job: Job, capfd: pytest.CaptureFixture[str]) -> tuple[str, str]:
    assert job.run() == 1
    out, err = capfd.readouterr()
    return job.failure(), out + err


MIXED_PG = """
CREATE TABLE mixed (
  id integer, big bigint, ratio double precision, amount numeric(10, 2), name text,
  code varchar(8), flag boolean, day date, at timestamp, token uuid, doc jsonb
);
INSERT INTO mixed VALUES
  (1, 9000000000, 0.5, 12.34, 'alpha', 'A', true, '2024-01-02', '2024-01-02 03:04:05',
   '00000000-0000-0000-0000-000000000001', '{"k": 1}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, -1, -2.25, -0.5, 'gamma', 'C', false, '1999-12-31', '1999-12-31 23:59:59', NULL, '[]');
"""

MIXED_MYSQL = """
CREATE TABLE mixed (
  id int, big bigint, ratio double, amount decimal(10, 2), name text,
  code varchar(8), flag bit(1), day date, at datetime, kind enum('x', 'y'), small tinyint
)
"""
MIXED_MYSQL_ROWS = """
INSERT INTO mixed VALUES
  (1, 9000000000, 0.5, 12.34, 'alpha', 'A', b'1', '2024-01-02', '2024-01-02 03:04:05', 'x', 7),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, -1, -2.25, -0.5, 'gamma', 'C', b'0', '1999-12-31', '1999-12-31 23:59:59', 'y', -3)
"""


@pytest.mark.parametrize("path", ["copy", "cursor"])
def test_mixed_columns_postgresql(
    pg_database: str, job: Job, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of reading: COPY's CSV parsed by pyarrow, and the server-side cursor."""
    from orchestrator.datasources import sql

    monkeypatch.setattr(sql, "COPY_FAST_PATH", path == "copy")
    pg_execute(pg_database, "DROP TABLE IF EXISTS mixed", MIXED_PG)
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT * FROM mixed ORDER BY id"),
        credentials("postgresql"),
    )
    assert job.run() == 0
    table = read(job)
    assert table.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("big", pa.int64()),
            ("ratio", pa.float64()),
            ("amount", pa.float64()),
            ("name", pa.string()),
            ("code", pa.string()),
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("at", pa.timestamp("us")),
            ("token", pa.string()),
            ("doc", pa.string()),
        ]
    )
    rows = table.to_pylist()
    assert rows[0] == {
        "id": 1,
        "big": 9_000_000_000,
        "ratio": 0.5,
        "amount": 12.34,
        "name": "alpha",
        "code": "A",
        "flag": True,
        "day": dt.date(2024, 1, 2),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5),
        "token": "00000000-0000-0000-0000-000000000001",
        "doc": '{"k": 1}',
    }
    assert all(v is None for k, v in rows[1].items() if k != "id")
    assert rows[2]["amount"] == -0.5 and rows[2]["flag"] is False
    schema = job.schema()
    assert schema["RowCount"] == 3 and schema["Files"] == ["part-00000.parquet"]
    assert schema["DataSizeInBytes"] == (job.dataset / "part-00000.parquet").stat().st_size
    sources = {a["AttributeName"]: a["SourceType"] for a in schema["Attributes"]}
    assert sources["amount"] == "numeric (read as float64)" and sources["id"] == "integer"
    assert json.loads((job.dataset / "insights.json").read_text())["RowCount"] == 3


@pytest.mark.parametrize("path", ["copy", "cursor"])
def test_awkward_values_postgresql(
    pg_database: str, job: Job, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quotes, commas, newlines, empty strings against NULLs, non-finite floats, time zones;
    through the binary cursor too (only binary-safe types)."""
    from orchestrator.datasources import sql

    monkeypatch.setattr(sql, "COPY_FAST_PATH", path == "copy")
    query = (
        "SELECT * FROM (VALUES "
        "(1, 'a,\"b\"' || chr(10) || 'c', 'Infinity'::float8, 'NaN'::numeric, "
        "TIMESTAMPTZ '2024-01-02 03:04:05.5+02'), "
        "(2, '', '-Infinity'::float8, 1.5, NULL), "
        "(3, NULL, NULL, NULL, NULL)) AS t(id, s, f, n, at) ORDER BY id"
    )
    job.configure(hyperparameters("postgresql", pg_database, query), credentials("postgresql"))
    assert job.run() == 0
    table = read(job)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert rows[0]["s"] == 'a,"b"\nc' and rows[0]["f"] == float("inf")
    assert rows[0]["n"] != rows[0]["n"]  # NaN
    assert rows[0]["at"] == dt.datetime(2024, 1, 2, 1, 4, 5, 500000, tzinfo=dt.UTC)
    assert rows[1]["s"] == "" and rows[1]["f"] == float("-inf") and rows[1]["n"] == 1.5
    assert rows[2] == {"id": 3, "s": None, "f": None, "n": None, "at": None}


def test_a_time_column_goes_through_the_cursor(pg_database: str, job: Job) -> None:
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT TIME '03:04:05' AS t, 1 AS one"),
        credentials("postgresql"),
    )
    assert job.run() == 0
    assert read(job).to_pylist() == [{"t": dt.time(3, 4, 5), "one": 1}]


def test_a_value_that_does_not_convert_names_its_column(
    pg_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT 'infinity'::date AS day"),
        credentials("postgresql"),
    )
    failure, _ = run_failing(job, capfd)
    assert "'day'" in failure and "CAST(day AS text)" in failure


def test_mixed_columns_mysql(mysql_database: str, job: Job) -> None:
    mysql_execute(mysql_database, "DROP TABLE IF EXISTS mixed", MIXED_MYSQL, MIXED_MYSQL_ROWS)
    job.configure(
        hyperparameters("mysql", mysql_database, "SELECT * FROM mixed ORDER BY id"),
        credentials("mysql"),
    )
    assert job.run() == 0
    table = read(job)
    assert table.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("big", pa.int64()),
            ("ratio", pa.float64()),
            ("amount", pa.float64()),
            ("name", pa.string()),
            ("code", pa.string()),
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("at", pa.timestamp("us")),
            ("kind", pa.string()),
            ("small", pa.int8()),
        ]
    )
    rows = table.to_pylist()
    assert rows[0] == {
        "id": 1,
        "big": 9_000_000_000,
        "ratio": 0.5,
        "amount": 12.34,
        "name": "alpha",
        "code": "A",
        "flag": True,
        "day": dt.date(2024, 1, 2),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5),
        "kind": "x",
        "small": 7,
    }
    assert all(v is None for k, v in rows[1].items() if k != "id")
    assert rows[2]["flag"] is False and rows[2]["small"] == -3
    assert job.schema()["RowCount"] == 3


PEAK_SCRIPT = textwrap.dedent(
    """
    import resource, subprocess, sys
    rc = subprocess.run([sys.executable, "-m", "orchestrator.datasources.snapshot"]).returncode
    print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
    """
)


def run_measured(job: Job) -> tuple[int, float, str]:
    """The step in a child of a fresh process: (exit code, the child's peak RSS in MB, out)."""
    env = {**job.env, "PYTHONPATH": str(Path(__file__).parents[2]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("PEAK_KB"))
    _, kb, rc = line.split()
    return int(rc), int(kb) / 1024, done.stdout + done.stderr


def test_a_million_rows_stream_with_bounded_memory_postgresql(pg_database: str, job: Job) -> None:
    query = (
        "SELECT g AS id, g * 0.5 AS x, 'row number ' || g AS label, (g % 2 = 0) AS even, "
        "g::numeric / 7 AS ratio FROM generate_series(1, 1000000) AS g"
    )
    job.configure(hyperparameters("postgresql", pg_database, query), credentials("postgresql"))
    rc, peak_mb, out = run_measured(job)
    assert rc == 0, out
    assert "RowCount=1000000" in out.splitlines()
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"
    assert job.schema()["RowCount"] == 1_000_000
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in job.dataset.glob("part-*")) == 1_000_000
    assert "rows/s" in out


def test_rows_stream_with_bounded_memory_mysql(mysql_database: str, job: Job) -> None:
    query = (
        "SELECT seq AS id, seq * 0.5 AS x, CONCAT('row number ', seq) AS label FROM seq_1_to_200000"
    )
    job.configure(hyperparameters("mysql", mysql_database, query), credentials("mysql"))
    rc, peak_mb, out = run_measured(job)
    assert rc == 0, out
    assert "RowCount=200000" in out.splitlines()
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"
    assert read(job).column("id").to_pylist()[-1] == 200_000


def test_many_rows_roll_into_parts(
    pg_database: str, job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.datasources import snapshot

    monkeypatch.setattr(snapshot, "PART_ROWS", 40_000)
    monkeypatch.setattr(snapshot, "ROW_GROUP_ROWS", 20_000)
    query = "SELECT g AS id FROM generate_series(1, 120000) AS g ORDER BY g"
    job.configure(hyperparameters("postgresql", pg_database, query), credentials("postgresql"))
    assert job.run() == 0
    assert job.schema()["Files"] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert read(job).column("id").to_pylist() == list(range(1, 120_001))


def test_a_long_query_in_pieces(pg_database: str, job: Job) -> None:
    query = "SELECT 1 AS one" + " " * 6000 + "-- padded past two pieces"
    hp = hyperparameters("postgresql", pg_database, query)
    assert "query.2" in hp and "query" not in hp
    job.configure(hp, credentials("postgresql"))
    assert job.run() == 0
    assert read(job).to_pylist() == [{"one": 1}]


def test_a_bad_query(
    engine: str, database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters(engine, database, "SELECT nope FROM missing_table"),
        credentials(engine),
    )
    failure, _ = run_failing(job, capfd)
    assert "data source sales" in failure and "SelectSqlQuery" in failure
    assert "missing_table" in failure
    assert ("does not exist" if engine == "postgresql" else "doesn't exist") in failure


def test_a_write_is_refused_by_the_read_only_transaction(
    pg_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    pg_execute(pg_database, "CREATE TABLE IF NOT EXISTS victim (x int)")
    job.configure(
        hyperparameters("postgresql", pg_database, "INSERT INTO victim VALUES (1) RETURNING x"),
        credentials("postgresql"),
    )
    failure, _ = run_failing(job, capfd)
    assert "the query failed" in failure


def test_wrong_credentials_postgresql(
    pg_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT 1"),
        {"Username": "no_such_user_orch", "Password": SECRET},
    )
    failure, output = run_failing(job, capfd)
    assert "authentication failed for user 'no_such_user_orch'" in failure
    assert "data source sales" in failure
    assert SECRET not in failure and SECRET not in output
    assert not job.credentials_file.exists()


def test_wrong_credentials_mysql(
    mysql_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters("mysql", mysql_database, "SELECT 1"), credentials("mysql", SECRET)
    )
    failure, output = run_failing(job, capfd)
    assert "authentication failed for user 'root'" in failure
    assert SECRET not in failure and SECRET not in output
    assert not job.credentials_file.exists()


def test_an_unknown_database(
    engine: str, database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(hyperparameters(engine, "orch_no_such_db", "SELECT 1"), credentials(engine))
    failure, _ = run_failing(job, capfd)
    assert "orch_no_such_db" in failure and "does not exist" in failure


@pytest.mark.parametrize("host", ["closed-port", "10.255.255.1"])
def test_an_unreachable_host(
    engine: str, host: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port() if host == "closed-port" else 5432
    address = "127.0.0.1" if host == "closed-port" else host
    job.configure(
        hyperparameters(engine, "test", "SELECT 1", host=address, port=port, connect_timeout=2),
        credentials(engine, SECRET),
    )
    started = time.monotonic()
    failure, output = run_failing(job, capfd)
    assert time.monotonic() - started < 8
    assert f"{address}:{port} is unreachable" in failure and "data source sales" in failure
    assert SECRET not in failure and SECRET not in output


def test_no_rows_is_a_snapshot_of_zero_rows(
    engine: str, database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT 1 AS id, 'x' AS name FROM (SELECT 1 AS z) AS t WHERE 1 = 0"
    job.configure(hyperparameters(engine, database, query), credentials(engine))
    assert job.run() == 0
    out = capfd.readouterr().out
    assert "RowCount=0" in out.splitlines() and "has no rows" in out
    parts = list(job.dataset.glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet"]
    table = pq.read_table(parts[0])
    assert table.num_rows == 0 and table.schema.names == ["id", "name"]
    assert job.schema()["RowCount"] == 0


def test_an_unmappable_column_postgresql(
    pg_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT 1 AS id, '\\x00ff'::bytea AS raw"),
        credentials("postgresql"),
    )
    failure, _ = run_failing(job, capfd)
    assert "'raw'" in failure and "bytea" in failure and "CAST(raw AS text)" in failure


def test_an_unmappable_interval_and_array_postgresql(
    pg_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT ARRAY[1, 2] AS pair"),
        credentials("postgresql"),
    )
    failure, _ = run_failing(job, capfd)
    assert "'pair'" in failure and "integer[]" in failure


def test_an_unmappable_column_mysql(
    mysql_database: str, job: Job, capfd: pytest.CaptureFixture[str]
) -> None:
    mysql_execute(
        mysql_database,
        "DROP TABLE IF EXISTS blobs",
        "CREATE TABLE blobs (id int, payload blob)",
        "INSERT INTO blobs VALUES (1, x'00ff')",
    )
    job.configure(
        hyperparameters("mysql", mysql_database, "SELECT * FROM blobs"), credentials("mysql")
    )
    failure, _ = run_failing(job, capfd)
    assert (
        "'payload'" in failure and "blob (binary)" in failure and "CAST(payload AS char)" in failure
    )


@pytest.mark.parametrize("path", ["copy", "cursor"])
def test_a_trailing_semicolon(
    pg_database: str, job: Job, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.datasources import sql

    monkeypatch.setattr(sql, "COPY_FAST_PATH", path == "copy")
    job.configure(
        hyperparameters("postgresql", pg_database, "SELECT 1 AS one;  "),
        credentials("postgresql"),
    )
    assert job.run() == 0
    assert read(job).to_pylist() == [{"one": 1}]


def test_the_credentials_file_is_deleted_after_reading(
    engine: str, database: str, job: Job
) -> None:
    job.configure(hyperparameters(engine, database, "SELECT 1 AS one"), credentials(engine))
    assert job.credentials_file.exists()
    assert job.run() == 0
    assert not job.credentials_file.exists()


@pytest.mark.parametrize("content", [None, "not json " + SECRET, '{"Password": "x"}'])
def test_missing_or_invalid_credentials(
    pg_database: str, job: Job, content: str | None, capfd: pytest.CaptureFixture[str]
) -> None:
    job.configure(hyperparameters("postgresql", pg_database, "SELECT 1"), content)
    failure, output = run_failing(job, capfd)
    assert "DataSpec.Sql.DatabaseCredentials.SecretUri" in failure
    assert SECRET not in failure and SECRET not in output
    assert not job.credentials_file.exists()


def test_through_the_built_in_entry_point(pg_database: str, job: Job) -> None:
    """``algorithms/train.py`` hands a ``datasource-snapshot`` job to the snapshot step."""
    from orchestrator.algorithms import train

    hp = hyperparameters("postgresql", pg_database, "SELECT 2 AS two")
    job.configure({**hp, "algorithm": "datasource-snapshot"}, credentials("postgresql"))
    assert train.main(job.env) == 0
    assert read(job).to_pylist() == [{"two": 2}]
