"""What the Kubernetes benchmarks share: the API emulator of the operator tests, settings,
a client that counts its calls, and the cluster's part (pods, Job status) played in bulk.

The emulator (``tests/kube_operator/kube_harness.py``) is test code: kmock's API server in a
thread of this process, so every time measured against it includes its own Python cost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kube_operator"))
from kube_harness import NS, CallCounter, Cluster, Emulator, ready_status, stamp

from orchestrator.settings import KubeSettings

__all__ = [
    "NS",
    "CallCounter",
    "Cluster",
    "Emulator",
    "api_client",
    "kube_settings",
    "play_pod",
    "ready_status",
    "stamp",
]


def kube_settings() -> KubeSettings:
    """The operator tests' settings (tests/kube_operator/conftest.py)."""
    return KubeSettings(
        namespace=NS,
        training_image="registry.example/orchestrator/training:1",
        serving_image="registry.example/orchestrator/serving:1",
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        gpu_runtime_class_name="nvidia",
        object_store_url="s3://ml-bucket",
        s3_endpoint_url="http://minio.storage:9000",
    )


def api_client(url: str) -> client.ApiClient:
    config = client.Configuration()
    config.host = url
    return client.ApiClient(config)


def play_pod(cluster: Cluster, owner: dict[str, Any], name: str, status: dict[str, Any]) -> None:
    """The pod a Job or Deployment controller would create for ``owner``, with ``status``
    (kubelet's report). Unlike ``Cluster.pod`` it does not list the pods first: one call."""
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            for field, value in {"image": "x", "imageID": "", "ready": False}.items():
                cs.setdefault(field, value)
            cs.setdefault("restartCount", 0)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": owner["spec"]["template"]["metadata"]["labels"],
            "creationTimestamp": stamp(),
        },
        "spec": owner["spec"]["template"]["spec"],
        "status": status,
    }
    cluster.core.create_namespaced_pod(NS, body)
