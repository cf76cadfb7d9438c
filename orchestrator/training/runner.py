"""The supervisor of one training-job attempt: download, run the user's code, upload.

Started by the process backend as ``python -m orchestrator.training.runner ROOT`` in a session
of its own, so it outlives a control plane that is killed: the control plane re-reads the
progress and result files on restart. Sequence (SageMaker's secondary statuses):
Downloading (channels, source, checkpoints) -> Training (the user's process, with resource
limits, output to the job log; the checkpoint directory uploaded as files in it are finished,
``training.checkpoints``, and once more when it exits) -> Uploading (model.tar.gz, output data,
the checkpoints left) -> result.
Downloads and uploads are the training data contract of ``training.transfer``, which the
in-pod steps on Kubernetes share; the result carries a typed ``FailureReason``.
SIGTERM is passed to the user's process (the same process group gets it); whatever it saved to
the model directory in the grace period is still uploaded, as SageMaker does.

``InstanceCount`` N > 1 runs N user processes, hosts ``algo-1`` ... ``algo-N``, each in its own
``/opt/ml`` (``hosts/algo-K/ml/``: its ``resourceconfig.json``, its share of the
``ShardedByS3Key`` channels, its model directory), all on 127.0.0.1 with free ports for the
rendezvous (``contract.distributed_environment``). Their lines go to the one job log, each
with its host's tag. When one exits non-zero the others get SIGTERM, then SIGKILL after
``PEER_STOP_GRACE_SECONDS``, and the attempt fails with the failing host named. At the end
the model (and output data) directories of every host are merged into algo-1's and uploaded
as one ``model.tar.gz``, as SageMaker aggregates them (a name written by several hosts keeps
the lowest host's file, and the log says so); every host's checkpoints are uploaded.

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
import filecmp
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator import procs
from orchestrator.algorithms.hyperparameters import ALGORITHMS
from orchestrator.objects import ObjectStore
from orchestrator.resources.failures import ExitKind, FailureReason, client_error
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.training import CreateTrainingJobRequest, SecondaryStatus
from orchestrator.training.checkpoints import Watcher
from orchestrator.training.contract import (
    ALGORITHM_ENV,
    Host,
    MlPaths,
    Rendezvous,
    builtin_algorithm,
    host_distributed_environment,
    hosts_of,
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
from orchestrator.training.joblog import JobLog, host_tag
from orchestrator.training.transfer import (
    TrainingFailure,
    Transfer,
    algorithm_failure,
    unexpected,
)
from orchestrator.training.usage import Probe, TreeProbe, UsageSampler, job_sampler

TAIL_LINES = 12
# How long the other hosts of a failed multi-host attempt get to exit after SIGTERM.
PEER_STOP_GRACE_SECONDS = 10.0
# Per host of a multi-host attempt on the process backend: its own /opt/ml (``<host>/ml``).
HOSTS_DIR = "hosts"
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


def mib(per_second: float | None) -> float | None:
    return None if per_second is None else per_second * (1 << 20)


def gpu_environment(gpus: list[int] | None) -> dict[str, str]:
    """Only the devices the controller gave the job are visible to it; a CPU job sees none."""
    if gpus is None:
        return {}
    visible = ",".join(str(i) for i in gpus)
    return {"CUDA_VISIBLE_DEVICES": visible, "SM_NUM_GPUS": str(len(gpus))}


def host_gpus(gpus: list[int] | None, host: Host) -> list[int] | None:
    """``host``'s share of the attempt's devices: an equal slice when they divide evenly."""
    if gpus is None or host.count == 1 or len(gpus) % host.count:
        return gpus
    each = len(gpus) // host.count
    return gpus[host.index * each : (host.index + 1) * each]


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``address`` now (all held open until all are chosen)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((address, 0))
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def merge_tree(source: Path, dest: Path) -> list[str]:
    """Copy ``source``'s files into ``dest``, keeping a file ``dest`` has already; the
    relative paths that were kept although ``source`` had a different file there."""
    clashes: list[str] = []
    if not source.is_dir():
        return clashes
    for f in sorted(p for p in source.rglob("*") if p.is_file() or p.is_symlink()):
        rel = f.relative_to(source)
        target = dest / rel
        if target.exists() or target.is_symlink():
            if not (f.is_file() and target.is_file() and filecmp.cmp(f, target, shallow=False)):
                clashes.append(rel.as_posix())
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target, follow_symlinks=False)
    return clashes


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.job = JobFile.model_validate_json((root / JOB_FILE).read_text())
        self.spec: CreateTrainingJobRequest = self.job.spec
        self.paths = MlPaths(Path(self.job.ml_root)).for_spec(self.spec)
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
            checkpoint_rate=mib(self.job.checkpoint_upload_mib_per_second),
        )
        self._patterns = metric_patterns(self.spec)
        self._last_progress = 0.0
        self.hosts = hosts_of(self.spec)
        self._line_lock = threading.Lock()  # several hosts' output threads write lines
        self.host_tails: dict[str, collections.deque[str]] = {}
        self.failed_host: Host | None = None
        self._oom_kills_before: int | None = None
        self._host_transfers: dict[Host, Transfer] = {}
        # Each running host's usage probe (``training.usage``), sampled while training.
        self.usage_targets: dict[str, Probe] = {}

    # A backend whose hosts share one /opt/ml (Docker) sets this False.
    ml_per_host = True

    @property
    def multi(self) -> bool:
        return len(self.hosts) > 1

    def host_paths(self, host: Host) -> MlPaths:
        """``host``'s ``/opt/ml``: the attempt's ``ml/`` on one host, its own on several."""
        if not (self.multi and self.ml_per_host):
            return self.paths
        return MlPaths(self.root / HOSTS_DIR / host.name / "ml")

    def host_transfer(self, host: Host) -> Transfer:
        """``host``'s transfer: one per host for the attempt (its checkpoint manifest lasts
        from the download to the upload)."""
        if not (self.multi and self.ml_per_host):
            return self.transfer
        if host not in self._host_transfers:
            self._host_transfers[host] = Transfer(
                self.spec,
                self.host_paths(host),
                self._open_store,
                output_uri=self.job.output_uri,
                host=host,
                file_uris=self.transfer.reader.file_uris,
                say=self.say,
                scratch=self.root,
                checkpoint_rate=self.transfer.checkpoint_rate,
            )
        return self._host_transfers[host]

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
        if not (self.multi and self.ml_per_host):
            self.transfer.download()
            return
        for host in self.hosts:
            self.host_transfer(host).download()

    def command(self, paths: MlPaths | None = None) -> tuple[list[str], Path]:
        paths = paths or self.paths
        algo = self.spec.AlgorithmSpecification
        if algo.ContainerEntrypoint:
            return [*algo.ContainerEntrypoint, *(algo.ContainerArguments or [])], paths.root
        program = program_of(self.spec)
        if program:
            script = paths.code_dir / program
            if not script.is_file():
                present = (
                    sorted(p.name for p in paths.code_dir.glob("*"))
                    if paths.code_dir.exists()
                    else []
                )
                raise TrainingFailure(
                    client_error(
                        f"entry point {program!r} not found in the source directory "
                        f"(sagemaker_submit_directory); it holds: {present or 'nothing'}"
                    )
                )
            return [sys.executable, str(script), *script_args(self.spec)], paths.code_dir
        builtin = builtin_algorithm(self.spec)
        if builtin is not None:
            return [sys.executable, "-m", "orchestrator.algorithms.train"], paths.root
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

    def rendezvous(self) -> Rendezvous:
        """Every host on 127.0.0.1, each with a port free now."""
        return Rendezvous(("127.0.0.1",) * len(self.hosts), tuple(free_ports(len(self.hosts))))

    def host_environment(self, host: Host, rendezvous: Rendezvous) -> dict[str, str]:
        env = user_environment(
            self.host_paths(host),
            self.spec,
            dict(os.environ),
            host=host,
            distributed=host_distributed_environment(self.spec, host, rendezvous),
            credentials=self.job.credentials,
        )
        builtin = builtin_algorithm(self.spec)
        if builtin is not None:
            env[ALGORITHM_ENV] = builtin
        env.update(gpu_environment(host_gpus(self.job.gpus, host)))
        return env

    def train(self) -> int:
        commands = {h: self.command(self.host_paths(h)) for h in self.hosts}
        self.progress(
            SecondaryStatus.TRAINING, "Training image download completed. Training in progress."
        )
        rendezvous = self.rendezvous()
        self._oom_kills_before = oom_kills()
        running: dict[Host, subprocess.Popen[str]] = {}
        for host in self.hosts:
            argv, cwd = commands[host]
            running[host] = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self.host_environment(host, rendezvous),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=self.limits(),  # noqa: PLW1509 - no other thread forks meanwhile
                text=True,
                errors="replace",
            )
            self.usage_targets[host.name] = TreeProbe(running[host].pid)
        if not self.multi:
            proc = running[self.hosts[0]]
            assert proc.stdout is not None
            for line in proc.stdout:
                self.handle_line(line)
            return proc.wait()
        return self._wait_hosts(running)

    def _stream_host(self, host: Host, proc: subprocess.Popen[str]) -> None:
        tail = self.host_tails.setdefault(host.name, collections.deque(maxlen=TAIL_LINES))
        assert proc.stdout is not None
        for line in proc.stdout:
            self.handle_line(host_tag(host.name) + line)
            if line.strip():
                tail.append(line.rstrip("\n"))

    def _wait_hosts(self, running: dict[Host, subprocess.Popen[str]]) -> int:
        """Every host's output into the log until all have exited; the first to fail stops
        the others. The exit code of the first host that failed (0: all completed)."""
        streams = [
            threading.Thread(target=self._stream_host, args=(h, p), daemon=True)
            for h, p in running.items()
        ]
        for t in streams:
            t.start()
        failed: tuple[Host, int] | None = None
        kill_at: float | None = None
        while any(p.poll() is None for p in running.values()):
            if failed is None and not self.stopping:
                for host, proc in running.items():
                    code = proc.poll()
                    if code is not None and code != 0:
                        failed = (host, code)
                        self.say(
                            f"{host.name} exited with code {code}: stopping the other hosts "
                            f"(SIGTERM, SIGKILL after {PEER_STOP_GRACE_SECONDS:g} s)"
                        )
                        for other in running.values():
                            if other.poll() is None:
                                other.terminate()
                        kill_at = time.monotonic() + PEER_STOP_GRACE_SECONDS
                        break
            if kill_at is not None and time.monotonic() >= kill_at:
                for other in running.values():
                    if other.poll() is None:
                        other.kill()
                kill_at = None
            time.sleep(0.05)
        for t in streams:
            t.join()
        if failed is None:
            codes = [(h, p.returncode) for h, p in running.items() if p.returncode != 0]
            failed = codes[0] if codes else None
        if failed is None:
            return 0
        self.failed_host = failed[0]
        return failed[1]

    def train_syncing_checkpoints(self) -> int:
        """``sampled_train`` with each host's checkpoint directory uploaded while it runs (a
        thread of this process each, niced) and once more after the user's code exits,
        however it exits."""
        per_host = self.multi and self.ml_per_host  # else one /opt/ml, one directory
        transfers = [self.host_transfer(h) for h in self.hosts] if per_host else [self.transfer]
        watchers = [
            Watcher(t.checkpoints, self.job.checkpoint_sync_seconds)
            for t in transfers
            if t.checkpoints is not None
        ]
        for w in watchers:
            w.start()
        try:
            return self.sampled_train()
        finally:
            for w in watchers:
                w.finish()  # failures are in the log; the upload step tries them again

    def handle_line(self, line: str) -> None:
        """One line of the user's output: into the job log, the failure tail and the metrics."""
        with self._line_lock:
            self._handle_line(line)

    def _handle_line(self, line: str) -> None:
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

    def sampled_train(self) -> int:
        """``train()`` with every host's resource use sampled meanwhile (``training.usage``)."""
        interval = self.job.usage_interval_seconds
        if interval <= 0:
            return self.train()
        sampler: UsageSampler = job_sampler(
            self.job, self.paths.root, self.usage_targets, on_error=self._usage_failed
        )
        sampler.start()
        try:
            return self.train()
        finally:
            sampler.stop()

    def _usage_failed(self, error: Exception) -> None:
        self.say(f"resource usage sampling failed ({type(error).__name__}: {error}); retrying")

    def upload(self) -> str | None:
        self.progress(SecondaryStatus.UPLOADING, "Uploading generated training model")
        if not (self.multi and self.ml_per_host):
            return self.transfer.upload()
        self.merge_hosts()
        artifact = None
        for host in self.hosts:  # algo-1 the merged model, every host its checkpoints
            artifact = self.host_transfer(host).upload() or artifact
        return artifact

    def merge_hosts(self) -> None:
        """Every other host's model and output data into algo-1's, as SageMaker aggregates
        them into one model.tar.gz (and output.tar.gz)."""
        first = self.host_paths(self.hosts[0])
        for host in self.hosts[1:]:
            paths = self.host_paths(host)
            for source, dest in (
                (paths.model_dir, first.model_dir),
                (paths.output_data_dir, first.output_data_dir),
            ):
                clashes = merge_tree(source, dest)
                if clashes:
                    shown = ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
                    self.say(
                        f"{host.name} wrote {len(clashes)} file(s) a lower host also wrote, "
                        f"kept from the lower host: {shown} (write each name on one host, "
                        "e.g. only on RANK 0)"
                    )

    def _failing_tail(self) -> list[str]:
        """The last lines of the host that failed (a multi-host attempt), else of the job."""
        host = self.failed_host
        return list(self.host_tails.get(host.name, ()) if host else self.tail)

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
        tail = self._failing_tail()
        last = tail[-1].strip() if tail else ""
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
        host = self.failed_host
        if host is None:
            return algorithm_failure(code, self.paths, list(self.tail), out_of_memory=out_of_memory)
        reason = algorithm_failure(
            code,
            self.host_paths(host),
            self._failing_tail(),
            process=f"the training process of {host.name}",
            out_of_memory=out_of_memory,
        )
        return reason.model_copy(update={"message": f"{host.name}: {reason.message}"})

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
            code = self.train_syncing_checkpoints()
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
