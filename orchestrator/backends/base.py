"""The backend protocol: the few things the controller needs from a place that runs work.

A backend starts, observes and stops training-job attempts and endpoint replicas. Every method
is idempotent and every observation is read from the real world (processes, containers, pods),
so a restarted controller simply observes again and carries on.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from orchestrator.controller.plan.types import (
    JobLaunch,
    ObservedJob,
    ObservedReplica,
    ReplicaLaunch,
)


@runtime_checkable
class TrainingBackend(Protocol):
    def launch_job(self, launch: JobLaunch) -> None:
        """Start this attempt; a second call for the same attempt does nothing."""

    def observe_job(self, name: str) -> ObservedJob | None:
        """The latest attempt of the job, or None if the backend has no trace of it."""

    def stop_job(self, name: str, *, force: bool) -> None:
        """SIGTERM (force=False) or SIGKILL (force=True) the running attempt, if any."""

    def cleanup_job(self, name: str) -> None:
        """Remove the job's scratch space (all attempts). Logs stay."""

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Bytes of the job's log from ``offset`` (at most ``limit``) and the next offset."""


@runtime_checkable
class EndpointBackend(Protocol):
    def launch_replica(self, launch: ReplicaLaunch) -> None:
        """Start a replica; a second call for the same replica id does nothing."""

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        """Every replica of the endpoint, with its health (``ready`` = GET /ping answered 200)."""

    def list_endpoints(self) -> list[str]:
        """Endpoints that have replicas here (to find orphans after a restart)."""

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        """Stop the replica (SIGTERM, SIGKILL after the grace) and delete its scratch space."""


@runtime_checkable
class ReplicaProcesses(Protocol):
    """Optional: backends whose replicas are host processes, for CPU/memory sampling."""

    def replica_processes(self, endpoint: str) -> list[tuple[str, str, int]]:
        """(variant, replica id, pid) of every live replica process of the endpoint."""


@runtime_checkable
class Backend(TrainingBackend, EndpointBackend, Protocol):
    name: str

    def close(self) -> None:
        """Release what the backend holds in this process (not the work it runs)."""
