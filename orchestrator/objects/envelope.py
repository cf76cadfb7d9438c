"""The encrypted object format: a streaming, chunked AES-256-GCM envelope.

::

    header   MAGIC "ORCENV" | format u8 | json length u32 | json (key_id, wrapped_key,
             nonce_prefix, chunk_size, version, alg)
    records  chunk 0 .. n-1: AES-GCM(plaintext chunk) = chunk_size + 16 bytes, the last shorter
    trailer  record n:       AES-GCM(plaintext length u64 | SHA-256 of the plaintext) = 56 bytes

Format 2 is format 1 with the object's attributes (string pairs: S3's ETag, content type, user
metadata and checksums) at the end of the trailer, as JSON padded with spaces to the header's
``attrs_bytes``: they are known only once the body has been read (an ETag is the MD5 of it),
and the trailer is the one record sealed after that, so they are encrypted and authenticated
like the rest. Format 1 objects (no attributes) read as before.

Format 3 (what is written now) is format 2 whose records do not bind the key fields of the
header (``key_id``, ``wrapped_key``): their context hashes the header's other fields only, so a
master key rotation re-wraps an object by rewriting its header alone (``rewrap_header``), the
records untouched. The wrapped key stays authenticated on its own: the key provider's AEAD
binds the key id, the object's name and its version, and every wrapping of one object holds
the same data key. ``attrs_bytes`` is always in a format 3 header (0: no attributes).

Every object gets a fresh 256-bit data key, wrapped by a ``KeyProvider`` with the object's
name and version as associated data. Record ``i`` uses nonce ``prefix(8) | i (u32)`` and
associated data ``context | i (u64) | final (u8)`` where ``context = SHA-256(name | header)``:
so the header, the name, the version, the order of records and the end of the stream are all
authenticated. Only the trailer has ``final = 1``; a stream cut anywhere lacks it. The
SHA-256 in the trailer is checked on every read as a second, independent end-to-end check.

``decrypt_stream`` writes plaintext to ``dst`` as records authenticate; the caller must drop
``dst`` if it raises (the stores decrypt into a temp file or buffer for that reason).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator import metrics
from orchestrator.errors import IntegrityError, KeyRetiredError, NotFoundError, ValidationError
from orchestrator.objects import _pipeline
from orchestrator.objects.keys import KeyProvider

MAGIC = b"ORCENV"
FORMAT_VERSION = 1
FORMAT_ATTRS = 2  # the trailer also holds the object's attributes
FORMAT_REWRAP = 3  # format 2, the key fields left out of the records' context
_KEY_FIELDS = ("key_id", "wrapped_key")
ATTRS_BYTES = 4096  # room for S3's 2 KB of user metadata, an ETag, checksums and more
_MAX_ATTRS_BYTES = 64 << 10
ALG = "AES-256-GCM"
TAG_BYTES = 16
TRAILER_PLAIN = struct.Struct(">Q32s")
TRAILER_BYTES = TRAILER_PLAIN.size + TAG_BYTES
DEFAULT_CHUNK_SIZE = 4 << 20
MIN_CHUNK_SIZE = 64 << 10
MAX_CHUNK_SIZE = 64 << 20
_PREFIX = struct.Struct(">6sBI")
_MAX_HEADER_JSON = 64 << 10
MAX_HEADER_BYTES = _PREFIX.size + _MAX_HEADER_JSON  # a header is never longer
_MAX_RECORDS = 1 << 32  # the nonce counter is 32 bits


Attrs = dict[str, str]
# Called once the whole body has been read, with its size and SHA-256 (hex), before the trailer
# is sealed: returns the object's attributes, or raises to refuse the object.
Finish = Callable[[int, str], Attrs]


@dataclass(frozen=True)
class EnvelopeInfo:
    name: str
    version: str
    key_id: str
    size: int  # plaintext bytes
    sha256: str  # hex digest of the plaintext
    chunk_size: int
    header_size: int
    encrypted_size: int
    attrs: Attrs | None = None  # format 2 only


@dataclass(frozen=True)
class _Header:
    raw: bytes
    key_id: str
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk_size: int
    version: str
    attrs_bytes: int = 0  # format 2: the trailer's room for attributes
    fmt: int = FORMAT_VERSION
    bound: bytes = b""  # what the records' context hashes: ``raw``, or format 3's fields

    @property
    def trailer_bytes(self) -> int:
        return TRAILER_BYTES + self.attrs_bytes


def _bound(fmt: int, raw: bytes, doc: dict[str, object]) -> bytes:
    if fmt != FORMAT_REWRAP:
        return raw
    rest = {k: v for k, v in doc.items() if k not in _KEY_FIELDS}
    return MAGIC + bytes([fmt]) + json.dumps(rest, separators=(",", ":"), sort_keys=True).encode()


class Sealer:
    """The per-object cipher state: data key, nonces and associated data for record ``i``."""

    def __init__(self, data_key: bytes, header: _Header, name: str) -> None:
        self._aes = AESGCM(data_key)
        self._prefix = header.nonce_prefix
        self._context = hashlib.sha256(name.encode() + b"\x00" + header.bound).digest()

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if index >= _MAX_RECORDS:
            raise ValidationError("object too large for one envelope (2**32 chunks)")
        return self._prefix + index.to_bytes(4, "big"), self._context + struct.pack(
            ">QB", index, final
        )

    def seal(self, index: int, data: bytes, *, final: bool = False) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aes.encrypt(nonce, data, aad)

    def open(self, index: int, data: bytes, *, final: bool = False) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aes.decrypt(nonce, data, aad)

    # The *_into forms reuse the caller's buffers: no allocation per 4 MiB record.
    def seal_into(self, index: int, data: memoryview, out: memoryview) -> None:
        nonce, aad = self._nonce_aad(index, False)
        self._aes.encrypt_into(nonce, data, aad, out)

    def open_into(self, index: int, data: memoryview, out: memoryview) -> None:
        # ``out`` may hold unauthenticated bytes if this raises; callers then drop it.
        nonce, aad = self._nonce_aad(index, False)
        self._aes.decrypt_into(nonce, data, aad, out)


def key_aad(name: str, version: str) -> bytes:
    return b"orchestrator-data-key-v1\x00" + name.encode() + b"\x00" + version.encode()


def integrity_error(name: str, why: str) -> IntegrityError:
    """The error to raise for an object that failed its check (counted as it is made: every
    call site raises it)."""
    metrics.record_object_store_error("integrity")
    return IntegrityError(f"object {name} failed its integrity check: {why}")


def overhead_bytes(size: int, chunk_size: int, header_size: int, attrs_bytes: int = 0) -> int:
    """Encrypted size minus plaintext size, for an object of ``size`` bytes."""
    return header_size + TAG_BYTES * -(-size // chunk_size) + TRAILER_BYTES + attrs_bytes


def _seal_trailer(size: int, digest: bytes, attrs: Attrs | None, room: int) -> bytes:
    plain = TRAILER_PLAIN.pack(size, digest)
    if attrs is None:
        return plain
    doc = json.dumps(attrs, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    if len(doc) > room:
        raise ValidationError(
            f"the object's attributes take {len(doc)} bytes, over the {room}-byte limit "
            "(shorten its metadata)",
            field="attrs",
        )
    return plain + doc.ljust(room, b" ")


def _open_trailer(name: str, header: _Header, plain: bytes) -> tuple[int, bytes, Attrs | None]:
    size, digest = TRAILER_PLAIN.unpack(plain[: TRAILER_PLAIN.size])
    if not header.attrs_bytes:
        return size, digest, None
    try:
        doc = json.loads(plain[TRAILER_PLAIN.size :])
        if not isinstance(doc, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
        ):
            raise ValueError("not an object of strings")
    except ValueError as e:
        raise integrity_error(name, f"its attributes are unreadable ({e})") from e
    return size, digest, doc


def _encode_header(  # noqa: PLR0917 - the header's fields, in their order
    key_id: str,
    wrapped: bytes,
    nonce_prefix: bytes,
    chunk_size: int,
    version: str,
    attrs_bytes: int = 0,
    fmt: int = FORMAT_REWRAP,
) -> _Header:
    doc: dict[str, object] = {
        "alg": ALG,
        "chunk_size": chunk_size,
        "key_id": key_id,
        "nonce_prefix": base64.b64encode(nonce_prefix).decode(),
        "version": version,
        "wrapped_key": base64.b64encode(wrapped).decode(),
    }
    if fmt != FORMAT_REWRAP:  # the older layouts, still read (and written by tests)
        fmt = FORMAT_ATTRS if attrs_bytes else FORMAT_VERSION
    if attrs_bytes or fmt == FORMAT_REWRAP:
        doc["attrs_bytes"] = attrs_bytes
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    raw = _PREFIX.pack(MAGIC, fmt, len(body)) + body
    bound = _bound(fmt, raw, doc)
    return _Header(raw, key_id, wrapped, nonce_prefix, chunk_size, version, attrs_bytes, fmt, bound)


def _read_header(src: BinaryIO, name: str) -> _Header:
    prefix = _pipeline.read_full(src, _PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise integrity_error(name, "it is shorter than an envelope header")
    magic, fmt, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise integrity_error(name, "it does not start with the envelope magic")
    if fmt not in (FORMAT_VERSION, FORMAT_ATTRS, FORMAT_REWRAP) or length > _MAX_HEADER_JSON:
        raise integrity_error(name, f"unknown envelope format {fmt} or header length {length}")
    body = _pipeline.read_full(src, length)
    try:
        doc = json.loads(body)
        header = _Header(
            raw=prefix + body,
            key_id=str(doc["key_id"]),
            wrapped_key=base64.b64decode(doc["wrapped_key"], validate=True),
            nonce_prefix=base64.b64decode(doc["nonce_prefix"], validate=True),
            chunk_size=int(doc["chunk_size"]),
            version=str(doc["version"]),
            attrs_bytes=int(doc["attrs_bytes"]) if fmt != FORMAT_VERSION else 0,
            fmt=fmt,
            bound=_bound(fmt, prefix + body, doc),
        )
        ok = doc["alg"] == ALG and len(header.nonce_prefix) == 8
        if fmt == FORMAT_ATTRS and not 0 < header.attrs_bytes <= _MAX_ATTRS_BYTES:
            ok = False
        if fmt == FORMAT_REWRAP and not 0 <= header.attrs_bytes <= _MAX_ATTRS_BYTES:
            ok = False
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise integrity_error(name, f"its header is unreadable ({e})") from e
    if not ok or not MIN_CHUNK_SIZE <= header.chunk_size <= MAX_CHUNK_SIZE:
        raise integrity_error(name, "its header has unexpected values")
    return header


def _open_key(header: _Header, name: str, provider: KeyProvider) -> bytes:
    try:
        return provider.unwrap(header.key_id, header.wrapped_key, key_aad(name, header.version))
    except KeyRetiredError as e:
        raise KeyRetiredError(
            f"object {name} cannot be read: its data key's {e.message}",
            field="key_id",
        ) from e
    except IntegrityError as e:
        raise integrity_error(name, f"its data key does not unwrap ({e.message})") from e
    except NotFoundError as e:
        # A flipped header byte also lands here, so say both possibilities.
        raise integrity_error(
            name, f"its header names a master key that cannot be found: {e.message}"
        ) from e


def check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValidationError(
            f"chunk_size {chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes",
            field="chunk_size",
        )


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    name: str,
    version: str,
    provider: KeyProvider,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    finish: Finish | None = None,
    digests: Sequence[_pipeline.Digest] = (),
) -> EnvelopeInfo:
    """Encrypt all of ``src`` into ``dst`` as one envelope bound to ``name`` and ``version``.
    ``digests`` (``hashlib``-like) are fed the plaintext on threads of their own.

    With ``finish``, the object is format 2 and keeps the attributes ``finish`` returns; if it
    raises, nothing more is written and the error propagates (the caller discards ``dst``)."""
    check_chunk_size(chunk_size)
    data_key = AESGCM.generate_key(bit_length=256)
    key_id, wrapped = provider.wrap(data_key, key_aad(name, version))
    room = ATTRS_BYTES if finish is not None else 0
    header = _encode_header(key_id, wrapped, os.urandom(8), chunk_size, version, room)
    sealer = Sealer(data_key, header, name)
    dst.write(header.raw)
    count, size, digest = _pipeline.encrypt_records(src, dst, sealer, chunk_size, digests)
    attrs = finish(size, digest.hex()) if finish is not None else None
    dst.write(sealer.seal(count, _seal_trailer(size, digest, attrs, room), final=True))
    encrypted = len(header.raw) + size + count * TAG_BYTES + header.trailer_bytes
    return EnvelopeInfo(
        name, version, key_id, size, digest.hex(), chunk_size, len(header.raw), encrypted, attrs
    )


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    name: str,
    provider: KeyProvider,
    expected_version: str | None = None,
) -> EnvelopeInfo:
    """Decrypt and verify; raises IntegrityError on any mismatch (then discard ``dst``)."""
    header = _read_header(src, name)
    if expected_version is not None and header.version != expected_version:
        raise integrity_error(
            name, f"it holds version {header.version!r}, expected {expected_version!r}"
        )
    sealer = Sealer(_open_key(header, name, provider), header, name)
    try:
        count, size, digest, trailer = _pipeline.decrypt_records(
            src, dst, sealer, header.chunk_size + TAG_BYTES, header.trailer_bytes
        )
        plain = sealer.open(count, trailer, final=True)
    except InvalidTag as e:
        raise integrity_error(name, "a record failed authentication") from e
    except _pipeline.BadRecordError as e:
        raise integrity_error(name, str(e)) from e
    want_size, want_digest, attrs = _open_trailer(name, header, plain)
    if want_size != size:
        raise integrity_error(name, f"it decrypted to {size} bytes, its trailer says {want_size}")
    if want_digest != digest:
        raise integrity_error(name, "the SHA-256 of its plaintext does not match its trailer")
    encrypted = len(header.raw) + size + count * TAG_BYTES + header.trailer_bytes
    return EnvelopeInfo(
        name,
        header.version,
        header.key_id,
        size,
        digest.hex(),
        header.chunk_size,
        len(header.raw),
        encrypted,
        attrs,
    )


def read_info(src: BinaryIO, *, name: str, provider: KeyProvider, total: int) -> EnvelopeInfo:
    """Header and trailer only (seeks; ``total`` = encrypted size): for ``head()``."""
    header = _read_header(src, name)
    src.seek(max(0, total - header.trailer_bytes))
    trailer = _pipeline.read_full(src, header.trailer_bytes)
    return info_of(header.raw, trailer, name=name, provider=provider, total=total)


def decrypt_range(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    name: str,
    provider: KeyProvider,
    total: int,
    start: int,
    length: int,
) -> EnvelopeInfo:
    """Decrypt plaintext bytes ``start`` .. ``start + length - 1`` only (seeks; ``total`` =
    encrypted size): the records that hold them, each authenticated (its position, the object
    and its header are in its associated data), and the trailer, for the size. The whole
    object's SHA-256 is not checked: that needs every byte."""
    info = read_info(src, name=name, provider=provider, total=total)
    if start < 0 or length < 0 or start + length > info.size:
        raise ValidationError(
            f"range {start}+{length} is outside object {name}'s {info.size} bytes", field="range"
        )
    src.seek(0)
    header = _read_header(src, name)
    sealer = Sealer(_open_key(header, name, provider), header, name)
    chunk = header.chunk_size
    if length == 0:
        return info
    first, last = start // chunk, (start + length - 1) // chunk
    src.seek(len(header.raw) + first * (chunk + TAG_BYTES))
    for index in range(first, last + 1):
        plain_len = min(chunk, info.size - index * chunk)
        try:
            plain = sealer.open(index, _pipeline.read_full(src, plain_len + TAG_BYTES))
        except InvalidTag as e:
            raise integrity_error(name, f"record {index} failed authentication") from e
        lo = start - index * chunk if index == first else 0
        hi = start + length - index * chunk if index == last else plain_len
        dst.write(plain[lo:hi])
    return info


