"""S3 multipart uploads, kept in the object store's scratch space until they are completed
(``Uploads``), and the operations over them (``MultipartOps``, a part of ``S3Service``).

An upload is ``s3://mpu/<upload-id>/upload`` (its bucket, key, the attributes the object will
get and the checksum it asked for, as JSON) and its parts ``s3://mpu/<upload-id>/part-NNNNN``,
each an encrypted object like any other, with its MD5 and checksum as attributes. Completing
streams the parts, in order, into the one final object (written atomically: visible only once
whole) and removes the upload. The scratch store is the object store's ``scratch("uploads")``:
encrypted at rest the same way, and never listed with the objects.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import queue
import re
import secrets
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

from orchestrator.api.aws import s3_xml as xml
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse
from orchestrator.api.aws.s3_body import Hashing, new_checksum, read_small
from orchestrator.api.aws.s3_body import b64 as _b64
from orchestrator.api.aws.s3_objects import ObjectOps
from orchestrator.api.aws.s3_rules import (
    MAX_XML,
    etag_of,
    modified_of,
)
from orchestrator.errors import NotFoundError
from orchestrator.objects import ObjectInfo, ObjectStore, join_uri

MIN_PART = 5 << 20  # every part but the last, as S3
_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
MAX_PARTS = 10_000


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    attrs: dict[str, str]  # the final object's (content type, user metadata)
    algorithm: str | None  # the checksum each part carries, if one was asked for
    checksum_type: str  # COMPOSITE or FULL_OBJECT
    initiated: datetime


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # hex MD5
    checksum: str | None
    last_modified: datetime


def _no_upload(upload_id: str) -> AwsError:
    return AwsError(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        status=404,
        UploadId=upload_id,
    )


class Uploads:
    def __init__(self, scratch: ObjectStore) -> None:
        self.scratch = scratch

    def _uri(self, upload_id: str, name: str) -> str:
        return f"s3://mpu/{upload_id}/{name}"

    def part_uri(self, upload_id: str, number: int) -> str:
        return self._uri(upload_id, f"part-{number:05d}")

    def create(
        self,
        *,
        bucket: str,
        key: str,
        attrs: dict[str, str],
        algorithm: str | None,
        checksum_type: str,
        now: datetime,
    ) -> Upload:
        upload = Upload(secrets.token_hex(16), bucket, key, attrs, algorithm, checksum_type, now)
        doc = {
            "bucket": bucket,
            "key": key,
            "attrs": attrs,
            "algorithm": algorithm,
            "checksum_type": checksum_type,
            "initiated": now.isoformat(),
        }
        self.scratch.put_bytes(self._uri(upload.upload_id, "upload"), json.dumps(doc).encode())
        return upload

    def get(self, upload_id: str, bucket: str, key: str) -> Upload:
        if len(upload_id) != 32 or any(c not in "0123456789abcdef" for c in upload_id):
            raise _no_upload(upload_id)
        try:
            doc = json.loads(self.scratch.get_bytes(self._uri(upload_id, "upload")))
        except NotFoundError:
            raise _no_upload(upload_id) from None
        if (doc["bucket"], doc["key"]) != (bucket, key):
            raise _no_upload(upload_id)
        return Upload(
            upload_id,
            bucket,
            key,
            dict(doc["attrs"]),
            doc["algorithm"],
            doc["checksum_type"],
            datetime.fromisoformat(doc["initiated"]),
        )

    def parts(self, upload: Upload) -> list[Part]:
        found = self.scratch.list(self._uri(upload.upload_id, "part-"))
        return [_part(info, upload.algorithm) for info in found]

    def abort(self, upload: Upload) -> None:
        for info in self.scratch.list(self._uri(upload.upload_id, "")):
            with contextlib.suppress(NotFoundError):
                self.scratch.delete(info.uri)

    def check(self, upload: Upload, listed: list[tuple[int, str, str | None]]) -> list[Part]:
        """The parts ``CompleteMultipartUpload`` names (number, ETag, checksum), checked against
        those uploaded: ascending, each present with that ETag, all but the last >= 5 MiB."""
        if not listed:
            raise AwsError("MalformedXML", "CompleteMultipartUpload must name at least one Part")
        have = {p.number: p for p in self.parts(upload)}
        chosen: list[Part] = []
        for i, (number, etag, checksum) in enumerate(listed):
            if i and number <= listed[i - 1][0]:
                raise AwsError(
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. The parts list must be "
                    "specified in order by part number.",
                )
            part = have.get(number)
            if part is None or etag.strip('"') != part.etag:
                raise AwsError(
                    "InvalidPart",
                    f"One or more of the specified parts could not be found: part {number} "
                    "was not uploaded, or its ETag is not the one given.",
                    UploadId=upload.upload_id,
                    PartNumber=number,
                )
            if checksum is not None and checksum != part.checksum:
                raise AwsError(
                    "InvalidPart",
                    f"part {number}'s checksum {checksum} is not the one it was uploaded with",
                    UploadId=upload.upload_id,
                    PartNumber=number,
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART:
                raise AwsError(
                    "EntityTooSmall",
                    f"Your proposed upload is smaller than the minimum allowed size: part "
                    f"{part.number} is {part.size} bytes; every part but the last must be at "
                    f"least {MIN_PART} bytes",
                    ProposedSize=part.size,
                    MinSizeAllowed=MIN_PART,
                )
        return chosen

    def reader(self, upload: Upload, parts: list[Part]) -> PartsReader:
        return PartsReader(
            self.scratch, [(self.part_uri(upload.upload_id, p.number), p.size) for p in parts]
        )


def multipart_etag(parts: list[Part]) -> str:
    """S3's: the MD5 of the parts' MD5s (binary, concatenated), then ``-`` and their count."""
    digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts))  # noqa: S324
    return f"{digest.hexdigest()}-{len(parts)}"


def composite_checksum(algorithm: str, parts: list[Part]) -> str:
    """S3's COMPOSITE checksum: the checksum of the parts' checksums, then ``-`` and the count."""
    raw = b"".join(base64.b64decode(p.checksum or "") for p in parts)
    if algorithm == "crc32":
        digest = zlib.crc32(raw).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm, raw).digest()
    return f"{base64.b64encode(digest).decode()}-{len(parts)}"


def _part(info: ObjectInfo, algorithm: str | None) -> Part:
    number = int(info.uri.rsplit("-", 1)[1])
    etag = info.attrs.get("etag", "")
    checksum = info.attrs.get(f"checksum-{algorithm}") if algorithm else None
    modified = (
        info.last_modified if info.last_modified.tzinfo else info.last_modified.replace(tzinfo=UTC)
    )
    return Part(number, info.size, etag, checksum, modified)


class PartsReader(io.RawIOBase):
    """The parts' plaintext one after another, decrypted on a thread of its own while the final
    object is encrypted from it (no temp file). Every record of every part is authenticated as
    it is read (``ObjectStore.get_range``); a part that fails raises here, which aborts the
    final object's write: it is never visible."""

    _QUEUED = 4  # decrypted records waiting for the reader (4 MiB each by default)

    def __init__(self, store: ObjectStore, parts: list[tuple[str, int]]) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(self._QUEUED)
        self._closed = threading.Event()
        self._head = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(
            target=self._produce, args=(store, parts), name="s3-parts", daemon=True
        )
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self, store: ObjectStore, parts: list[tuple[str, int]]) -> None:
        writer = _Writer(self._put)
        try:
            for uri, size in parts:
                store.get_range(uri, 0, size, writer)  # type: ignore[arg-type]
        except BaseException as e:  # handed to the reader, which raises it
            self._put(e)
            return
        self._put(None)

    def readinto(self, view: Any) -> int:
        out = memoryview(view).cast("B")
        while not self._head and not self._done:
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            else:
                self._head = memoryview(item)
        n = min(len(out), len(self._head))
        out[:n] = self._head[:n]
        self._head = self._head[n:]
        return n

    def close(self) -> None:
        self._closed.set()
        self._thread.join(10)
        super().close()


