"""Transform jobs on the process backend: one detached runner per instance attempt.

Layout under ``<work>/transform-jobs/<name>/instance-<k>/attempt-<n>/``: ``instance.json``
(what to run: the instance's ``InstanceConfig``, the Model and how to reach the object store),
``supervisor.pid``, ``supervisor.log`` (the runner's own output), ``ready`` (its model server
answered ``GET /ping``), ``exit.json`` (how the runner ended) and ``replica/`` (its model
server's root, a replica's layout). Every instance and attempt appends to one job log,
``<logs>/transform-jobs/<name>.log``, each line tagged with its host (``[algo-<k+1>] ``) when
the job has several instances.

The runner (``transform_main``) runs in a session of its own, so it outlives a control plane
that dies and is adopted again through its pid file; its model server is its child and dies
with it. Outcomes and progress are read from the job's scratch records
(``transformer.scratch``), which survive any kill.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pydantic
from pydantic import BaseModel

from orchestrator import procs
from orchestrator.backends.process.jobs import LAUNCH_GRACE_SECONDS, read_log, store_access, tail_of
from orchestrator.controller.plan.types import (
    ObservedTransform,
    ObservedTransformInstance,
    TransformLaunch,
)
from orchestrator.objects import ObjectStore
from orchestrator.resources.models import CreateModelRequest
from orchestrator.settings import Settings, TransformSettings
from orchestrator.training.files import StoreAccess, read_json, write_atomic, write_model
from orchestrator.transformer.driver import InstanceConfig
from orchestrator.transformer.scratch import InstanceResult, TransformScratch, observe_scratch

INSTANCE_FILE = "instance.json"
PID_FILE = "supervisor.pid"
SUPERVISOR_LOG = "supervisor.log"
READY_FILE = "ready"
EXIT_FILE = "exit.json"
SERVER_DIR = "replica"
_INSTANCE = re.compile(r"^instance-(\d+)$")
_ATTEMPT = re.compile(r"^attempt-(\d+)$")


class InstanceFile(BaseModel):
    """``instance.json``: everything the runner of one instance attempt needs."""

    config: InstanceConfig
    model: CreateModelRequest
    store: StoreAccess
    transform: TransformSettings
    log_path: str
    allow_file_uris: bool = True
    grace_seconds: float = 30.0


class RunnerExit(BaseModel):
    """``exit.json``: written by the runner as it exits (absent: it was killed)."""

    exit_code: int
    started_at: float
    ended_at: float


def host_of(instance: int) -> str:
    return f"algo-{instance + 1}"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _numbered(parent: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    try:
        entries = list(parent.iterdir())
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), d) for d in entries if (m := pattern.match(d.name))]
    return sorted(found)


class ProcessTransforms:
    """The process backend's ``TransformBackend``."""

    # What a backend built on this one changes: the runner it starts and what it writes
    # beside instance.json (``prepare_instance``).
    runner_module = "orchestrator.backends.process.transform_main"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transforms_dir = settings.work_dir / "transform-jobs"
        self.transform_logs_dir = settings.logs_dir / "transform-jobs"
        self._transform_store: ObjectStore | None = None

    @property
    def transform_store(self) -> ObjectStore:
        """The object store the runners record into (opened on first use)."""
        if self._transform_store is None:
            self._transform_store = store_access(self.settings).open()
        return self._transform_store

    def transform_log_path(self, name: str) -> Path:
        return self.transform_logs_dir / f"{name}.log"

    def transform_attempt_root(self, name: str, instance: int, attempt: int) -> Path:
        return self.transforms_dir / name / f"instance-{instance}" / f"attempt-{attempt}"

    def _latest_attempts(self, name: str) -> list[tuple[int, int, Path]]:
        """(instance, attempt, root) of each instance's latest launched attempt."""
        out: list[tuple[int, int, Path]] = []
        for instance, d in _numbered(self.transforms_dir / name, _INSTANCE):
            attempts = [(n, r) for n, r in _numbered(d, _ATTEMPT) if (r / INSTANCE_FILE).exists()]
            if attempts:
                out.append((instance, *attempts[-1]))
        return out

    def instance_file(self, launch: TransformLaunch, root: Path) -> InstanceFile:
        s = self.settings
        spec = launch.spec
        return InstanceFile(
            config=InstanceConfig(
                Name=launch.name,
                Instance=launch.instance,
                Attempt=launch.attempt,
                InstanceCount=spec.TransformResources.InstanceCount,
                Spec=spec,
                ModelName=launch.model_name,
            ),
            model=launch.model,
            # Every object the instance writes (its output, its scratch records) is under the
            # job's TransformOutput.KmsKeyId.
            store=store_access(s).model_copy(update={"write_key": spec.TransformOutput.KmsKeyId}),
            transform=s.transform,
            log_path=str(self.transform_log_path(launch.name)),
            allow_file_uris=s.allow_file_uris,
            grace_seconds=s.controller.stop_grace_seconds,
        )

    def prepare_instance(self, launch: TransformLaunch, root: Path) -> None:
        """Anything the runner reads beside instance.json (nothing here)."""

    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        root = self.transform_attempt_root(launch.name, launch.instance, launch.attempt)
        if (root / PID_FILE).exists():
            return  # launched already (idempotent)
        if root.exists():
            # The control plane died between starting the runner and writing its pid: a
            # runner of this attempt that runs is adopted, never started twice.
            running = procs.find_by_argument(str(root))
            if running is not None:
                write_atomic(root / PID_FILE, running.to_json())
                return
            shutil.rmtree(root)  # a launch interrupted before its process started
        root.mkdir(parents=True)
        self.transform_logs_dir.mkdir(parents=True, exist_ok=True)
        write_model(root / INSTANCE_FILE, self.instance_file(launch, root))
        self.prepare_instance(launch, root)
        pid = procs.spawn(
            [sys.executable, "-m", self.runner_module, str(root)],
            cwd=root,
            log=root / SUPERVISOR_LOG,
        )
        write_atomic(root / PID_FILE, pid.to_json())

    def observe_transform(self, name: str) -> ObservedTransform:
        latest = self._latest_attempts(name)
        if not latest:
            return ObservedTransform()
        progress, results = observe_scratch(self.transform_store, name)
        instances = tuple(
            self._observe_instance(name, instance, attempt, root, results.get(instance))
            for instance, attempt, root in latest
        )
        return ObservedTransform(instances=instances, progress=progress)

    def _observe_instance(
        self, name: str, instance: int, attempt: int, root: Path, result: InstanceResult | None
    ) -> ObservedTransformInstance:
        if result is not None and result.Attempt != attempt:
            result = None  # an earlier attempt's record; this one has not said yet
        outcome = result.Outcome if result is not None else None
        failure = result.Failure if result is not None else None
        started = _dt((root / INSTANCE_FILE).stat().st_mtime)
        base = ObservedTransformInstance(
            name=name,
            instance=instance,
            attempt=attempt,
            state="starting",
            started_at=started,
            outcome=outcome,
            failure=failure,
        )
        pid = procs.ProcessId.from_file(root / PID_FILE)
        if pid is not None and procs.alive(pid):
            # Running, or in its last moments after recording its result: exited is said
            # only once it is gone, so nothing is cleaned up under a runner still ending.
            return replace(base, state="running" if (root / READY_FILE).exists() else "starting")
        ended = self._runner_exit(root)
        if ended is not None:
            message = "" if outcome is not None else self._death_message(root, ended.exit_code)
            return replace(
                base,
                state="exited",
                started_at=_dt(ended.started_at),
                ended_at=_dt(ended.ended_at),
                exit_code=ended.exit_code,
                message=message,
            )
        if pid is None:
            if time.time() - started.timestamp() < LAUNCH_GRACE_SECONDS:
                return base  # being launched right now
            return replace(base, state="exited", message="the runner of this attempt never started")
        # Gone without writing how it ended: killed.
        code = procs.exit_code(pid.pid)
        return replace(
            base,
            state="exited",
            exit_code=code,
            message="" if outcome is not None else self._death_message(root, code),
        )

    @staticmethod
    def _runner_exit(root: Path) -> RunnerExit | None:
        doc = read_json(root / EXIT_FILE)
        try:
            return RunnerExit.model_validate(doc) if doc is not None else None
        except pydantic.ValidationError:
            return None

    @staticmethod
    def _death_message(root: Path, code: int | None) -> str:
        how = f"exited with code {code}" if code is not None else "died (killed)"
        tail = tail_of(root / SUPERVISOR_LOG, lines=8)
        text = f"the instance runner {how} without recording a result"
        return f"{text}: {tail}" if tail else text

    def _runner_pids(self, name: str) -> list[procs.ProcessId]:
        pids = [
            procs.ProcessId.from_file(root / PID_FILE) for _, _, root in self._latest_attempts(name)
        ]
        return [p for p in pids if p is not None]

    def stop_transform(self, name: str, *, force: bool) -> None:
        for pid in self._runner_pids(name):
            if force:
                procs.signal_group(pid, signal.SIGKILL)  # the runner and its model server
            else:
                # The runner stops its model server itself, after recording what it did.
                procs.signal_leader(pid, signal.SIGTERM)

    def cleanup_transform(self, name: str) -> None:
        for pid in self._runner_pids(name):
            procs.signal_group(pid, signal.SIGKILL)
        shutil.rmtree(self.transforms_dir / name, ignore_errors=True)
        TransformScratch(self.transform_store, name).remove()

    def read_transform_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        return read_log(self.transform_log_path(name), offset, limit)
