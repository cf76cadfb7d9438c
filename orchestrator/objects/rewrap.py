"""Master key rotation: rotate, re-wrap every data key to the newest version, retire the old.

``MasterKeys`` is what the API and ``orch keys`` drive:

- ``rotate()`` makes a new version of the default master key (``KeyVersions.rotate_master``);
  new objects are wrapped by it at once, in every process (they re-read the keyring when it
  changes). It asks for a re-wrap pass and wakes the background thread.
- A **pass** (``Rewrapper.run_pass``) walks every object of the store in a fixed order
  (``rewrap_targets``) and moves each data key that is not under its logical key's current
  version: unwrap with the old key id, wrap with the same logical key, replace the object by
  compare-and-swap. Generic over ``KeyProvider``; ``KeyVersions`` says which versions are
  current. Progress (the cursor: the last position done, and the counts) is saved to a small
  JSON file every ``checkpoint_every`` objects, so a killed pass resumes after the last saved
  position; objects visited again are already current and left alone. A pass that lost a
  race with a writer, met a temporary error, or saw a rotation while it ran asks for another.
- ``retire(key_id)`` counts, there and then, the objects whose data key that version still
  wraps (headers only) and refuses while any does, naming how many; then the version's key
  material is destroyed. Reading an object under a retired version raises ``KeyRetiredError``
  naming the version and the object.

``RewrapService`` is the background thread (lowered priority, a rate limit in objects per
second) started with the control plane.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import (
    ConflictError,
    ValidationError,
)
from orchestrator.objects.keys import KeyProvider, KeyVersion, KeyVersions
from orchestrator.objects.rewrap_targets import Outcome, RewrapTarget, target_for
from orchestrator.objects.store import ObjectStore

log = logging.getLogger("orchestrator.objects.rewrap")
_KEEP_ERRORS = 20


@dataclass
class RewrapProgress:
    """One pass, as saved in the state file (and shown by ``orch keys master-status``)."""

    state: str = "idle"  # idle (never ran) | running | done
    pending: bool = False  # another pass is wanted (a rotation, a race, a temporary error)
    pass_id: str | None = None
    started: str | None = None
    finished: str | None = None
    cursor: str | None = None  # the last position done
    total: int = 0  # objects in the store when the pass started
    done: int = 0
    rewrapped: int = 0
    resealed: int = 0
    current: int = 0
    raced: int = 0
    gone: int = 0
    unreadable: int = 0
    failed: int = 0
    retry: bool = False  # this pass met something another pass must look at again
    counts: dict[str, int] = field(default_factory=dict)  # key id -> objects, this pass
    last_counts: dict[str, int] | None = None  # key id -> objects, the last finished pass
    errors: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RewrapProgress:
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except ValueError as e:
            raise ValidationError(f"re-wrap state file {path} is malformed: {e}") from e
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})

    def save(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Rewrapper:
    """Runs re-wrap passes over one store; safe to kill at any point (see the module doc).

    ``rate``: objects per second at most (None: as fast as it goes); ``workers``: batches
    in flight at once, each of ``batch`` objects that share one flush to disk (results are
    taken in order, so the cursor only moves past objects that are done); ``after_object``
    is called with the number of objects done after each one (tests stop a pass there)."""

    def __init__(
        self,
        store: ObjectStore,
        provider: KeyProvider,
        state_path: Path,
        *,
        rate: float | None = None,
        checkpoint_every: int = 200,
        workers: int = 4,
        batch: int = 16,
        target: RewrapTarget | None = None,
        after_object: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValidationError(f"re-wrap rate {rate} must be > 0 objects/s", field="rate")
        self.store = store
        self.provider = provider
        self.state_path = Path(state_path)
        self.rate = rate
        self.checkpoint_every = max(1, checkpoint_every)
        self.workers = max(1, workers)
        self.batch = max(1, batch)
        self.target = target if target is not None else target_for(store)
        self.after_object = after_object
        self._sleep = sleep
        self._lock = threading.Lock()  # one pass at a time in this process

    # --- decisions ------------------------------------------------------------------------
    def decide(self, key_id: str) -> tuple[bool, str | None]:
        """Must an object under ``key_id`` move, and under which logical key?"""
        if not isinstance(self.provider, KeyVersions):
            return False, None  # no versions we can tell apart: nothing to move
        key = self.provider.logical_key(key_id)
        return key_id != self.provider.current_key_id(key), key

    # --- state ----------------------------------------------------------------------------
    @property
    def _requested(self) -> Path:
        return self.state_path.with_name(f"{self.state_path.name}.requested")

    def request(self) -> None:
        """Ask for a pass (after a rotation): a marker file, so that asking never waits for
        a running pass, nor races its saves; the next pass to start takes it."""
        self._requested.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._requested.touch()

    def progress(self) -> RewrapProgress:
        p = RewrapProgress.load(self.state_path)
        p.pending = p.pending or self._requested.exists()
        return p

    def wanted(self) -> bool:
        p = self.progress()
        return p.pending or p.state == "running"

    # --- a pass ---------------------------------------------------------------------------
    def run_pass(self, stop: threading.Event | None = None) -> RewrapProgress:
        """Run (or resume) a pass to its end, or until ``stop`` is set; returns the progress.
        If another process runs a pass over the same state file, returns its progress."""
        with self._lock, self._process_lock() as mine:
            p = self.progress()
            if not mine:
                return p
            if p.state != "running":
                p = self._start(p)
            else:
                log.info("resuming re-wrap pass %s after %s", p.pass_id, p.cursor)
            self._walk(p, stop)
            return p

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[bool]:
        """One pass at a time across processes too (True: this one holds it)."""
        self.state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            self.state_path.with_name(f".{self.state_path.name}.lock"),
            os.O_RDWR | os.O_CREAT,
            0o600,
        )
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _start(self, last: RewrapProgress) -> RewrapProgress:
        # Taken before the walk: a rotation from now on asks for the pass after this one.
        self._requested.unlink(missing_ok=True)
        total = sum(1 for _ in self.target.positions())
        p = RewrapProgress(
            state="running",
            pass_id=secrets.token_hex(4),
            started=_now(),
            total=total,
            last_counts=last.last_counts,
        )
        p.save(self.state_path)
        log.info("re-wrap pass %s: %d objects", p.pass_id, total)
        return p

    def _walk(self, p: RewrapProgress, stop: threading.Event | None) -> None:
        pace = 1.0 / self.rate if self.rate else 0.0
        next_at = time.monotonic()
        window: deque[tuple[list[str], Future[list[Outcome]]]] = deque()
        batch: list[str] = []
        stopped = False
        with ThreadPoolExecutor(self.workers, thread_name_prefix="key-rewrap") as pool:
            try:
                for position in self.target.positions(p.cursor):
                    if stop is not None and stop.is_set():
                        stopped = True
                        break
                    batch.append(position)
                    if len(batch) >= self.batch:
                        window.append((batch, pool.submit(self._many, batch)))
                        batch = []
                    if len(window) >= self.workers * 2:
                        self._take(p, *window.popleft())
                    if pace:
                        next_at += pace
                        delay = next_at - time.monotonic()
                        if delay > 0:
                            self._sleep(delay)
                        else:
                            next_at = time.monotonic()
                if batch and not stopped:
                    window.append((batch, pool.submit(self._many, batch)))
                while window:
                    self._take(p, *window.popleft())
            finally:
                for _, fut in window:
                    fut.cancel()
        if stop is not None and stop.is_set():
            self._checkpoint(p)
            return
        self._finish(p)

    def _take(self, p: RewrapProgress, batch: list[str], fut: Future[list[Outcome]]) -> None:
        for position, outcome in zip(batch, fut.result(), strict=True):
            self._tally(p, outcome)
            p.cursor = position
            p.done += 1
            if p.done % self.checkpoint_every == 0:
                self._checkpoint(p)
            if self.after_object is not None:
                self.after_object(p.done)

    def _checkpoint(self, p: RewrapProgress) -> None:
        self.target.sync()  # the renames before the cursor are durable before it is saved
        p.save(self.state_path)

    def _many(self, batch: list[str]) -> list[Outcome]:
        return self.target.rewrap_batch(batch, self.decide)

    @staticmethod
    def _tally(p: RewrapProgress, out: Outcome) -> None:
        if out.kind == "raced":
            p.raced += 1
            p.retry = True
        elif out.kind == "gone":
            p.gone += 1
        elif out.kind == "unreadable":
            p.unreadable += 1
        else:
            setattr(p, out.kind, getattr(p, out.kind) + 1)
        if out.key_id is not None:
            p.counts[out.key_id] = p.counts.get(out.key_id, 0) + 1
        if out.error:
            p.errors = [*p.errors, out.error][-_KEEP_ERRORS:]
            log.warning("re-wrap: %s", out.error)

    def _finish(self, p: RewrapProgress) -> None:
        # Objects still under an old version: a rotation came while the pass ran.
        behind = any(self.decide(k)[0] for k in p.counts)
        self.target.sync()
        p.state, p.finished, p.last_counts = "done", _now(), dict(p.counts)
        p.pending = p.retry or behind
        p.save(self.state_path)
        p.pending = p.pending or self._requested.exists()
        log.info(
            "re-wrap pass %s done: %d objects, %d re-wrapped, %d resealed, %d raced, %d "
            "unreadable", p.pass_id, p.done, p.rewrapped, p.resealed, p.raced, p.unreadable,
        )  # fmt: skip

    # --- counting -------------------------------------------------------------------------
    def census(self) -> dict[str, int]:
        """Objects per key id now, from every object's header (no data key is opened)."""
        counts: dict[str, int] = {}
        for position in self.target.positions():
            key_id = self.target.key_id_at(position)
            if key_id is not None:
                counts[key_id] = counts.get(key_id, 0) + 1
        return counts


