"""A real control plane in a subprocess (process backend, SQLite, local encrypted store)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.testing import tarball as source_tarball


@dataclass
class RunningServer:
    root: Path
    env: dict[str, str]
    url: str = ""
    key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    def start(self) -> None:
        ready = self.root / "server.url"
        ready.unlink(missing_ok=True)
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "server", "--ready-file", str(ready)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "server.log").read_text())
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        creds = json.loads((self.root / "config" / "credentials.json").read_text())
        self.key = creds["api_key"]

    def client(self) -> Client:
        c = Client(self.url, self.key)
        self.clients.append(c)
        return c

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash or an OOM kill would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        # The clients first: a keep-alive connection left open holds a graceful stop back.
        for c in self.clients:
            c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                # Reaped, or its Popen warns ResourceWarning when collected, failing whichever
                # test runs then (CI: a schema test after a TLS server's slow stop).
                self.proc.wait(10)


def server_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(
        {
            "ORCH_HOME": str(root / "home"),
            "ORCH_CONFIG_DIR": str(root / "config"),
            "ORCH_SERVER__PORT": "0",
            "ORCH_CONTROLLER__RESYNC_SECONDS": "0.2",
            "ORCH_CONTROLLER__STOP_GRACE_SECONDS": "2",
            "ORCH_CONTROLLER__RETRY_BACKOFF_SECONDS": "0.2",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    s = RunningServer(root=tmp_path, env=server_env(tmp_path))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def _kill_leftovers(home: Path) -> None:
    """Supervisors and replicas outlive the server by design; the test cleans up after itself."""
    for pid_file in list(home.glob("work/**/*.pid")):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, KeyError, OSError):
            pass


def script_job(
    client: Client, name: str, script: str, *, program: str = "train.py", **fields: object
) -> None:
    """Upload ``script`` as the job's source and create a script-mode job running it."""
    uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
    client.upload_bytes(source_tarball({"train.py": script}), uri)
    spec: dict[str, object] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": program, "sagemaker_submit_directory": uri},
    }
    spec.update(fields)
    client.create_training_job(spec)


def wait_for_log(client: Client, job: str, text: str, timeout: float = 20.0) -> None:
    """Until the job's log holds ``text`` (the script reached a known line)."""
    deadline = time.monotonic() + timeout
    while text not in client.training_job_logs(job).text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{job!r} never logged {text!r}")
        time.sleep(0.1)
