"""An S3 request body, streamed: from the ASGI ``receive`` on the event loop to the thread that
encrypts it into the object store, decoded and checked on the way.

``BodyPipe`` moves the bytes across (bounded: the client is held back once ``limit`` bytes wait
for the encrypting thread). ``AwsChunked`` decodes ``Content-Encoding: aws-chunked`` (what SDKs
send for ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, botocore's choice over https, and
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``, whose chunks and trailer are each signed and
verified with ``orchestrator.sigv4``). The MD5 (the ETag) and the checksums the client asked
for are fed the bytes as they pass: by the store, each on its own thread
(``put_stream(digests=)``), or by ``Hashing`` for the small bodies read whole.
``IncomingBody.finish`` runs once the body has been read and before the object becomes visible
(``put_stream(finish=)``): it compares the signed ``x-amz-content-sha256`` with the SHA-256 the
store computed anyway (no second pass), then ``Content-MD5`` and the ``x-amz-checksum-*``
values, and refuses the object on any mismatch.

Nothing CPU-heavy runs on the event loop: decoding and hashing run on the store's threads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import threading
import zlib
from collections import deque
from typing import Any, Protocol

from orchestrator import sigv4
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, Receive

PIPE_LIMIT = 8 << 20
_READ = 1 << 20
_MAX_LINE = 4096
# What this server can verify (hashlib and zlib); CRC32C and CRC64NVME would need a library.
CHECKSUMS = ("crc32", "sha1", "sha256")
_UNVERIFIABLE = ("crc32c", "crc64nvme")


class Readable(Protocol):
    def readinto(self, view: memoryview) -> int: ...


class BodyPipe(io.RawIOBase):
    """ASGI body messages (``pump`` on the loop) to ``readinto`` (on another thread)."""

    def __init__(self, receive: Receive, limit: int = PIPE_LIMIT) -> None:
        self._receive = receive
        self._limit = limit
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self._blocked = False
        self._want = 1  # bytes the reader waits for: it is woken once, not per message
        self._room = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.received = 0

    def readable(self) -> bool:
        return True

    async def pump(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise AwsError(
                        "IncompleteBody", "the client went away before sending all of its body"
                    )
                chunk = message.get("body", b"")
                if chunk:
                    with self._cond:
                        self._chunks.append(memoryview(chunk))
                        self._buffered += len(chunk)
                        self.received += len(chunk)
                        self._blocked = self._buffered >= self._limit
                        if self._blocked:
                            self._room.clear()
                        if self._buffered >= self._want or self._blocked:
                            self._cond.notify()
                    if self._blocked:
                        await self._room.wait()
                if not message.get("more_body", False):
                    return
        except BaseException as e:
            with self._cond:
                self._error = e
            raise
        finally:
            with self._cond:
                self._done = True
                self._cond.notify()

    def readinto(self, view: Any) -> int:
        out = memoryview(view).cast("B")
        with self._cond:
            # Wait for as much as asked (up to half the limit): one wake-up per buffer, not
            # one per ASGI message (~64 KiB each).
            self._want = max(1, min(len(out), self._limit // 2))
            while self._buffered < self._want and not self._done and not self._blocked:
                self._cond.wait()
            if self._error is not None:
                if isinstance(self._error, AwsError):
                    raise self._error
                raise AwsError("IncompleteBody", "the body was cut short") from self._error
            got = 0
            while self._chunks and got < len(out):
                head = self._chunks[0]
                n = min(len(head), len(out) - got)
                out[got : got + n] = head[:n]
                got += n
                if n == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[n:]
            self._buffered -= got
            if self._blocked and self._buffered < self._limit:
                self._blocked = False
                self._loop.call_soon_threadsafe(self._room.set)
            return got


def _incomplete(why: str) -> AwsError:
    return AwsError("IncompleteBody", f"the aws-chunked body is malformed: {why}")


class AwsChunked(io.RawIOBase):
    """Decode ``aws-chunked``: ``hex-size[;chunk-signature=SIG]\\r\\n data \\r\\n`` ... a
    zero-size chunk, then the trailer (``name:value\\r\\n`` lines, a blank line). With
    ``signing`` (key, credential), every chunk's signature is checked, chained from the
    request's signature, and the trailer's (``x-amz-trailer-signature``) when there is one."""

    def __init__(
        self, src: Readable, *, signing: tuple[bytes, sigv4.Credential] | None = None
    ) -> None:
        self._src = src
        self._buf = bytearray()
        self._pos = 0
        self._remaining = 0
        self._eof = False
        self._signing = signing
        self._previous = signing[1].signature if signing else ""
        self._chunk_sig = ""
        self._chunk_hash: Any = None
        self.trailers: dict[str, str] = {}
        self.decoded = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        room = bytearray(_READ)
        n = self._src.readinto(memoryview(room))
        if not n:
            return False
        self._buf += room[:n]
        return True

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end >= 0:
                line = bytes(self._buf[self._pos : end])
                self._pos = end + 2
                return line
            if len(self._buf) - self._pos > _MAX_LINE:
                raise _incomplete("a chunk header or trailer line is too long")
            if not self._fill():
                raise _incomplete("it ends in the middle of a chunk header or the trailer")

    def _start_chunk(self) -> None:
        size_text, _, ext = self._line().partition(b";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise _incomplete(f"chunk size {size_text[:20]!r} is not hexadecimal") from None
        if self._signing:
            name, _, value = ext.partition(b"=")
            if name.strip() != b"chunk-signature" or not value:
                raise sigv4.SignatureError(
                    "malformed", "a signed aws-chunked chunk has no chunk-signature"
                )
            self._chunk_sig = value.strip().decode("latin-1")
            self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size == 0:
            self._check_chunk()
            self._read_trailer()
            self._eof = True

    def _check_chunk(self) -> None:
        if not self._signing:
            return
        key, credential = self._signing
        expected = sigv4.chunk_signature(
            key, credential, self._previous, self._chunk_hash.hexdigest()
        )
        sigv4.check_chunk(expected, self._chunk_sig)
        self._previous = expected

    def _read_trailer(self) -> None:
        signed: list[bytes] = []
        trailer_sig = None
        while True:
            try:
                line = self._line()
            except AwsError:
                if not self.trailers and len(self._buf) == self._pos:
                    return  # the body ended right after the last chunk: no trailer at all
                raise
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _incomplete(f"trailer line {line[:40]!r} is not name:value")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                trailer_sig = value
                continue
            self.trailers[name] = value
            signed.append(f"{name}:{value}\n".encode("latin-1"))
        if self._signing and self.trailers:
            if trailer_sig is None:
                raise sigv4.SignatureError("malformed", "the signed trailer has no signature")
            key, credential = self._signing
            expected = sigv4.trailer_signature(key, credential, self._previous, b"".join(signed))
            sigv4.check_chunk(expected, trailer_sig)

    def readinto(self, view: Any) -> int:
        out = memoryview(view).cast("B")
        if not out:
            return 0
        if self._remaining == 0 and not self._eof:
            self._start_chunk()
        if self._eof:
            return 0
        n = min(len(out), self._remaining)
        avail = len(self._buf) - self._pos
        if avail:
            n = min(n, avail)
            out[:n] = self._buf[self._pos : self._pos + n]
            self._pos += n
        else:  # straight from the source into the caller's buffer: no copy through ours
            n = self._src.readinto(out[:n])
            if not n:
                raise _incomplete("it ends in the middle of a chunk")
        if self._chunk_hash is not None:
            self._chunk_hash.update(out[:n])
        self._remaining -= n
        self.decoded += n
        if self._remaining == 0:
            if self._line() != b"":
                raise _incomplete("a chunk is longer than its size says")
            self._check_chunk()
        return n


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def new_checksum(algorithm: str) -> Any:
    return _Crc32() if algorithm == "crc32" else hashlib.new(algorithm)


class Hashing(io.RawIOBase):
    """Pass ``readinto`` through, feeding every hash in ``hashes`` the bytes read."""

    def __init__(self, src: Readable, hashes: list[Any]) -> None:
        self._src = src
        self._hashes = hashes
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, view: Any) -> int:
        n = self._src.readinto(view)
        if n:
            data = memoryview(view)[:n]
            for h in self._hashes:
                h.update(data)
            self.size += n
        return n


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _header_algorithms(request: AwsRequest) -> dict[str, str | None]:
    """The checksums the client sent in headers (algorithm -> base64) or named for its
    trailer or asked for by name (-> None: computed, and stored)."""
    wanted: dict[str, str | None] = {}
    for name, value in request.headers:
        if name.startswith("x-amz-checksum-") and name not in (
            "x-amz-checksum-algorithm", "x-amz-checksum-mode", "x-amz-checksum-type",
        ):  # fmt: skip
            wanted[name.removeprefix("x-amz-checksum-")] = value.strip()
    for source in ("x-amz-trailer", "x-amz-sdk-checksum-algorithm"):
        named = (request.header(source) or "").strip().lower()
        if named:
            wanted.setdefault(named.removeprefix("x-amz-checksum-"), None)
    for algorithm in wanted:
        if algorithm in _UNVERIFIABLE:
            raise AwsError(
                "InvalidRequest",
                f"x-amz-checksum-{algorithm} is not supported by this server: use CRC32 (the "
                "SDKs' default), SHA1 or SHA256 (ChecksumAlgorithm=...)",
            )
        if algorithm not in CHECKSUMS:
            raise AwsError(
                "InvalidRequest", f"x-amz-checksum-{algorithm} is not a known checksum algorithm"
            )
    return wanted


class IncomingBody:
    """The decoding chain for one request's body and the checks it must pass."""

    def __init__(self, request: AwsRequest, pipe: Readable, algorithm: str | None = None) -> None:
        self.request = request
        payload = request.payload_hash
        encoding = [e.strip() for e in (request.header("content-encoding") or "").split(",")]
        chunked = payload.startswith("STREAMING-") or "aws-chunked" in encoding
        if payload not in (
            sigv4.UNSIGNED_PAYLOAD, sigv4.STREAMING_UNSIGNED_TRAILER, sigv4.STREAMING_SIGNED,
            sigv4.STREAMING_SIGNED_TRAILER,
        ) and not _is_sha256(payload):  # fmt: skip
            raise AwsError(
                "InvalidArgument",
                f"x-amz-content-sha256 {payload[:80]!r} must be a hex SHA-256, UNSIGNED-PAYLOAD "
                "or one of the STREAMING-... values",
            )
        self.wanted = _header_algorithms(request)
        if algorithm is not None:
            self.wanted.setdefault(algorithm, None)
        self.content_md5 = request.header("content-md5")
        self.checksums = {a: new_checksum(a) for a in self.wanted if a != "sha256"}
        self.md5 = hashlib.md5()  # noqa: S324 - S3's ETag is the MD5 of the body
        self.chunked: AwsChunked | None = None
        source: Readable = pipe
        if chunked:
            signing = None
            if payload in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER):
                assert request.credential is not None
                signing = (request.signing_key, request.credential)
            self.chunked = AwsChunked(pipe, signing=signing)
            source = self.chunked
        # ``source`` with ``digests`` for the store to feed (on threads of their own, beside
        # the encryption: the MD5 alone costs ~140 ms per 100 MiB here, more than the rest
        # of a PUT's work on its thread); ``reader`` feeds them itself.
        self.source = source
        self.digests: list[Any] = [self.md5, *self.checksums.values()]
        self.reader = Hashing(source, self.digests)
        decoded = request.header("x-amz-decoded-content-length")
        self.decoded_length = int(decoded) if decoded and decoded.isdigit() else None

    def finish(self, size: int, sha256_hex: str) -> dict[str, str]:
        """Check the body read (``size`` bytes, SHA-256 ``sha256_hex``); the attributes to keep:
        ``etag`` and ``checksum-<algorithm>`` (base64)."""
        payload = self.request.payload_hash
        if _is_sha256(payload) and payload != sha256_hex:
            raise sigv4.SignatureError(
                "payload",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        if self.decoded_length is not None and self.decoded_length != size:
            raise AwsError(
                "IncompleteBody",
                f"the body has {size} bytes, x-amz-decoded-content-length says "
                f"{self.decoded_length}",
            )
        md5 = self.md5.digest()
        if self.content_md5 is not None:
            try:
                given = base64.b64decode(self.content_md5, validate=True)
            except (binascii.Error, ValueError):
                raise AwsError(
                    "InvalidDigest", "The Content-MD5 you specified is not valid base64."
                ) from None
            if given != md5:
                raise AwsError(
                    "BadDigest", "The Content-MD5 you specified did not match what we received."
                )
        trailers = self.chunked.trailers if self.chunked else {}
        attrs = {"etag": md5.hex()}
        for algorithm, given_value in self.wanted.items():
            digest = (
                bytes.fromhex(sha256_hex)
                if algorithm == "sha256"
                else self.checksums[algorithm].digest()
            )
            value = b64(digest)
            claimed = given_value or trailers.get(f"x-amz-checksum-{algorithm}")
            if claimed is not None and claimed != value:
                raise AwsError(
                    "BadDigest",
                    f"The {algorithm.upper()} you specified did not match the calculated "
                    f"checksum ({value}).",
                )
            attrs[f"checksum-{algorithm}"] = value
        return attrs


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


async def read_small(request: AwsRequest, limit: int) -> bytes:
    """A small body (an XML document) read whole, with the same checks as a streamed one."""
    assert request.receive is not None
    raw = bytearray()
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise AwsError("IncompleteBody", "the client went away before sending its body")
        raw += message.get("body", b"")
        if len(raw) > limit:
            raise AwsError("MaxMessageLengthExceeded", f"the request body is over {limit} bytes")
        if not message.get("more_body", False):
            break
    body = IncomingBody(request, io.BytesIO(raw))
    out = bytearray()
    buf = bytearray(64 << 10)
    while n := body.reader.readinto(memoryview(buf)):
        out += buf[:n]
    data = bytes(out)
    body.finish(len(data), hashlib.sha256(data).hexdigest())
    return data
