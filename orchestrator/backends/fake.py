"""An in-memory backend for tests (ours and users'): nothing runs; the test says what happens.

Launches are recorded and appear as running attempts; the test then moves them along with
``set_phase``, ``complete``, ``fail``, ``crash`` or ``lose``. Replicas become ready at once
unless ``auto_ready`` is off. Every call is recorded for assertions. Times (starts, ends,
readiness) come from the clock it is given: with the tests' ``FakeClock``, the same one the
controller plans with, nothing depends on the wall clock. Logs (``write_log``,
``write_replica_log``) are timed by that clock too, with marks as ``training.joblog`` keeps them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.types import (
    JobLaunch,
    ObservedJob,
    ObservedReplica,
    ReplicaLaunch,
)
from orchestrator.resources.failures import FailureKind, FailureReason
from orchestrator.resources.training import SecondaryStatus
from orchestrator.training.joblog import ListMarks, Mark, Marks


class FakeBackend:
    name = "fake"
    schedules_gpus = False

    def __init__(
        self, *, auto_ready: bool = True, honour_sigterm: bool = True, clock: Clock | None = None
    ) -> None:
        self.clock = clock or SystemClock()
        self.auto_ready = auto_ready
        self.honour_sigterm = honour_sigterm
        self.jobs: dict[str, ObservedJob] = {}
        self.launches: list[JobLaunch] = []
        self.stops: list[tuple[str, bool]] = []
        self.cleaned: list[str] = []
        self.logs: dict[str, bytearray] = {}
        self.log_marks: dict[str, list[Mark]] = {}
        self.log_reads: dict[str, int] = {}
        self.usage: dict[str, bytearray] = {}
        self.replica_logs: dict[tuple[str, str], bytearray] = {}
        self.replica_log_times: dict[tuple[str, str], list[Mark]] = {}
        self.replicas: dict[str, dict[str, ObservedReplica]] = {}
        self.replica_launches: list[ReplicaLaunch] = []
        self.removed_replicas: list[tuple[str, str]] = []
        self._lock = threading.RLock()

    # --- TrainingBackend ---------------------------------------------------------------------
    def launch_job(self, launch: JobLaunch) -> None:
        with self._lock:
            current = self.jobs.get(launch.name)
            if current is not None and current.attempt >= launch.attempt:
                return
            self.launches.append(launch)
            self.jobs[launch.name] = ObservedJob(
                name=launch.name,
                attempt=launch.attempt,
                state="running",
                started_at=self.clock.now(),
            )

    def observe_job(self, name: str) -> ObservedJob | None:
        with self._lock:
            return self.jobs.get(name)

    def stop_job(self, name: str, *, force: bool) -> None:
        with self._lock:
            self.stops.append((name, force))
            job = self.jobs.get(name)
            if job is None or job.state != "running":
                return
            if force:
                self.jobs[name] = replace(
                    job, state="exited", exit_code=-9, ended_at=self.clock.now()
                )
            elif self.honour_sigterm:
                self.jobs[name] = replace(
                    job, state="exited", outcome="stopped", exit_code=143, ended_at=self.clock.now()
                )

    def cleanup_job(self, name: str) -> None:
        with self._lock:
            self.cleaned.append(name)
            self.jobs.pop(name, None)

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        with self._lock:
            data = bytes(self.logs.get(name, b"")[offset : offset + limit])
            # How far each job's log has been read (a test can wait for a reader).
            self.log_reads[name] = max(self.log_reads.get(name, 0), offset + len(data))
        return data, offset + len(data)

    def job_log_marks(self, name: str) -> Marks:
        with self._lock:
            return ListMarks(self.log_marks.get(name, ()))

    def read_job_usage(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        with self._lock:
            data = bytes(self.usage.get(name, b"")[offset : offset + limit])
        return data, offset + len(data)

    def write_usage(
        self, name: str, host: str, values: dict[str, float], *, attempt: int = 1
    ) -> None:
        """A usage sample of one of the job's hosts, taken now (``training.usage``'s line)."""
        line = {
            "Timestamp": int(self.clock.now().timestamp() * 1000),
            "Host": host,
            "Attempt": attempt,
            "Metrics": values,
        }
        with self._lock:
            self.usage.setdefault(name, bytearray()).extend(json.dumps(line).encode() + b"\n")

    def _append(self, log: bytearray, marks: list[Mark], text: str) -> None:
        """Like ``training.joblog.JobLog.write``: a mark when the millisecond moved."""
        ms = int(self.clock.now().timestamp() * 1000)
        if not marks or ms > marks[-1][1]:
            marks.append((len(log), ms))
        log.extend(text.encode())

    # --- test controls for jobs ------------------------------------------------------------
    def write_log(self, name: str, text: str) -> None:
        """Append to the job's log, written now by the backend's clock."""
        with self._lock:
            log = self.logs.setdefault(name, bytearray())
            self._append(log, self.log_marks.setdefault(name, []), text)

    def set_phase(self, name: str, phase: SecondaryStatus, message: str = "") -> None:
        with self._lock:
            self.jobs[name] = replace(self.jobs[name], phase=phase, phase_message=message)

    def complete(
        self, name: str, *, artifact: str = "", metrics: dict[str, float] | None = None
    ) -> None:
        with self._lock:
            self.jobs[name] = replace(
                self.jobs[name],
                state="exited",
                outcome="completed",
                exit_code=0,
                ended_at=self.clock.now(),
                model_artifact=artifact or None,
                metrics=metrics or {},
            )

    def fail(
        self,
        name: str,
        message: str,
        *,
        kind: FailureKind = "AlgorithmError",
        exit_code: int = 1,
    ) -> None:
        """The attempt failed; the job's FailureReason becomes ``"<kind>: <message>"``."""
        with self._lock:
            self.jobs[name] = replace(
                self.jobs[name],
                state="exited",
                outcome="failed",
                exit_code=exit_code,
                failure=FailureReason(kind=kind, message=message),
                ended_at=self.clock.now(),
            )

    def crash(self, name: str) -> None:
        """The job's supervisor died without a result (e.g. SIGKILL)."""
        with self._lock:
            self.jobs[name] = replace(self.jobs[name], state="exited", exit_code=-9, outcome=None)

    def lose(self, name: str) -> None:
        """The backend forgets the job (a host that was wiped)."""
        with self._lock:
            self.jobs.pop(name, None)

    # --- EndpointBackend ---------------------------------------------------------------------
    def launch_replica(self, launch: ReplicaLaunch) -> None:
        with self._lock:
            replicas = self.replicas.setdefault(launch.endpoint, {})
            if launch.replica_id in replicas:
                return
            self.replica_launches.append(launch)
            replicas[launch.replica_id] = ObservedReplica(
                endpoint=launch.endpoint,
                variant=launch.variant,
                slot=launch.slot,
                replica_id=launch.replica_id,
                state="ready" if self.auto_ready else "starting",
                url=f"http://fake-replica/{launch.endpoint}/{launch.replica_id}",
                started_at=self.clock.now(),
                generation=launch.generation,
                config=launch.config,
                ready_at=self.clock.now() if self.auto_ready else None,
            )

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        with self._lock:
            return list(self.replicas.get(endpoint, {}).values())

    def list_endpoints(self) -> list[str]:
        with self._lock:
            return sorted(e for e, r in self.replicas.items() if r)

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        with self._lock:
            if self.replicas.get(endpoint, {}).pop(replica_id, None) is not None:
                self.removed_replicas.append((endpoint, replica_id))

    # --- ReplicaLogs ---------------------------------------------------------------------------
    def replica_log_ids(self, endpoint: str) -> list[str]:
        with self._lock:
            return sorted(rid for ep, rid in self.replica_logs if ep == endpoint)

    def read_replica_log(
        self, endpoint: str, replica_id: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        with self._lock:
            data = bytes(
                self.replica_logs.get((endpoint, replica_id), b"")[offset : offset + limit]
            )
        return data, offset + len(data)

    def replica_log_marks(self, endpoint: str, replica_id: str) -> Marks:
        with self._lock:
            return ListMarks(self.replica_log_times.get((endpoint, replica_id), ()))

    # --- test controls for replicas --------------------------------------------------------
    def write_replica_log(self, endpoint: str, replica_id: str, text: str) -> None:
        """Append to a replica's log (it need not be running), written now."""
        with self._lock:
            key = (endpoint, replica_id)
            log = self.replica_logs.setdefault(key, bytearray())
            self._append(log, self.replica_log_times.setdefault(key, []), text)

    def set_replica_state(
        self, endpoint: str, replica_id: str, state: str, message: str = ""
    ) -> None:
        with self._lock:
            r = self.replicas[endpoint][replica_id]
            self.replicas[endpoint][replica_id] = replace(r, state=state, message=message)  # type: ignore[arg-type]

    def close(self) -> None:
        return None
