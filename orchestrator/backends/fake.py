"""An in-memory backend for tests (ours and users'): nothing runs; the test says what happens.

Launches are recorded and appear as running attempts; the test then moves them along with
``set_phase``, ``complete``, ``fail``, ``crash`` or ``lose``. Replicas become ready at once
unless ``auto_ready`` is off. Transform instances start as running (``starting`` with
``auto_ready`` off) and move with ``run_transform_instance``, ``complete_transform_instance``,
``fail_transform_instance``, ``kill_transform_instance`` and ``lose_transform_instance``; the
runners' progress is what ``set_transform_progress`` says. Every call is recorded for
assertions. Times (starts, ends, readiness) come from the clock it is given: with the tests'
``FakeClock``, the same one the controller plans with, nothing depends on the wall clock.
Logs (``write_log``, ``write_replica_log``) are timed by that clock too, with marks as
``training.joblog`` keeps them.
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
    ObservedTransform,
    ObservedTransformInstance,
    ReplicaLaunch,
    TransformLaunch,
)
from orchestrator.resources.failures import ExitKind, FailureKind, FailureReason
from orchestrator.resources.training import SecondaryStatus
from orchestrator.resources.transform import TransformProgress
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
        # Transform jobs: each instance's latest attempt, per job.
        self.transforms: dict[str, dict[int, ObservedTransformInstance]] = {}
        self.transform_launches: list[TransformLaunch] = []
        self.transform_progress: dict[str, TransformProgress] = {}
        self.transform_stops: list[tuple[str, bool]] = []
        self.transform_cleaned: list[str] = []
        self.transform_logs: dict[str, bytearray] = {}
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

    def job_log_size(self, name: str) -> int:
        with self._lock:
            return len(self.logs.get(name, b""))

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
        exit_kind: ExitKind | None = None,
    ) -> None:
        """The attempt failed; the job's FailureReason becomes ``"<kind>: <message>"``
        (``exit_kind="oom"``: it ran out of memory, which a RetryStrategy retries)."""
        with self._lock:
            self.jobs[name] = replace(
                self.jobs[name],
                state="exited",
                outcome="failed",
                exit_code=exit_code,
                exit_kind=exit_kind,
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

    # --- TransformBackend --------------------------------------------------------------------
    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        with self._lock:
            instances = self.transforms.setdefault(launch.name, {})
            current = instances.get(launch.instance)
            if current is not None and current.attempt >= launch.attempt:
                return
            self.transform_launches.append(launch)
            instances[launch.instance] = ObservedTransformInstance(
                name=launch.name,
                instance=launch.instance,
                attempt=launch.attempt,
                state="running" if self.auto_ready else "starting",
                started_at=self.clock.now(),
            )

    def observe_transform(self, name: str) -> ObservedTransform:
        with self._lock:
            instances = self.transforms.get(name, {})
            return ObservedTransform(
                instances=tuple(instances[i] for i in sorted(instances)),
                progress=self.transform_progress.get(name),
            )

    def stop_transform(self, name: str, *, force: bool) -> None:
        with self._lock:
            self.transform_stops.append((name, force))
            instances = self.transforms.get(name, {})
            for i, x in list(instances.items()):
                if x.state == "exited":
                    continue
                if force:
                    instances[i] = replace(
                        x, state="exited", exit_code=-9, ended_at=self.clock.now()
                    )
                elif self.honour_sigterm:
                    instances[i] = replace(
                        x,
                        state="exited",
                        outcome="stopped",
                        exit_code=143,
                        ended_at=self.clock.now(),
                    )

    def cleanup_transform(self, name: str) -> None:
        with self._lock:
            self.transform_cleaned.append(name)
            self.transforms.pop(name, None)
            self.transform_progress.pop(name, None)

    def read_transform_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        with self._lock:
            data = bytes(self.transform_logs.get(name, b"")[offset : offset + limit])
        return data, offset + len(data)

    # --- test controls for transform jobs ----------------------------------------------------
    def _move(self, name: str, instance: int, **fields: object) -> None:
        with self._lock:
            x = self.transforms[name][instance]
            self.transforms[name][instance] = replace(x, **fields)  # type: ignore[arg-type]

    def run_transform_instance(self, name: str, instance: int) -> None:
        """The instance's model server answers: its runner scores."""
        self._move(name, instance, state="running")

    def complete_transform_instance(self, name: str, instance: int) -> None:
        self._move(
            name,
            instance,
            state="exited",
            outcome="completed",
            exit_code=0,
            ended_at=self.clock.now(),
        )

    def fail_transform_instance(
        self, name: str, instance: int, message: str, *, kind: FailureKind = "ClientError"
    ) -> None:
        """The instance's runner failed the job: its FailureReason is ``"<kind>: <message>"``."""
        self._move(
            name,
            instance,
            state="exited",
            outcome="failed",
            exit_code=1,
            failure=FailureReason(kind=kind, message=message),
            ended_at=self.clock.now(),
        )

    def kill_transform_instance(
        self, name: str, instance: int, message: str = "exit code -9 (SIGKILL)"
    ) -> None:
        """The instance's runner died without a result (``message``: what is known of it)."""
        self._move(
            name,
            instance,
            state="exited",
            outcome=None,
            exit_code=-9,
            message=message,
            ended_at=self.clock.now(),
        )

    def lose_transform_instance(self, name: str, instance: int) -> None:
        """The backend forgets the instance (its host was wiped)."""
        with self._lock:
            self.transforms.get(name, {}).pop(instance, None)

    def set_transform_progress(self, name: str, progress: TransformProgress) -> None:
        with self._lock:
            self.transform_progress[name] = progress

    def write_transform_log(self, name: str, text: str) -> None:
        with self._lock:
            self.transform_logs.setdefault(name, bytearray()).extend(text.encode())

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
