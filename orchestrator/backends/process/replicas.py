"""Endpoint replicas on the process backend: one inference-server process per replica.

Layout under ``<work>/endpoints/<endpoint>/<replica-id>/``: ``replica.json``, ``replica.pid``,
``port`` (written by the server once it listens), ``terminating`` (when asked to go), and
``model/`` + ``code/`` (and ``tls/replica.crt``/``.key``, 0600, with
``ORCH_SERVING__REPLICA_TLS``: a certificate for ``127.0.0.1`` from the replica CA; the replica
then serves HTTPS and is pinged over it, verified against that CA). Each replica logs to
``<logs>/endpoints/<endpoint>/<replica-id>.log`` (kept when the replica goes), with the time
marks of its lines beside it (``.log.times``, written by ``replica_output`` in the replica).
Removal is level-triggered: SIGTERM now, SIGKILL once the grace has passed, scratch deleted
once the process is gone; every observation moves that along.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel

from orchestrator import procs
from orchestrator.backends.process.jobs import read_log, store_access, tail_of
from orchestrator.controller.plan.types import ObservedReplica, ReplicaLaunch
from orchestrator.resources.models import ContainerDefinition
from orchestrator.settings import Settings
from orchestrator.tls import issue, replica_ca, replica_client_context
from orchestrator.training.files import StoreAccess, read_json, write_atomic, write_model
from orchestrator.training.joblog import FileMarks, ListMarks, Marks, times_path

REPLICA_FILE = "replica.json"
PID_FILE = "replica.pid"
PORT_FILE = "port"
TERMINATING_FILE = "terminating"
PING_TIMEOUT = 0.5


class ReplicaFile(BaseModel):
    endpoint: str
    variant: str
    slot: int
    replica_id: str
    generation: int
    config: str = ""
    container: ContainerDefinition
    # Every step of an inference pipeline (``container`` is the first); empty for one model.
    containers: list[ContainerDefinition] = []
    root: str
    store: StoreAccess
    allow_file_uris: bool = True
    grace_seconds: float = 30.0
    model_name: str = ""
    # HTTPS (ORCH_SERVING__REPLICA_TLS): the replica's certificate and key; empty: plain HTTP.
    tls_cert: str = ""
    tls_key: str = ""
    # Where the replica writes its output with time marks (``replica_output``); empty: its
    # output goes where it was started with, unmarked (the Docker launcher's).
    log: str = ""


class Pinger:
    """``GET /ping`` from the control plane's side: plain, or (``https://``) verified against
    the replica CA only; a failed handshake is reported as why the replica is not ready."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http = httpx.Client(timeout=PING_TIMEOUT, trust_env=False)
        self._https: httpx.Client | None = None
        if settings.serving.replica_tls:
            replica_ca(settings.replica_ca_dir)  # made now, so the data plane finds it

    def ping(self, url: str) -> tuple[bool, str]:
        """(ready, why not)."""
        client = self._http
        if url.startswith("https://"):
            if self._https is None:
                ctx = replica_client_context(replica_ca(self.settings.replica_ca_dir).cert)
                self._https = httpx.Client(timeout=PING_TIMEOUT, trust_env=False, verify=ctx)
            client = self._https
        try:
            return client.get(f"{url}/ping").status_code == 200, ""
        except httpx.ConnectError as e:
            if isinstance(e.__cause__, ssl.SSLError) or "CERTIFICATE" in str(e).upper():
                return False, f"TLS handshake with the replica failed: {e}"
            return False, ""
        except httpx.HTTPError:
            return False, ""

    def close(self) -> None:
        self._http.close()
        if self._https is not None:
            self._https.close()


