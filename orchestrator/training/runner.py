"""The supervisor of one training-job attempt: download, run the user's code, upload.

Started by the process backend as ``python -m orchestrator.training.runner ROOT`` in a session
of its own, so it outlives a control plane that is killed: the control plane re-reads the
progress and result files on restart. Sequence (SageMaker's secondary statuses):
Downloading (channels, source, checkpoints) -> Training (the user's process, with resource
limits, output to the job log) -> Uploading (model.tar.gz, output data, checkpoints) -> result.
Downloads and uploads are the training data contract of ``training.transfer``, which the
in-pod steps on Kubernetes share; the result carries a typed ``FailureReason``.
SIGTERM is passed to the user's process (the same process group gets it); whatever it saved to
the model directory in the grace period is still uploaded, as SageMaker does.

Out of memory, on the process backend (the result's ``exit_kind`` is ``"oom"``, for the retry
policy): the user's process killed by SIGKILL while this supervisor lives (the control plane's
SIGKILL goes to the whole process group, this supervisor included, so one it survives was
sent by someone else: the kernel's OOM killer or a cgroup's memory limit, confirmed when the
cgroup's ``memory.events`` counted an ``oom_kill`` meanwhile); or, under the instance type's
memory limit (``RLIMIT_DATA``), a Python process that ended with ``MemoryError`` as the last
line of its output (an allocation refused at the limit: the process backend's OOM).
"""

from __future__ import annotations

import collections
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator import procs
from orchestrator.algorithms.hyperparameters import ALGORITHMS
from orchestrator.objects import ObjectStore
from orchestrator.resources.failures import ExitKind, FailureReason, client_error
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.training import CreateTrainingJobRequest, SecondaryStatus
from orchestrator.training.contract import (
    ALGORITHM_ENV,
    Host,
    MlPaths,
    builtin_algorithm,
    metric_patterns,
    program_of,
    read_metrics,
    script_args,
    user_environment,
)
from orchestrator.training.files import (
    JOB_FILE,
    LOG_START_FILE,
    PID_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    JobFile,
    PhaseEntry,
    Progress,
    Result,
    write_atomic,
    write_model,
)
from orchestrator.training.joblog import JobLog
from orchestrator.training.transfer import (
    TrainingFailure,
    Transfer,
    algorithm_failure,
    unexpected,
)

