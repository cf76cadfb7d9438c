"""The process and Docker harnesses: a real ``orch server`` in a subprocess (SQLite, the local
encrypted object store), real scripts, real replicas; the process backend runs them as host
processes, the Docker backend as hardened containers of the project's images."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator import procs
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
        # Transform runners say how far they got often enough for a scenario to catch them.
        env.setdefault("ORCH_TRANSFORM__PROGRESS_INTERVAL_SECONDS", "0.2")
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

    def still_running(self, name: str) -> list[str]:
        """Live processes of the job: its runners (their pid files) and any process started
        under its directory (their model servers)."""
        root = self.server.root / "home" / "work" / "transform-jobs" / name
        out = []
        for pid_file in root.glob("**/*.pid"):
            pid = procs.ProcessId.from_file(pid_file)
            if pid is not None and procs.alive(pid):
                out.append(f"runner {pid.pid} ({pid_file.relative_to(root)})")
        return out + [f"process {pid} (an argument under {root})" for pid in _under(root)]

    def kill_instance(self, name: str, instance: int) -> None:
        """SIGKILL to the process group of the instance's latest runner (its pid file): the
        runner and its model server child (on Docker the server's container is left behind,
        as a host that loses its runner leaves it)."""
        root = self.server.root / "home" / "work" / "transform-jobs" / name / f"instance-{instance}"
        attempts = sorted(
            root.glob("attempt-*/supervisor.pid"), key=lambda p: int(p.parent.name[8:])
        )
        assert attempts, f"{self.backend}: no runner of {name} instance {instance} under {root}"
        pid = procs.ProcessId.from_file(attempts[-1])
        assert pid is not None and procs.alive(pid), f"{attempts[-1]}: the runner is not running"
        procs.signal_group(pid, signal.SIGKILL)


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
            *work.glob(f"transform-jobs/{name}/**/*.pid"),
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
                all=True, ignore_removed=True, filters={"label": f"orchestrator.resource={name}"}
            )
        )

    def leftovers(self, name: str) -> list[str]:
        found = [f"container {c.name} ({c.status})" for c in self.containers(name)]
        networks = self.docker.networks.list(filters={"label": "orchestrator.kind=training-job"})
        return found + [f"network {n.name}" for n in networks if n.name.startswith(f"orch-{name}-")]

    def still_running(self, name: str) -> list[str]:
        """The host-side runners and any process under the job's directory, and the job's
        model server containers still running."""
        running = [c for c in self.containers(name) if c.status in ("created", "running")]
        return super().still_running(name) + [f"container {c.name} ({c.status})" for c in running]

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


def _under(root: Path) -> list[int]:
    """Live processes with a command-line argument under ``root`` (``/proc``)."""
    prefix = str(root).encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(prefix) for a in argv) and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


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
