"""Reading ranges of Line input from the store and cutting request bodies from raw bytes."""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import pytest

from orchestrator.objects import FileObjectStore, LocalKeyring
from orchestrator.transform.batching import PayloadTooLarge
from orchestrator.transform.records import owned_lines, split_records
from orchestrator.transformer.reading import (
    EXTEND_BYTES,
    CorruptInput,
    count_lines,
    cut_lines,
    decompress,
    line_span,
)

URI = "s3://data/in/lines.txt"


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    # The smallest envelope chunk: ranges cross chunk boundaries often.
    return FileObjectStore(tmp_path / "o", LocalKeyring(tmp_path / "k.json"), chunk_size=64 << 10)


def _text(rng: random.Random, lines: int) -> bytes:
    pieces = []
    for _ in range(lines):
        kind = rng.random()
        if kind < 0.1:
            pieces.append(b"\n")  # an empty line is a record
        elif kind < 0.2:
            pieces.append(b"x" * rng.randint(1, 300) + b"\r\n")
        elif kind < 0.22:
            pieces.append(b"L" * (EXTEND_BYTES + rng.randint(1, 5000)) + b"\n")
        else:
            pieces.append(b"%d,%d\n" % (rng.randint(0, 10**6), rng.randint(0, 99)))
    data = b"".join(pieces)
    return data[:-1] if rng.random() < 0.5 else data  # sometimes no final newline


@pytest.mark.parametrize("seed", range(4))
def test_the_spans_of_any_cut_hold_the_owned_lines_once_in_order(
    store: FileObjectStore, seed: int
) -> None:
    rng = random.Random(seed)
    data = _text(rng, 400)
    store.put_bytes(URI, data)
    cuts = sorted({0, len(data), *(rng.randint(0, len(data)) for _ in range(12))})
    # Cuts right after and right before newlines too.
    cuts = sorted({*cuts, data.index(b"\n") + 1, data.index(b"\n")})
    seen: list[bytes] = []
    for start, end in itertools.pairwise(cuts):
        offset, span = line_span(store, URI, start, end, len(data))
        lines = split_records(span, "Line")
        assert lines == owned_lines(data, start, end)
        assert data[offset : offset + len(span)] == span
        if span:  # it begins at a line start
            assert offset == 0 or data[offset - 1 : offset] == b"\n"
        seen += lines
    assert seen == split_records(data, "Line")


def test_a_range_inside_one_line_owns_nothing(store: FileObjectStore) -> None:
    data = b"a\n" + b"b" * 1000 + b"\nc\n"
    store.put_bytes(URI, data)
    assert line_span(store, URI, 10, 900, len(data)) == (900, b"")
    assert line_span(store, URI, 5, 5, len(data)) == (5, b"")
    assert line_span(store, URI, 0, 1, len(data)) == (0, b"a\n")
    assert line_span(store, URI, 1, 3, len(data)) == (2, b"b" * 1000 + b"\n")


def test_cut_lines_makes_bodies_of_whole_lines_under_the_limit() -> None:
    data = b"".join(b"%05d\n" % i for i in range(100))  # 6 bytes a line
    bodies = [data[s:e] for s, e in cut_lines(data, 64)]
    assert b"".join(bodies) == data
    assert all(len(b) <= 64 and b.endswith(b"\n") for b in bodies)
    assert [len(b) for b in bodies[:2]] == [60, 60]
    assert list(cut_lines(data, 0)) == [(0, len(data))]
    assert list(cut_lines(b"", 10)) == []
    short = b"ab\ncd"
    assert [short[s:e] for s, e in cut_lines(short, 3)] == [b"ab\n", b"cd"]


def test_cut_lines_names_a_line_over_the_limit() -> None:
    data = b"1\n22\n" + b"3" * 50 + b"\n4\n"
    with pytest.raises(PayloadTooLarge) as caught:
        list(cut_lines(data, 20))
    assert (caught.value.index, caught.value.size) == (2, 51)


@pytest.mark.parametrize(
    ("data", "records"),
    [(b"", 0), (b"\n", 1), (b"a", 1), (b"a\nb", 2), (b"a\nb\n", 2), (b"\n\n\n", 3)],
)
def test_count_lines_agrees_with_the_records(data: bytes, records: int) -> None:
    assert count_lines(data) == records == len(split_records(data, "Line"))


def test_gzip_is_decompressed_and_a_corrupt_one_named() -> None:
    packed = gzip.compress(b"a\n") + gzip.compress(b"b\n")  # two members
    assert decompress(packed, "Gzip", "in/x.gz") == b"a\nb\n"
    assert decompress(b"plain", "None", "in/x") == b"plain"
    for corrupt in (b"not gzip at all", packed[:-6]):
        with pytest.raises(CorruptInput, match=r"in/x.gz is not valid gzip"):
            decompress(corrupt, "Gzip", "in/x.gz")
