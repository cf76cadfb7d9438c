"""What the Kubernetes benchmarks share: the API emulator of the operator tests, settings,
a client that counts its calls, and the cluster's part (pods, Job status) played in bulk.

The emulator (``tests/kube_operator/kube_harness.py``) is test code: kmock's API server in a
thread of this process, so every time measured against it includes its own Python cost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kube_operator"))
from kube_harness import (
    NS,
    CallCounter,
    Cluster,
    Emulator,
    emulator_client,
    operator_settings,
    ready_status,
    stamp,
)

__all__ = [
    "NS",
    "CallCounter",
    "Cluster",
    "Emulator",
    "emulator_client",
    "operator_settings",
    "play_pod",
    "ready_status",
    "stamp",
]


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
