"""Where the re-wrap walks and what it rewrites: one adapter per object store driver.

A ``RewrapTarget`` lists every object of a store, its scratch spaces included (they hold
envelopes too: S3 multipart parts, transform scratch), as *positions* in one fixed order, so
that a pass can stop anywhere and resume after the last position it saved. ``rewrap`` reads
one object's header, asks ``decide(key_id)`` whether it must move and to which logical key,
and writes the object again with its data key wrapped by that key's current version:

- format 3: a new header, then the records copied unchanged (the file driver copies with
  ``copy_file_range``, so reflink-capable file systems share the extents);
- older formats, whose records bind the header: resealed in full (``envelope.reseal``).

The new object replaces the old one only if the old one is still there, unchanged (a
compare-and-swap): the file driver compares inode, mtime and size under the store's rename
lock, which writers hold too; S3 puts with ``If-Match`` on the ETag read. A writer's object,
or a delete, that came in between wins: the outcome is ``raced`` or ``gone``.

The file driver fsyncs each new file before its rename (the old one is gone after it), but
the directories only at ``sync()``, which the pass calls before it saves its cursor: a rename
lost in a crash leaves the old object, still readable, and after the saved cursor.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from orchestrator.errors import IntegrityError, NotFoundError, OrchestratorError, TemporaryError
from orchestrator.objects import envelope
from orchestrator.objects.store import (
    BUCKET_MARKER,
    LOCK_DIR,
    TEMP_PREFIX,
    FileObjectStore,
    ObjectStore,
    fsync_dir,
)

if TYPE_CHECKING:
    from orchestrator.objects.s3 import S3ObjectStore

# For a key id: (must it move, the logical key to wrap under: None = the default key).
Decide = Callable[[str], tuple[bool, str | None]]
OutcomeKind = Literal["rewrapped", "resealed", "current", "gone", "raced", "unreadable"]
_SCRATCH = ".orch-"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    uri: str
    key_id: str | None = None  # the key id it is under now (None: gone, raced, unreadable)
    old_key_id: str | None = None
    error: str | None = None


class RewrapTarget(Protocol):
    def positions(self, after: str | None = None) -> Iterator[str]: ...
    def key_id_at(self, position: str) -> str | None: ...  # None: gone or unreadable
    def rewrap(self, position: str, decide: Decide) -> Outcome: ...
    def rewrap_batch(self, positions: list[str], decide: Decide) -> list[Outcome]: ...
    def sync(self) -> None: ...  # make what ``rewrap`` replaced so far durable


def error_outcome(position: str, e: OrchestratorError) -> Outcome:
    """A temporary error: another pass tries again (``raced``); any other: ``unreadable``."""
    if isinstance(e, TemporaryError):
        return Outcome("raced", position, error=f"{position}: {e.message} (retried later)")
    return Outcome("unreadable", position, error=f"{position}: {e.message}")


def target_for(store: ObjectStore) -> RewrapTarget:
    """The adapter for ``store``'s driver."""
    if isinstance(store, FileObjectStore):
        return FileTarget(store)
    from orchestrator.objects.s3 import S3ObjectStore

    if isinstance(store, S3ObjectStore):
        return S3Target(store)
    raise NotFoundError(f"the re-wrap does not know the object store {type(store).__name__}")


def _locate(store: ObjectStore, parts: list[str]) -> tuple[ObjectStore, str] | None:
    """The store (the main one or a scratch space) and the URI a position names; None for
    what is not an object (bucket markers, temp files, stray files outside a bucket)."""
    while parts and parts[0].startswith(_SCRATCH) and not parts[0].startswith(TEMP_PREFIX):
        store, parts = store.scratch(parts[0][len(_SCRATCH) :]), parts[1:]
    if len(parts) < 2 or parts[0].startswith(".") or any(p.startswith(TEMP_PREFIX) for p in parts):
        return None
    if parts[1:] == [BUCKET_MARKER]:
        return None
    return store, f"s3://{parts[0]}/{'/'.join(parts[1:])}"


def _copy_rest(src: BinaryIO, dst: BinaryIO, offset: int, size: int) -> None:
    """Bytes ``offset`` .. ``size`` of ``src`` appended to ``dst``, in the kernel if it can."""
    dst.flush()
    left = size - offset
    try:
        while left > 0:
            n = os.copy_file_range(src.fileno(), dst.fileno(), left, offset)
            if n == 0:
                break
            offset += n
            left -= n
        dst.seek(0, os.SEEK_END)
        return
    except (OSError, AttributeError):  # another file system, or no copy_file_range
        dst.seek(0, os.SEEK_END)
    src.seek(offset)
    shutil.copyfileobj(src, dst, 1 << 20)


