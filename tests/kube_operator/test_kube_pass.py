"""What one operator pass asks the Kubernetes API: a list per kind, whatever the number of
resources; no resource is read by name (benchmarks/operator_pass.py measures the cost)."""

from __future__ import annotations

from kube_harness import CallCounter, Cluster, make_ready, stamp
from kubernetes import client

from orchestrator.kube.operator import Operator

JOB = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.m5.large"},
}


def endpoint(cluster: Cluster, i: int) -> None:
    cluster.create("Model", f"m{i}", {"primaryContainer": {"image": "registry.example/serve:1"}})
    variant = {"variantName": "main", "modelName": f"m{i}", "initialInstanceCount": 1}
    cluster.create("EndpointConfig", f"c{i}", {"productionVariants": [variant]})
    cluster.create("Endpoint", f"e{i}", {"endpointConfigName": f"c{i}"})


def test_a_steady_pass_lists_each_kind_once_and_reads_nothing_by_name(
    cluster: Cluster, api: client.ApiClient, operator: Operator
) -> None:
    for i in range(3):
        endpoint(cluster, i)
        cluster.create("TrainingJob", f"j{i}", JOB)
    operator.run_once()
    for job in cluster.items("Job"):
        cluster.job_status(job["metadata"]["name"], {"startTime": stamp(-5), "active": 1})
    for deployment in cluster.items("Deployment"):
        make_ready(cluster, deployment, 1)
    for _ in range(2):
        operator.run_once()
    assert {cluster.status("Endpoint", f"e{i}")["endpointStatus"] for i in range(3)} == {
        "InService"
    }

    counter = CallCounter(api)
    operator.run_once()
    lists = {
        f"GET list {p}"
        for p in ("models", "endpointconfigs", "trainingjobs", "endpoints", "jobs", "pods")
    }
    # Each Endpoint's EndpointConfig and Model come from the pass's own listing.
    assert dict(counter.calls) == {**dict.fromkeys(lists, 1), "GET list deployments": 1}
