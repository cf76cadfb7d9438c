"""A file's output: its ranges' parts concatenated into ``<S3OutputPath>/<Key>.out``.

The parts are streamed one at a time into one put, so the ``.out`` object appears whole or
not at all; ``assembled/<file>`` is written after it. Two instances assembling the same file
at once write the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from orchestrator.objects import ObjectStore
from orchestrator.transform.workplan import WorkPlan
from orchestrator.transformer.scratch import TransformScratch


class ChainReader(io.RawIOBase):
    """A readable stream over a sequence of byte strings, fetched one at a time."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._current = memoryview(chunk)
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


def assemble_if_complete(
    store: ObjectStore,
    scratch: TransformScratch,
    plan: WorkPlan,
    file: int,
    output_path: str,
    *,
    ranges: int | None = None,
) -> bool:
    """Write input ``file``'s ``.out`` when every range of it (``ranges`` of them, counted
    from the plan when not given) has its part, unless it is written already; True when this
    call wrote it."""
    count = len(plan.ranges_of_file(file)) if ranges is None else ranges
    done = scratch.done_parts(file)
    if any((file, index) not in done for index in range(count)) or scratch.is_assembled(file):
        return False
    uri = plan.output_uri(file, output_path)
    store.put_stream(uri, ChainReader(scratch.iter_parts(file, count)))  # type: ignore[arg-type]
    scratch.mark_assembled(file)
    return True
