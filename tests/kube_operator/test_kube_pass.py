"""What one operator pass costs: a list per kind, whatever the number of resources, and no
resource read by name (transform jobs' progress comes from the object store, not the API); no
garbage collection while it runs (benchmarks/operator_pass.py measures the cost)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from kube_harness import CallCounter, Cluster, make_ready, stamp
from kubernetes import client

from orchestrator.kube.gc_pause import collector_paused
from orchestrator.kube.operator import Operator
from orchestrator.kube.transforms import RUNNER
from orchestrator.objects import LocalKeyring, open_object_store
from orchestrator.settings import KubeSettings

JOB = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.m5.large"},
}


def endpoint(cluster: Cluster, i: int) -> None:
    cluster.create("Model", f"m{i}", {"primaryContainer": {"image": "registry.example/serve:1"}})
    variant = {"variantName": "main", "modelName": f"m{i}", "initialInstanceCount": 1}
    cluster.create("EndpointConfig", f"c{i}", {"productionVariants": [variant]})
    cluster.create("Endpoint", f"e{i}", {"endpointConfigName": f"c{i}"})


def transform(cluster: Cluster, i: int) -> None:
    spec = {
        "modelName": "m0",
        "transformInput": {"dataSource": {"s3DataSource": {"s3Uri": "s3://b/in/"}}},
        "transformOutput": {"s3OutputPath": "s3://b/out/"},
        "transformResources": {"instanceType": "ml.m5.large", "instanceCount": 2},
    }
    cluster.create("TransformJob", f"t{i}", spec)


def test_a_steady_pass_lists_each_kind_once_and_reads_nothing_by_name(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, tmp_path: Path
) -> None:
    store = open_object_store((tmp_path / "s").as_uri(), LocalKeyring(tmp_path / "k.json"))
    operator = Operator(api, settings, store=store)
    for i in range(3):
        endpoint(cluster, i)
        cluster.create("TrainingJob", f"j{i}", JOB)
        transform(cluster, i)
    operator.run_once()
    for job in cluster.items("Job"):
        cluster.job_status(job["metadata"]["name"], {"startTime": stamp(-5), "active": 1})
        if "orchestrator.dev/transform-job" in job["metadata"]["labels"]:
            runner = {"name": RUNNER, "state": {"running": {"startedAt": stamp(-4)}}}
            status = {"phase": "Running", "containerStatuses": [runner]}
            cluster.pod(job, f"{job['metadata']['name']}-p", status)
    for deployment in cluster.items("Deployment"):
        make_ready(cluster, deployment, 1)
    for _ in range(2):
        operator.run_once()
    assert {cluster.status("Endpoint", f"e{i}")["endpointStatus"] for i in range(3)} == {
        "InService"
    }
    transforms = [cluster.status("TransformJob", f"t{i}") for i in range(3)]
    assert {i["status"] for t in transforms for i in t["instances"]} == {"Running"}

    counter = CallCounter(api)
    operator.run_once()
    lists = {
        f"GET list {p}"
        for p in (
            "models",
            "endpointconfigs",
            "hyperparametertuningjobs",
            "datasources",
            "trainingjobs",
            "transformjobs",
            "endpoints",
            "jobs",
            "pods",
        )
    }
    # Each Endpoint's EndpointConfig and Model come from the pass's own listing.
    assert dict(counter.calls) == {**dict.fromkeys(lists, 1), "GET list deployments": 1}


def test_a_pass_runs_with_the_garbage_collector_off_and_gives_it_back(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def run_pass() -> float:
        seen.append(gc.isenabled())
        if len(seen) == 2:
            raise RuntimeError("a pass that fails")
        return 1.0

    monkeypatch.setattr(operator.reconciler, "run_pass", run_pass)
    assert gc.isenabled()
    operator.run_once()
    with pytest.raises(RuntimeError):
        operator.run_once()
    assert seen == [False, False] and gc.isenabled()


def test_overlapping_pauses_share_one_and_the_collector_comes_back_as_it_was() -> None:
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other pass still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()  # someone else's choice: kept
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