def _rewrite(
    src: BinaryIO, dst: BinaryIO, uri: str, store: ObjectStore, *, size: int, decide: Decide
) -> Outcome | tuple[OutcomeKind, str, str, int]:
    """Write the re-wrapped object to ``dst``: (kind, old key id, new key id, header size),
    or the outcome when there is nothing to write."""
    provider = store.provider  # type: ignore[attr-defined]
    try:
        header = envelope.read_key_header(src, uri)
    except IntegrityError as e:
        return Outcome("unreadable", uri, error=e.message)
    must, key = decide(header.key_id)
    if not must:
        return Outcome("current", uri, header.key_id, header.key_id)
    if header.rewrappable:
        key_id, raw = envelope.rewrap_header(header.raw, name=uri, provider=provider, key=key)
        dst.write(raw)
        _copy_rest(src, dst, len(header.raw), size)
        return "rewrapped", header.key_id, key_id, len(raw)
    src.seek(0)
    env = envelope.reseal(src, dst, name=uri, provider=provider, key=key)
    return "resealed", header.key_id, env.key_id, env.header_size


class FileTarget:
    """The file driver: positions are paths relative to the store's root."""

    def __init__(self, store: FileObjectStore) -> None:
        self.store = store
        self._dirty: set[Path] = set()
        self._dirty_lock = threading.Lock()

    def sync(self) -> None:
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        for directory in sorted(dirty):
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(directory)

    def positions(self, after: str | None = None) -> Iterator[str]:
        cursor = tuple(after.split("/")) if after else None
        yield from self._walk(self.store.root, (), cursor)

    def _walk(self, directory: Path, parts: tuple[str, ...], cursor: tuple[str, ...] | None
              ) -> Iterator[str]:  # fmt: skip
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) or entry.name == LOCK_DIR:
                continue
            here = (*parts, entry.name)
            if cursor is not None and here < cursor[: len(here)]:
                continue  # all of it is before the cursor
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), here, cursor)
            elif entry.is_file(follow_symlinks=False):
                if cursor is not None and here <= cursor:
                    continue
                if _locate(self.store, list(here)) is not None:
                    yield "/".join(here)

    def _open(self, position: str) -> tuple[ObjectStore, str, Path, BinaryIO] | None:
        found = _locate(self.store, position.split("/"))
        if found is None:
            return None
        path = self.store.root.joinpath(*position.split("/"))
        try:
            return found[0], found[1], path, open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def key_id_at(self, position: str) -> str | None:
        opened = self._open(position)
        if opened is None:
            return None
        with opened[3] as f:
            try:
                return envelope.read_key_header(f, opened[1]).key_id
            except IntegrityError:
                return None

    def rewrap(self, position: str, decide: Decide) -> Outcome:
        return self.rewrap_batch([position], decide)[0]

    def rewrap_batch(self, positions: list[str], decide: Decide) -> list[Outcome]:
        """``rewrap`` of each, with one flush to disk for the batch's new files (``syncfs``)
        between writing them all and renaming each by compare-and-swap."""
        done: list[Outcome | _Prepared] = []
        try:
            for position in positions:
                try:
                    done.append(self._prepare(position, decide))
                except OrchestratorError as e:
                    done.append(error_outcome(position, e))
            _flush([d.fd for d in done if isinstance(d, _Prepared)])
            return [d if isinstance(d, Outcome) else self._commit(d) for d in done]
        finally:
            for d in done:
                if isinstance(d, _Prepared):
                    with contextlib.suppress(OSError):
                        os.close(d.fd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(d.tmp)

    def _prepare(self, position: str, decide: Decide) -> Outcome | _Prepared:
        opened = self._open(position)
        if opened is None:
            return Outcome("gone", position)
        store, uri, path, src = opened
        tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
        with src:
            before = os.fstat(src.fileno())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(os.dup(fd), "wb") as dst:
                    done = _rewrite(src, dst, uri, store, size=before.st_size, decide=decide)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        if isinstance(done, Outcome):
            os.close(fd)
            os.unlink(tmp)
            return done
        # The object did not change: its time stays (S3's LastModified, ``head``).
        os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        kind, old, new, _ = done
        return _Prepared(uri, path, tmp, fd, before, kind, old, new)

    def _commit(self, d: _Prepared) -> Outcome:
        with self.store.path_lock(d.path):
            try:
                now = os.stat(d.path)
            except FileNotFoundError:
                return Outcome("gone", d.uri, old_key_id=d.old)
            b = d.before
            same = (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_size) == (
                b.st_dev, b.st_ino, b.st_mtime_ns, b.st_size,
            )  # fmt: skip
            if not same:
                return Outcome("raced", d.uri, old_key_id=d.old)
            os.replace(d.tmp, d.path)
        with self._dirty_lock:
            self._dirty.add(d.path.parent)
        return Outcome(d.kind, d.uri, d.new, d.old)


@dataclass(frozen=True)
class _Prepared:
    """A re-wrapped object written to ``tmp`` (open as ``fd``), not yet renamed over."""

    uri: str
    path: Path
    tmp: Path
    fd: int
    before: os.stat_result
    kind: OutcomeKind
    old: str
    new: str


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def _flush(fds: list[int]) -> None:
    """Make the files' data durable: one ``syncfs`` for several (their file system's dirty
    data at once, the cost of about one fsync), else ``fdatasync`` each."""
    if len(fds) > 1 and _syncfs is not None and _syncfs(fds[0]) == 0:
        return
    for fd in fds:
        os.fdatasync(fd)


class S3Target:
    """The S3 driver: positions are backing keys relative to the store's prefix."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store
        self._base = f"{store.prefix}/" if store.prefix else ""

    def sync(self) -> None:
        """A put is durable when S3 answers it."""

    def rewrap_batch(self, positions: list[str], decide: Decide) -> list[Outcome]:
        out = []
        for position in positions:
            try:
                out.append(self.rewrap(position, decide))
            except OrchestratorError as e:
                out.append(error_outcome(position, e))
        return out

    def positions(self, after: str | None = None) -> Iterator[str]:
        client = self.store._client
        args = {"Bucket": self.store.bucket, "Prefix": self._base}
        if after:
            args["StartAfter"] = self._base + after
        with self.store._errors(f"s3://{self.store.bucket}/{self._base}"):
            for page in client.get_paginator("list_objects_v2").paginate(**args):  # type: ignore[arg-type]
                for obj in page.get("Contents", []):
                    position = obj["Key"][len(self._base) :]
                    if _locate(self.store, position.split("/")) is not None:
                        yield position

    def _get(
        self, position: str, uri: str, dst: BinaryIO, *, first: int | None = None
    ) -> dict[str, object] | None:
        """The object (its first ``first`` bytes) into ``dst``; None when it is gone."""
        client, key = self.store._client, self._base + position
        try:
            with self.store._errors(uri):
                if first:
                    resp = client.get_object(
                        Bucket=self.store.bucket, Key=key, Range=f"bytes=0-{first - 1}"
                    )
                else:
                    resp = client.get_object(Bucket=self.store.bucket, Key=key)
                shutil.copyfileobj(resp["Body"], dst, 1 << 20)
        except NotFoundError:
            return None
        dst.seek(0)
        return dict(resp)

    def key_id_at(self, position: str) -> str | None:
        found = _locate(self.store, position.split("/"))
        if found is None:
            return None
        with tempfile.TemporaryFile() as f:
            if self._get(position, found[1], f, first=envelope.MAX_HEADER_BYTES) is None:
                return None
            try:
                return envelope.read_key_header(f, found[1]).key_id
            except IntegrityError:
                return None

    def rewrap(self, position: str, decide: Decide) -> Outcome:
        from botocore.exceptions import ClientError

        found = _locate(self.store, position.split("/"))
        if found is None:
            return Outcome("gone", position)
        store, uri = found
        with tempfile.TemporaryFile() as src, tempfile.TemporaryFile() as dst:
            resp = self._get(position, uri, src)
            if resp is None:
                return Outcome("gone", uri)
            size = int(str(resp["ContentLength"]))
            done = _rewrite(src, dst, uri, store, size=size, decide=decide)
            if isinstance(done, Outcome):
                return done
            kind, old, new, header_size = done
            meta = dict(resp.get("Metadata") or {})  # type: ignore[call-overload]
            meta["orch-key-id"] = new
            if "orch-header-size" in meta:
                meta["orch-header-size"] = str(header_size)
            dst.seek(0)
            try:
                with self.store._errors(uri):
                    self.store._client.put_object(
                        Bucket=self.store.bucket,
                        Key=self._base + position,
                        Body=dst,
                        Metadata=meta,
                        IfMatch=str(resp["ETag"]),
                    )
            except NotFoundError:
                return Outcome("gone", uri, old_key_id=old)
            except Exception as e:
                cause = e.__cause__
                if isinstance(cause, ClientError) and str(
                    cause.response.get("Error", {}).get("Code", "")
                ) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return Outcome("raced", uri, old_key_id=old)
                raise
            return Outcome(kind, uri, new, old)
