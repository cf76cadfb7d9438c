from __future__ import annotations

import io
import os

import pytest

from orchestrator.errors import IntegrityError, ValidationError
from orchestrator.objects import LocalKeyring, decrypt_stream, encrypt_stream
from orchestrator.objects.envelope import TAG_BYTES, TRAILER_BYTES, overhead_bytes

CHUNK = 64 << 10  # as in conftest.py: the smallest chunk the format allows

NAME = "s3://bucket/key"


def _seal(keyring: LocalKeyring, data: bytes, name: str = NAME, version: str = "v1") -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data), out, name=name, version=version, provider=keyring, chunk_size=CHUNK
    )
    return out.getvalue()


def _open(keyring: LocalKeyring, sealed: bytes, name: str = NAME, **kw: str) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(sealed), out, name=name, provider=keyring, **kw)
    return out.getvalue()


class Trickle(io.RawIOBase):
    """A pipe-like source: short reads, no seeking."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        chunk = self._src.read(min(len(b), 7919))
        b[: len(chunk)] = chunk
        return len(chunk)


SIZES = [0, 1, 40, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 2 * CHUNK - TRAILER_BYTES]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(keyring: LocalKeyring, size: int) -> None:
    data = os.urandom(size)
    sealed = _seal(keyring, data)
    assert _open(keyring, sealed) == data
    out = io.BytesIO()
    info = decrypt_stream(Trickle(sealed), out, name=NAME, provider=keyring)  # type: ignore[arg-type]
    assert out.getvalue() == data
    assert info.size == size and info.encrypted_size == len(sealed)
    assert len(sealed) - size == overhead_bytes(size, CHUNK, info.header_size)


def test_short_reads_on_encrypt(keyring: LocalKeyring) -> None:
    data = os.urandom(2 * CHUNK + 5)
    out = io.BytesIO()
    encrypt_stream(Trickle(data), out, name=NAME, version="v", provider=keyring, chunk_size=CHUNK)  # type: ignore[arg-type]
    assert _open(keyring, out.getvalue()) == data


def test_every_flipped_byte_fails(keyring: LocalKeyring) -> None:
    data = os.urandom(CHUNK + 100)
    sealed = _seal(keyring, data)
    header = len(sealed) - len(data) - 2 * TAG_BYTES - TRAILER_BYTES
    # Every header byte, then samples in each record and every trailer byte.
    positions = [*range(header), header + 5, header + CHUNK + 3, header + CHUNK + TAG_BYTES + 50]
    positions += range(len(sealed) - TRAILER_BYTES, len(sealed))
    for pos in positions:
        bad = bytearray(sealed)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError, match=f"object {NAME} failed its integrity check"):
            _open(keyring, bytes(bad))


@pytest.mark.parametrize("cut", [1, TRAILER_BYTES, TRAILER_BYTES + 1, CHUNK + TAG_BYTES])
def test_truncation_fails(keyring: LocalKeyring, cut: int) -> None:
    sealed = _seal(keyring, os.urandom(3 * CHUNK))
    with pytest.raises(IntegrityError):
        _open(keyring, sealed[:-cut])


def test_dropping_a_whole_record_fails(keyring: LocalKeyring) -> None:
    data = os.urandom(3 * CHUNK)
    sealed = _seal(keyring, data)
    header = len(sealed) - len(data) - 3 * TAG_BYTES - TRAILER_BYTES
    rec = CHUNK + TAG_BYTES
    dropped = sealed[: header + rec] + sealed[header + 2 * rec :]
    swapped = sealed[:header] + sealed[header + rec : header + 2 * rec] + sealed[header:]
    for bad in (dropped, swapped[: len(sealed)]):
        with pytest.raises(IntegrityError):
            _open(keyring, bad)


def test_name_and_version_are_bound(keyring: LocalKeyring) -> None:
    sealed = _seal(keyring, b"payload", version="v7")
    with pytest.raises(IntegrityError):
        _open(keyring, sealed, name="s3://bucket/other")
    with pytest.raises(IntegrityError, match="expected 'v8'"):
        _open(keyring, sealed, expected_version="v8")
    assert _open(keyring, sealed, expected_version="v7") == b"payload"


def test_records_from_another_object_fail(keyring: LocalKeyring) -> None:
    a, b = os.urandom(CHUNK), os.urandom(CHUNK)
    sa, sb = _seal(keyring, a), _seal(keyring, b)
    header = len(sa) - CHUNK - TAG_BYTES - TRAILER_BYTES
    spliced = sa[:header] + sb[header : header + CHUNK + TAG_BYTES] + sa[-TRAILER_BYTES:]
    with pytest.raises(IntegrityError):
        _open(keyring, spliced)


def test_not_an_envelope(keyring: LocalKeyring) -> None:
    for junk in (b"", b"ORC", b"plain text that is long enough to hold a header"):
        with pytest.raises(IntegrityError):
            _open(keyring, junk)


def test_unknown_master_key_is_an_integrity_error_naming_it(
    keyring: LocalKeyring, tmp_path: os.PathLike[str]
) -> None:
    sealed = _seal(keyring, b"x")
    other = LocalKeyring(keyring.path.with_name("other.json"))
    with pytest.raises(IntegrityError, match=r"other\.json"):
        _open(other, sealed)


def test_chunk_size_bounds(keyring: LocalKeyring) -> None:
    with pytest.raises(ValidationError, match="chunk_size"):
        encrypt_stream(
            io.BytesIO(b""), io.BytesIO(), name=NAME, version="v", provider=keyring, chunk_size=10
        )


def test_size_overhead_at_100_mib(keyring: LocalKeyring) -> None:
    # From the format (verified against real sizes above) instead of writing 100 MiB.
    out = io.BytesIO()
    info = encrypt_stream(
        io.BytesIO(b"x"), out, name=NAME, version="0" * 24, provider=keyring, chunk_size=4 << 20
    )
    size = 100 << 20
    assert overhead_bytes(size, 4 << 20, info.header_size) / size <= 0.001
    assert overhead_bytes(size, 1 << 20, info.header_size) / size <= 0.001
