"""Checkpoints uploaded while the job runs: the local checkpoint directory mirrored into the
store under ``CheckpointConfig.S3Uri``, file by file, as each is finished.

One code for every backend: the supervisor of the process and Docker backends runs it in a
thread beside the user's process (``Watcher``), the ``upload`` container of a Kubernetes
training pod beside the user's container (``kube.steps``); each ends with a final ``sync``
once the user's code has exited, however it exited, so nothing closed before a kill is lost.

How a finished file is told: by polling. Every ``interval`` seconds the directory is scanned
(``stat`` only); a file is uploaded once its size and modification time are the same in two
scans in a row (nothing wrote to it for a whole interval), and the final sync uploads
whatever is left, stable or not. Polling rather than inotify's close-after-write: it needs
no library in the step images, works on every file system a volume may be (network ones
included, where inotify sees no remote writes) and across the container boundary, and a scan
costs microseconds per file (docs/benchmarks.md); the price is up to two intervals between a
file's close and its upload.

What is uploaded already is skipped: the manifest keeps each uploaded file's size and
modification time; the checkpoints an attempt downloaded are entered in it as they land (where
one process downloads and syncs), and otherwise recognised by their content against the
store's listing (size and SHA-256 of each object: the Kubernetes sidecar), so a retried
attempt does not upload them again. Symbolic links are not followed. Each object is written
whole or not at all (``objects``: a temp file renamed on the file store, one PUT on S3), so a
reader never sees part of a file. Deletes are not mirrored: an object once uploaded stays (a
job that clears its checkpoint directory at the end keeps its checkpoints in the store);
SageMaker documents the two as synced and says no more.

What the upload may take from training: the uploader thread is niced (``UPLOADER_NICENESS``)
and, while the user's code runs, reads at ``rate`` at most (the final sync runs at full
speed). On Docker and Kubernetes the user's code runs in a cgroup of its own, where the CPU is
shared by cgroup weight (the sidecar requests 100m) and the rate is what bounds the upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.errors import OrchestratorError
from orchestrator.objects import ObjectStore
from orchestrator.objects.store import TEMP_PREFIX

DEFAULT_INTERVAL = 5.0
# The uploader runs at this niceness above the supervisor's (a thread on Linux): when it and
# the user's process want the same CPU, the scheduler gives the uploader 15/(15+1024) of it
# (nice 10: 110/(110+1024), ~10%), so training slows by ~1.5% at worst (docs/benchmarks.md).
UPLOADER_NICENESS = 19

Stamp = tuple[int, int]  # (size, mtime_ns)


class Throttled(io.RawIOBase):
    """A file read at ``rate`` bytes per second at most (on average since it was opened), so
    the uploader's share of CPU, disk and memory bandwidth stays bounded however large the
    checkpoint is: the training process beside it is what matters."""

    def __init__(
        self,
        f: io.BufferedIOBase,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._f = f
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, view: Any) -> int:
        ahead = self._done / self._rate - (self._clock() - self._start)
        if ahead > 0:
            self._sleep(ahead)
        n = self._f.readinto(view)
        self._done += n or 0
        return n or 0


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class SyncReport:
    uploaded: list[str] = field(default_factory=list)  # relative paths, this pass
    errors: list[str] = field(default_factory=list)


class CheckpointSync:
    """Mirrors ``local`` into ``uri`` (a prefix). ``open_store`` is called when first needed.
    Not thread-safe: one thread calls ``sync`` (``Watcher`` serialises its own and the
    final one)."""

    def __init__(
        self,
        local: Path,
        uri: str,
        open_store: Callable[[], ObjectStore],
        *,
        say: Callable[[str], None] = lambda _message: None,
        rate: float | None = None,
    ) -> None:
        self.local = local
        self.rate = rate  # bytes per second an upload may read at most (None: no limit)
        self.base = uri.rstrip("/")
        self._open_store = open_store
        self._store: ObjectStore | None = None
        self.say = say
        self.uploaded: dict[str, Stamp] = {}  # the manifest
        self._seen: dict[str, Stamp] = {}  # last scan's stamps of files not uploaded yet
        self._remote: dict[str, tuple[int, str]] | None = None  # rel -> (size, sha256)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _remote_objects(self) -> dict[str, tuple[int, str]]:
        if self._remote is None:
            prefix = self.base + "/"
            self._remote = {
                o.uri[len(prefix) :]: (o.size, o.sha256)
                for o in self.store.list(prefix)
                if o.uri.startswith(prefix)
            }
        return self._remote

    def mark_uploaded(self, relatives: Iterable[str]) -> None:
        """These files under ``local`` are in the store as they are now (just downloaded)."""
        for rel in relatives:
            with contextlib.suppress(FileNotFoundError):
                self.uploaded[rel] = _stamp((self.local / rel).stat())

    def files(self) -> dict[str, tuple[Path, Stamp]]:
        """Every regular file under ``local`` (symbolic links not followed), by its path: one
        ``lstat`` a file (``scandir`` tells files, links and directories apart)."""
        out: dict[str, tuple[Path, Stamp]] = {}
        pending = [("", str(self.local))]
        while pending:
            prefix, directory = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue  # none yet, or removed while we walk
            for entry in entries:
                rel = prefix + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((rel + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False) and not entry.name.startswith(
                        TEMP_PREFIX  # a key the store refuses (its own temp files)
                    ):
                        out[rel] = (Path(entry.path), _stamp(entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue  # deleted while we walk
        return dict(sorted(out.items()))

    def sync(self, *, final: bool = False) -> SyncReport:
        """One pass: upload each changed file that has been stable for one pass (every changed
        file when ``final``, at full speed: the user's code has exited; otherwise read at
        ``rate`` at most). A failed upload is reported and tried again next pass."""
        report = SyncReport()
        for rel, (path, stamp) in self.files().items():
            if self.uploaded.get(rel) == stamp:
                continue
            if not final and self._seen.get(rel) != stamp:
                self._seen[rel] = stamp  # changed since the last pass: wait for one more
                continue
            try:
                self._upload(rel, path, stamp, throttle=not final)
            except (OrchestratorError, OSError) as e:
                message = e.message if isinstance(e, OrchestratorError) else str(e)
                report.errors.append(f"{rel}: {message}")
                continue
            self._seen.pop(rel, None)
            report.uploaded.append(rel)
        return report

    def _upload(self, rel: str, path: Path, stamp: Stamp, *, throttle: bool = False) -> None:
        remote = self._remote_objects().get(rel)
        if remote is not None and remote[0] == stamp[0] and remote[1] == _sha256(path):
            self.uploaded[rel] = stamp  # the store has it (a downloaded checkpoint)
            return
        uri = f"{self.base}/{rel}"
        with open(path, "rb") as f:
            # The final sync runs once the user's code has exited: nothing to make room for.
            rate = self.rate if throttle else None
            stream: BinaryIO = f if rate is None else io.BufferedReader(Throttled(f, rate))
            info = self.store.put_stream(uri, stream)
        self._remote_objects()[rel] = (info.size, info.sha256)
        try:
            after = _stamp(path.stat())
        except FileNotFoundError:
            after = None
        # Written to while we read it: what we uploaded may be a mix; upload it again later.
        if after == stamp:
            self.uploaded[rel] = stamp


class Watcher:
    """``CheckpointSync`` every ``interval`` seconds in a thread of its own, and a final sync
    when stopped (``finish``). Upload errors go to ``say`` and are retried next pass."""

    def __init__(self, sync: CheckpointSync, interval: float = DEFAULT_INTERVAL) -> None:
        self.sync = sync
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpoint-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: no per-thread nice
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPLOADER_NICENESS)
        while not self._stop.wait(self.interval):
            self.pass_once()

    def pass_once(self, *, final: bool = False) -> SyncReport:
        with self._lock:
            try:
                report = self.sync.sync(final=final)
            except (OrchestratorError, OSError) as e:  # the listing failed: next pass
                message = e.message if isinstance(e, OrchestratorError) else str(e)
                report = SyncReport(errors=[f"listing {self.sync.base}: {message}"])
            self.passes += 1
        if report.uploaded:
            self.sync.say(
                f"checkpoints uploaded: {', '.join(report.uploaded)}"
                if len(report.uploaded) <= 5
                else f"checkpoints uploaded: {len(report.uploaded)} file(s)"
            )
        for error in report.errors:
            self.sync.say(f"checkpoint upload failed (will retry): {error}")
        return report

    def finish(self) -> list[str]:
        """Stop the thread and sync whatever is left; the files that could not be uploaded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.pass_once(final=True).errors


__all__ = ["DEFAULT_INTERVAL", "CheckpointSync", "SyncReport", "Watcher"]
