"""Envelope format 3: a re-wrapped header keeps the records valid, and what the header alone
no longer binds into the records is still authenticated (by the key provider's AEAD)."""

from __future__ import annotations

import base64
import io
import json
import os
import struct

import pytest

from orchestrator.errors import IntegrityError, ValidationError
from orchestrator.objects import LocalKeyring, decrypt_stream, encrypt_stream, envelope

CHUNK = 64 << 10
NAME = "s3://bucket/key"


def _seal(keyring: LocalKeyring, data: bytes, name: str = NAME, version: str = "v1") -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data), out, name=name, version=version, provider=keyring, chunk_size=CHUNK
    )
    return out.getvalue()


def _open(keyring: LocalKeyring, sealed: bytes, name: str = NAME) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(sealed), out, name=name, provider=keyring)
    return out.getvalue()


def _split(sealed: bytes, name: str = NAME) -> tuple[bytes, bytes]:
    header = envelope.read_key_header(io.BytesIO(sealed), name)
    assert header.fmt == envelope.FORMAT_REWRAP
    return header.raw, sealed[len(header.raw) :]


def _with_doc(raw: bytes, **changes: object) -> bytes:
    doc = json.loads(raw[11:])
    doc.update(changes)
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return raw[:6] + struct.pack(">BI", raw[6], len(body)) + body


def test_rewrapped_header_keeps_the_records(keyring: LocalKeyring) -> None:
    data = os.urandom(3 * CHUNK + 17)
    sealed = _seal(keyring, data)
    raw, records = _split(sealed)
    old = keyring.active_key_id
    new = keyring.rotate()
    key_id, new_raw = envelope.rewrap_header(raw, name=NAME, provider=keyring)
    assert key_id == new and new_raw != raw
    assert _open(keyring, new_raw + records) == data
    assert envelope.read_key_header(io.BytesIO(new_raw), NAME).key_id == new
    assert json.loads(raw[11:])["key_id"] == old


def test_format_3_header_fields_other_than_the_key_are_bound(keyring: LocalKeyring) -> None:
    sealed = _seal(keyring, b"x" * 1000, version="v1")
    raw, records = _split(sealed)
    # The version (and every field but the key's) is in the records' context: changed, the
    # records fail, even with a data key re-wrapped under the new version.
    with pytest.raises(IntegrityError):
        _open(keyring, _with_doc(raw, version="v2") + records)
    with pytest.raises(IntegrityError):
        _open(keyring, _with_doc(raw, nonce_prefix="AAAAAAAAAAA=") + records)


def test_a_wrapped_key_from_another_object_does_not_open(keyring: LocalKeyring) -> None:
    a = _seal(keyring, b"object a", name="s3://bucket/a")
    b = _seal(keyring, b"object b", name="s3://bucket/b")
    raw_a, _ = _split(a, "s3://bucket/a")
    raw_b, records_b = _split(b, "s3://bucket/b")
    doc_a = json.loads(raw_a[11:])
    swapped = _with_doc(raw_b, wrapped_key=doc_a["wrapped_key"], key_id=doc_a["key_id"])
    with pytest.raises(IntegrityError, match="does not unwrap"):
        _open(keyring, swapped + records_b, "s3://bucket/b")
    # ... nor an object's header moved to another name.
    with pytest.raises(IntegrityError):
        _open(keyring, a, "s3://bucket/b")


def test_a_flipped_wrapped_key_fails_authentication(keyring: LocalKeyring) -> None:
    raw, records = _split(_seal(keyring, b"data"))
    doc = json.loads(raw[11:])
    wrapped = bytearray(base64.b64decode(doc["wrapped_key"]))
    wrapped[-1] ^= 1
    bad = _with_doc(raw, wrapped_key=base64.b64encode(bytes(wrapped)).decode())
    with pytest.raises(IntegrityError, match="does not unwrap"):
        _open(keyring, bad + records)


def test_older_formats_cannot_be_rewrapped_by_header(keyring: LocalKeyring) -> None:
    header = envelope._encode_header("k", b"w" * 60, b"n" * 8, CHUNK, "v1", 0, fmt=1)
    assert header.raw[6] == envelope.FORMAT_VERSION and header.bound == header.raw
    with pytest.raises(ValidationError, match="reseal it instead"):
        envelope.rewrap_header(header.raw, name=NAME, provider=keyring)
