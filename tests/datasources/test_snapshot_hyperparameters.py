"""The snapshot job's hyperparameters, both ways (stdlib only: the control plane's side)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.datasources.hyperparameters import (
    MAX_VALUE_CHARS,
    SnapshotParams,
    parse_snapshot_hyperparameters,
    snapshot_hyperparameters,
)
from orchestrator.errors import ValidationError

SQL = SnapshotParams(
    source="sql",
    data_source="sales",
    version=3,
    target="label",
    compute_statistics=False,
    engine="mysql",
    host="db.internal",
    port=3306,
    database="shop",
    connect_timeout=7,
    query="SELECT * FROM orders",
)


def test_round_trip_sql_and_s3() -> None:
    assert parse_snapshot_hyperparameters(snapshot_hyperparameters(SQL)) == SQL
    s3 = SnapshotParams(source="s3", data_source="clicks", version=1, format="Parquet")
    assert parse_snapshot_hyperparameters(snapshot_hyperparameters(s3)) == s3


def test_a_long_query_travels_in_pieces() -> None:
    query = "SELECT " + ", ".join(f"c{i}" for i in range(3000)) + " FROM t"
    params = SnapshotParams(**{**SQL.__dict__, "query": query})
    hp = snapshot_hyperparameters(params)
    assert "query" not in hp and all(len(v) <= MAX_VALUE_CHARS for v in hp.values())
    assert len([k for k in hp if k.startswith("query.")]) == -(-len(query) // MAX_VALUE_CHARS)
    assert parse_snapshot_hyperparameters(hp).query == query


def test_json_quoted_values_as_the_sdk_sends_them() -> None:
    hp = {k: f'"{v}"' for k, v in snapshot_hyperparameters(SQL).items()}
    assert parse_snapshot_hyperparameters(hp) == SQL


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"source": "ftp"}, "source"),
        ({"engine": "oracle"}, "engine"),
        ({"port": "x"}, "port"),
        ({"port": "70000"}, "port"),
        ({"version": "0"}, "version"),
        ({"connect_timeout": "soon"}, "connect_timeout"),
        ({"compute_statistics": "maybe"}, "compute_statistics"),
        ({"host": ""}, "host"),
        ({"query": " "}, "query"),
    ],
)
def test_errors_name_the_key(change: dict[str, str], key: str) -> None:
    hp = {**snapshot_hyperparameters(SQL), **change}
    with pytest.raises(ValidationError) as e:
        parse_snapshot_hyperparameters(hp)
    assert e.value.field == f"HyperParameters.{key}" and key in e.value.message


def test_a_gap_in_the_query_pieces() -> None:
    hp = {k: v for k, v in snapshot_hyperparameters(SQL).items() if k != "query"}
    hp.update({"query.0": "SELECT ", "query.2": "1"})
    with pytest.raises(ValidationError) as e:
        parse_snapshot_hyperparameters(hp)
    assert e.value.field == "HyperParameters.query.2"


def test_the_module_is_light() -> None:
    """The control plane imports it: no pyarrow, numpy or database driver comes with it."""
    code = (
        "import sys, orchestrator.datasources.hyperparameters; "
        "print(sorted(m for m in ('pyarrow', 'numpy', 'psycopg', 'pymysql') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
