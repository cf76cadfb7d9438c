"""A transform job's records in the object store's scratch space: what survives a kill.

Under ``s3://jobs/<TransformJobName>/`` of ``store.scratch("transform")``::

    plan.json                   the work plan (instance 0 writes it once; the others wait)
    parts/<file:06d>/<range:06d> the scored output of one range, written atomically when the
                                range is done; its attributes hold the range's record and
                                byte counts. Its existence is the range's progress record.
    assembled/<file:06d>        written once ``<S3OutputPath>/<key>.out`` is (its parts
                                concatenated): the file is done
    progress/<instance>.json    the instance's counts in ranges not done yet, its request
                                count, model time and rate (rewritten every few seconds)
    result/<instance>.json      the instance's outcome (completed | failed + why | stopped)

``observe_scratch`` reads it all with one listing and a few small reads: every backend's
observation calls it for the job's ``TransformProgress`` and the instances' results.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import NotFoundError
from orchestrator.objects import ObjectInfo, ObjectStore, join_uri, parse_object_uri
from orchestrator.resources.failures import FailureReason
from orchestrator.resources.transform import (
    FILES_SHOWN,
    TransformFileProgress,
    TransformProgress,
)
from orchestrator.transform.workplan import WorkPlan

SCRATCH_NAME = "transform"
BUCKET = "jobs"
PLAN = "plan.json"
PARTS = "parts"
ASSEMBLED = "assembled"
PROGRESS = "progress"
RESULT = "result"
# A part's attributes: its range's record count and input bytes.
RECORDS_ATTR = "records"
BYTES_ATTR = "bytes"

Outcome = Literal["completed", "failed", "stopped"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_R = TypeVar("_R", "InstanceProgress", "InstanceResult")


class RangeProgress(_Record):
    """How far an instance is in one range it has not finished."""

    File: int
    Range: int
    BytesProcessed: int = 0
    RecordsProcessed: int = 0


class InstanceProgress(_Record):
    """One instance's progress record (``progress/<instance>.json``)."""

    Instance: int
    Attempt: int
    UpdatedAt: datetime
    StartedAt: datetime
    # Work answered in ranges whose part is not written yet (a written part counts itself).
    InProgress: list[RangeProgress] = []
    Requests: int = 0  # answered by this attempt
    ModelSeconds: float = 0.0  # summed over them: send to whole answer
    RecordsPerSecond: float | None = None  # this attempt's records over its scoring time


class InstanceResult(_Record):
    """How an instance's attempt ended (``result/<instance>.json``)."""

    Instance: int
    Attempt: int
    Outcome: Outcome
    Failure: FailureReason | None = None
    File: int | None = None  # the input file that failed, when one did


class PartCounts(_Record):
    records: int
    bytes: int


