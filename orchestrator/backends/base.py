"""The backend protocol: the few things the reconciler needs from a place that runs work.

A backend starts, observes and stops training-job attempts and endpoint replicas. Every method
is idempotent and every observation is read from the real world (processes, containers, pods),
so a restarted controller simply observes again and carries on.

The required part is small (``Backend``); what only some backends do is an optional
capability, declared by implementing its protocol and checked with ``isinstance``:

- ``LaunchesReplicas``: starts endpoint replicas one by one (process, Docker, the fake);
- ``VariantFleets``: runs each variant of a fleet as one managed group and is told its size
  (Kubernetes: a Deployment per fleet variant, which replaces dead pods itself);
- ``ReplicaProcesses``: its replicas are host processes (CPU/memory sampling);
- ``PassSnapshot``: reads everything it observes once per pass (one list per object kind
  instead of one per resource: what keeps a pass over a thousand resources linear);
- ``Configurable``: says which of its settings are set, for fields that need one;
- ``JobLogTimes``: its job logs say when each line was written and, on several hosts, by
  which host (``training.joblog``);
- ``ReplicaLogs``: keeps each endpoint replica's output as a log (CloudWatch Logs serves it);
- ``JobUsage``: keeps a running job's resource use per host (``training.usage``: CPU, memory,
  disk, GPU samples as lines);
- ``TransformBackend``: runs batch transform jobs' instances (the instance runner beside a
  model server, ``orchestrator.transformer``).

A backend has ``LaunchesReplicas`` or ``VariantFleets``; the executor uses whichever it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from orchestrator.controller.plan.types import (
    JobLaunch,
    ObservedJob,
    ObservedReplica,
    ObservedTransform,
    ReplicaLaunch,
    TransformLaunch,
    VariantFleet,
)
from orchestrator.training.joblog import Marks


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
    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        """Every replica of the endpoint, with its health (``ready`` = GET /ping answered 200)."""

    def list_endpoints(self) -> list[str]:
        """Endpoints that have replicas (or fleets) here, to find orphans after a restart."""

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        """Stop the replica (SIGTERM, SIGKILL after the grace) and delete its scratch space;
        for a backend that manages whole variants: replace that failing replica."""


@runtime_checkable
class LaunchesReplicas(Protocol):
    """Optional: backends that start endpoint replicas one at a time."""

    def launch_replica(self, launch: ReplicaLaunch) -> None:
        """Start a replica; a second call for the same replica id does nothing."""


@runtime_checkable
class VariantFleets(Protocol):
    """Optional: backends that run each variant of a fleet as one group of a given size."""

    def apply_fleets(self, endpoint: str, fleets: Sequence[VariantFleet]) -> None:
        """Make the endpoint's fleets exactly these, each at its size (create, scale); remove
        every other fleet of the endpoint. Idempotent."""


@runtime_checkable
class ReplicaProcesses(Protocol):
    """Optional: backends whose replicas are host processes, for CPU/memory sampling."""

    def replica_processes(self, endpoint: str) -> list[tuple[str, str, int]]:
        """(variant, replica id, pid) of every live replica process of the endpoint."""


@runtime_checkable
class PassSnapshot(Protocol):
    """Optional: backends that read the world once per pass (see the module docstring)."""

    def refresh(self) -> None:
        """Read what the coming pass observes; observations answer from it until the next
        refresh. Actions still go to the real world at once."""


@runtime_checkable
class Configurable(Protocol):
    """Optional: backends on which some fields need a setting (``plan.support.REQUIREMENTS``:
    network isolation on Kubernetes needs the egress its steps may use)."""

    def configured(self) -> set[str]:
        """The settings (environment variable names) that are set on this backend."""


@runtime_checkable
class AttemptLogs(Protocol):
    """Optional: backends that can give one attempt's part of a job's log."""

    def read_attempt_log(
        self, name: str, attempt: int, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Bytes of attempt ``attempt``'s log from ``offset`` (counted from the attempt's
        first byte; at most ``limit``) and the next offset; nothing for an unknown attempt."""


@runtime_checkable
class JobLogSize(Protocol):
    """Optional: backends that tell a job log's length without reading it (a reader that
    starts at the log's tail: the console's live log of a long job)."""

    def job_log_size(self, name: str) -> int:
        """Bytes in the job's log now (0 when there is none)."""


@runtime_checkable
class JobLogTimes(Protocol):
    """Optional: backends whose job logs are in the supervisor's format (``training.joblog``):
    time marks beside the log and, on several hosts, each host's lines tagged."""

    def job_log_marks(self, name: str) -> Marks:
        """The marks of the job's log as they are now (empty: none kept); close them after."""


@runtime_checkable
class ReplicaLogs(Protocol):
    """Optional: backends that keep each endpoint replica's output as a log, which stays
    after the replica is gone."""

    def replica_log_ids(self, endpoint: str) -> list[str]:
        """The replicas of the endpoint that have a log, sorted."""

    def read_replica_log(
        self, endpoint: str, replica_id: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Bytes of the replica's log from ``offset`` (at most ``limit``) and the next offset."""

    def replica_log_marks(self, endpoint: str, replica_id: str) -> Marks:
        """The time marks of the replica's log (empty: none kept); close them after."""


@runtime_checkable
class JobUsage(Protocol):
    """Optional: backends that keep the resource-usage samples of a job's hosts, in the usage
    file's format (``training.usage``: one JSON line per host and sample, all attempts)."""

    def read_job_usage(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Bytes of the job's usage samples from ``offset`` (at most ``limit``) and the next
        offset."""


@runtime_checkable
class TransformBackend(Protocol):
    """Optional: backends that run transform jobs. Every method is idempotent."""

    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        """Start this attempt of this instance; a second call for the same one does nothing."""

    def observe_transform(self, name: str) -> ObservedTransform:
        """The latest attempt of each instance of the job the backend knows, and the
        progress the runners recorded."""

    def stop_transform(self, name: str, *, force: bool) -> None:
        """SIGTERM (force=False) or SIGKILL (force=True) every running instance."""

    def cleanup_transform(self, name: str) -> None:
        """Remove the instances' scratch and the job's scratch records. Logs stay."""

    def read_transform_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Bytes of the job's log (every instance's runner and model server) from
        ``offset`` (at most ``limit``) and the next offset."""


@runtime_checkable
class Backend(TrainingBackend, EndpointBackend, Protocol):
    name: str
    # True when the backend places GPUs itself (Kubernetes' scheduler); False when the
    # controller hands out the host's devices to jobs.
    schedules_gpus: bool

    def close(self) -> None:
        """Release what the backend holds in this process (not the work it runs)."""
