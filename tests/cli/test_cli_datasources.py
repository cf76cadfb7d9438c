"""``orch datasources``: the requests its flags make, the snapshot as the fake backend runs
it, the schema and insights as shown, and the usage errors naming the flag."""

from __future__ import annotations

import json

from cli_harness import Cli

from orchestrator.resources.kinds import DATA_SOURCE, TRAINING_JOB

SCHEMA = {
    "Version": 1,
    "RowCount": 3,
    "Files": ["part-00000.parquet"],
    "TargetAttributeName": "churned",
    "Attributes": [
        {"AttributeName": "plan", "AttributeType": "CATEGORICAL", "InferredType": "CATEGORICAL",
         "SourceType": "text", "Reasons": ["3 distinct values of 3 rows"]},
        {"AttributeName": "tenure", "AttributeType": "NUMERIC", "InferredType": "NUMERIC",
         "SourceType": "int4", "Reasons": ["numbers with 3 distinct values"]},
        {"AttributeName": "churned", "AttributeType": "BINARY", "InferredType": "BINARY",
         "SourceType": "bool", "Reasons": ["2 distinct values: false, true"]},
    ],
}  # fmt: skip
INSIGHTS = {
    "RowCount": 3,
    "Attributes": [
        {"AttributeName": "plan", "AttributeType": "CATEGORICAL", "MissingShare": 0.0,
         "InvalidShare": 0.0, "DistinctCount": 3,
         "Categories": {"Top": [{"Value": "basic", "Count": 1}], "OtherCount": 2},
         "TargetCorrelation": {"Method": "CramersV", "Value": 0.5}},
    ],
    "Warnings": [{"AttributeName": "churned", "Code": "RareTargetClass",
                  "Message": "churned: class true has 1 row"}],
}  # fmt: skip


def snapshot_done(cli: Cli) -> str:
    """The fake backend runs the snapshot job: its dataset files put where the job would."""
    cli.run_pass()  # the data source makes its snapshot job
    cli.run_pass()  # which launches
    job = cli.plane.store.get(DATA_SOURCE.name, "churn").status["Versions"][-1]
    uri = job["SnapshotUri"]
    cli.plane.objects.put_bytes(uri + "schema.json", json.dumps(SCHEMA).encode())
    cli.plane.objects.put_bytes(uri + "insights.json", json.dumps(INSIGHTS).encode())
    cli.backend.complete(job["SnapshotJobName"], metrics={"RowCount": 3, "DataSizeInBytes": 900})
    cli.run_pass()
    cli.run_pass()
    return str(job["SnapshotJobName"])


def create(cli: Cli) -> None:
    cli.plane.objects.put_bytes(
        "s3://orchestrator/secrets/crm.json", b'{"Username": "reader", "Password": "pw"}'
    )
    cli.ok(
        "datasources", "create", "churn", "--engine", "postgresql", "--host", "db.internal",
        "--database", "crm", "--query", "SELECT plan, tenure, churned FROM customers",
        "--credentials", "s3://orchestrator/secrets/crm.json", "--target", "churned",
        "--type", "tenure=numeric",
    )  # fmt: skip


def test_create_describe_insights_update_refresh_delete(cli: Cli) -> None:
    create(cli)
    spec = cli.plane.store.get(DATA_SOURCE.name, "churn").spec
    sql = spec["DataSpec"]["Sql"]
    assert sql["DatabaseInformation"] == {
        "Engine": "postgresql", "Host": "db.internal", "Port": None, "DatabaseName": "crm"
    }  # fmt: skip
    assert sql["SelectSqlQuery"] == "SELECT plan, tenure, churned FROM customers"
    assert spec["AttributeTypes"] == {"tenure": "NUMERIC"}
    early = cli("datasources", "insights", "churn")
    assert early.exit_code == 1 and "no completed snapshot yet" in early.output
    early = cli("datasources", "describe", "churn", "--version", "3")
    assert early.exit_code == 1 and "has no version 3" in early.output
    job = snapshot_done(cli)
    assert cli.plane.store.get(TRAINING_JOB.name, job).phase == "Completed"
    out = cli.ok("datasources", "describe", "churn").stdout
    assert "COMPLETED" in out and "3 distinct values of 3 rows" in out
    assert "churned (target)" in out and "SELECT plan, tenure" in out and "pw" not in out
    listed = cli.json("datasources", "list")
    assert [(d["DataSourceName"], d["Status"], d["RowCount"]) for d in listed["DataSources"]] == [
        ("churn", "COMPLETED", 3)
    ]
    shown = cli("datasources", "insights", "churn")
    assert shown.exit_code == 0, shown.output
    assert "basic (1)" in shown.stdout and "+0.50 (CramersV)" in shown.stdout
    assert "RareTargetClass" in shown.stderr
    cli.ok("datasources", "update", "churn", "--type", "plan=TEXT")
    doc = cli.json("datasources", "describe", "churn")
    plan = next(a for a in doc["DataSchema"]["Attributes"] if a["AttributeName"] == "plan")
    assert (plan["AttributeType"], plan["InferredType"]) == ("TEXT", "CATEGORICAL")
    bad = cli("datasources", "update", "churn", "--type", "nope=TEXT")
    assert bad.exit_code == 1 and "AttributeTypes.nope" in bad.output
    assert cli.json("datasources", "refresh", "churn") == {"DataSourceName": "churn", "Version": 2}
    cli.run_pass()
    assert cli.json("datasources", "describe", "churn")["Version"] == 2
    cli.ok("datasources", "delete", "churn")
    cli.run_pass()
    assert cli.json("datasources", "list")["DataSources"] == []


def test_usage_errors_name_the_flag(cli: Cli) -> None:
    r = cli("datasources", "create", "x")
    assert r.exit_code == 2 and "--s3" in r.output
    r = cli("datasources", "create", "x", "--engine", "mysql", "--host", "h")
    assert r.exit_code == 2 and "--database" in r.output and "--credentials" in r.output
    r = cli("datasources", "create", "x", "--s3", "s3://b/p/", "--type", "a=WORDS")
    assert r.exit_code == 2 and "--type" in r.output and "CATEGORICAL" in r.output
    r = cli("datasources", "update", "x")
    assert r.exit_code == 2 and "--type" in r.output
