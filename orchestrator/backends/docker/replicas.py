"""Endpoint replicas on Docker: one container of the serving image per replica.

A host-side launcher (``replica_launch``) fetches the model into
``<work>/endpoints/<endpoint>/<replica-id>/`` and starts the container
``orch-<endpoint>-<replica-id>``, labelled with the replica's endpoint, variant, slot,
generation and id, its port 8080 published on ``publish_host``. Observation lists containers
by label, so a restarted control plane finds every replica again: running and answering
``/ping`` from the host is ready; running and not answering yet is starting; exited (or a
launcher that died without a container) is dead, with the exit code and the last log lines.
With ``ORCH_SERVING__REPLICA_TLS`` the launch also writes ``tls/`` (the replica's certificate
from the replica CA for the publish host and ``127.0.0.1``, its key, the CA certificate; 0600,
owned by the container's user) mounted read-only at ``/opt/ml/tls``: the replica serves HTTPS,
its container health check and the controller's ``/ping`` verify it against the CA, and its
URL (from the ``orchestrator.tls`` label) is ``https://``.
Removal is level-triggered: SIGTERM, SIGKILL once the grace has passed, then the container and
the scratch are removed. Each replica's output is its log stream (``replica_logs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from orchestrator import procs
from orchestrator.backends.docker import engine
from orchestrator.backends.docker.replica_launch import PORT, SPEC_FILE, TLS_DIR
from orchestrator.backends.docker.replica_logs import DockerReplicaLogs
from orchestrator.backends.process.jobs import store_access, tail_of
from orchestrator.backends.process.replicas import REPLICA_FILE, Pinger, ReplicaFile
from orchestrator.controller.plan.types import ObservedReplica, ReplicaLaunch
from orchestrator.errors import BackendError
from orchestrator.settings import Settings
from orchestrator.tls import issue, replica_ca
from orchestrator.training.files import read_json, write_atomic, write_model

LAUNCHER_PID = "launcher.pid"
TERMINATING_FILE = "terminating"
VARIANT, SLOT, GENERATION, CONFIG, REPLICA, TLS = (
    "orchestrator.variant",
    "orchestrator.slot",
    "orchestrator.generation",
    "orchestrator.config",
    "orchestrator.replica",
    "orchestrator.tls",
)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z")).replace(tzinfo=UTC)
    except ValueError:
        return None


class DockerReplicas(DockerReplicaLogs):
    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        self.settings = settings
        self.client = client
        self.owner = engine.owner_of(settings.work_dir)
        self.endpoints_dir = settings.work_dir / "endpoints"
        self.replica_logs_dir = settings.logs_dir / "endpoints"
        self._pinger = Pinger(settings)
        self._logs_init()

    def _root(self, endpoint: str, replica_id: str) -> Path:
        return self.endpoints_dir / endpoint / replica_id

    def _launcher_log(self, endpoint: str, replica_id: str) -> Path:
        return self.replica_logs_dir / endpoint / f"{replica_id}.log"

    def _replica_containers(self, endpoint: str | None = None) -> list[Container]:
        try:
            return list(
                self.client.containers.list(
                    all=True,
                    ignore_removed=True,
                    filters=engine.label_filter(self.owner, engine.KIND_REPLICA, endpoint),
                )
            )
        except DockerException as e:
            raise BackendError(f"Docker: listing replicas failed: {e}") from e

    def launch_replica(self, launch: ReplicaLaunch) -> None:
        root = self._root(launch.endpoint, launch.replica_id)
        if (root / LAUNCHER_PID).exists():
            return
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        s = self.settings
        container = launch.model.serving_containers[0]
        doc = ReplicaFile(
            endpoint=launch.endpoint,
            variant=launch.variant,
            slot=launch.slot,
            replica_id=launch.replica_id,
            generation=launch.generation,
            config=launch.config,
            container=container,
            containers=launch.model.serving_containers,
            model_name=launch.model_name,
            root=str(root),
            store=store_access(s),
            allow_file_uris=s.allow_file_uris,
            grace_seconds=s.controller.stop_grace_seconds,
        )
        tls = s.serving.replica_tls
        if tls:
            self._write_tls(root)
        nano, memory, _ = engine.limits(launch.instance_type)
        spec: dict[str, Any] = {
            "image": container.own_image or s.docker.serving_image,
            "name": f"orch-{launch.endpoint}-{launch.replica_id}",
            "user": engine.container_user(s.docker.user),
            "publish_host": s.docker.publish_host,
            "environment": dict(container.Environment),
            "grace_seconds": s.controller.stop_grace_seconds,
            "nano_cpus": nano,
            "memory_bytes": memory,
            "labels": {
                engine.OWNER: self.owner,
                engine.KIND: engine.KIND_REPLICA,
                engine.RESOURCE: launch.endpoint,
                VARIANT: launch.variant,
                SLOT: str(launch.slot),
                GENERATION: str(launch.generation),
                CONFIG: launch.config,
                REPLICA: launch.replica_id,
                TLS: "true" if tls else "false",
            },
            "tls": tls,
        }
        write_model(root / REPLICA_FILE, doc)
        write_atomic(root / SPEC_FILE, json.dumps(spec))
        pid = procs.spawn(
            [sys.executable, "-m", "orchestrator.backends.docker.replica_launch", str(root)],
            cwd=root,
            log=self._launcher_log(launch.endpoint, launch.replica_id),
        )
        write_atomic(root / LAUNCHER_PID, pid.to_json())

    def list_endpoints(self) -> list[str]:
        names = {c.labels.get(engine.RESOURCE, "") for c in self._replica_containers()}
        with contextlib.suppress(FileNotFoundError):
            names |= {d.name for d in self.endpoints_dir.iterdir() if d.is_dir()}
        return sorted(n for n in names if n)

    def _write_tls(self, root: Path) -> None:
        """The replica's certificate, key and the CA certificate under ``root/tls``, readable
        by the container's user only."""
        s = self.settings
        ca = replica_ca(s.replica_ca_dir)
        host = s.docker.publish_host
        if host in ("", "0.0.0.0", "::"):
            # The replica URL names the publish host, and so must the certificate.
            raise BackendError(
                f"ORCH_DOCKER__PUBLISH_HOST={host!r} with ORCH_SERVING__REPLICA_TLS: set it to "
                "the address the control plane reaches replicas at (e.g. 127.0.0.1 or the "
                "host's private address), which their certificates then name"
            )
        names = list(dict.fromkeys((host, "127.0.0.1", "localhost")))
        directory = root / TLS_DIR
        issue(ca, names, directory)
        (directory / "ca.crt").write_bytes(ca.cert.read_bytes())
        (directory / "ca.crt").chmod(0o600)
        if os.geteuid() == 0:  # the container runs as the configured user: make them theirs
            uid, gid = _ids(engine.container_user(s.docker.user))
            for path in (directory, *directory.iterdir()):
                os.chown(path, uid, gid)

    def _ping(self, url: str) -> tuple[bool, str]:
        return self._pinger.ping(url)

    def _url(self, c: Container) -> str | None:
        ports = (c.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bound = ports.get(f"{PORT}/tcp") or []
        if not bound:
            return None
        scheme = "https" if c.labels.get(TLS) == "true" else "http"
        return f"{scheme}://{self.settings.docker.publish_host}:{bound[0]['HostPort']}"

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        out: list[ObservedReplica] = []
        by_id = {c.labels.get(REPLICA, ""): c for c in self._replica_containers(endpoint)}
        ids = set(by_id)
        with contextlib.suppress(FileNotFoundError):
            ids |= {d.name for d in (self.endpoints_dir / endpoint).iterdir() if d.is_dir()}
        for rid in sorted(ids):
            observed = self._observe_one(endpoint, rid, by_id.get(rid))
            if observed is not None:
                out.append(observed)
        return out

    def _observe_one(self, endpoint: str, rid: str, c: Container | None) -> ObservedReplica | None:
        root = self._root(endpoint, rid)
        if c is not None:
            labels = c.labels
            variant, slot, generation, config = (
                labels.get(VARIANT, ""),
                int(labels.get(SLOT, "0")),
                int(labels.get(GENERATION, "0")),
                labels.get(CONFIG, ""),
            )
            started = _parse_time(str(c.attrs.get("Created", "")))
        else:
            doc = read_json(root / REPLICA_FILE)
            if doc is None:
                if root.exists() and time.time() - root.stat().st_mtime > 10:
                    shutil.rmtree(root, ignore_errors=True)  # a launch that never happened
                return None
            r = ReplicaFile.model_validate(doc)
            variant, slot, generation, config = r.variant, r.slot, r.generation, r.config
            started = datetime.fromtimestamp((root / REPLICA_FILE).stat().st_mtime, tz=UTC)
        base: dict[str, Any] = {
            "endpoint": endpoint,
            "variant": variant,
            "slot": slot,
            "replica_id": rid,
            "started_at": started,
            "generation": generation,
            "config": config,
        }
        if (root / TERMINATING_FILE).exists() or (c is not None and not root.exists()):
            if self._drive_termination(endpoint, rid, c):
                return None
            return ObservedReplica(state="terminating", **base)
        if c is None:
            pid = procs.ProcessId.from_file(root / LAUNCHER_PID)
            if pid is not None and procs.alive(pid):
                return ObservedReplica(state="starting", **base)
            tail = tail_of(self._launcher_log(endpoint, rid), lines=8)
            return ObservedReplica(state="dead", message=f"launch failed: {tail}", **base)
        if c.status == "running":
            url = self._url(c)
            ready, why = self._ping(url) if url is not None else (False, "")
            return ObservedReplica(
                state="ready" if ready else "starting", url=url, message=why, **base
            )
        if c.status == "created":
            pid = procs.ProcessId.from_file(root / LAUNCHER_PID)
            if pid is not None and procs.alive(pid):
                return ObservedReplica(state="starting", **base)
            tail = tail_of(self._launcher_log(endpoint, rid), lines=8)
            return ObservedReplica(state="dead", message=f"never started: {tail}", **base)
        code = (c.attrs.get("State") or {}).get("ExitCode")
        try:
            tail = c.logs(tail=8).decode(errors="replace").strip()
        except DockerException:
            tail = ""
        return ObservedReplica(state="dead", message=f"exit code {code}: {tail}", **base)

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        root = self._root(endpoint, replica_id)
        marker = root / TERMINATING_FILE
        containers = [
            c for c in self._replica_containers(endpoint) if c.labels.get(REPLICA) == replica_id
        ]
        c = containers[0] if containers else None
        if root.exists() and not marker.exists():
            write_atomic(marker, str(time.time()))
            if c is not None and c.status == "running":
                with contextlib.suppress(DockerException):
                    c.kill(signal="SIGTERM")
        self._drive_termination(endpoint, replica_id, c)

    def _drive_termination(self, endpoint: str, rid: str, c: Container | None) -> bool:
        """One step of removal; True once the container and the scratch are gone."""
        root = self._root(endpoint, rid)
        if c is not None:
            try:
                since = float((root / TERMINATING_FILE).read_text())
            except (FileNotFoundError, ValueError):
                since = 0.0
            grace = self.settings.controller.stop_grace_seconds
            if c.status == "running" and time.time() - since < grace:
                return False
            self.keep_container_log(endpoint, rid, c)  # its output outlives it
            try:
                c.remove(force=True)  # SIGKILL if it is still running after the grace
            except NotFound:
                pass
            except DockerException:
                return False
        shutil.rmtree(root, ignore_errors=True)
        parent = root.parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
        return True

    def close(self) -> None:
        self._pinger.close()


def _ids(user: str) -> tuple[int, int]:
    """``uid[:gid]`` of ``ORCH_DOCKER__USER`` as numbers (the key is chowned to them)."""
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise BackendError(
            f"ORCH_DOCKER__USER={user!r}: with ORCH_SERVING__REPLICA_TLS the replica's key is "
            "given to the container's user, so name it by number (uid:gid, e.g. 1000:1000)"
        )
    return int(uid), int(gid or uid)
