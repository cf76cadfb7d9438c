"""The process and Docker harnesses: a real ``orch server`` in a subprocess (SQLite, the local
encrypted object store), real scripts, real replicas; the process backend runs them as host
processes, the Docker backend as hardened containers of the project's images."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.client import Client
from tests.conformance.harness import Answer, Harness
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env


class LocalHarness(Harness):
    """``orch server`` on one host; ``tick`` has nothing to do: the work runs by itself."""

    def __init__(self, root: Path, **env: str) -> None:
        super().__init__()
        env.setdefault("ORCH_CONTROLLER__CHECKPOINT_SYNC_SECONDS", "0.5")
        # Usage sampled often enough that a job of a few seconds has several samples.
        env.setdefault("ORCH_CONTROLLER__USAGE_INTERVAL_SECONDS", "0.5")
        self.server = RunningServer(root=root, env=server_env(root, **env))
        self.server.start()
        self.client: Client = self.server.client()
        self.port = int(self.server.url.rsplit(":", 1)[1])

    def close(self) -> None:
        self.server.stop()
        _kill_leftovers(self.server.root / "home")

    @contextlib.contextmanager
    def job_slots(self, slots: int) -> Iterator[None]:
        """The server restarted on the same home with the setting, then restarted without it
        (the setting is read at start; what runs outlives a restart by design)."""
        self._restart(ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS=str(slots))
        try:
            yield
        finally:
            self._restart(ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS=None)

    def _restart(self, **env: str | None) -> None:
        self.server.stop()
        self.server.clients = []
        for k, v in env.items():
            if v is None:
                self.server.env.pop(k, None)
            else:
                self.server.env[k] = v
        self.server.start()
        self.client = self.server.client()
        self.port = int(self.server.url.rsplit(":", 1)[1])

    def round_trip(self, endpoint: str, body: bytes, target_variant: str | None) -> Answer:
        answer = self.client.invoke_endpoint(endpoint, body, target_variant=target_variant)
        return Answer(answer.variant, json.loads(answer.body)["predictions"])

    def hosts_of(self, job: str) -> list[str]:
        """Each host (process or container) prints its own name; its log lines carry its prefix."""
        log = self.client.training_job_logs(job).text
        seen = re.findall(r"^\[(algo-\d+)\] host=(\S+)$", log, re.MULTILINE)
        assert all(prefix == own for prefix, own in seen), seen
        return sorted(own for _, own in seen)

    def framework_env(self, job: str) -> dict[str, dict[str, str]]:
        log = self.client.training_job_logs(job).text
        found = re.findall(r"^\[(algo-\d+)\] framework-env=(.*)$", log, re.MULTILINE)
        return {host: json.loads(doc) for host, doc in found}


class ProcessHarness(LocalHarness):
    """The process backend: jobs and replicas are processes on this host."""

    backend = "process"

    def __init__(self, root: Path) -> None:
        super().__init__(root)

    def control_plane_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def leftovers(self, name: str) -> list[str]:
        """Live processes of the resource (the backend's pid files, checked in /proc)."""
        work = self.server.root / "home" / "work"
        out = []
        for pid_file in [
            *work.glob(f"training-jobs/{name}/**/*.pid"),
            *work.glob(f"endpoints/{name}/**/*.pid"),
        ]:
            pid = int(json.loads(pid_file.read_text())["pid"])
            if _alive(pid):
                out.append(f"process {pid} ({pid_file.relative_to(work)})")
        return out

    def replicas(self, endpoint: str) -> int:
        root = self.server.root / "home" / "work" / "endpoints" / endpoint
        return sum(
            1
            for pid_file in root.glob("*/replica.pid")
            if not (pid_file.parent / "terminating").exists()
            and _alive(int(json.loads(pid_file.read_text())["pid"]))
        )


class DockerHarness(LocalHarness):
    """The Docker backend: jobs and replicas are containers (``docker ps`` is its door)."""

    backend = "docker"
    slowness = 2.0
    # The bridge network's gateway: the host, as a container with a network sees it.
    GATEWAY = "172.17.0.1"

    def __init__(self, root: Path, docker: Any) -> None:
        super().__init__(root, ORCH_BACKEND="docker")
        self.docker = docker

    def close(self) -> None:
        from tests.docker.conftest import remove_test_containers

        super().close()
        remove_test_containers(self.docker, self.server.root)

    def control_plane_address(self) -> tuple[str, int]:
        return self.GATEWAY, self.port

    def containers(self, name: str) -> list[Any]:
        return list(
            self.docker.containers.list(
                all=True, filters={"label": f"orchestrator.resource={name}"}
            )
        )

    def leftovers(self, name: str) -> list[str]:
        found = [f"container {c.name} ({c.status})" for c in self.containers(name)]
        networks = self.docker.networks.list(filters={"label": "orchestrator.kind=training-job"})
        return found + [f"network {n.name}" for n in networks if n.name.startswith(f"orch-{name}-")]

    def replicas(self, endpoint: str) -> int:
        return sum(
            1
            for c in self.containers(endpoint)
            if c.labels.get("orchestrator.kind") == "replica" and c.status == "running"
        )

    def check_isolated(self, job: str) -> None:
        """The job's own probes (see ``ISOLATION_PROBE``) were blocked, every one."""
        log = self.client.training_job_logs(job).text
        host, port = self.control_plane_address()
        assert f"blocked {host}:{port}" in log, log
        assert "blocked 1.1.1.1:53" in log, log
        assert "connected to" not in log, log


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def docker_available() -> tuple[Any, str | None]:
    """A Docker client, or why the Docker cells cannot run here."""
    import docker

    from orchestrator.settings import DockerSettings

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        return None, f"no Docker engine reachable ({e})"
    wanted = DockerSettings()
    missing = []
    for image in (wanted.training_image, wanted.serving_image):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        client.close()
        return None, f"images {', '.join(missing)} are missing (build them with `make images`)"
    return client, None


__all__ = ["DockerHarness", "ProcessHarness", "docker_available"]
