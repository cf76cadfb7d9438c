"""Endpoint replicas' logs on Kubernetes: a stream per pod, ``VARIANT/POD``, the ``serve``
container's log through the API server with the kubelet's timestamps as the lines' times."""

from __future__ import annotations

from kube_harness import Cluster, Emulator, make_ready
from test_kube_endpoints import deployment, setup

from orchestrator.api.aws.logevents import Source, Window, forward
from orchestrator.kube.operator import Operator

MS = 1796292000123


def test_a_stream_per_pod_with_the_kubelets_times(
    cluster: Cluster, operator: Operator, emulator: Emulator
) -> None:
    setup(cluster)
    operator.run_once()
    pods = make_ready(cluster, deployment(cluster, "web-blue"), 2)
    emulator.km.logs[(pods[0], "serve")] = (
        "2026-12-03T10:00:00.123456789Z model loaded\n2026-12-03T10:00:01.000000000Z listening\n"
    )
    operator.run_once()  # the pass's snapshot sees the pods
    backend = operator.backend
    ids = backend.replica_log_ids("web")
    assert ids == sorted(f"Blue/{p}" for p in pods)  # VARIANT/POD
    src = Source(
        read=lambda o, n: backend.read_replica_log("web", f"Blue/{pods[0]}", o, n),
        marks=backend.replica_log_marks("web", f"Blue/{pods[0]}"),
        fallback_ms=0,
        complete=True,
    )
    events = forward(src, 0, Window(), limit=10).events
    assert [(e.ms, e.message) for e in events] == [(MS, "model loaded"), (MS + 877, "listening")]
    # a pod whose container has not started: an empty stream, not an error
    assert backend.read_replica_log("web", f"Blue/{pods[1]}", 0, 100) == (b"", 0)
