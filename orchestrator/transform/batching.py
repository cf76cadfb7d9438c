"""Mini-batches: records packed into request bodies per BatchStrategy and MaxPayloadInMB.

- ``SingleRecord``: one record per request, as the record alone (SageMaker removes a binary
  format's framing and padding for SingleRecord).
- ``MultiRecord``: as many consecutive records as fit in ``max_payload_bytes``: Line records
  each followed by ``\\n``; RecordIO and TFRecord records framed and concatenated (SageMaker
  keeps the framing for MultiRecord); SplitType None has one record per object, so one per
  request.

The limit counts the body as sent (newlines and framing included); 0 means no limit. A record
too large to be sent even alone raises ``PayloadTooLarge``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from orchestrator.transform.errors import TransformDataError
from orchestrator.transform.records import SplitType, frame_record

__all__ = ["Batch", "BatchStrategy", "PayloadTooLarge", "pack"]

BatchStrategy = Literal["MultiRecord", "SingleRecord"]
MB = 1024 * 1024


class PayloadTooLarge(TransformDataError):
    """One record alone is over the payload limit; ``index`` is its 0-based place among the
    records packed, ``size`` the bytes it needs, ``limit`` the limit."""

    def __init__(self, *, index: int, size: int, limit: int) -> None:
        megabytes = f" ({limit // MB} MB)" if limit % MB == 0 else ""
        super().__init__(
            f"record {index + 1} (index {index}) needs {size} bytes in a request, over the "
            f"MaxPayloadInMB limit of {limit} bytes{megabytes}: raise MaxPayloadInMB "
            "(at most 100) or split the input into smaller records"
        )
        self.index = index
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Batch:
    """One request body: records ``first`` to ``first + count - 1`` of those packed."""

    first: int
    count: int
    body: bytes


def pack(
    records: Iterable[bytes],
    strategy: BatchStrategy,
    max_payload_bytes: int,
    split_type: SplitType,
) -> Iterator[Batch]:
    """The request bodies for ``records``, in order, lazily (see the module docstring)."""
    if strategy not in ("MultiRecord", "SingleRecord"):
        raise ValueError(f"BatchStrategy must be MultiRecord or SingleRecord, not {strategy!r}")
    if max_payload_bytes < 0:
        raise ValueError(f"the payload limit cannot be negative ({max_payload_bytes})")
    limit = max_payload_bytes or None
    if strategy == "SingleRecord" or split_type == "None":
        for index, record in enumerate(records):
            _check(index, len(record), limit)
            yield Batch(index, 1, record)
        return
    pending: list[bytes] = []
    size = 0
    first = 0
    for index, record in enumerate(records):
        framed = frame_record(record, split_type)
        if limit is not None and len(framed) > limit and pending:
            yield Batch(first, len(pending), b"".join(pending))  # what fits goes out first
            pending = []
        _check(index, len(framed), limit)
        if limit is not None and pending and size + len(framed) > limit:
            yield Batch(first, len(pending), b"".join(pending))
            pending, size, first = [], 0, index
        pending.append(framed)
        size += len(framed)
    if pending:
        yield Batch(first, len(pending), b"".join(pending))


def _check(index: int, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise PayloadTooLarge(index=index, size=size, limit=limit)