class TransformScratch:
    """The job ``name``'s records in ``store``'s scratch space (see the module docstring)."""

    def __init__(self, store: ObjectStore, name: str) -> None:
        self.store = store.scratch(SCRATCH_NAME)
        self.name = name
        self.prefix = join_uri(BUCKET, f"{name}/")
        self._bucket_ready = False

    def uri(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _put(self, key: str, data: bytes) -> None:
        self._ensure_bucket()
        self.store.put_bytes(self.uri(key), data)

    def _ensure_bucket(self) -> None:
        if not self._bucket_ready:
            if not self.store.bucket_exists(BUCKET):
                self.store.create_bucket(BUCKET)
            self._bucket_ready = True

    def _get(self, key: str) -> bytes | None:
        try:
            return self.store.get_bytes(self.uri(key))
        except NotFoundError:
            return None

    # --- the plan ---------------------------------------------------------------------------
    def read_plan(self) -> WorkPlan | None:
        data = self._get(PLAN)
        return None if data is None else WorkPlan.model_validate_json(data)

    def write_plan(self, plan: WorkPlan) -> None:
        self._put(PLAN, plan.model_dump_json().encode())

    # --- parts ------------------------------------------------------------------------------
    def part_uri(self, file: int, index: int) -> str:
        return self.uri(part_key(file, index))

    def done_ranges(self) -> set[tuple[int, int]]:
        """The (file, range) pairs whose part is written (one listing)."""
        return set(self.done_parts())

    def done_parts(self, file: int | None = None) -> dict[tuple[int, int], PartCounts]:
        """The written parts (of every file, or of ``file``) with their counts."""
        under = f"{PARTS}/" if file is None else f"{PARTS}/{file:06d}/"
        found: dict[tuple[int, int], PartCounts] = {}
        for info in self._list(under):
            parsed = _parse_part(self._key_of(info))
            if parsed is not None:
                found[parsed] = _counts(info)
        return found

    def write_part(
        self, file: int, index: int, data: bytes | Path | BinaryIO, *, records: int, size: int
    ) -> None:
        """Write a range's output atomically, with its record and input byte counts."""
        self._ensure_bucket()
        attrs = {RECORDS_ATTR: str(records), BYTES_ATTR: str(size)}
        with _opened(data) as stream:
            self.store.put_stream(
                self.part_uri(file, index), stream, finish=lambda _size, _sha: attrs
            )

    def read_part(self, file: int, index: int) -> bytes:
        return self.store.get_bytes(self.part_uri(file, index))

    def iter_parts(self, file: int, count: int) -> Iterator[bytes]:
        """The outputs of ranges ``0 .. count - 1`` of ``file``, in order, one at a time."""
        for index in range(count):
            yield self.read_part(file, index)

    def mark_assembled(self, file: int) -> None:
        self._put(f"{ASSEMBLED}/{file:06d}", b"")

    def is_assembled(self, file: int) -> bool:
        return self.store.exists(self.uri(f"{ASSEMBLED}/{file:06d}"))

    # --- progress and results ---------------------------------------------------------------
    def write_progress(self, progress: InstanceProgress) -> None:
        self._put(f"{PROGRESS}/{progress.Instance}.json", progress.model_dump_json().encode())

    def read_progress(self) -> dict[int, InstanceProgress]:
        return self._read_all(PROGRESS, InstanceProgress)

    def write_result(self, result: InstanceResult) -> None:
        self._put(f"{RESULT}/{result.Instance}.json", result.model_dump_json().encode())

    def read_result(self, instance: int) -> InstanceResult | None:
        data = self._get(f"{RESULT}/{instance}.json")
        return None if data is None else InstanceResult.model_validate_json(data)

    def read_results(self) -> dict[int, InstanceResult]:
        return self._read_all(RESULT, InstanceResult)

    def remove(self) -> None:
        """Delete every object of the job in the scratch space."""
        for info in self._list(""):
            with contextlib.suppress(NotFoundError):
                self.store.delete(info.uri)

    # --- helpers ----------------------------------------------------------------------------
    def _list(self, under: str) -> list[ObjectInfo]:
        try:
            return self.store.list(self.uri(under))
        except NotFoundError:  # no bucket yet
            return []

    def _key_of(self, info: ObjectInfo) -> str:
        return parse_object_uri(info.uri)[1][len(self.name) + 1 :]

    def _read_all(self, folder: str, model: type[_R]) -> dict[int, _R]:
        return self._read_listed([self._key_of(i) for i in self._list(f"{folder}/")], model)

    def _read_listed(self, keys: list[str], model: type[_R]) -> dict[int, _R]:
        found: dict[int, _R] = {}
        for key in keys:
            data = self._get(key)
            if data is None:
                continue
            try:
                record = model.model_validate_json(data)
            except ValueError:  # not a record this runner wrote: as if absent
                continue
            found[record.Instance] = record
        return found


def part_key(file: int, index: int) -> str:
    return f"{PARTS}/{file:06d}/{index:06d}"


def _parse_part(key: str) -> tuple[int, int] | None:
    pieces = key.split("/")
    if len(pieces) != 3 or pieces[0] != PARTS:
        return None
    try:
        return int(pieces[1]), int(pieces[2])
    except ValueError:
        return None


def _counts(info: ObjectInfo) -> PartCounts:
    try:
        return PartCounts(
            records=int(info.attrs.get(RECORDS_ATTR, "0")),
            bytes=int(info.attrs.get(BYTES_ATTR, "0")),
        )
    except ValueError:
        return PartCounts(records=0, bytes=0)


@contextlib.contextmanager
def _opened(data: bytes | Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(data, bytes):
        yield io.BytesIO(data)
    elif isinstance(data, Path):
        with open(data, "rb") as f:
            yield f
    else:
        yield data


def observe_scratch(
    store: ObjectStore, name: str
) -> tuple[TransformProgress | None, dict[int, InstanceResult]]:
    """The job's progress (None before any plan is written) and its instances' results, from
    one listing of its scratch records and reads of the plan, progress and result records."""
    scratch = TransformScratch(store, name)
    parts: dict[tuple[int, int], PartCounts] = {}
    assembled: set[int] = set()
    progress_keys: list[str] = []
    result_keys: list[str] = []
    has_plan = False
    for info in scratch._list(""):
        key = scratch._key_of(info)
        folder = key.split("/", 1)[0]
        if key == PLAN:
            has_plan = True
        elif folder == PARTS and (parsed := _parse_part(key)) is not None:
            parts[parsed] = _counts(info)
        elif folder == ASSEMBLED:
            with contextlib.suppress(ValueError):
                assembled.add(int(key.split("/", 1)[1]))
        elif folder == PROGRESS:
            progress_keys.append(key)
        elif folder == RESULT:
            result_keys.append(key)
    results = scratch._read_listed(result_keys, InstanceResult)
    plan = scratch.read_plan() if has_plan else None
    if plan is None:
        return None, results
    progress = scratch._read_listed(progress_keys, InstanceProgress)
    return summarize(plan, parts, assembled, progress, results), results


def summarize(
    plan: WorkPlan,
    parts: dict[tuple[int, int], PartCounts],
    assembled: set[int],
    progress: dict[int, InstanceProgress],
    results: dict[int, InstanceResult],
) -> TransformProgress:
    """``TransformProgress`` from what the scratch space holds (see ``observe_scratch``)."""
    size = {(r.File, r.Index): r.size for r in plan.Ranges}
    done_bytes = [0] * len(plan.Inputs)
    records = [0] * len(plan.Inputs)
    started = [False] * len(plan.Inputs)
    for (file, index), counts in parts.items():
        if file < len(plan.Inputs):
            done_bytes[file] += size.get((file, index), counts.bytes)
            records[file] += counts.records
            started[file] = True
    for record in progress.values():
        for entry in record.InProgress:
            if entry.File < len(plan.Inputs) and (entry.File, entry.Range) not in parts:
                done_bytes[entry.File] += entry.BytesProcessed
                records[entry.File] += entry.RecordsProcessed
                started[entry.File] = True
    failed = {r.File for r in results.values() if r.Outcome == "failed" and r.File is not None}
    files: list[TransformFileProgress] = []
    for number, obj in enumerate(plan.Inputs):
        if number in assembled:
            status: Literal["Pending", "InProgress", "Completed", "Failed"] = "Completed"
        elif number in failed:
            status = "Failed"
        elif started[number]:
            status = "InProgress"
        else:
            status = "Pending"
        processed = obj.Size if status == "Completed" else min(obj.Size, done_bytes[number])
        files.append(
            TransformFileProgress(
                Key=obj.Key,
                SizeBytes=obj.Size,
                BytesProcessed=processed,
                RecordsProcessed=records[number],
                Status=status,
            )
        )
    shown = [f for f in files if f.Status == "InProgress"]
    shown += [f for f in files if f.Status != "InProgress"]
    active = [p for i, p in progress.items() if i not in results] or list(progress.values())
    rates = [p.RecordsPerSecond for p in active if p.RecordsPerSecond is not None]
    requests = sum(p.Requests for p in progress.values())
    model_seconds = sum(p.ModelSeconds for p in progress.values())
    return TransformProgress(
        FilesTotal=len(files),
        FilesCompleted=sum(1 for f in files if f.Status == "Completed"),
        BytesTotal=plan.total_bytes,
        BytesProcessed=sum(f.BytesProcessed for f in files),
        RecordsProcessed=sum(f.RecordsProcessed for f in files),
        RecordsPerSecond=sum(rates) if rates else None,
        ModelLatencyMicroseconds=model_seconds / requests * 1e6 if requests else None,
        Files=shown[:FILES_SHOWN],
    )