TAIL_LINES = 12
CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kills(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """The ``oom_kill`` count of this process's cgroup (v2), or None where it cannot be read."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        path = next(line[3:] for line in lines if line.startswith("0::"))
        events = (cgroup_root / path.lstrip("/") / "memory.events").read_text()
    except (OSError, StopIteration):
        return None
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def gpu_environment(gpus: list[int] | None) -> dict[str, str]:
    """Only the devices the controller gave the job are visible to it; a CPU job sees none."""
    if gpus is None:
        return {}
    visible = ",".join(str(i) for i in gpus)
    return {"CUDA_VISIBLE_DEVICES": visible, "SM_NUM_GPUS": str(len(gpus))}


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.job = JobFile.model_validate_json((root / JOB_FILE).read_text())
        self.spec: CreateTrainingJobRequest = self.job.spec
        self.paths = MlPaths(Path(self.job.ml_root))
        self.started_at = time.time()
        self.metrics: dict[str, float] = {}
        self.metric_times: dict[str, float] = {}  # when each last value was written
        self.stopping = False
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.history: list[PhaseEntry] = []
        # Every line with the time it was written (``training.joblog``: the marks beside it).
        self.log = JobLog(Path(self.job.log_path))
        self.transfer = Transfer(
            self.spec,
            self.paths,
            self._open_store,
            output_uri=self.job.output_uri,
            file_uris=None
            if self.job.allow_file_uris
            else "file:// URIs are disabled on this server (ORCH_ALLOW_FILE_URIS)",
            say=self.say,
            scratch=root,
        )
        self._patterns = metric_patterns(self.spec)
        self._last_progress = 0.0
        self._oom_kills_before: int | None = None

    # --- helpers ---------------------------------------------------------------------------
    def _open_store(self) -> ObjectStore:
        return self.job.store.open()

    def say(self, message: str) -> None:
        self.log.write(f"[orchestrator] {message}\n")

    def progress(self, phase: SecondaryStatus, message: str = "") -> None:
        self.say(f"{phase.value}: {message}" if message else phase.value)
        self.history.append(PhaseEntry(phase=phase.value, at=time.time(), message=message))
        self._write_progress(phase, message)

    def _write_progress(self, phase: SecondaryStatus, message: str) -> None:
        write_model(
            self.root / PROGRESS_FILE,
            Progress(
                phase=phase.value,
                message=message,
                at=time.time(),
                started_at=self.started_at,
                metrics=self.metrics,
                metric_times=self.metric_times,
                history=self.history,
            ),
        )

    def finish(self, result: Result) -> None:
        write_model(self.root / RESULT_FILE, result)
        self.say(
            f"result: {result.outcome}"
            + (f" ({result.failure.render()})" if result.failure else "")
        )

    # --- steps -----------------------------------------------------------------------------
    def download(self) -> None:
        self.progress(SecondaryStatus.DOWNLOADING, "Downloading input data")
        self.transfer.download()

    def command(self) -> tuple[list[str], Path]:
        algo = self.spec.AlgorithmSpecification
        if algo.ContainerEntrypoint:
            return [*algo.ContainerEntrypoint, *(algo.ContainerArguments or [])], self.paths.root
        program = program_of(self.spec)
        if program:
            script = self.paths.code_dir / program
            if not script.is_file():
                present = (
                    sorted(p.name for p in self.paths.code_dir.glob("*"))
                    if self.paths.code_dir.exists()
                    else []
                )
                raise TrainingFailure(
                    client_error(
                        f"entry point {program!r} not found in the source directory "
                        f"(sagemaker_submit_directory); it holds: {present or 'nothing'}"
                    )
                )
            return [sys.executable, str(script), *script_args(self.spec)], self.paths.code_dir
        builtin = builtin_algorithm(self.spec)
        if builtin is not None:
            return [sys.executable, "-m", "orchestrator.algorithms.train"], self.paths.root
        raise TrainingFailure(
            client_error(
                "the process backend runs script-mode jobs (sagemaker_program), "
                "AlgorithmSpecification.ContainerEntrypoint and the built-in algorithms "
                f"({', '.join(ALGORITHMS)}); {algo.TrainingImage or algo.AlgorithmName!r} "
                "needs a container backend"
            )
        )

    def limits(self) -> Callable[[], None]:
        itype = INSTANCE_TYPES[self.spec.ResourceConfig.InstanceType]
        cpu_seconds = self.spec.StoppingCondition.MaxRuntimeInSeconds * (
            itype.vcpus or (os.cpu_count() or 1)
        )
        memory = itype.memory_mib * 1024 * 1024 if itype.memory_mib else None

        def apply() -> None:  # runs in the child between fork and exec
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
            # RLIMIT_DATA (heap and private mappings), not RLIMIT_AS: GPU runtimes and
            # thread arenas reserve far more address space than they use.
            if memory is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        return apply

    def train(self) -> int:
        count = self.spec.ResourceConfig.InstanceCount
        if count > 1:
            raise TrainingFailure(
                client_error(
                    f"ResourceConfig.InstanceCount={count}: the process backend runs "
                    "one instance per job; use the docker or kubernetes backend for more"
                )
            )
        argv, cwd = self.command()
        self.progress(
            SecondaryStatus.TRAINING, "Training image download completed. Training in progress."
        )
        env = user_environment(self.paths, self.spec, dict(os.environ), host=Host())
        builtin = builtin_algorithm(self.spec)
        if builtin is not None:
            env[ALGORITHM_ENV] = builtin
        env.update(gpu_environment(self.job.gpus))
        self._oom_kills_before = oom_kills()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=self.limits(),  # noqa: PLW1509 - single-threaded supervisor
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            self.handle_line(line)
        return proc.wait()

    def handle_line(self, line: str) -> None:
        """One line of the user's output: into the job log, the failure tail and the metrics."""
        written_ms = self.log.write(line)
        stripped = line.rstrip("\n")
        if stripped.strip():
            self.tail.append(stripped)
        found: dict[str, float] = {}
        read_metrics(stripped, self._patterns, found)
        self.metrics.update(found)
        self.metric_times.update(dict.fromkeys(found, written_ms / 1000))
        if self._patterns and time.time() - self._last_progress > 1.0:
            self._last_progress = time.time()
            self.progress_quiet()

    def progress_quiet(self) -> None:
        """Fresh metrics for the control plane, without a new phase."""
        self._write_progress(SecondaryStatus.TRAINING, "Training in progress")

    def upload(self) -> str | None:
        self.progress(SecondaryStatus.UPLOADING, "Uploading generated training model")
        return self.transfer.upload()

    def out_of_memory(self, code: int) -> str | None:
        """What is known of the user's process running out of memory (None: it did not)."""
        if code == -signal.SIGKILL and not self.stopping:
            before, after = self._oom_kills_before, oom_kills()
            if before is not None and after is not None and after > before:
                return (
                    "the training process was killed by the kernel's OOM killer (SIGKILL; its "
                    f"cgroup counted {after - before} OOM kill(s) while it ran)"
                )
            return (
                "the training process was killed by SIGKILL, which the orchestrator did not "
                "send: the kernel's OOM killer or a cgroup's memory limit sends it"
            )
        itype = INSTANCE_TYPES[self.spec.ResourceConfig.InstanceType]
        last = self.tail[-1].strip() if self.tail else ""
        if (
            code == 1
            and itype.memory_mib
            and (last == "MemoryError" or last.startswith("MemoryError:"))
        ):
            return (
                "the training process raised MemoryError at the memory limit of "
                f"{itype.name} ({itype.memory_mib} MiB of heap, RLIMIT_DATA)"
            )
        return None

    def failure_reason(self, code: int, out_of_memory: str | None) -> FailureReason:
        return algorithm_failure(code, self.paths, list(self.tail), out_of_memory=out_of_memory)

    @staticmethod
    def exit_kind(code: int, out_of_memory: str | None) -> ExitKind:
        if out_of_memory is not None:
            return "oom"
        return "signal" if code < 0 else "exit"

    # --- the whole attempt -----------------------------------------------------------------
    def mark_attempt(self) -> None:
        """Where this attempt's lines start in the job's log, and a line that says so."""
        start = self.root / LOG_START_FILE
        if not start.exists():
            write_atomic(start, str(self.log.size))
        self.say(f"=== attempt {self.job.attempt} ===")

    def run(self) -> None:
        code: int | None = None
        try:
            self.mark_attempt()
            self.download()
            if self.stopping:
                self.say("stopped before training started")
                self.finish(self._failed(None, None))
                return
            code = self.train()
            artifact = self.upload() if (code == 0 or self.stopping) else None
            reason: FailureReason | None = None
            oom: str | None = None
            if self.stopping:
                outcome = "stopped"
            elif code == 0:
                outcome = "completed"
            else:
                oom = self.out_of_memory(code)
                outcome, reason = "failed", self.failure_reason(code, oom)
            self.finish(
                Result(
                    outcome=outcome,
                    exit_code=code,
                    exit_kind=self.exit_kind(code, oom),
                    failure=reason,
                    model_artifact=artifact,
                    metrics=self.metrics,
                    metric_times=self.metric_times,
                    started_at=self.started_at,
                    ended_at=time.time(),
                )
            )
        except Exception as e:  # every failure, planned (TrainingFailure) or not, is reported
            self.finish(self._failed(code, unexpected(e)))

    def _failed(self, code: int | None, reason: FailureReason | None) -> Result:
        return Result(
            outcome="stopped" if self.stopping else "failed",
            exit_code=code,
            failure=None if self.stopping else reason,
            metrics=self.metrics,
            metric_times=self.metric_times,
            started_at=self.started_at,
            ended_at=time.time(),
        )


def main(argv: list[str] | None = None, supervisor_class: type[Supervisor] = Supervisor) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.training.runner ROOT", file=sys.stderr)
        return 2
    root = Path(args[0])
    # The launcher writes this too; writing it here covers a launcher killed mid-launch.
    procs.write_own_pid(root / PID_FILE)
    supervisor = supervisor_class(root)

    def on_term(_signo: int, _frame: object) -> None:
        # The user's process is in our process group and got the same signal (a container
        # backend's supervisor passes it on itself: see its ``train``).
        supervisor.stopping = True
        supervisor.say("stop requested: SIGTERM passed to the training process")

    signal.signal(signal.SIGTERM, on_term)
    supervisor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
