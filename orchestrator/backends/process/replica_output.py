"""A process replica's output with time marks: fds 1 and 2 become a pipe, and a thread writes
what comes through it, a line at a time, to the replica's log with ``training.joblog``'s
marks (so the endpoint's log stream knows when each line was written, as a job log does).
Whatever the model's code or its subprocesses print goes the same way."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from orchestrator.training.joblog import JobLog


class MarkedOutput:
    def __init__(self, log: Path) -> None:
        self._log = JobLog(log)
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read = os.fdopen(read_fd, "rb", buffering=0)
        self._thread = threading.Thread(target=self._pump, name="replica-output", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        while chunk := self._read.read(1 << 16):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._log.write(line.decode("utf-8", "replace"))
        if pending:
            self._log.write(pending.decode("utf-8", "replace"))

    def close(self, timeout: float = 2.0) -> None:
        """Flush, end the pipe (ours; children still holding it keep it open) and wait for
        the last lines."""
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        self._thread.join(timeout)
        self._log.close()
