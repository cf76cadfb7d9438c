"""Transform jobs through REST on a cluster, where the custom resources are the store: a
TransformJob applied with kubectl is the job REST describes, lists, stops and deletes; a REST
create is a custom resource in camelCase (or, on a backend without transform jobs, refused)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kube_harness import KEY, Cluster, cluster_settings
from kubernetes import client

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.service import ControlPlane
from orchestrator.backends.base import TransformBackend
from orchestrator.settings import KubeSettings
from orchestrator.testing import ServerThread

JOBS = "/api/v1/transform-jobs"
KUBECTL_SPEC: dict[str, Any] = {
    "modelName": "m",
    "batchStrategy": "MultiRecord",
    "transformInput": {
        "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3Uri": "s3://data/in/"}},
        "contentType": "text/csv",
        "splitType": "Line",
    },
    "transformOutput": {"s3OutputPath": "s3://data/out/"},
    "transformResources": {"instanceType": "ml.m5.large", "instanceCount": 2},
}


@dataclass
class Front:
    plane: ControlPlane
    http: httpx.Client


@pytest.fixture
def front(api: client.ApiClient, settings: KubeSettings, tmp_path: Path) -> Iterator[Front]:
    plane = build_control_plane(cluster_settings(tmp_path, settings), kube_api=api)
    with (
        ServerThread(create_app(plane)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        yield Front(plane, http)


def end(front: Front, name: str, status: str) -> None:
    """What the operator writes when the job ends (through the status subresource)."""
    store = front.plane.store
    record = store.get("TransformJob", name)
    state = {**record.status, "TransformJobStatus": status}
    store.update_status(record, state, phase=status, active=False, now=front.plane.clock.now())


def test_a_job_applied_with_kubectl_is_the_one_rest_describes_lists_stops_and_deletes(
    front: Front, cluster: Cluster
) -> None:
    assert front.plane.controller is None  # the API runs no work on a cluster
    cluster.create("TransformJob", "from-kubectl", KUBECTL_SPEC)
    # The operator's first pass puts its finalizer on (what holds a delete until cleanup).
    front.plane.store.claim(front.plane.store.get("TransformJob", "from-kubectl"))
    d = front.http.get(f"{JOBS}/from-kubectl").json()
    assert d["TransformJobName"] == "from-kubectl" and d["ModelName"] == "m"
    assert d["TransformJobStatus"] == "InProgress"
    assert d["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data/in/"
    assert d["TransformResources"]["InstanceCount"] == 2
    listed = front.http.get(JOBS, params={"StatusEquals": "InProgress"}).json()
    assert [s["TransformJobName"] for s in listed["TransformJobSummaries"]] == ["from-kubectl"]

    # Stopped through REST: the annotation kubectl would set, for the operator to act on.
    r = front.http.post(f"{JOBS}/from-kubectl/stop")
    assert r.status_code == 202, r.text
    cr = cluster.get("TransformJob", "from-kubectl")
    assert cr is not None and cr["metadata"]["annotations"]["orchestrator.dev/stop"] == "true"
    assert front.http.get(f"{JOBS}/from-kubectl").json()["TransformJobStatus"] == "Stopping"

    # The status the operator writes is what REST shows; then the job may be deleted.
    assert front.http.delete(f"{JOBS}/from-kubectl").status_code == 409
    end(front, "from-kubectl", "Stopped")
    assert front.http.get(f"{JOBS}/from-kubectl").json()["TransformJobStatus"] == "Stopped"
    assert cluster.status("TransformJob", "from-kubectl")["transformJobStatus"] == "Stopped"
    assert front.http.delete(f"{JOBS}/from-kubectl").status_code == 202
    cr = cluster.get("TransformJob", "from-kubectl")
    assert cr is not None and cr["metadata"]["deletionTimestamp"]  # held for the operator


def test_a_rest_create_is_a_custom_resource_in_camel_case(front: Front, cluster: Cluster) -> None:
    front.plane.objects.put_bytes("s3://data/in/a.csv", b"1,2\n")
    model = {"ModelName": "m", "PrimaryContainer": {"Image": "registry.example/serve:1"}}
    assert front.http.post("/api/v1/models", json=model).status_code == 201
    body: dict[str, Any] = {
        "TransformJobName": "from-rest",
        "ModelName": "m",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/in/"}},
            "ContentType": "text/csv",
        },
        "TransformOutput": {"S3OutputPath": "s3://data/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    r = front.http.post(JOBS, json=body)
    if not isinstance(front.plane.backend, TransformBackend):
        # A cluster whose backend runs no transform jobs refuses them by name, storing nothing.
        assert r.status_code == 400, r.text
        assert "the kubernetes backend does not run transform jobs" in r.json()["message"]
        assert cluster.get("TransformJob", "from-rest") is None
        return
    assert r.status_code == 201, r.text
    cr = cluster.get("TransformJob", "from-rest")
    assert cr is not None
    assert cr["spec"]["transformInput"]["dataSource"]["s3DataSource"]["s3Uri"] == "s3://data/in/"
    assert "transformJobName" not in cr["spec"]  # the name is metadata.name
