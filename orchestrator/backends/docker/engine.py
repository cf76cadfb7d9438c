"""What every container the Docker backend creates has in common: labels, hardening, limits.

Labels identify a container's resource (``orchestrator.kind``, ``orchestrator.resource``,
``orchestrator.attempt`` or the replica's fields) and never carry a secret. Every container
runs as a non-root user with all capabilities dropped, ``no-new-privileges``, a read-only
root filesystem (a tmpfs at ``/tmp`` for scratch writes), an init process that passes signals
on, and no Docker socket inside.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException
from docker.types import DeviceRequest

from orchestrator.errors import BackendError
from orchestrator.resources.instances import INSTANCE_TYPES

KIND = "orchestrator.kind"
RESOURCE = "orchestrator.resource"
ATTEMPT = "orchestrator.attempt"
HOST = "orchestrator.host"
# Which control plane's work directory a container belongs to: several control planes may
# share one engine, and each adopts and removes only its own containers.
OWNER = "orchestrator.owner"
KIND_JOB = "training-job"
KIND_REPLICA = "replica"
KIND_TRANSFORM = "transform-instance"  # one transform instance attempt's model server
TMPFS_SIZE = "1g"


def owner_of(work_dir: Path) -> str:
    return hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:16]


def connect() -> docker.DockerClient:
    """A client for the local engine (``DOCKER_HOST`` or the default socket)."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as e:
        raise BackendError(f"the Docker engine is not reachable: {e}") from e
    return client


def container_user(configured: str) -> str:
    """The configured user when we are root (we make the scratch theirs), else our own uid."""
    if os.geteuid() == 0:
        return configured
    return f"{os.getuid()}:{os.getgid()}"


def hardening(user: str, tmpfs_size: str = TMPFS_SIZE) -> dict[str, Any]:
    return {
        "user": user,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmpfs_size}"},
        "init": True,  # PID 1 forwards SIGTERM to the user's process and reaps
        "privileged": False,
    }


def limits(instance_type: str) -> tuple[int | None, int | None, int]:
    """(nano_cpus, memory bytes, gpus) of an instance type; None: no limit (``local``).

    CPUs are capped at the host's: the engine refuses a limit above what it has.
    """
    t = INSTANCE_TYPES[instance_type]
    nano = min(t.vcpus, os.cpu_count() or 1) * 1_000_000_000 if t.vcpus else None
    memory = t.memory_mib * 1024 * 1024 if t.memory_mib else None
    return nano, memory, t.gpus


def resource_kwargs(
    nano_cpus: int | None, memory: int | None, gpu_count: int, gpu_ids: list[str] | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if nano_cpus:
        kwargs["nano_cpus"] = nano_cpus
    if memory:
        kwargs["mem_limit"] = memory
        kwargs["memswap_limit"] = memory  # no swap beyond the limit
    if gpu_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=gpu_ids, capabilities=[["gpu"]])]
    elif gpu_count:
        kwargs["device_requests"] = [DeviceRequest(count=gpu_count, capabilities=[["gpu"]])]
    return kwargs


def label_filter(
    owner: str, kind: str, resource: str | None = None, attempt: int | None = None
) -> dict[str, list[str]]:
    wanted = [f"{OWNER}={owner}", f"{KIND}={kind}"]
    if resource is not None:
        wanted.append(f"{RESOURCE}={resource}")
    if attempt is not None:
        wanted.append(f"{ATTEMPT}={attempt}")
    return {"label": wanted}