class RewrapService:
    """The background thread: runs a pass when one is wanted; niced, rate limited."""

    def __init__(
        self,
        rewrapper: Rewrapper,
        *,
        poll: float = 60.0,
        nice: int = 10,
        after_pass: Callable[[], int] | None = None,
    ) -> None:
        self.rewrapper = rewrapper
        self.after_pass = after_pass
        self.poll = poll
        self.nice = nice
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="key-rewrap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        # Linux threads are tasks: this lowers this thread's priority only.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while not self._stop.is_set():
            try:
                if self.rewrapper.wanted():
                    self.rewrapper.run_pass(self._stop)
                    self.passes += 1
                    if self.after_pass is not None and not self._stop.is_set():
                        self.after_pass()
                    if self.rewrapper.wanted():
                        self._stop.wait(1.0)  # a race or a rotation: go again soon
                        continue
            except Exception:  # the thread must outlive any one failure; it retries
                log.exception("re-wrap pass failed; retrying in %.0f s", self.poll)
            self._wake.wait(self.poll)
            self._wake.clear()


@dataclass(frozen=True)
class MasterKeyStatus:
    versions: list[KeyVersion]
    progress: RewrapProgress


class MasterKeys:
    """Rotate, re-wrap and retire master key versions over one store and one provider.

    ``other_users(key_id)`` counts what else the version still wraps (the SigV4 access
    keys' sealed secrets): retiring is refused while it is more than zero too;
    ``after_pass()`` moves those others (called by the service after each pass)."""

    def __init__(
        self,
        store: ObjectStore,
        provider: KeyProvider,
        state_path: Path,
        *,
        rate: float | None = None,
        other_users: Callable[[str], dict[str, int]] | None = None,
        after_pass: Callable[[], int] | None = None,
        poll: float = 60.0,
    ) -> None:
        self.provider = provider
        self.rewrapper = Rewrapper(store, provider, state_path, rate=rate)
        self.service = RewrapService(self.rewrapper, poll=poll, after_pass=after_pass)
        self.other_users = other_users

    def _versions(self) -> KeyVersions:
        if not isinstance(self.provider, KeyVersions):
            raise ValidationError(
                f"the key provider {type(self.provider).__name__} has no master key versions "
                "to rotate or retire here (rotate the key in the provider itself)",
                field="provider",
            )
        return self.provider

    def rotate(self, key: str | None = None) -> KeyVersion:
        try:
            version = self._versions().rotate_master(key)
        except OSError as e:
            raise ValidationError(
                f"cannot write a new master key version: {e} (a read-only keyring, such as a "
                "mounted Secret, is rotated by updating it where it is kept)",
                field="keyring",
            ) from e
        self.rewrapper.request()
        self.service.wake()
        log.info("rotated master key: new version %s", version.key_id)
        return version

    def status(self) -> MasterKeyStatus:
        return MasterKeyStatus(self._versions().key_versions(), self.rewrapper.progress())

    def retire(self, key_id: str) -> KeyVersion:
        versions = {v.key_id: v for v in self._versions().key_versions()}
        if key_id in versions and versions[key_id].state == "retired":
            return versions[key_id]
        if key_id in versions and versions[key_id].state == "active":
            self.provider_retire(key_id)  # the provider refuses, with its reason
        users = {"objects": self.rewrapper.census().get(key_id, 0)}
        if self.other_users is not None:
            users.update(self.other_users(key_id))
        busy = {what: n for what, n in users.items() if n}
        if busy:
            what = ", ".join(f"{n} {kind}" for kind, n in busy.items())
            raise ConflictError(
                f"master key version {key_id!r} is still in use: it wraps the data keys of "
                f"{what}; wait for the re-wrap to move them (orch keys master-status shows "
                "its progress), then retire it",
                field="key_id",
            )
        return self.provider_retire(key_id)

    def provider_retire(self, key_id: str) -> KeyVersion:
        version = self._versions().retire_version(key_id)
        log.warning("retired master key version %s: its key material is destroyed", key_id)
        return version


def progress_dict(p: RewrapProgress) -> dict[str, Any]:
    return asdict(p)
