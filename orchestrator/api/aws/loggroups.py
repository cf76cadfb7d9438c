"""The log groups beside training and endpoints (``logs``): transform jobs and the control
plane's own log, and each group's retention.

- ``/aws/sagemaker/TransformJobs`` (once a transform job exists): a stream per instance of
  each job whose log has output, ``JOB/algo-K-EPOCH`` for K in 1..``TransformResources.
  InstanceCount`` (the job log tags each instance's lines ``[algo-K] `` when there are
  several), EPOCH the second of its first line. Transform logs keep no time marks: their
  lines carry the job's creation time, as replica logs do.
- ``/orchestrator/control-plane``: a stream per API server (its host name), the server's
  Python log (``api.serverlog``), rotated at ``serverlog.MAX_BYTES``; only the current file is
  read. Every line starts with its UTC time, which becomes its event's time (lines that do
  not, a traceback's, take the time of the line before them).

Retention is CloudWatch's ``PutRetentionPolicy``: days from ``RETENTION_DAYS``, kept per
group in ``<logs>/retention.json``. An event older than its group's retention is never
returned (reads start at now minus the retention); the bytes stay on disk until the writer's
own rotation or cleanup removes them.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from orchestrator.api import serverlog
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.logevents import Source, StreamInfo
from orchestrator.api.owners import own
from orchestrator.api.service import ControlPlane
from orchestrator.backends.base import TransformBackend
from orchestrator.resources.kinds import TRANSFORM_JOB
from orchestrator.store import ListFilter, Record
from orchestrator.training.joblog import ListMarks

TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"
CONTROL_PLANE_GROUP = "/orchestrator/control-plane"
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)  # fmt: skip
_STREAM = re.compile(r"^(?P<job>[^/]+)/algo-(?P<host>[1-9][0-9]*)-(?P<epoch>[0-9]+)$")
_LINE_TIME = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_PAGE = 100


def _no_stream() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log stream does not exist.")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _first_line(src: Source) -> bool:
    return bool(src.read(0, 1)[0])


class TransformJobs:
    name = TRANSFORM_GROUP
    action = "transform-job:logs"

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    @staticmethod
    def _hosts(r: Record) -> int:
        count = (r.spec.get("TransformResources") or {}).get("InstanceCount", 1)
        return count if isinstance(count, int) and count > 0 else 1

    def _source(self, r: Record, host: str | None = None, *, untagged: bool = True) -> Source:
        backend = self.cp.backend
        assert isinstance(backend, TransformBackend)
        return Source(
            read=partial(backend.read_transform_logs, r.name),
            marks=ListMarks(),
            fallback_ms=_ms(r.created_at),
            complete=not r.active,
            host=host,
            untagged=untagged,
        )

    def _records(self, prefix: str) -> list[Record]:
        job, slash, _ = prefix.partition("/")
        if slash:
            r = own(self.cp.store.find(TRANSFORM_JOB.name, job))
            return [r] if r is not None else []
        out: list[Record] = []
        token = None
        while True:
            page, token = self.cp.store.list(
                TRANSFORM_JOB.name,
                ListFilter(limit=_PAGE, next_token=token, name_contains=prefix),
            )
            out += [r for r in page if r.name.startswith(prefix) and own(r)]
            if token is None:
                return out

    def streams(self, prefix: str) -> list[StreamInfo]:
        if not isinstance(self.cp.backend, TransformBackend):
            return []
        out = []
        for r in self._records(prefix):
            src = self._source(r)
            try:
                if not _first_line(src):
                    continue
                first, last = src.time_at(0), src.last_ms
            finally:
                src.close()
            out += [
                StreamInfo(f"{r.name}/algo-{k}-{first // 1000}", first, last)
                for k in range(1, self._hosts(r) + 1)
            ]
        return [s for s in out if s.name.startswith(prefix)]

    def open(self, stream: str) -> Source:
        m = _STREAM.match(stream)
        r = own(self.cp.store.find(TRANSFORM_JOB.name, m["job"])) if m else None
        if (
            m is None
            or r is None
            or not isinstance(self.cp.backend, TransformBackend)
            or int(m["host"]) > self._hosts(r)
        ):
            raise _no_stream()
        k = int(m["host"])
        src = self._source(r, f"algo-{k}" if self._hosts(r) > 1 else None, untagged=k == 1)
        if not _first_line(src) or src.time_at(0) // 1000 != int(m["epoch"]):
            src.close()
            raise _no_stream()
        return src


# --- the control plane's own log ----------------------------------------------------------
def _read_file(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


# path -> (inode and first bytes, where the whole lines read end, marks): the file is only
# appended to until it rotates (another file: a new inode or other first bytes), so each
# read parses only what was added since the last.
_MARKS: dict[Path, tuple[tuple[int, bytes], int, list[tuple[int, int]]]] = {}
_MARKS_LOCK = threading.Lock()


def line_marks(path: Path) -> ListMarks:
    """Marks from the UTC times that start the file's lines (one a line that has one)."""
    try:
        with path.open("rb") as f:
            ident = (os.fstat(f.fileno()).st_ino, os.pread(f.fileno(), 64, 0))
            with _MARKS_LOCK:
                cached = _MARKS.get(path)
            marks: list[tuple[int, int]] = []
            offset = 0
            if cached is not None and cached[0] == ident and len(ident[1]) == 64:
                offset, marks = cached[1], list(cached[2])
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # its time is read once it is whole
                m = _LINE_TIME.match(line)
                if m is not None:
                    t = datetime.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S.%f")
                    ms = _ms(t.replace(tzinfo=UTC))
                    if not marks or ms > marks[-1][1]:  # times never decrease along a log
                        marks.append((offset, ms))
                offset += len(line)
    except FileNotFoundError:
        return ListMarks()
    with _MARKS_LOCK:
        _MARKS[path] = (ident, offset, marks)
    return ListMarks(marks)


