"""Endpoint replicas' logs on Docker (``ReplicaLogs``): a replica's stream is its launcher's
log (``<logs>/endpoints/<endpoint>/<replica-id>.log``: the model download, a refused start)
followed by its container's output, read through the Docker API with the engine's timestamps,
which become the lines' time marks (the timestamps themselves are removed).

A container's output goes when the container is removed, so before removing one the backend
appends it to the launcher's log, with its marks beside it (``training.joblog``'s times
file): the stream reads the same, byte for byte, once the replica is gone. Reads within
``CACHE_SECONDS`` of each other share one fetch of the container's log.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import docker
from docker.errors import DockerException
from docker.models.containers import Container

from orchestrator.backends.docker import engine
from orchestrator.backends.process.jobs import read_log
from orchestrator.errors import BackendError
from orchestrator.training.joblog import (
    MARK,
    FileMarks,
    ListMarks,
    Mark,
    Marks,
    split_timestamps,
    times_path,
)

REPLICA_LABEL = "orchestrator.replica"
CACHE_SECONDS = 0.5


class DockerReplicaLogs:
    client: docker.DockerClient
    owner: str
    replica_logs_dir: Path

    def _logs_init(self) -> None:
        self._log_cache: dict[tuple[str, str], tuple[float, bytes, list[Mark]]] = {}
        self._log_lock = threading.Lock()

    def _log_path(self, endpoint: str, replica_id: str) -> Path:
        return self.replica_logs_dir / endpoint / f"{replica_id}.log"

    def _container_of(self, endpoint: str, replica_id: str) -> Container | None:
        try:
            found = self.client.containers.list(
                all=True,
                ignore_removed=True,
                filters=engine.label_filter(self.owner, engine.KIND_REPLICA, endpoint),
            )
        except DockerException as e:
            raise BackendError(f"Docker: listing replicas failed: {e}") from e
        return next((c for c in found if c.labels.get(REPLICA_LABEL) == replica_id), None)

    def _container_output(self, endpoint: str, replica_id: str) -> tuple[bytes, list[Mark]]:
        key = (endpoint, replica_id)
        with self._log_lock:
            cached = self._log_cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1], cached[2]
        c = self._container_of(endpoint, replica_id)
        data, marks = b"", list[Mark]()
        if c is not None and not self._kept(endpoint, replica_id):
            with contextlib.suppress(DockerException):  # removed meanwhile: it was kept first
                data, marks = split_timestamps(c.logs(stdout=True, stderr=True, timestamps=True))
        with self._log_lock:
            self._log_cache[key] = (time.monotonic(), data, marks)
        return data, marks

    def _kept(self, endpoint: str, replica_id: str) -> bool:
        return self._log_path(endpoint, replica_id).with_suffix(".kept").exists()

    def _launcher_size(self, endpoint: str, replica_id: str) -> int:
        try:
            return self._log_path(endpoint, replica_id).stat().st_size
        except FileNotFoundError:
            return 0

    # --- ReplicaLogs ----------------------------------------------------------------------
    def replica_log_ids(self, endpoint: str) -> list[str]:
        return sorted(p.stem for p in (self.replica_logs_dir / endpoint).glob("*.log"))

    def read_replica_log(
        self, endpoint: str, replica_id: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        own = self._launcher_size(endpoint, replica_id)
        if offset < own:
            return read_log(self._log_path(endpoint, replica_id), offset, min(limit, own - offset))
        data, _ = self._container_output(endpoint, replica_id)
        chunk = data[offset - own : offset - own + limit]
        return chunk, offset + len(chunk)

    def replica_log_marks(self, endpoint: str, replica_id: str) -> Marks:
        path = self._log_path(endpoint, replica_id)
        kept: list[Mark] = []
        if times_path(path).exists():
            file_marks = FileMarks(times_path(path))
            try:
                kept = [file_marks[i] for i in range(len(file_marks))]
            finally:
                file_marks.close()
        own = self._launcher_size(endpoint, replica_id)
        _, marks = self._container_output(endpoint, replica_id)
        shifted = [(o + own, ms) for o, ms in marks if not kept or ms > kept[-1][1]]
        return ListMarks(kept + shifted)

    def keep_container_log(self, endpoint: str, replica_id: str, c: Container) -> None:
        """Append the container's output to the launcher's log before the container goes."""
        if self._kept(endpoint, replica_id):
            return
        with contextlib.suppress(DockerException):
            data, marks = split_timestamps(c.logs(stdout=True, stderr=True, timestamps=True))
            path = self._log_path(endpoint, replica_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            own = self._launcher_size(endpoint, replica_id)
            with path.open("ab") as f:
                f.write(data)
            with times_path(path).open("ab") as f:
                f.write(b"".join(MARK.pack(o + own, ms) for o, ms in marks))
            path.with_suffix(".kept").write_text("")
        with self._log_lock:
            self._log_cache.pop((endpoint, replica_id), None)