class ProcessReplicas:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoints_dir = settings.work_dir / "endpoints"
        self.replica_logs_dir = settings.logs_dir / "endpoints"
        self._pinger = Pinger(settings)

    def _root(self, endpoint: str, replica_id: str) -> Path:
        return self.endpoints_dir / endpoint / replica_id

    def replica_log_path(self, endpoint: str, replica_id: str) -> Path:
        return self.replica_logs_dir / endpoint / f"{replica_id}.log"

    # --- ReplicaLogs ---------------------------------------------------------------------------
    def replica_log_ids(self, endpoint: str) -> list[str]:
        return sorted(p.stem for p in (self.replica_logs_dir / endpoint).glob("*.log"))

    def read_replica_log(
        self, endpoint: str, replica_id: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        return read_log(self.replica_log_path(endpoint, replica_id), offset, limit)

    def replica_log_marks(self, endpoint: str, replica_id: str) -> Marks:
        times = times_path(self.replica_log_path(endpoint, replica_id))
        return FileMarks(times) if times.exists() else ListMarks()

    def launch_replica(self, launch: ReplicaLaunch) -> None:
        root = self._root(launch.endpoint, launch.replica_id)
        if (root / PID_FILE).exists():
            return
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        s = self.settings
        tls_cert = tls_key = ""
        if s.serving.replica_tls:
            files = issue(replica_ca(s.replica_ca_dir), ["127.0.0.1", "localhost"], root / "tls")
            tls_cert, tls_key = str(files.cert), str(files.key)
        doc = ReplicaFile(
            endpoint=launch.endpoint,
            variant=launch.variant,
            slot=launch.slot,
            replica_id=launch.replica_id,
            generation=launch.generation,
            config=launch.config,
            container=launch.model.serving_containers[0],
            containers=launch.model.serving_containers,
            root=str(root),
            store=store_access(s),
            allow_file_uris=s.allow_file_uris,
            grace_seconds=s.controller.stop_grace_seconds,
            model_name=launch.model_name,
            tls_cert=tls_cert,
            tls_key=tls_key,
            log=str(self.replica_log_path(launch.endpoint, launch.replica_id)),
        )
        write_model(root / REPLICA_FILE, doc)
        pid = procs.spawn(
            [sys.executable, "-m", "orchestrator.backends.process.replica_main", str(root)],
            cwd=root,
            log=self.replica_log_path(launch.endpoint, launch.replica_id),
        )
        write_atomic(root / PID_FILE, pid.to_json())

    def list_endpoints(self) -> list[str]:
        try:
            return sorted(d.name for d in self.endpoints_dir.iterdir() if d.is_dir())
        except FileNotFoundError:
            return []

    def _ping(self, url: str) -> tuple[bool, str]:
        return self._pinger.ping(url)

    def _replica_roots(self, endpoint: str) -> list[Path]:
        try:
            return sorted(d for d in (self.endpoints_dir / endpoint).iterdir() if d.is_dir())
        except FileNotFoundError:
            return []

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        out: list[ObservedReplica] = []
        for root in self._replica_roots(endpoint):
            doc = read_json(root / REPLICA_FILE)
            if doc is None:
                if time.time() - root.stat().st_mtime > 10:
                    shutil.rmtree(root, ignore_errors=True)  # a launch that never happened
                continue
            r = ReplicaFile.model_validate(doc)
            pid = procs.ProcessId.from_file(root / PID_FILE)
            started = datetime.fromtimestamp((root / REPLICA_FILE).stat().st_mtime, tz=UTC)
            base = {
                "endpoint": endpoint,
                "variant": r.variant,
                "slot": r.slot,
                "replica_id": r.replica_id,
                "started_at": started,
                "generation": r.generation,
                "config": r.config,
            }
            if (root / TERMINATING_FILE).exists():
                self._drive_termination(root, pid, r.grace_seconds)
                if root.exists():
                    out.append(ObservedReplica(state="terminating", **base))  # type: ignore[arg-type]
                continue
            if pid is None or not procs.alive(pid):
                code = procs.exit_code(pid.pid) if pid else None
                tail = tail_of(self.replica_log_path(endpoint, r.replica_id), lines=8)
                message = f"exit code {code}" if code is not None else "process gone"
                out.append(ObservedReplica(state="dead", message=f"{message}: {tail}", **base))  # type: ignore[arg-type]
                continue
            port_text = (
                (root / PORT_FILE).read_text().strip() if (root / PORT_FILE).exists() else ""
            )
            scheme = "https" if r.tls_cert else "http"
            url = f"{scheme}://127.0.0.1:{port_text}" if port_text.isdigit() else None
            ready, why = self._ping(url) if url is not None else (False, "")
            # The server writes the port file once the model is loaded and it listens.
            ready_at = (
                datetime.fromtimestamp((root / PORT_FILE).stat().st_mtime, tz=UTC)
                if ready
                else None
            )
            out.append(
                ObservedReplica(
                    state="ready" if ready else "starting",
                    url=url,
                    message=why,
                    ready_at=ready_at,
                    **base,  # type: ignore[arg-type]
                )
            )
        return out

    def replica_processes(self, endpoint: str) -> list[tuple[str, str, int]]:
        """(variant, replica id, pid) of every live replica process, for CPU/memory sampling."""
        out: list[tuple[str, str, int]] = []
        for root in self._replica_roots(endpoint):
            doc = read_json(root / REPLICA_FILE)
            pid = procs.ProcessId.from_file(root / PID_FILE)
            if doc is None or pid is None or (root / TERMINATING_FILE).exists():
                continue
            if procs.alive(pid):
                out.append((str(doc.get("variant", "")), root.name, pid.pid))
        return out

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        root = self._root(endpoint, replica_id)
        if not root.exists():
            return
        marker = root / TERMINATING_FILE
        if not marker.exists():
            write_atomic(marker, str(time.time()))
            pid = procs.ProcessId.from_file(root / PID_FILE)
            if pid is not None:
                procs.signal_group(pid, signal.SIGTERM)
        doc = read_json(root / REPLICA_FILE)
        grace = float(doc.get("grace_seconds", 30.0)) if doc else 0.0
        self._drive_termination(root, procs.ProcessId.from_file(root / PID_FILE), grace)

    def _drive_termination(self, root: Path, pid: procs.ProcessId | None, grace: float) -> None:
        if pid is not None and procs.alive(pid):
            try:
                since = float((root / TERMINATING_FILE).read_text())
            except (FileNotFoundError, ValueError):
                since = 0.0
            if time.time() - since >= grace:
                procs.signal_group(pid, signal.SIGKILL)
            return
        shutil.rmtree(root, ignore_errors=True)
        parent = root.parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()

    def close(self) -> None:
        self._pinger.close()
