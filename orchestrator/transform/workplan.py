"""A transform job's work plan: the input objects, their byte ranges, which instance takes which.

``make_plan`` computes it from the input listing (an S3Prefix listing, or a ManifestFile's
entries read by ``parse_manifest``); the runner stores it once as ``plan.json``, so every
instance, and every restart of one, works from the same ranges.

- Keys: each object's key relative to the input prefix names its output,
  ``<S3OutputPath>/<Key>.out`` (SageMaker mirrors the input layout). A prefix that is not a
  folder (``s3://b/in/pre``) counts from its last ``/``: ``s3://b/in/pre-1.csv`` -> ``pre-1.csv``.
- Ranges: a splittable object (SplitType Line, uncompressed) is cut into even byte ranges of at
  most ``range_bytes``; the runner scores each range's lines (a line belongs to the range that
  holds its first byte). Other objects are one range each; an empty object one empty range, so
  it still gets its (empty) ``.out``. SageMaker never splits a file between instances; we do.
- Assignment: largest range first, each to the instance with the fewest bytes so far (then the
  fewest ranges, then the lowest index): deterministic, and balanced by bytes.
"""

from __future__ import annotations

import heapq
import itertools
import json
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.transform.errors import TransformDataError

__all__ = [
    "InputObject",
    "ManifestError",
    "WorkPlan",
    "WorkRange",
    "make_plan",
    "parse_manifest",
    "relative_key",
]

S3_URI_FIELD = "TransformInput.DataSource.S3DataSource.S3Uri"
_Count = Annotated[int, Field(ge=0)]


