"""The runner of one transform instance attempt on the process backend.

``python -m orchestrator.backends.process.transform_main ROOT``: reads ``ROOT/instance.json``,
opens the object store, starts the job's model server as its own child (``replica_main`` on a
replica root at ``ROOT/replica/``, killed by the kernel if this process dies, however it dies)
and runs the instance (``transformer.instance.main_with``); exits with its code, after writing
it to ``ROOT/exit.json``. Its own output and the model server's go to the job log, each line
tagged with the host when the job has several instances; its own output also goes to
``ROOT/supervisor.log``, where the backend reads why a runner died.
"""

from __future__ import annotations

import collections
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from orchestrator import procs
from orchestrator.backends.process.replicas import PORT_FILE, REPLICA_FILE, ReplicaFile
from orchestrator.backends.process.transforms import (
    EXIT_FILE,
    INSTANCE_FILE,
    PID_FILE,
    READY_FILE,
    SERVER_DIR,
    InstanceFile,
    RunnerExit,
    host_of,
)
from orchestrator.errors import UnavailableError
from orchestrator.training.files import write_atomic, write_model
from orchestrator.training.joblog import host_tag
from orchestrator.transformer.server import ModelServer, wait_for_ping

TAIL_LINES = 20
_POLL_SECONDS = 0.1


class JobLog:
    """Appends whole lines to the job log, which every instance of the job shares: each line
    is one ``write`` on a file opened for appending, so lines of two runners never mix."""

    def __init__(self, path: Path, prefix: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.prefix = prefix
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        data = (self.prefix + text.rstrip("\n") + "\n").encode(errors="replace")
        with self._lock:
            os.write(self._fd, data)

    def pump(self, chunks: Iterable[bytes], tail: collections.deque[str]) -> None:
        """Every line of a byte stream into the log (and its last lines into ``tail``)."""
        pending = b""
        for chunk in chunks:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                text = raw.decode(errors="replace")
                self.line(text)
                if text.strip():
                    tail.append(text)
        if pending:
            text = pending.decode(errors="replace")
            self.line(text)
            tail.append(text)


class _Tee(io.TextIOBase):
    """A text stream whose lines go to the job log and, as they are, to ``original``."""

    def __init__(self, log: JobLog, original: TextIO) -> None:
        self._log = log
        self._original = original
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._original.write(s)
        self._pending += s
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._log.line(line)
        return len(s)

    def flush(self) -> None:
        self._original.flush()


def server_replica_file(doc: InstanceFile, server_root: Path) -> ReplicaFile:
    """The replica file of the instance's model server: the job's Model under its name."""
    c = doc.config
    # The job's Environment reaches the model's containers, as on SageMaker.
    containers = [
        k.model_copy(update={"Environment": {**k.Environment, **c.Spec.Environment}})
        for k in doc.model.serving_containers
    ]
    return ReplicaFile(
        endpoint=c.Name,
        variant="",
        slot=c.Instance,
        replica_id=host_of(c.Instance),
        generation=c.Attempt,
        container=containers[0],
        containers=containers,
        root=str(server_root),
        store=doc.store,
        allow_file_uris=doc.allow_file_uris,
        grace_seconds=doc.grace_seconds,
        model_name=c.ModelName,
    )


class ProcessModelServer:
    """The job's model server as a child process: ``replica_main`` on a replica root."""

    def __init__(self, root: Path, doc: InstanceFile, log: JobLog) -> None:
        self.root = root
        self.server_root = root / SERVER_DIR
        self.doc = doc
        self.log = log
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self.url = ""  # known once the server listens (``wait_ready``)

    def _listening_at(self) -> str:
        """Where the server listens, once it has loaded the model and written its port."""
        try:
            port = (self.server_root / PORT_FILE).read_text().strip()
        except FileNotFoundError:
            return ""
        return f"http://127.0.0.1:{port}" if port.isdigit() else ""

    def start(self) -> None:
        self.server_root.mkdir(parents=True, exist_ok=True)
        write_model(
            self.server_root / REPLICA_FILE, server_replica_file(self.doc, self.server_root)
        )
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.backends.process.replica_main",
                str(self.server_root),
            ],
            cwd=self.server_root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=procs.dies_with_parent(),  # noqa: PLW1509 - no other thread forks meanwhile
        )
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        self._pump = threading.Thread(
            target=self.log.pump,
            args=(iter(lambda: os.read(fd, 65536), b""), self.tail),
            daemon=True,
        )
        self._pump.start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.url:
            self.url = self._listening_at()
            if self.url:
                break
            why = self.died()
            if why is not None:
                raise UnavailableError(f"the model server exited before it was ready: {why}")
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"the model server did not load the model and listen within {timeout:g} s; "
                    "raise ORCH_TRANSFORM__STARTUP_TIMEOUT_SECONDS if the model loads slowly"
                )
            time.sleep(_POLL_SECONDS)
        wait_for_ping(self.url, max(0.0, deadline - time.monotonic()), self.died)
        write_atomic(self.root / READY_FILE, str(time.time()))

    def died(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        if self._pump is not None:
            self._pump.join(2.0)
        tail = "; ".join(list(self.tail)[-5:])
        code = self._proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"the model server {how}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(self.doc.grace_seconds)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


ServerFactory = Callable[[Path, InstanceFile, JobLog], ModelServer]


def main(argv: list[str] | None = None, server_factory: ServerFactory = ProcessModelServer) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.backends.process.transform_main ROOT", file=sys.stderr)
        return 2
    root = Path(args[0])
    started = time.time()
    # The launcher writes this too; writing it here covers a launcher killed mid-launch.
    procs.write_own_pid(root / PID_FILE)
    doc = InstanceFile.model_validate_json((root / INSTANCE_FILE).read_text())
    c = doc.config
    log = JobLog(Path(doc.log_path), host_tag(host_of(c.Instance)) if c.InstanceCount > 1 else "")
    sys.stdout = _Tee(log, sys.stdout)
    sys.stderr = _Tee(log, sys.stderr)
    print(f"{host_of(c.Instance)}: attempt {c.Attempt} of instance {c.Instance} starting")
    from orchestrator.transformer.instance import main_with

    code = main_with(c, doc.store.open(), server_factory(root, doc, log), doc.transform)
    sys.stdout.flush()
    sys.stderr.flush()
    write_model(
        root / EXIT_FILE, RunnerExit(exit_code=code, started_at=started, ended_at=time.time())
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