class ControlPlaneLog:
    name = CONTROL_PLANE_GROUP
    action = "logs:control-plane"

    def __init__(self, cp: ControlPlane) -> None:
        self.dir = serverlog.log_dir(cp.settings.logs_dir)
        self.created_ms = _ms(cp.clock.now())

    def exists(self) -> bool:
        return self.dir.is_dir() and any(self.dir.glob("*.log"))

    def created(self) -> int:
        files = list(self.dir.glob("*.log")) if self.dir.is_dir() else []
        return min((int(p.stat().st_mtime * 1000) for p in files), default=self.created_ms)

    def _source(self, path: Path) -> Source:
        return Source(
            read=partial(_read_file, path),
            marks=line_marks(path),
            fallback_ms=self.created_ms,
        )

    def streams(self, prefix: str) -> list[StreamInfo]:
        out = []
        for path in sorted(self.dir.glob("*.log")) if self.dir.is_dir() else []:
            if not path.stem.startswith(prefix):
                continue
            src = self._source(path)
            if _first_line(src):
                out.append(StreamInfo(path.stem, src.time_at(0), src.last_ms))
        return out

    def open(self, stream: str) -> Source:
        path = self.dir / f"{stream}.log"
        if not _HOST.match(stream) or not path.is_file():
            raise _no_stream()
        return self._source(path)


# --- retention ----------------------------------------------------------------------------
class Retention:
    """Each group's retention in days (none: kept forever), in one JSON file."""

    def __init__(self, logs_dir: Path) -> None:
        self.path = logs_dir / "retention.json"
        self._lock = threading.Lock()

    def all(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if type(v) is int}

    def get(self, group: str) -> int | None:
        return self.all().get(group)

    def _write(self, data: dict[str, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)

    def put(self, group: str, days: object) -> None:
        if type(days) is not int or days not in RETENTION_DAYS:
            raise AwsError(
                "InvalidParameterException",
                f"retentionInDays: {days!r} is not one of CloudWatch's retention periods "
                f"({', '.join(map(str, RETENTION_DAYS))})",
            )
        with self._lock:
            data = self.all()
            data[group] = days
            self._write(data)

    def delete(self, group: str) -> None:
        with self._lock:
            data = self.all()
            if data.pop(group, None) is not None:
                self._write(data)

    def start_ms(self, group: str, now: datetime) -> int | None:
        """The oldest time still kept in ``group`` (None: everything)."""
        days = self.get(group)
        return None if days is None else _ms(now) - days * 86_400_000