class ManifestError(TransformDataError):
    """A ManifestFile that is not SageMaker's ``[{"prefix": ...}, "key", ...]``."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputObject(_Model):
    """One input object: ``Key`` relative to the input prefix (its output's name)."""

    Key: str
    Uri: str
    Size: _Count


class WorkRange(_Model):
    """Bytes ``[Start, End)`` of input ``File`` (an index into ``Inputs``), that file's range
    number ``Index``, scored by instance ``Instance``."""

    File: _Count
    Index: _Count
    Start: _Count
    End: _Count
    Instance: _Count

    @property
    def size(self) -> int:
        return self.End - self.Start


class WorkPlan(_Model):
    """Every input object and every range of each; stored as the job's ``plan.json``."""

    Inputs: list[InputObject]
    Ranges: list[WorkRange]
    InstanceCount: Annotated[int, Field(ge=1)]
    RangeBytes: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        by_file: dict[int, list[WorkRange]] = {}
        for r in self.Ranges:
            if r.File >= len(self.Inputs):
                raise ValueError(
                    f"range {r.File}/{r.Index} names file {r.File} of {len(self.Inputs)}"
                )
            if r.Instance >= self.InstanceCount:
                raise ValueError(
                    f"range {r.File}/{r.Index} names instance {r.Instance} of {self.InstanceCount}"
                )
            by_file.setdefault(r.File, []).append(r)
        for number, obj in enumerate(self.Inputs):
            ranges = sorted(by_file.get(number, []), key=lambda r: r.Index)
            covered = [(r.Index, r.Start, r.End) for r in ranges]
            expected_end = 0
            for index, (got, start, end) in enumerate(covered):
                if got != index or start != expected_end or end < start:
                    raise ValueError(f"the ranges of file {number} ({obj.Key}) do not tile it")
                expected_end = end
            if not ranges or expected_end != obj.Size:
                raise ValueError(f"the ranges of file {number} ({obj.Key}) do not cover it")
        return self

    @property
    def total_bytes(self) -> int:
        return sum(obj.Size for obj in self.Inputs)

    def ranges_of(self, instance: int) -> list[WorkRange]:
        """The ranges instance ``instance`` scores, in file and range order."""
        return sorted((r for r in self.Ranges if r.Instance == instance), key=_order)

    def ranges_of_file(self, file: int) -> list[WorkRange]:
        """The ranges of input ``file``, in order: their outputs, concatenated, are its output."""
        return sorted((r for r in self.Ranges if r.File == file), key=_order)

    def output_uri(self, file: int, s3_output_path: str) -> str:
        """Where input ``file``'s output goes: ``<S3OutputPath>/<Key>.out``."""
        return f"{s3_output_path.rstrip('/')}/{self.Inputs[file].Key}.out"


def _order(r: WorkRange) -> tuple[int, int]:
    return r.File, r.Index


def relative_key(uri: str, prefix_uri: str) -> str:
    """``uri``'s key relative to the input prefix, or to the prefix's last ``/`` when the
    prefix is not a folder (SageMaker's output layout)."""
    if not uri.startswith(prefix_uri):
        raise ValueError(f"{uri} is not under the input prefix {prefix_uri}")
    after_scheme = prefix_uri.find("://") + 3 if "://" in prefix_uri else 0
    slash = prefix_uri.rfind("/", after_scheme)
    base = prefix_uri[: slash + 1] if slash >= 0 else prefix_uri + "/"
    return uri[len(base) :]


def make_plan(
    objects: list[tuple[str, int]],
    prefix_uri: str,
    instance_count: int,
    range_bytes: int,
    splittable: bool,
) -> WorkPlan:
    """The plan for ``objects`` (``(uri, size)``) listed under ``prefix_uri`` (see the module
    docstring). Folder markers (URIs ending in ``/``) are skipped; no object at all, or one
    listed twice, fails."""
    if instance_count < 1:
        raise ValueError(f"a plan needs at least one instance, not {instance_count}")
    if range_bytes < 1:
        raise ValueError(f"ranges need at least one byte, not {range_bytes}")
    files = sorted((uri, size) for uri, size in objects if not uri.endswith("/"))
    if not files:
        raise TransformDataError(
            f"{S3_URI_FIELD}: no input objects under {prefix_uri}; upload the data there or "
            "fix the URI",
            field=S3_URI_FIELD,
        )
    for (uri, _), (after, _) in itertools.pairwise(files):
        if uri == after:
            raise TransformDataError(
                f"{S3_URI_FIELD}: {uri} is listed twice; each input object is scored once",
                field=S3_URI_FIELD,
            )
    inputs = []
    for uri, size in files:
        if size < 0:
            raise ValueError(f"{uri} has a negative size ({size})")
        inputs.append(InputObject(Key=relative_key(uri, prefix_uri), Uri=uri, Size=size))
    cuts: list[tuple[int, int, int, int]] = []  # file, index, start, end
    for number, obj in enumerate(inputs):
        pieces = -(-obj.Size // range_bytes) if splittable and obj.Size else 1
        bounds = [obj.Size * i // pieces for i in range(pieces + 1)]
        cuts += [(number, i, bounds[i], bounds[i + 1]) for i in range(pieces)]
    # Largest first, each to the least loaded instance: (bytes, ranges, index) orders them.
    loads = [(0, 0, instance) for instance in range(instance_count)]
    taken: dict[tuple[int, int], int] = {}
    for number, index, start, end in sorted(cuts, key=lambda c: (c[2] - c[3], c[0], c[1])):
        load, count, instance = heapq.heappop(loads)
        taken[number, index] = instance
        heapq.heappush(loads, (load + end - start, count + 1, instance))
    ranges = [
        WorkRange(File=f, Index=i, Start=s, End=e, Instance=taken[f, i]) for f, i, s, e in cuts
    ]
    return WorkPlan(
        Inputs=inputs, Ranges=ranges, InstanceCount=instance_count, RangeBytes=range_bytes
    )


def parse_manifest(body: bytes) -> tuple[str, list[str]]:
    """A ManifestFile's prefix and entries. SageMaker's format::

        [{"prefix": "s3://bucket/path/"}, "relative/key-1", "relative/key-2", ...]

    Each object's URI is the prefix and the entry joined as they are (``prefix + entry``).
    """
    try:
        doc: Any = json.loads(body)
    except ValueError as err:
        raise _manifest(f"is not JSON ({err})") from err
    if not isinstance(doc, list) or not doc:
        raise _manifest('must be a JSON array: [{"prefix": "s3://bucket/path/"}, "key", ...]')
    head = doc[0]
    if not isinstance(head, dict) or set(head) != {"prefix"}:
        raise _manifest('entry 0 must be {"prefix": "s3://bucket/path/"}, the objects\' prefix')
    prefix = head["prefix"]
    if not isinstance(prefix, str) or "://" not in prefix:
        raise _manifest(f"entry 0: the prefix must be an s3:// URI, not {prefix!r}")
    seen: dict[str, int] = {}
    for number, entry in enumerate(doc[1:], start=1):
        if not isinstance(entry, str) or not entry:
            raise _manifest(f"entry {number} must be a key relative to the prefix, not {entry!r}")
        if entry in seen:
            raise _manifest(f"entry {number} repeats entry {seen[entry]} ({entry!r})")
        seen[entry] = number
    if not seen:
        raise _manifest("lists no objects after its prefix")
    return prefix, list(seen)


def _manifest(problem: str) -> ManifestError:
    return ManifestError(f"the ManifestFile {problem}", field=S3_URI_FIELD)
