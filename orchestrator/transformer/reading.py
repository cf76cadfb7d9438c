"""Reading a range's input bytes, and cutting Line input into request bodies without records.

``line_span`` reads the bytes of the lines a byte range owns (those whose first byte lies in
it, as ``transform.records.LineRangeReader`` defines them): they start at a line start and end
at one, so ``split_records(span, "Line")`` gives exactly the range's lines. ``cut_lines`` cuts
such bytes into bodies of at most ``limit`` bytes at newlines, for MultiRecord without
DataProcessing: a body is a run of whole lines, found with ``rfind``, never split into records
one by one.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator

from orchestrator.objects import ObjectStore
from orchestrator.transform.batching import PayloadTooLarge

EXTEND_BYTES = 64 * 1024  # read past a range's end this much at a time to finish its last line


class CorruptInput(ValueError):
    """An input object that cannot be read as its CompressionType says."""


def read_bytes(store: ObjectStore, uri: str, start: int, length: int) -> bytes:
    if length <= 0:
        return b""
    buffer = io.BytesIO()
    store.get_range(uri, start, length, buffer)
    return buffer.getvalue()


def line_span(store: ObjectStore, uri: str, start: int, end: int, size: int) -> tuple[int, bytes]:
    """``(offset, data)``: the bytes of the lines whose first byte lies in ``[start, end)`` of
    the ``size``-byte object ``uri``, and the offset of the first of them."""
    end = min(end, size)
    if start >= end:
        return start, b""
    read_from = max(0, start - 1)
    data = read_bytes(store, uri, read_from, end - read_from)
    if start == 0:
        first = 0
    else:
        # A line begins at p in [start, end) when byte p - 1 is a newline.
        newline = data.find(b"\n", 0, len(data) - 1)
        if newline < 0:
            return end, b""  # the whole range is inside a line begun before it
        first = newline + 1
    if data.endswith(b"\n") or end == size:
        return read_from + first, data[first:]
    # The last owned line runs past the range's end: read on to its newline.
    pieces = [data[first:]]
    at = end
    while at < size:
        more = read_bytes(store, uri, at, min(EXTEND_BYTES, size - at))
        newline = more.find(b"\n")
        if newline >= 0:
            pieces.append(more[: newline + 1])
            break
        pieces.append(more)
        at += len(more)
    return read_from + first, b"".join(pieces)


def decompress(data: bytes, compression: str, uri: str) -> bytes:
    """An object's bytes as its CompressionType says (``Gzip``: every gzip member)."""
    if compression != "Gzip":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptInput(
            f"{uri} is not valid gzip ({e}); CompressionType is Gzip: upload gzip files or "
            "set CompressionType to None"
        ) from e


def count_lines(data: bytes) -> int:
    """The Line records in ``data`` (a last line without a newline counts)."""
    lines = data.count(b"\n")
    return lines + 1 if data and not data.endswith(b"\n") else lines


def cut_lines(data: bytes, limit: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of bodies of whole lines, each at most ``limit`` bytes (0: no limit);
    ``PayloadTooLarge`` (with the line's 0-based index) for a line longer than the limit."""
    size = len(data)
    if not limit:
        if size:
            yield 0, size
        return
    at = 0
    while at < size:
        if size - at <= limit:
            yield at, size
            return
        cut = data.rfind(b"\n", at, at + limit)
        if cut < 0:
            newline = data.find(b"\n", at)
            long = (newline + 1 if newline >= 0 else size) - at
            raise PayloadTooLarge(index=data.count(b"\n", 0, at), size=long, limit=limit)
        yield at, cut + 1
        at = cut + 1