def info_of(
    raw_header: bytes, trailer: bytes, *, name: str, provider: KeyProvider, total: int
) -> EnvelopeInfo:
    """What ``read_info`` says, from the header's bytes and the sealed trailer's (the last
    bytes of the object: at least the trailer's size; more are ignored)."""
    header = _read_header(io.BytesIO(raw_header), name)
    sealer = Sealer(_open_key(header, name, provider), header, name)
    body = total - len(header.raw) - header.trailer_bytes
    record = header.chunk_size + TAG_BYTES
    full, rest = divmod(body, record)
    if body < 0 or 0 < rest <= TAG_BYTES:
        raise integrity_error(name, f"its length {total} does not fit the envelope layout")
    count = full + (1 if rest else 0)
    try:
        plain = sealer.open(count, trailer[-header.trailer_bytes :], final=True)
    except InvalidTag as e:
        raise integrity_error(name, "its trailer failed authentication") from e
    size, digest, attrs = _open_trailer(name, header, plain)
    if size != body - count * TAG_BYTES:
        raise integrity_error(name, f"its trailer length {size} does not match the layout")
    return EnvelopeInfo(
        name,
        header.version,
        header.key_id,
        size,
        digest.hex(),
        header.chunk_size,
        len(header.raw),
        total,
        attrs,
    )


