"""Training jobs on the process backend: one supervisor process per attempt, in its own root.

Layout under ``<work>/training-jobs/<name>/attempt-<n>/``: ``job.json`` (what to run),
``supervisor.pid``, ``progress.json`` and ``result.json`` (written by the supervisor),
``supervisor.log`` (its own errors) and ``ml/`` (the job's ``/opt/ml``). The user's output goes
to ``<logs>/training-jobs/<name>.log``, all attempts appended, with the time marks of its lines
beside it (``<name>.log.times``, ``training.joblog``).
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pydantic

from orchestrator import procs
from orchestrator.controller.plan.types import JobLaunch, ObservedJob, PhaseMark
from orchestrator.objects.providers import key_provider_config
from orchestrator.resources.failures import internal_error
from orchestrator.resources.training import SecondaryStatus
from orchestrator.settings import Settings
from orchestrator.training.files import (
    JOB_FILE,
    LOG_START_FILE,
    PID_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    JobFile,
    Progress,
    Result,
    StoreAccess,
    output_kms_key,
    read_json,
    write_atomic,
    write_model,
)
from orchestrator.training.joblog import FileMarks, Marks, times_path
from orchestrator.training.usage import usage_path

_ATTEMPT = re.compile(r"^attempt-(\d+)$")
# A launch that left a directory but no pid file this long ago did not happen.
LAUNCH_GRACE_SECONDS = 10.0


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _times(seconds: dict[str, float]) -> dict[str, datetime]:
    return {k: _dt(v) for k, v in seconds.items()}


def store_access(s: Settings) -> StoreAccess:
    """The object store as the control plane's settings name it, for a child process."""
    return StoreAccess(
        object_store_url=s.resolved_object_store_url,
        s3_endpoint_url=s.objects.s3_endpoint_url,
        s3_region=s.objects.s3_region,
        chunk_size=s.objects.chunk_size,
        keyring_path=str(s.keyring_path),
        keys=key_provider_config(s),
    )


def _phases(progress: Progress | None) -> tuple[PhaseMark, ...]:
    if progress is None:
        return ()
    return tuple(
        PhaseMark(SecondaryStatus(h.phase), _dt(h.at), h.message) for h in progress.history
    )


