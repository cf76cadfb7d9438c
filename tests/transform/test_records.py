"""Splitting objects into records per SplitType, framing them back, and Line byte ranges."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from orchestrator.errors import PermanentError
from orchestrator.transform.records import (
    RECORDIO_MAGIC,
    LineRangeReader,
    RecordError,
    SplitType,
    crc32c,
    frame_record,
    masked_crc32c,
    owned_lines,
    split_records,
)

MAGIC = struct.pack("<I", RECORDIO_MAGIC)

# Written by tf.io.TFRecordWriter (TensorFlow 2.21): b"hello", b"", bytes(range(32)).
TFRECORD_GOLDEN = bytes.fromhex(
    "0500000000000000eab2043e68656c6c6fbb1f1c19000000000000000029039807d8ea82a2"
    "200000000000000029eda950000102030405060708090a0b0c0d0e0f101112131415161718"
    "191a1b1c1d1e1f92781f95"
)
# Written by the SageMaker Python SDK's RecordIO writer: b"abcde", b"", b"wxyz".
RECORDIO_GOLDEN = bytes.fromhex(
    "0a23d7ce0500000061626364650000000a23d7ce000000000a23d7ce040000007778797a"
)


# --- CRC-32C ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"", 0),
        (b"123456789", 0xE3069283),  # the check value of CRC-32C
        (bytes(32), 0x8A9136AA),  # RFC 3720, B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_values(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc


def test_crc32c_continues() -> None:
    data = bytes(range(256)) * 3
    assert crc32c(data[100:], crc32c(data[:100])) == crc32c(data)


def test_masked_crc_matches_tensorflow() -> None:
    assert masked_crc32c(struct.pack("<Q", 5)) == 0x3E04B2EA


# --- None and Line ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"", []),
        (b"a", [b"a"]),
        (b"a\n", [b"a"]),
        (b"a\nb", [b"a", b"b"]),
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\r\nb\r", [b"a", b"b"]),
        (b"a\rb\n", [b"a\rb"]),  # only a trailing \r goes
        (b"a\r\r\n", [b"a\r"]),
        (b"\n", [b""]),
        (b"\n\n", [b"", b""]),
        (b"a\n\nb\n", [b"a", b"", b"b"]),  # an empty line is a record: numbering holds
        (b"1,2,3\n4,5,6\n", [b"1,2,3", b"4,5,6"]),
    ],
)
def test_lines(data: bytes, records: list[bytes]) -> None:
    assert split_records(data, "Line") == records


@pytest.mark.parametrize("data", [b"", b"one object\nwith lines\n", bytes(range(256))])
def test_none_is_the_whole_object(data: bytes) -> None:
    assert split_records(data, "None") == ([data] if data else [])
    assert frame_record(data, "None") == data


def test_unknown_split_type() -> None:
    with pytest.raises(ValueError, match="SplitType must be None, Line, RecordIO or TFRecord"):
        split_records(b"x", "Lines")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SplitType must be"):
        frame_record(b"x", "Lines")  # type: ignore[arg-type]


def test_line_framing() -> None:
    assert frame_record(b"a,b", "Line") == b"a,b\n"
    with pytest.raises(ValueError, match="cannot hold a newline"):
        frame_record(b"a\nb", "Line")


# --- RecordIO -----------------------------------------------------------------------------
def test_recordio_reads_the_sagemaker_sdk_writer() -> None:
    assert split_records(RECORDIO_GOLDEN, "RecordIO") == [b"abcde", b"", b"wxyz"]


def test_recordio_writes_as_the_sagemaker_sdk_writer() -> None:
    framed = b"".join(frame_record(r, "RecordIO") for r in (b"abcde", b"", b"wxyz"))
    assert framed == RECORDIO_GOLDEN


def _part(cflag: int, data: bytes) -> bytes:
    return MAGIC + struct.pack("<I", cflag << 29 | len(data)) + data + bytes(-len(data) % 4)


def test_recordio_splits_a_record_at_aligned_magics_as_dmlc_does() -> None:
    record = b"abcd" + MAGIC + b"efgh" + MAGIC + b"ij"
    expected = _part(1, b"abcd") + _part(2, b"efgh") + _part(3, b"ij")
    assert frame_record(record, "RecordIO") == expected
    assert split_records(expected, "RecordIO") == [record]


def test_recordio_magic_at_the_start_and_the_end() -> None:
    record = MAGIC + b"xy" + b"zw" + MAGIC
    # The first magic cuts an empty start part; the last one leaves an empty end part.
    expected = _part(1, b"") + _part(2, b"xyzw") + _part(3, b"")
    assert frame_record(record, "RecordIO") == expected
    assert split_records(expected, "RecordIO") == [record]


def test_recordio_leaves_an_unaligned_magic_alone() -> None:
    record = b"a" + MAGIC + b"bcd"
    assert frame_record(record, "RecordIO") == _part(0, record)


def test_recordio_too_large() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return 1 << 29

    with pytest.raises(ValueError, match="at most 536870911 bytes"):
        frame_record(Huge(), "RecordIO")


@pytest.mark.parametrize(
    ("data", "offset", "record", "words"),
    [
        (_part(0, b"abcd") + MAGIC, 8 + 4, 2, "truncated header (4 bytes left"),
        (_part(0, b"abcd") + b"\x00" * 8, 12, 2, "bad magic 0x00000000"),
        (b"garbage!", 0, 1, "is the file RecordIO?"),
        (MAGIC + struct.pack("<I", 9) + b"12345678", 0, 1, "the data is truncated (9 bytes"),
        (_part(0, b"ab")[:-1], 0, 1, "the data is truncated"),  # the padding is cut short
        (_part(1, b"abcd") + _part(0, b"ef"), 12, 1, "a new record starts inside"),
        (_part(1, b"abcd") + _part(1, b"ef"), 12, 1, "multi-part record begun at byte 0"),
        (_part(0, b"x") + _part(2, b"abcd"), 12, 2, "a continuation part (cflag 2)"),
        (_part(3, b"abcd"), 0, 1, "a continuation part (cflag 3) with no start part"),
        (_part(0, b"x") + _part(1, b"abcd") + _part(2, b"ef"), 12, 2, "ends inside"),
        (MAGIC + struct.pack("<I", 5 << 29), 0, 1, "bad cflag 5"),
    ],
)
def test_recordio_errors_name_the_offset_and_the_record(
    data: bytes, offset: int, record: int, words: str
) -> None:
    with pytest.raises(RecordError) as caught:
        split_records(data, "RecordIO")
    err = caught.value
    assert (err.offset, err.record) == (offset, record)
    assert f"RecordIO: record {record} at byte {offset}: " in str(err)
    assert words in str(err)
    assert isinstance(err, PermanentError) and isinstance(err, ValueError)


# --- TFRecord -----------------------------------------------------------------------------
def test_tfrecord_reads_tensorflow_output() -> None:
    assert split_records(TFRECORD_GOLDEN, "TFRecord") == [b"hello", b"", bytes(range(32))]


def test_tfrecord_writes_as_tensorflow() -> None:
    framed = b"".join(frame_record(r, "TFRecord") for r in (b"hello", b"", bytes(range(32))))
    assert framed == TFRECORD_GOLDEN


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


FIRST = 12 + 5 + 4  # the first golden record's framed size


@pytest.mark.parametrize(
    ("data", "offset", "record", "words"),
    [
        (TFRECORD_GOLDEN[:5], 0, 1, "truncated header (5 bytes left, a header is 12)"),
        (TFRECORD_GOLDEN[: FIRST + 3], FIRST, 2, "truncated header (3 bytes left"),
        (_flip(TFRECORD_GOLDEN, 0), 0, 1, "the length's CRC does not match"),
        (_flip(TFRECORD_GOLDEN, 9), 0, 1, "is the file TFRecord?"),
        (_flip(TFRECORD_GOLDEN, 14), 0, 1, "the data's CRC does not match"),
        (_flip(TFRECORD_GOLDEN, FIRST - 1), 0, 1, "the record is corrupt"),
        (_flip(TFRECORD_GOLDEN, FIRST + 16 + 20), FIRST + 16, 3, "the data's CRC"),
        (TFRECORD_GOLDEN[: FIRST + 16 + 12 + 31], FIRST + 16, 3, "the data is truncated"),
        (TFRECORD_GOLDEN[:-1], FIRST + 16, 3, "32 bytes and a CRC announced, 35 left"),
        (b"\x00" * 16, 0, 1, "the length's CRC"),
    ],
)
def test_tfrecord_errors_name_the_offset_and_the_record(
    data: bytes, offset: int, record: int, words: str
) -> None:
    with pytest.raises(RecordError) as caught:
        split_records(data, "TFRecord")
    err = caught.value
    assert (err.offset, err.record) == (offset, record)
    assert f"TFRecord: record {record} at byte {offset}: " in str(err)
    assert words in str(err)


# --- round trips --------------------------------------------------------------------------
def _random_record(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 3, 4, 5, 8, 13, 64, rng.randint(0, 300)])
    data = bytearray(rng.randbytes(size))
    # Plant the RecordIO magic, aligned or not, now and then.
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        if len(data) >= 4:
            at = rng.randrange(0, len(data) - 3)
            if rng.random() < 0.7:
                at -= at % 4
            data[at : at + 4] = MAGIC
    return bytes(data)


@pytest.mark.parametrize("split_type", ["RecordIO", "TFRecord", "Line"])
def test_frame_then_split_gives_the_records_back(split_type: SplitType) -> None:
    rng = random.Random(f"frame-{split_type}")
    for _ in range(300):
        records = [_random_record(rng) for _ in range(rng.randint(0, 8))]
        if split_type == "Line":
            records = [r.replace(b"\n", b"").rstrip(b"\r") for r in records]
        data = b"".join(frame_record(r, split_type) for r in records)
        assert split_records(data, split_type) == records
        if split_type == "RecordIO":
            assert len(data) % 4 == 0


def test_any_damage_to_a_framed_file_is_found_or_harmless() -> None:
    """Random byte flips and cuts raise RecordError, never another exception; what reads
    without one is a cut at a record boundary or (RecordIO has no checksum) a flipped byte."""
    rng = random.Random(7)
    for split_type in ("RecordIO", "TFRecord"):
        for _ in range(300):
            records = [_random_record(rng) for _ in range(rng.randint(1, 5))]
            frames = [frame_record(r, split_type) for r in records]  # type: ignore[arg-type]
            data = bytearray(b"".join(frames))
            boundaries = {sum(len(f) for f in frames[:k]) for k in range(len(frames))}
            cut = False
            if rng.random() < 0.5:
                at = rng.randrange(len(data))
                data[at] ^= 1 << rng.randrange(8)
            else:
                cut = True
                del data[rng.randrange(len(data)) :]
            try:
                split_records(bytes(data), split_type)  # type: ignore[arg-type]
            except RecordError as err:
                assert 0 <= err.offset <= len(data) and err.record >= 1
            else:
                assert (cut and len(data) in boundaries) or (split_type == "RecordIO" and not cut)


def test_tfrecord_damage_is_always_found() -> None:
    rng = random.Random(11)
    for _ in range(300):
        records = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 4))]
        data = bytearray(b"".join(frame_record(r, "TFRecord") for r in records))
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        with pytest.raises(RecordError):
            split_records(bytes(data), "TFRecord")


# --- Line byte ranges ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "start", "end", "lines"),
    [
        (b"aa\nbb\ncc\n", 0, 9, [b"aa", b"bb", b"cc"]),
        (b"aa\nbb\ncc\n", 0, 1, [b"aa"]),  # the line starting at 0 is ours, all of it
        (b"aa\nbb\ncc\n", 0, 3, [b"aa"]),
        (b"aa\nbb\ncc\n", 0, 4, [b"aa", b"bb"]),
        (b"aa\nbb\ncc\n", 1, 3, []),  # no line starts in [1, 3)
        (b"aa\nbb\ncc\n", 3, 4, [b"bb"]),
        (b"aa\nbb\ncc\n", 2, 4, [b"bb"]),  # byte 2 is the newline: 3 starts a line
        (b"aa\nbb\ncc\n", 4, 9, [b"cc"]),
        (b"aa\nbb\ncc\n", 6, 100, [b"cc"]),  # an end past the file is the file's end
        (b"aa\nbb\ncc\n", 9, 9, []),
        (b"aa\nbb\ncc", 6, 8, [b"cc"]),  # the last line without a newline
        (b"aa\r\nbb\r\n", 0, 8, [b"aa", b"bb"]),
        (b"\n\n\n", 1, 3, [b"", b""]),
        (b"", 0, 0, []),
        (b"", 0, 10, []),
        (b"abc", 1, 3, []),
    ],
)
def test_owned_lines(data: bytes, start: int, end: int, lines: list[bytes]) -> None:
    assert owned_lines(data, start, end) == lines


def _read_range(data: bytes, start: int, end: int, rng: random.Random) -> list[bytes]:
    """What a runner does: read from read_from in chunks until done or the end of the file."""
    reader = LineRangeReader(start, end, len(data))
    assert reader.read_from == max(0, start - 1)
    offset = reader.read_from
    lines: list[bytes] = []
    while not reader.done and offset < len(data):
        assert reader.position == offset
        chunk = data[offset : offset + rng.randint(1, 9)]
        lines += reader.feed(chunk)
        offset += len(chunk)
    lines += reader.finish()
    assert reader.done
    assert reader.feed(b"more\n") == []
    return lines


def _random_lines_file(rng: random.Random) -> bytes:
    lines = [
        b"".join(rng.choice([b"a", b"b", b",", b"\r", b"7"]) for _ in range(rng.randint(0, 12)))
        for _ in range(rng.randint(0, 12))
    ]
    data = b"\n".join(lines)
    if rng.random() < 0.5 and data:
        data += b"\n"
    if rng.random() < 0.2:
        data += b"\r\n"
    return data


def test_ranges_together_yield_every_line_once_in_order() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        data = _random_lines_file(rng)
        cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 5)))
        bounds = [0, *cuts, len(data)]
        got: list[bytes] = []
        for start, end in itertools.pairwise(bounds):
            got += _read_range(data, start, end, rng)
        assert got == split_records(data, "Line"), (data, bounds)


def test_every_single_cut_point() -> None:
    rng = random.Random(3)
    data = b"first\r\n\nthird line\nx\n\nlast without newline"
    expected = split_records(data, "Line")
    for cut in range(len(data) + 1):
        for chunk_rng in (random.Random(cut), rng):
            assert (
                _read_range(data, 0, cut, chunk_rng) + _read_range(data, cut, len(data), chunk_rng)
                == expected
            )


def test_a_range_stops_reading_at_the_first_line_beyond_its_end() -> None:
    data = b"a\n" + b"b" * 100 + b"\n" + b"c\n" * 1000
    reader = LineRangeReader(0, 3, len(data))
    assert reader.feed(data[:2]) == [b"a"]
    assert not reader.done  # the line at 2 starts inside the range
    assert reader.feed(data[2:50]) == []
    assert reader.feed(data[50:200]) == [b"b" * 100]
    assert reader.done  # the next line starts at 103 >= 3: the caller stops reading here
    assert reader.finish() == []


def test_a_line_longer_than_the_range_belongs_to_the_range_of_its_first_byte() -> None:
    data = b"x" * 50 + b"\n" + b"y\n"
    assert owned_lines(data, 0, 10) == [b"x" * 50]
    assert owned_lines(data, 10, 40) == []
    assert owned_lines(data, 40, len(data)) == [b"y"]


def test_finish_before_the_end_of_the_file_is_refused() -> None:
    data = b"aaaa"
    reader = LineRangeReader(0, 4, len(data))
    reader.feed(b"aa")
    with pytest.raises(ValueError, match=r"read the file up to byte 4 \(fed up to 2\)"):
        reader.finish()


@pytest.mark.parametrize(("start", "end", "size"), [(-1, 3, 5), (4, 3, 5), (0, 3, -1)])
def test_bad_ranges(start: int, end: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"start <= end|cannot be negative"):
        LineRangeReader(start, end, size)


def test_crc32c_any_length_and_split_point() -> None:
    """Slicing by 8 agrees with the byte-at-a-time definition at every length and split."""

    def slow(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        return crc ^ 0xFFFFFFFF

    rng = random.Random(32)
    data = rng.randbytes(70)
    for size in range(len(data) + 1):
        assert crc32c(data[:size]) == slow(data[:size])
        cut = rng.randint(0, size)
        assert crc32c(data[cut:size], crc32c(data[:cut])) == slow(data[:size])