# --- re-wrap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyHeader:
    """What a re-wrap needs of an envelope's header: ``raw`` is its bytes (the records follow)."""

    name: str
    fmt: int
    key_id: str
    version: str
    raw: bytes

    @property
    def rewrappable(self) -> bool:
        """Format 3: the header alone can be rewritten; older formats need ``reseal``."""
        return self.fmt == FORMAT_REWRAP


def read_key_header(src: BinaryIO, name: str) -> KeyHeader:
    """The header at the start of ``src`` (left positioned just after it)."""
    header = _read_header(src, name)
    return KeyHeader(name, header.fmt, header.key_id, header.version, header.raw)


def rewrap_header(
    raw: bytes, *, name: str, provider: KeyProvider, key: str | None = None
) -> tuple[str, bytes]:
    """A format 3 header with its data key unwrapped and wrapped again under ``key``'s
    current version: returns (new key id, new header bytes); every other field is unchanged,
    so the records after the header stay valid."""
    header = _read_header(io.BytesIO(raw), name)
    if header.fmt != FORMAT_REWRAP:
        raise ValidationError(
            f"object {name} is in envelope format {header.fmt}, whose records bind the key "
            "fields of its header: reseal it instead",
            field="format",
        )
    aad = key_aad(name, header.version)
    data_key = _open_key(header, name, provider)
    key_id, wrapped = provider.wrap(data_key, aad, key=key)
    new = _encode_header(
        key_id, wrapped, header.nonce_prefix, header.chunk_size, header.version,
        header.attrs_bytes,
    )  # fmt: skip
    assert new.bound == header.bound
    return key_id, new.raw


