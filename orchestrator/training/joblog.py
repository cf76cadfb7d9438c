"""A job's log as its supervisor writes it: the lines, when each was written, which host wrote it.

The log stays plain text (``orch jobs logs`` shows it as it is). Beside it, ``<log>.times``
holds *time marks*: 16-byte records (byte offset, epoch milliseconds; little-endian), appended
by the writer whenever the clock's millisecond has moved since its last mark, and written
*before* the line at that offset. So:

- a line's time is the time of the last mark at or before its offset, exact to the
  millisecond (every line written in a new millisecond starts with a mark of its own);
- a reader never sees a line before its mark, so a line's time never changes once seen;
- a mark takes the later of the clock and the last mark, so times never go backwards and the
  marks are sorted by offset and by time at once: the time of an offset, or the first line at
  or after a time, is a binary search (``mark_at``, ``first_offset_at``), O(log marks) reads
  of 16 bytes whatever the log's size.

The cost is one record per millisecond in which something was written: a job printing a line
every millisecond adds 16 bytes per line, one that prints bursts adds one per burst.

A job on several hosts (the Docker backend, ``InstanceCount`` > 1) writes each host's lines
with ``host_tag(host)`` in front (``[algo-2] ...``); the supervisor's own lines carry none.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

MARK = struct.Struct("<QQ")
TIMES_SUFFIX = ".times"
HOST_TAG = re.compile(r"\[(algo-[1-9][0-9]*)\] ")

Mark = tuple[int, int]  # (byte offset of a line, epoch milliseconds it was written)


def times_path(log: Path) -> Path:
    return log.with_name(log.name + TIMES_SUFFIX)


def host_tag(host: str) -> str:
    """What a multi-host job's lines from ``host`` (``algo-K``) start with in the log."""
    return f"[{host}] "


class JobLog:
    """Appends lines to a job log and its time marks. Safe to share between threads (the
    Docker supervisor streams every host's output into one log)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._log = open(path, "ab", buffering=0)  # noqa: SIM115 - held for the attempt
        self._times = open(times_path(path), "a+b", buffering=0)  # noqa: SIM115
        self._size = os.fstat(self._log.fileno()).st_size
        self._last_ms = -1
        fd = self._times.fileno()
        times_size = os.fstat(fd).st_size
        whole = times_size - times_size % MARK.size
        if whole != times_size:  # a writer killed mid-record: drop the torn tail
            self._times.truncate(whole)
        if whole:
            self._last_ms = MARK.unpack(os.pread(fd, MARK.size, whole - MARK.size))[1]

    def write(self, text: str) -> int:
        """One line (a newline is added when it has none, so the next write starts a line);
        returns the time it was written (epoch milliseconds: its mark's)."""
        data = text.encode("utf-8", "replace")
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            ms = max(int(self._clock() * 1000), self._last_ms)
            if ms != self._last_ms:
                self._times.write(MARK.pack(self._size, ms))
                self._last_ms = ms
            view = memoryview(data)
            while view:
                written = self._log.write(view)
                view = view[written or 0 :]
            self._size += len(data)
        return ms

    @property
    def size(self) -> int:
        """Bytes in the log so far: where the next line starts."""
        with self._lock:
            return self._size

    def close(self) -> None:
        self._log.close()
        self._times.close()


class Marks(Protocol):
    """A log's time marks in offset order (also time order); empty when none are kept."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Mark: ...

    def close(self) -> None: ...


class ListMarks:
    """Marks held in memory (the fake backend's)."""

    def __init__(self, marks: Sequence[Mark] = ()) -> None:
        self._marks = list(marks)

    def __len__(self) -> int:
        return len(self._marks)

    def __getitem__(self, index: int) -> Mark:
        return self._marks[index]

    def close(self) -> None:
        return None


class FileMarks:
    """A times file as it was when opened, read a block of records at a time (``pread``): a
    binary search reads a block per step, a walk along the lines one per 512 marks (one read
    per record was 31% of the time of a page of 10,000 events, profiled: it is now 24%
    less time per page)."""

    BLOCK = 512

    def __init__(self, path: Path) -> None:
        self._block_no = -1
        self._block = b""
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._fd, self._count = None, 0
            return
        self._count = os.fstat(self._fd).st_size // MARK.size

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> Mark:
        if index < 0:
            index += self._count
        if not 0 <= index < self._count or self._fd is None:
            raise IndexError(index)
        block, at = divmod(index, self.BLOCK)
        if block != self._block_no:
            size = self.BLOCK * MARK.size
            self._block, self._block_no = os.pread(self._fd, size, block * size), block
        offset, ms = MARK.unpack_from(self._block, at * MARK.size)
        return int(offset), int(ms)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def mark_at(marks: Marks, offset: int) -> int:
    """The index of the mark that times the line at ``offset`` (-1: before the first mark)."""
    return bisect.bisect_right(marks, offset, key=lambda m: m[0]) - 1


def first_offset_at(marks: Marks, ms: int) -> int | None:
    """Where the first line written at or after ``ms`` starts (None: every marked line is
    older). Lines before the first mark are not covered: callers scan those."""
    i: int = bisect.bisect_left(marks, ms, key=lambda m: m[1])
    return marks[i][0] if i < len(marks) else None


def split_timestamps(raw: bytes) -> tuple[bytes, list[Mark]]:
    """A container runtime's timestamped output (Docker's ``timestamps=True``, the Kubernetes
    pod log's ``timestamps=true``) as (the lines without their stamps, marks)."""
    out = bytearray()
    marks: list[Mark] = []
    for line in raw.splitlines(keepends=True):
        stamp, sep, rest = line.partition(b" ")
        t = _stamp_ms(stamp) if sep else None
        if t is None:
            out += line
            continue
        if not marks or t > marks[-1][1]:
            marks.append((len(out), t))
        out += rest
    return bytes(out), marks


def _stamp_ms(stamp: bytes) -> int | None:
    text = stamp.decode("ascii", "replace")
    if not text.endswith("Z"):
        return None
    try:  # RFC 3339 with nanoseconds: keep the microseconds
        t = datetime.fromisoformat(text[:26].rstrip("Z").rstrip("."))
    except ValueError:
        return None
    return int(t.replace(tzinfo=UTC).timestamp() * 1000)
