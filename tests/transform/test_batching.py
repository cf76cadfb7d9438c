"""Packing records into request bodies per BatchStrategy and MaxPayloadInMB."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from orchestrator.errors import PermanentError
from orchestrator.transform.batching import Batch, PayloadTooLarge, pack
from orchestrator.transform.records import SplitType, frame_record, split_records


def batches(records: list[bytes], strategy: str, limit: int, split: str) -> list[Batch]:
    return list(pack(records, strategy, limit, split))  # type: ignore[arg-type]


def test_multirecord_lines_fill_up_to_the_limit() -> None:
    records = [b"aaa", b"bb", b"c", b"dddd"]
    # Sizes with their newlines: 4, 3, 2, 5.
    assert batches(records, "MultiRecord", 7, "Line") == [
        Batch(0, 2, b"aaa\nbb\n"),
        Batch(2, 2, b"c\ndddd\n"),
    ]
    assert batches(records, "MultiRecord", 5, "Line") == [
        Batch(0, 1, b"aaa\n"),
        Batch(1, 2, b"bb\nc\n"),
        Batch(3, 1, b"dddd\n"),
    ]
    assert batches(records, "MultiRecord", 9, "Line") == [
        Batch(0, 3, b"aaa\nbb\nc\n"),
        Batch(3, 1, b"dddd\n"),
    ]
    assert batches(records, "MultiRecord", 14, "Line") == [Batch(0, 4, b"aaa\nbb\nc\ndddd\n")]


def test_no_limit() -> None:
    records = [b"x" * 1000] * 50
    [batch] = batches(records, "MultiRecord", 0, "Line")
    assert (batch.first, batch.count, len(batch.body)) == (0, 50, 50 * 1001)


def test_singlerecord_sends_each_record_alone_without_framing() -> None:
    for split in ("Line", "RecordIO", "TFRecord", "None"):
        assert batches([b"a", b"", b"ccc"], "SingleRecord", 10, split) == [
            Batch(0, 1, b"a"),
            Batch(1, 1, b""),
            Batch(2, 1, b"ccc"),
        ]


def test_split_type_none_is_one_record_per_request() -> None:
    assert batches([b"whole object one", b"two"], "MultiRecord", 100, "None") == [
        Batch(0, 1, b"whole object one"),
        Batch(1, 1, b"two"),
    ]


@pytest.mark.parametrize("split", ["RecordIO", "TFRecord"])
def test_multirecord_binary_formats_keep_their_framing(split: SplitType) -> None:
    records = [b"abcde", b"", b"xyz"]
    [batch] = batches(records, "MultiRecord", 0, split)
    assert batch.body == b"".join(frame_record(r, split) for r in records)
    assert split_records(batch.body, split) == records


def test_an_empty_input_packs_nothing() -> None:
    assert batches([], "MultiRecord", 10, "Line") == []
    assert batches([], "SingleRecord", 10, "Line") == []


@pytest.mark.parametrize(
    ("records", "strategy", "limit", "split", "index", "size"),
    [
        ([b"ok", b"x" * 10], "MultiRecord", 8, "Line", 1, 11),
        ([b"x" * 8], "MultiRecord", 8, "Line", 0, 9),  # the newline counts
        ([b"x" * 8], "SingleRecord", 7, "Line", 0, 8),
        ([b"a", b"b", b"x" * 5], "MultiRecord", 20, "TFRecord", 2, 21),
        ([b"abcde"], "MultiRecord", 15, "RecordIO", 0, 16),
        ([b"x" * 7], "MultiRecord", 6, "None", 0, 7),
    ],
)
def test_a_record_over_the_limit_names_its_index_its_size_and_the_fix(
    records: list[bytes], strategy: str, limit: int, split: str, index: int, size: int
) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        batches(records, strategy, limit, split)
    err = caught.value
    assert (err.index, err.size, err.limit) == (index, size, limit)
    message = str(err)
    assert f"record {index + 1} (index {index}) needs {size} bytes" in message
    assert f"limit of {limit} bytes" in message
    assert "raise MaxPayloadInMB" in message and "split the input" in message
    assert isinstance(err, PermanentError) and isinstance(err, ValueError)


def test_the_message_gives_megabytes() -> None:
    with pytest.raises(PayloadTooLarge, match=r"6291456 bytes \(6 MB\)"):
        batches([b"x" * (6 * 1024 * 1024)], "MultiRecord", 6 * 1024 * 1024, "Line")


def test_the_batches_before_a_too_large_record_come_out_first() -> None:
    gen = pack([b"a", b"b", b"x" * 100], "MultiRecord", 4, "Line")
    assert next(gen) == Batch(0, 2, b"a\nb\n")
    with pytest.raises(PayloadTooLarge):
        next(gen)


def test_pack_is_lazy() -> None:
    taken: list[int] = []

    def records() -> Iterator[bytes]:
        for i in range(1000):
            taken.append(i)
            yield b"%d" % i

    gen = pack(records(), "MultiRecord", 10, "Line")
    next(gen)
    assert len(taken) < 10


@pytest.mark.parametrize(
    ("strategy", "limit", "words"),
    [("Multi", 10, "BatchStrategy must be"), ("MultiRecord", -1, "cannot be negative")],
)
def test_bad_arguments(strategy: str, limit: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        batches([b"a"], strategy, limit, "Line")


@pytest.mark.parametrize("split", ["Line", "RecordIO", "TFRecord"])
def test_multirecord_batches_are_full_contiguous_and_within_the_limit(split: SplitType) -> None:
    rng = random.Random(f"pack-{split}")
    for _ in range(500):
        records = [
            rng.randbytes(rng.randint(0, 30)).replace(b"\n", b"").replace(b"\r", b"")
            for _ in range(rng.randint(0, 30))
        ]
        framed = [frame_record(r, split) for r in records]
        limit = rng.choice([0, max((len(f) for f in framed), default=1) + rng.randint(0, 80)])
        got = batches(records, "MultiRecord", limit, split)
        assert b"".join(b.body for b in got) == b"".join(framed)
        position = 0
        for number, batch in enumerate(got):
            assert batch.first == position and batch.count >= 1
            assert batch.body == b"".join(framed[position : position + batch.count])
            assert split_records(batch.body, split) == records[position : position + batch.count]
            if limit:
                assert len(batch.body) <= limit
                if number + 1 < len(got):  # full: the next record would not have fit
                    assert len(batch.body) + len(framed[position + batch.count]) > limit
            position += batch.count
        assert position == len(records)
        if not limit:
            assert len(got) == (1 if records else 0)


def test_with_a_record_over_the_limit_every_record_before_it_is_sent_first() -> None:
    rng = random.Random(6)
    for _ in range(500):
        records = [b"r" * rng.randint(0, 20) for _ in range(rng.randint(1, 20))]
        limit = rng.randint(1, 22)
        sent: list[Batch] = []
        with pytest.raises(PayloadTooLarge) as caught:
            for batch in pack(records, "MultiRecord", limit, "Line"):
                sent.append(batch)
            raise PayloadTooLarge(index=len(records), size=0, limit=limit)  # none too large
        too_large = [i for i, r in enumerate(records) if len(r) + 1 > limit]
        expected = too_large[0] if too_large else len(records)
        assert caught.value.index == expected
        assert sum(b.count for b in sent) == expected