def reseal(
    src: BinaryIO, dst: BinaryIO, *, name: str, provider: KeyProvider, key: str | None = None
) -> EnvelopeInfo:
    """Decrypt an older-format envelope and write it again as format 3 under a fresh data key
    wrapped by ``key``'s current version: same plaintext, same version, same attributes. The
    plaintext passes through a temporary file (never ``dst`` before it is verified)."""
    import tempfile

    with tempfile.TemporaryFile() as plain:
        old = decrypt_stream(src, plain, name=name, provider=provider)
        plain.seek(0)
        attrs = old.attrs
        return encrypt_stream(
            plain,
            dst,
            name=name,
            version=old.version,
            provider=_Pinned(provider, key),
            chunk_size=old.chunk_size,
            finish=(lambda _size, _sha: attrs) if attrs is not None else None,
        )


class _Pinned:
    """A provider whose wraps go to one logical key (``encrypt_stream`` wraps with the default)."""

    def __init__(self, provider: KeyProvider, key: str | None) -> None:
        self._provider, self._key = provider, key

    @property
    def active_key_id(self) -> str:
        return self._provider.active_key_id

    def wrap(self, data_key: bytes, aad: bytes, *, key: str | None = None) -> tuple[str, bytes]:
        return self._provider.wrap(data_key, aad, key=self._key if key is None else key)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return self._provider.unwrap(key_id, wrapped, aad)

    def check_key(self, key: str) -> str:
        return self._provider.check_key(key)