class _Writer:
    def __init__(self, put: Any) -> None:
        self._put = put

    def write(self, data: bytes) -> int:
        self._put(bytes(data))
        return len(data)


class MultipartOps(ObjectOps):
    """The multipart operations, over ``Uploads`` in the store's scratch space."""

    def __init__(self, objects: ObjectStore, **kwargs: Any) -> None:
        super().__init__(objects, **kwargs)
        self.uploads = Uploads(objects.scratch("uploads"))

    async def create_upload(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        join_uri(bucket, key)  # the key is one the store can hold
        attrs = self._attrs_from_headers(r)
        algorithm = (r.header("x-amz-checksum-algorithm") or "").lower() or None
        if algorithm is not None and algorithm not in ("crc32", "sha1", "sha256"):
            raise AwsError(
                "InvalidRequest",
                f"x-amz-checksum-algorithm {algorithm.upper()} is not supported "
                "here: use CRC32, SHA1 or SHA256",
            )
        kind = (r.header("x-amz-checksum-type") or "COMPOSITE").upper()
        if kind not in ("COMPOSITE", "FULL_OBJECT") or (
            kind == "FULL_OBJECT" and algorithm != "crc32"
        ):
            raise AwsError(
                "InvalidRequest",
                f"x-amz-checksum-type {kind} is not supported with "
                f"{(algorithm or 'no algorithm').upper()} here (FULL_OBJECT: CRC32 only)",
            )
        await read_small(r, 0)
        upload = await self._run(
            self.uploads.create,
            bucket=bucket,
            key=key,
            attrs=attrs,
            algorithm=algorithm,
            checksum_type=kind,
            now=self.now(),
        )
        headers = [("x-amz-checksum-algorithm", algorithm.upper())] if algorithm else []
        response = self._xml(
            "InitiateMultipartUploadResult",
            xml.el("Bucket", bucket),
            xml.el("Key", key),
            xml.el("UploadId", upload.upload_id),
        )
        response.headers += headers
        return response

    async def _upload(self, bucket: str, key: str, q: dict[str, str]) -> Upload:
        await self._need_bucket(bucket)
        return await self._run(self.uploads.get, q.get("uploadId", ""), bucket, key)

    def _part_number(self, q: dict[str, str]) -> int:
        raw = q.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
            raise AwsError(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {MAX_PARTS}, "
                f"inclusive (not {raw!r})",
                ArgumentName="partNumber",
                ArgumentValue=raw,
            )
        return int(raw)

    async def upload_part(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        upload = await self._upload(bucket, key, q)
        number = self._part_number(q)
        uri = self.uploads.part_uri(upload.upload_id, number)
        info = await self._receive(r, self.uploads.scratch, uri, {}, upload.algorithm)
        return AwsResponse(200, [("etag", etag_of(info)), *self._checksum_headers(info)])

    async def upload_part_copy(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        upload = await self._upload(bucket, key, q)
        number = self._part_number(q)
        src_bucket, src_key = self._copy_source(r)
        source = await self._head(src_bucket, src_key)
        first = last = None
        spec = r.header("x-amz-copy-source-range")
        if spec is not None:
            m = _COPY_RANGE.match(spec.strip())
            if not m or int(m[1]) > int(m[2]) or int(m[2]) >= source.size:
                raise AwsError(
                    "InvalidArgument",
                    f"x-amz-copy-source-range {spec!r} must be bytes=first-last "
                    f"within the source's {source.size} bytes",
                    ArgumentName="x-amz-copy-source-range",
                )
            first, last = int(m[1]), int(m[2])
        await read_small(r, 0)
        uri = self.uploads.part_uri(upload.upload_id, number)
        info = await self._run(
            self._copy, source.uri, self.uploads.scratch, uri, {}, first=first, last=last
        )
        return self._xml(
            "CopyPartResult",
            xml.el("ETag", etag_of(info)),
            xml.el("LastModified", xml.iso(modified_of(info))),
        )

    async def complete(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        upload = await self._upload(bucket, key, q)
        doc = xml.parse(await read_small(r, MAX_XML), "CompleteMultipartUpload")
        listed = []
        for node in doc.findall("Part"):
            number = (xml.text(node, "PartNumber") or "").strip()
            if not number.isdigit():
                raise AwsError("MalformedXML", f"PartNumber {number!r} is not a number")
            checksum = (
                xml.text(node, f"Checksum{(upload.algorithm or '').upper()}")
                if upload.algorithm
                else None
            )
            listed.append((int(number), (xml.text(node, "ETag") or "").strip(), checksum))
        parts = await self._run(self.uploads.check, upload, listed)
        attrs = {**upload.attrs, "etag": multipart_etag(parts)}
        full = new_checksum("crc32") if upload.checksum_type == "FULL_OBJECT" else None
        if upload.algorithm and full is None:
            if any(p.checksum is None for p in parts):
                raise AwsError(
                    "InvalidRequest",
                    f"every part of an upload created with {upload.algorithm.upper()} "
                    "needs that checksum",
                )
            attrs[f"checksum-{upload.algorithm}"] = composite_checksum(upload.algorithm, parts)
            attrs["checksum-type"] = "COMPOSITE"

        def assemble() -> ObjectInfo:
            reader = self.uploads.reader(upload, parts)
            with reader:
                source = Hashing(reader, [full] if full is not None else [])

                def finish(size: int, sha: str) -> dict[str, str]:
                    if full is not None:
                        return {
                            **attrs,
                            "checksum-crc32": _b64(full.digest()),
                            "checksum-type": "FULL_OBJECT",
                        }
                    return attrs

                info = self.objects.put_stream(
                    join_uri(bucket, key), cast(BinaryIO, source), finish=finish
                )
            self.uploads.abort(upload)
            return info

        info = await self._run(assemble)
        response = self._xml(
            "CompleteMultipartUploadResult",
            xml.el("Location", f"/{bucket}/{key}"),
            xml.el("Bucket", bucket),
            xml.el("Key", key),
            xml.el("ETag", etag_of(info)),
            *[
                xml.el(f"Checksum{k[9:].upper()}", v)
                for k, v in info.attrs.items()
                if k.startswith("checksum-") and k != "checksum-type"
            ],
            xml.opt("ChecksumType", info.attrs.get("checksum-type")),
        )
        return response

    async def abort(self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]) -> AwsResponse:
        upload = await self._upload(bucket, key, q)
        await self._run(self.uploads.abort, upload)
        return AwsResponse(204)

    async def list_parts(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        upload = await self._upload(bucket, key, q)
        marker_raw = q.get("part-number-marker", "0") or "0"
        if not marker_raw.isdigit():
            raise AwsError(
                "InvalidArgument",
                "part-number-marker must be an integer",
                ArgumentName="part-number-marker",
            )
        marker = int(marker_raw)
        limit = self._max_keys(q, "max-parts")
        parts = [p for p in await self._run(self.uploads.parts, upload) if p.number > marker]
        shown, truncated = parts[:limit], len(parts) > limit
        algo = (upload.algorithm or "").upper()
        items = [
            xml.el(
                "Part",
                xml.el("PartNumber", p.number),
                xml.el("LastModified", xml.iso(p.last_modified)),
                xml.el("ETag", f'"{p.etag}"'),
                xml.el("Size", p.size),
                xml.opt(f"Checksum{algo}", p.checksum) if algo else None,
            )
            for p in shown
        ]
        owner = self._owner()
        return self._xml(
            "ListPartsResult",
            xml.el("Bucket", bucket),
            xml.el("Key", key),
            xml.el("UploadId", upload.upload_id),
            xml.el("PartNumberMarker", marker),
            xml.opt("NextPartNumberMarker", shown[-1].number if truncated and shown else None),
            xml.el("MaxParts", limit),
            xml.el("IsTruncated", truncated),
            *items,
            xml.Raw(owner.replace("Owner>", "Initiator>")),
            owner,
            xml.el("StorageClass", "STANDARD"),
            xml.opt("ChecksumAlgorithm", algo or None),
        )
