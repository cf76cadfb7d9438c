"""The runner of one transform instance attempt on Docker: the process backend's runner
(``python -m orchestrator.backends.docker.transform_main ROOT``) with a container as its model
server.

The runner fetches the model on the host (the object store and its keys stay there) into
``ROOT/replica/`` and starts the container ``container.json`` describes as an endpoint replica's
(``replica_launch.replica_create_kwargs``); it reaches it at its published port, streams its
output into the job log, and removes it when it stops. An inference pipeline runs in one
container, so its steps must name the same image (or none).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from orchestrator.backends.docker.replica_launch import PORT, one_image, replica_create_kwargs
from orchestrator.backends.docker.transforms import SPEC_FILE
from orchestrator.backends.process.replica_main import fetch_containers, serving_containers
from orchestrator.backends.process.replicas import REPLICA_FILE
from orchestrator.backends.process.transform_main import (
    TAIL_LINES,
    JobLog,
    main,
    server_replica_file,
)
from orchestrator.backends.process.transforms import READY_FILE, SERVER_DIR, InstanceFile
from orchestrator.errors import OrchestratorError
from orchestrator.training.files import read_json, write_atomic, write_model
from orchestrator.transformer.server import wait_for_ping


class DockerModelServer:
    """The job's model server as a container of the serving image (or the model's)."""

    def __init__(self, root: Path, doc: InstanceFile, log: JobLog) -> None:
        self.root = root
        self.server_root = root / SERVER_DIR
        self.doc = doc
        self.log = log
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        spec = read_json(root / SPEC_FILE)
        if spec is None:
            raise OrchestratorError(f"{root / SPEC_FILE} is missing or unreadable")
        self.spec: dict[str, Any] = spec
        self._client: docker.DockerClient | None = None
        self._container: Container | None = None
        self._failed: str | None = None  # why the container could not start
        self.url = ""  # where its port 8080 is published, once it runs

    def start(self) -> None:
        try:
            self._container = self._create()
        except OrchestratorError as e:
            self._failed = e.message
            return
        self.url = self._published_url()
        threading.Thread(target=self._stream, args=(self._container,), daemon=True).start()

    def _create(self) -> Container:
        self.server_root.mkdir(parents=True, exist_ok=True)
        replica = server_replica_file(self.doc, self.server_root)
        write_model(self.server_root / REPLICA_FILE, replica)
        containers = serving_containers(self.server_root, replica)
        refused = one_image(containers)
        if refused is not None:
            raise OrchestratorError(refused)
        try:
            fetch_containers(self.server_root, replica, containers)
        except OrchestratorError as e:
            raise OrchestratorError(f"model download failed: {e.message}") from e
        root = self.server_root
        for d in [root / "model", root / "code", root / "steps", *(root / "steps").glob("*/*")]:
            if d.exists():
                d.chmod(0o755)  # readable by the container's user; never writable
        kwargs = replica_create_kwargs(self.spec, root, containers, replica.model_name)
        try:
            self._client = docker.from_env()
            try:
                container = self._client.containers.create(**kwargs)
            except APIError as e:
                if e.status_code != 409:
                    raise
                # Left by an earlier runner of this very attempt: start afresh.
                self._client.containers.get(kwargs["name"]).remove(force=True)
                container = self._client.containers.create(**kwargs)
            container.start()
        except ImageNotFound as e:
            raise OrchestratorError(
                f"image {kwargs['image']!r} is not on this host (build it with `make images` "
                "or docker load it)"
            ) from e
        except DockerException as e:
            raise OrchestratorError(f"the model server's container failed to start: {e}") from e
        return container

    def _stream(self, container: Container) -> None:
        with contextlib.suppress(DockerException):
            self.log.pump(container.logs(stream=True, follow=True), self.tail)

    def _published_url(self) -> str:
        if self._container is None:
            return ""
        with contextlib.suppress(DockerException):
            self._container.reload()
        ports = (self._container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bound = ports.get(f"{PORT}/tcp") or []
        return f"http://{self.spec['publish_host']}:{bound[0]['HostPort']}" if bound else ""

    def wait_ready(self, timeout: float) -> None:
        wait_for_ping(self.url, timeout, self.died)
        write_atomic(self.root / READY_FILE, str(time.time()))

    def died(self) -> str | None:
        if self._failed is not None:
            return self._failed
        c = self._container
        if c is None:
            return None
        try:
            c.reload()
        except NotFound:
            return "the model server's container was removed"
        except DockerException as e:
            return f"the model server's container cannot be inspected: {e}"
        if c.status not in ("exited", "dead"):
            return None
        state = c.attrs.get("State") or {}
        code = state.get("ExitCode")
        how = (
            "was OOM-killed at its memory limit (State.OOMKilled)"
            if state.get("OOMKilled")
            else f"exited with code {code}"
        )
        try:
            tail = c.logs(tail=5).decode(errors="replace").strip().replace("\n", "; ")
        except DockerException:
            tail = "; ".join(list(self.tail)[-5:])
        return f"the model server's container {how}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        c = self._container
        if c is not None:
            with contextlib.suppress(NotFound, DockerException):
                c.stop(timeout=int(self.doc.grace_seconds))
            with contextlib.suppress(NotFound, DockerException):
                c.remove(force=True)
            self._container = None
        if self._client is not None:
            self._client.close()
            self._client = None


if __name__ == "__main__":
    raise SystemExit(main(server_factory=DockerModelServer))