def read_log(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Bytes of a log file from ``offset`` (at most ``limit``) and the next offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def tail_of(path: Path, lines: int = 10, max_bytes: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(line for line in text.splitlines()[-lines:] if line.strip())


def _first_problem(error: Exception) -> str:
    if isinstance(error, pydantic.ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        return f"{where}: {first['msg']} ({error.error_count()} problem(s))"
    return str(error)


class ProcessJobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs_dir = settings.work_dir / "training-jobs"
        self.logs_dir = settings.logs_dir / "training-jobs"

    def _job_dir(self, name: str) -> Path:
        return self.jobs_dir / name

    def job_log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _latest_attempt(self, name: str) -> tuple[int, Path] | None:
        best: tuple[int, Path] | None = None
        try:
            entries = list(self._job_dir(name).iterdir())
        except FileNotFoundError:
            return None
        for d in entries:
            m = _ATTEMPT.match(d.name)
            if m and (d / JOB_FILE).exists():
                n = int(m.group(1))
                if best is None or n > best[0]:
                    best = (n, d)
        return best

    # What a backend built on this one changes: the supervisor it starts and the job file.
    supervisor_module = "orchestrator.training.runner"

    def job_file(self, launch: JobLaunch, root: Path) -> JobFile:
        s = self.settings
        return JobFile(
            name=launch.name,
            attempt=launch.attempt,
            spec=launch.spec,
            output_uri=launch.output_uri,
            ml_root=str(root / "ml"),
            log_path=str(self.job_log_path(launch.name)),
            store=store_access(s).model_copy(update={"write_key": output_kms_key(launch.spec)}),
            allow_file_uris=s.allow_file_uris,
            gpus=None if launch.gpus is None else list(launch.gpus),
            checkpoint_sync_seconds=s.controller.checkpoint_sync_seconds,
            checkpoint_upload_mib_per_second=s.controller.checkpoint_upload_mib_per_second,
            usage_interval_seconds=s.controller.usage_interval_seconds,
            credentials=dict(launch.credentials),
        )

    def launch_job(self, launch: JobLaunch) -> None:
        root = self._job_dir(launch.name) / f"attempt-{launch.attempt}"
        if (root / PID_FILE).exists():
            return  # launched already (idempotent)
        if root.exists():
            # The control plane died between starting the supervisor and writing its pid: a
            # supervisor of this attempt that runs is adopted, never started twice.
            running = procs.find_by_argument(str(root))
            if running is not None:
                write_atomic(root / PID_FILE, running.to_json())
                return
            shutil.rmtree(root)  # a launch interrupted before its process started
        root.mkdir(parents=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        job = self.job_file(launch, root)
        write_model(root / JOB_FILE, job)
        pid = procs.spawn(
            [sys.executable, "-m", self.supervisor_module, str(root)],
            cwd=root,
            log=root / "supervisor.log",
        )
        write_atomic(root / PID_FILE, pid.to_json())

    def observe_job(self, name: str) -> ObservedJob | None:
        latest = self._latest_attempt(name)
        if latest is None:
            return None
        attempt, root = latest
        gpus = tuple(int(i) for i in (read_json(root / JOB_FILE) or {}).get("gpus") or [])
        progress_doc = read_json(root / PROGRESS_FILE)
        try:
            progress = Progress.model_validate(progress_doc) if progress_doc else None
        except pydantic.ValidationError:
            progress = None  # only the phases are lost; the result below decides
        phases = _phases(progress)
        result_path = root / RESULT_FILE
        if result_path.exists():
            try:
                r = Result.model_validate_json(result_path.read_bytes())
            except (OSError, pydantic.ValidationError) as e:
                # Written atomically by the supervisor: unreadable means a bug or a bad disk.
                return ObservedJob(
                    name=name,
                    attempt=attempt,
                    state="exited",
                    outcome="failed",
                    failure=internal_error(
                        f"the result file of attempt {attempt} ({result_path}) is unreadable: "
                        f"{_first_problem(e)}"
                    ),
                    phases=phases,
                    gpus=gpus,
                )
            return ObservedJob(
                name=name,
                attempt=attempt,
                state="exited",
                phase=None,
                started_at=_dt(r.started_at),
                ended_at=_dt(r.ended_at),
                exit_code=r.exit_code,
                exit_kind=r.exit_kind,
                outcome=r.outcome,
                failure=r.failure,
                model_artifact=r.model_artifact,
                metrics=r.metrics,
                metric_times=_times(r.metric_times),
                phases=phases,
                gpus=gpus,
            )
        pid = procs.ProcessId.from_file(root / PID_FILE)
        if pid is None:
            age = time.time() - (root / JOB_FILE).stat().st_mtime
            if age < LAUNCH_GRACE_SECONDS:
                return ObservedJob(name=name, attempt=attempt, state="running")
            return None
        if procs.alive(pid):
            return ObservedJob(
                name=name,
                attempt=attempt,
                state="running",
                phase=SecondaryStatus(progress.phase) if progress else None,
                phase_message=progress.message if progress else "",
                started_at=_dt(progress.started_at) if progress else None,
                metrics=progress.metrics if progress else {},
                metric_times=_times(progress.metric_times) if progress else {},
                phases=phases,
                gpus=gpus,
            )
        tail = tail_of(root / "supervisor.log")
        return ObservedJob(
            name=name,
            attempt=attempt,
            state="exited",
            started_at=_dt(progress.started_at) if progress else None,
            exit_code=procs.exit_code(pid.pid),
            outcome=None,
            failure=internal_error(tail) if tail else None,
            metrics=progress.metrics if progress else {},
            metric_times=_times(progress.metric_times) if progress else {},
        )

    def stop_job(self, name: str, *, force: bool) -> None:
        latest = self._latest_attempt(name)
        if latest is None:
            return
        pid = procs.ProcessId.from_file(latest[1] / PID_FILE)
        if pid is None:
            return
        if not force:
            procs.signal_group(pid, signal.SIGTERM)
        elif not procs.kill_members(pid):
            # The grace is over: the user's code is killed and its supervisor lives on to
            # sync the checkpoints and the model saved so far and to report (a preempted
            # attempt resumes from them). A supervisor left alone is killed the next time.
            procs.signal_group(pid, signal.SIGKILL)

    def cleanup_job(self, name: str) -> None:
        latest = self._latest_attempt(name)
        pid = procs.ProcessId.from_file(latest[1] / PID_FILE) if latest else None
        if pid is not None:
            procs.signal_group(pid, signal.SIGKILL)
        shutil.rmtree(self._job_dir(name), ignore_errors=True)

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        return read_log(self.job_log_path(name), offset, limit)

    def job_log_size(self, name: str) -> int:
        try:
            return self.job_log_path(name).stat().st_size
        except FileNotFoundError:
            return 0

    def _log_start(self, name: str, attempt: int) -> int | None:
        try:
            return int((self._job_dir(name) / f"attempt-{attempt}" / LOG_START_FILE).read_text())
        except (OSError, ValueError):
            return None

    def read_attempt_log(
        self, name: str, attempt: int, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Attempt ``attempt``'s part of the job log (offsets from its start): from where
        its supervisor started writing to where the next attempt's did (or the end)."""
        start = self._log_start(name, attempt)
        if start is None:
            return b"", offset
        end = self._log_start(name, attempt + 1)
        room = limit if end is None else max(0, min(limit, end - start - offset))
        if room == 0:
            return b"", offset
        data, _ = read_log(self.job_log_path(name), start + offset, room)
        return data, offset + len(data)

    def job_log_marks(self, name: str) -> Marks:
        """The supervisor's time marks beside the job log (``training.joblog``)."""
        return FileMarks(times_path(self.job_log_path(name)))

    def read_job_usage(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """The supervisor's usage samples beside the job log (``training.usage``)."""
        return read_log(usage_path(self.job_log_path(name)), offset, limit)
