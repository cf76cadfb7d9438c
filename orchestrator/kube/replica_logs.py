"""Endpoint replicas' logs on Kubernetes (``ReplicaLogs``), read through the API server: a
stream per pod of each variant's Deployment, ``VARIANT/POD``, the ``serve`` container's log
with the kubelet's timestamps as the lines' time marks (the timestamps themselves removed).
A pod's log goes with the pod (the cluster's log collection keeps it longer, if any). Reads
within ``CACHE_SECONDS`` of each other share one fetch of a pod's log."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from orchestrator.kube import fleets as f
from orchestrator.kube import objects as o
from orchestrator.training.joblog import ListMarks, Mark, Marks, split_timestamps

SERVE_CONTAINER = "serve"
CACHE_SECONDS = 0.5


class KubeReplicaLogs:
    _log_cache: dict[tuple[str, str], tuple[float, bytes, list[Mark]]]

    if TYPE_CHECKING:  # the backend's own (``kube.backend``)

        def _deployments(self, endpoint: str) -> list[dict[str, Any]]: ...
        def _pods(self, labels: dict[str, str]) -> list[dict[str, Any]]: ...
        def _container_log(
            self, pod: dict[str, Any], container: str, what: str, *, timestamps: bool = False
        ) -> bytes: ...

    def _pods_by_stream(self, endpoint: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for d in self._deployments(endpoint):
            annotations = d["metadata"].get("annotations") or {}
            config = annotations.get(o.ANNOTATION_CONFIG_NAME, "")
            variant = annotations.get(o.ANNOTATION_VARIANT_NAME, "")
            for pod in self._pods(f.fleet_labels(endpoint, config, variant)):
                out[f"{variant}/{pod['metadata']['name']}"] = pod
        return out

    def _output(self, endpoint: str, replica_id: str) -> tuple[bytes, list[Mark]]:
        if not hasattr(self, "_log_cache"):
            self._log_cache = {}
        key = (endpoint, replica_id)
        cached = self._log_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1], cached[2]
        pod = self._pods_by_stream(endpoint).get(replica_id)
        data, marks = b"", list[Mark]()
        if pod is not None:
            what = f"the log of replica {replica_id} of endpoint {endpoint}"
            raw = self._container_log(pod, SERVE_CONTAINER, what, timestamps=True)
            data, marks = split_timestamps(raw)
        with _LOCK:
            self._log_cache[key] = (time.monotonic(), data, marks)
        return data, marks

    # --- ReplicaLogs ----------------------------------------------------------------------
    def replica_log_ids(self, endpoint: str) -> list[str]:
        return sorted(self._pods_by_stream(endpoint))

    def read_replica_log(
        self, endpoint: str, replica_id: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        data, _ = self._output(endpoint, replica_id)
        chunk = data[offset : offset + limit]
        return chunk, offset + len(chunk)

    def replica_log_marks(self, endpoint: str, replica_id: str) -> Marks:
        return ListMarks(self._output(endpoint, replica_id)[1])


_LOCK = threading.Lock()
