"""DataSource custom resources: the operator takes each version's snapshot as a TrainingJob
custom resource (which it runs as any job), and writes the version's end back from that job's
status; a changed spec (a raised refreshCount) is the next version."""

from __future__ import annotations

from typing import Any

from kube_harness import API_GROUP, API_VERSION, NS, PLURAL, CallCounter, Cluster, stamp
from kubernetes import client

from orchestrator.kube.operator import Operator

SPEC: dict[str, Any] = {
    "dataSpec": {
        "sql": {
            "databaseInformation": {
                "engine": "postgresql",
                "host": "crm-db.databases.svc.cluster.local",
                "databaseName": "crm",
            },
            "selectSqlQuery": "SELECT tenure_months, plan, churned FROM customers",
            "databaseCredentials": {"secretUri": "s3://orchestrator/secrets/crm.json"},
        }
    },
    "targetAttributeName": "churned",
    # The user's attribute names, kept as they are (never camel-cased either way).
    "attributeTypes": {"tenure_months": "CATEGORICAL"},
}


def _finish(cluster: Cluster, job: str, rows: int) -> None:
    """The snapshot job ends as its operator pass would write it (its metrics from the log)."""
    status = {
        "trainingJobStatus": "Completed",
        "secondaryStatus": "Completed",
        "trainingEndTime": stamp(),
        "finalMetricDataList": [
            {"metricName": "RowCount", "value": float(rows), "timestamp": stamp()},
            {"metricName": "DataSizeInBytes", "value": 4096.0, "timestamp": stamp()},
        ],
    }
    cluster.custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, NS, PLURAL["TrainingJob"], job, {"status": status}
    )


def test_a_data_source_resource_is_snapshotted_by_a_training_job_resource(
    cluster: Cluster, operator: Operator, api: client.ApiClient
) -> None:
    cluster.create("DataSource", "churn", SPEC)
    operator.run_once()
    st = cluster.status("DataSource", "churn")
    assert st["status"] == "PENDING" and st["version"] == 1, st
    (version,) = st["versions"]
    job_name = version["snapshotJobName"]
    assert job_name.startswith("churn-snap-001-")
    job = cluster.get("TrainingJob", job_name)
    assert job is not None
    spec = job["spec"]
    assert spec["algorithmSpecification"]["algorithmName"] == "datasource-snapshot"
    assert spec["hyperParameters"]["query"] == SPEC["dataSpec"]["sql"]["selectSqlQuery"]
    assert spec["inputDataConfig"][0]["channelName"] == "credentials"
    assert "password" not in str(job).lower()
    # The snapshot job runs as a batch/v1 Job of the algorithms image.
    operator.run_once()
    (k8s_job,) = [j for j in cluster.items("Job") if j["metadata"]["name"].startswith(job_name)]
    algo = next(c for c in k8s_job["spec"]["template"]["spec"]["containers"] if c["name"] == "algo")
    env = {e["name"]: e.get("value") for e in algo.get("env", [])}
    assert env.get("ORCH_ALGORITHM") == "datasource-snapshot"
    assert "algorithms" in algo["image"]

    _finish(cluster, job_name, 1234)
    operator.run_once()
    st = cluster.status("DataSource", "churn")
    assert st["status"] == "COMPLETED" and st["completedVersion"] == 1, st
    assert st["versions"][0]["rowCount"] == 1234
    assert cluster.get("DataSource", "churn")["spec"]["attributeTypes"] == {
        "tenure_months": "CATEGORICAL"
    }
    # A completed data source costs a pass nothing by name (its snapshot job is not read).
    counter = CallCounter(api)
    operator.run_once()
    assert not [c for c in counter.calls if c.startswith("GET get")], dict(counter.calls)

    # kubectl patch ... refreshCount: the next version, version 1 still the completed one.
    cluster.custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, NS, PLURAL["DataSource"], "churn", {"spec": {"refreshCount": 1}}
    )
    operator.run_once()
    st = cluster.status("DataSource", "churn")
    assert st["version"] == 2 and st["completedVersion"] == 1, st
    assert [v["version"] for v in st["versions"]] == [1, 2]
    assert cluster.get("TrainingJob", st["versions"][1]["snapshotJobName"]) is not None


def test_a_training_job_resource_naming_a_data_source_alone_is_refused_by_name(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create(
        "TrainingJob",
        "from-churn",
        {
            "algorithmSpecification": {"algorithmName": "linear-learner"},
            "hyperParameters": {"predictor_type": "binary_classifier"},
            "inputDataConfig": [
                {
                    "channelName": "train",
                    "dataSource": {"dataSourceReference": {"dataSourceName": "churn"}},
                }
            ],
        },
    )
    operator.run_once()
    st = cluster.status("TrainingJob", "from-churn")
    valid = next(c for c in st["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False"
    assert "inputDataConfig[0].dataSource.s3DataSource.s3Uri" in valid["message"], valid
    assert "without its snapshot" in valid["message"]
    assert cluster.items("Job") == []
