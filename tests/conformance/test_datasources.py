"""Data source scenarios, written once: a data source's snapshot is a training job of the
backend (a process, a container of the algorithms image), and a training channel that names the
data source reads the snapshot's rows that its split selects."""

from __future__ import annotations

import json
import os

import pytest

from tests.conformance.declarations import NotRunnable, Refused, scenario
from tests.conformance.harness import Harness, Script

NO_TRAINING_CONTAINER = NotRunnable(
    "the cluster double runs no training container, and a snapshot is the algorithms image's "
    "own step (the operator's planning of it is tests/datasources/test_plan.py)"
)

ROWS = [f"{i},{i % 3},{'yes' if i % 4 == 0 else 'no'},city{i % 5}" for i in range(240)]

READS_CHANNEL = (
    "import glob\n"
    "channel = os.environ['SM_CHANNEL_TRAIN']\n"
    "schema = json.load(open(os.path.join(channel, 'schema.json')))\n"
    "parts = sorted(glob.glob(os.path.join(channel, 'part-*.parquet')))\n"
    "print('rows=%d parts=%d target=%s' % (schema['RowCount'], len(parts), "
    "schema['TargetAttributeName']), flush=True)\n"
)


@scenario(
    "Data source from objects",
    "a DataSource of two CSV objects under a prefix: its snapshot job completes, RowCount and "
    "the inferred types are the table's; a script-mode job's channel naming it with a "
    "sequential 0-50 split gets half the rows, the Parquet parts and the schema",
    processes=True,
    kubernetes=NO_TRAINING_CONTAINER,
)
def test_data_source_from_objects(h: Harness) -> None:
    name = "data-source-from-objects"
    prefix = f"s3://orchestrator/{name}/data/"
    header = "id,level,active,city\n"
    h.client.upload_bytes((header + "\n".join(ROWS[:100]) + "\n").encode(), prefix + "a.csv")
    h.client.upload_bytes((header + "\n".join(ROWS[100:]) + "\n").encode(), prefix + "b/c.csv")
    h.client.create_data_source(
        {
            "DataSourceName": name,
            "DataSpec": {"S3": {"DataLocationS3": prefix}},
            "TargetAttributeName": "active",
        }
    )
    ds = h.client.wait_for_data_source(name, timeout=120 * h.slowness)
    assert ds.Status == "COMPLETED", f"{h.backend}: {ds.Versions}"
    assert ds.Versions[0].RowCount == len(ROWS), h.backend
    assert ds.DataSchema is not None
    types = {a.AttributeName: a.AttributeType.value for a in ds.DataSchema.Attributes}
    assert types == {
        "id": "NUMERIC",
        "level": "CATEGORICAL",
        "active": "BINARY",
        "city": "CATEGORICAL",
    }, h.backend
    job = f"{name}-train"
    h.create_script_job(
        job,
        Script(prints=("reading",), extra=READS_CHANNEL),
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "DataSourceReference": {
                        "DataSourceName": name,
                        "DataRearrangement": {"splitting": {"percentEnd": 50}},
                    }
                },
            }
        ],
    )
    done = h.wait_job(job, timeout=120)
    assert done.TrainingJobStatus == "Completed", f"{h.backend}: {done.FailureReason}"
    log = h.wait_log(job, "rows=")
    assert f"rows={len(ROWS) // 2} parts=1 target=active" in log, f"{h.backend}: {log}"
    h.client.delete_data_source(name)


@scenario(
    "Data source from a loopback database",
    "a DataSource querying PostgreSQL on 127.0.0.1: the snapshot completes where the job runs "
    "on the server's machine, and is refused naming the host where it runs in a container",
    processes=True,
    docker=Refused("DataSource", "DataSpec.Sql.DatabaseInformation.Host"),
    kubernetes=Refused("DataSource", "DataSpec.Sql.DatabaseInformation.Host"),
)
def test_data_source_from_a_loopback_database(h: Harness) -> None:
    name = "data-source-from-a-loopback-database"
    secret = f"s3://orchestrator/{name}/secret.json"
    h.client.upload_bytes(json.dumps({"Username": "postgres", "Password": ""}).encode(), secret)
    spec = {
        "DataSourceName": name,
        "DataSpec": {
            "Sql": {
                "DatabaseInformation": {
                    "Engine": "postgresql",
                    "Host": "127.0.0.1",
                    "DatabaseName": "postgres",
                },
                "SelectSqlQuery": "SELECT n, n % 2 = 0 AS even FROM generate_series(1, 50) AS n",
                "DatabaseCredentials": {"SecretUri": secret},
                "ConnectTimeoutSeconds": 5,
            }
        },
    }
    if h.backend == "process":
        _need_postgres()
    h.client.create_data_source(spec)
    ds = h.client.wait_for_data_source(name, timeout=120 * h.slowness)
    assert ds.Status == "COMPLETED", f"{h.backend}: {ds.Versions}"
    assert ds.Versions[0].RowCount == 50
    h.client.delete_data_source(name)


def _need_postgres() -> None:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
