"""S3's object operations (PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject) and
what every operation of ``S3Service`` shares (``S3Base``): the body streamed into the store
and checked (``s3_body``), the object's headers, and plaintext read back for a GET."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import unquote

from orchestrator import tenancy
from orchestrator.api.aws import s3_xml as xml
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse
from orchestrator.api.aws.s3_body import BodyPipe, Hashing, IncomingBody, new_checksum, read_small
from orchestrator.api.aws.s3_rules import (
    MAX_KEYS,
    MAX_XML,
    etag_list,
    etag_of,
    http_time,
    modified_of,
    no_bucket,
    no_key,
    parse_range,
    s3_error,
)
from orchestrator.errors import (
    NotFoundError,
    OrchestratorError,
)
from orchestrator.objects import ObjectInfo, ObjectStore, buckets, join_uri

T = TypeVar("T")

MAX_OBJECT = 5 << 30
MAX_META = 2048  # bytes of x-amz-meta-* names and values, as S3
_SEND = 1 << 20
_KEPT_HEADERS = (
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
_OVERRIDES = {f"response-{h}": h for h in _KEPT_HEADERS}


class S3Base:
    """The store, the server's region and account, and the threads bodies are read on."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        region: str,
        account_id: str,
        spool: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.objects = objects
        self.region = region
        self.account_id = account_id
        self.spool = spool
        self.now = now
        # Bodies are read on these threads while the loop feeds them: a pool of its own, so
        # that slow uploads never hold up the default executor the gateway uses.
        self._pool = ThreadPoolExecutor(32, thread_name_prefix="s3-body")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        # In the request's context: the store's callers read the account it acts for.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._pool, partial(context.run, fn, *args, **kwargs))

    def _xml(self, root: str, *children: object, status: int = 200) -> AwsResponse:
        return AwsResponse(
            status, [("content-type", "application/xml")], xml.document(root, *children)
        )

    async def _need_bucket(self, bucket: str) -> None:
        """NoSuchBucket for an absent bucket and, the same, for another account's."""
        if not await self._run(buckets.visible, self.objects, bucket):
            raise no_bucket(bucket)

    def _owner(self) -> str:
        account = tenancy.arn_account(tenancy.stamp(), self.account_id)
        return xml.el("Owner", xml.el("ID", account), xml.el("DisplayName", account))

    def _max_keys(self, q: dict[str, str], name: str = "max-keys") -> int:
        raw = q.get(name, str(MAX_KEYS))
        if not raw.isdigit():
            raise AwsError(
                "InvalidArgument",
                f"{name} must be a non-negative integer, not {raw!r}",
                ArgumentName=name,
                ArgumentValue=raw,
            )
        return min(int(raw), MAX_KEYS)


class ObjectOps(S3Base):
    """PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject, and their helpers."""

    def _attrs_from_headers(self, r: AwsRequest) -> dict[str, str]:
        attrs: dict[str, str] = {}
        meta_bytes = 0
        for name, given in r.headers:
            if name.startswith("x-amz-meta-"):
                attrs[f"meta-{name.removeprefix('x-amz-meta-')}"] = given
                meta_bytes += len(name) - len("x-amz-") + len(given)
            elif name in _KEPT_HEADERS:
                value = given
                if name == "content-encoding":  # aws-chunked is how it was sent, not what it is
                    codings = (e.strip() for e in given.split(","))
                    value = ",".join(e for e in codings if e and e != "aws-chunked")
                if value:
                    attrs[name] = value
        if meta_bytes > MAX_META:
            raise AwsError(
                "MetadataTooLarge",
                f"Your metadata headers exceed the maximum allowed metadata size: {meta_bytes} "
                f"bytes of x-amz-meta-* over the {MAX_META}-byte limit",
                MaxSizeAllowed=MAX_META,
            )
        return attrs

    def _check_length(self, r: AwsRequest) -> None:
        for name in ("x-amz-decoded-content-length", "content-length"):
            value = r.header(name)
            if value and value.isdigit() and int(value) > MAX_OBJECT + (1 << 20):
                raise AwsError(
                    "EntityTooLarge",
                    f"Your proposed upload exceeds the maximum allowed size ({MAX_OBJECT} "
                    "bytes); use a multipart upload",
                    ProposedSize=value,
                    MaxSizeAllowed=MAX_OBJECT,
                )

    async def _receive(
        self,
        r: AwsRequest,
        store: ObjectStore,
        uri: str,
        extra: dict[str, str],
        algorithm: str | None = None,
    ) -> ObjectInfo:
        """Stream the request's body into ``uri`` of ``store``, checked; ``extra`` attributes
        and the ``algorithm`` checksum (computed when the client sent none) kept with it."""
        assert r.receive is not None
        self._check_length(r)
        pipe = BodyPipe(r.receive)
        body = IncomingBody(r, pipe, algorithm)

        def finish(size: int, sha256_hex: str) -> dict[str, str]:
            if size > MAX_OBJECT:
                raise AwsError("EntityTooLarge", f"the body is over {MAX_OBJECT} bytes")
            return {**extra, **body.finish(size, sha256_hex)}

        pump = asyncio.ensure_future(pipe.pump())
        try:
            info = await self._run(
                store.put_stream, uri, body.source, finish=finish, digests=body.digests
            )
        except BaseException:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            raise
        await pump
        return info

    def _checksum_headers(self, info: ObjectInfo) -> list[tuple[str, str]]:
        out = [
            (f"x-amz-checksum-{k.removeprefix('checksum-')}", v)
            for k, v in info.attrs.items()
            if k.startswith("checksum-") and k != "checksum-type"
        ]
        if out:
            out.append(("x-amz-checksum-type", info.attrs.get("checksum-type", "FULL_OBJECT")))
        return out

    async def put_object(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        attrs = self._attrs_from_headers(r)
        info = await self._receive(r, self.objects, join_uri(bucket, key), attrs)
        return AwsResponse(200, [("etag", etag_of(info)), *self._checksum_headers(info)])

    async def _head(self, bucket: str, key: str) -> ObjectInfo:
        await self._need_bucket(bucket)
        try:
            return await self._run(self.objects.head, join_uri(bucket, key))
        except NotFoundError:
            raise no_key(bucket, key) from None

    def _object_headers(
        self, info: ObjectInfo, r: AwsRequest, q: dict[str, str]
    ) -> list[tuple[str, str]]:
        headers = [
            ("etag", etag_of(info)),
            ("last-modified", xml.http_date(modified_of(info))),
            ("accept-ranges", "bytes"),
            ("content-type", info.attrs.get("content-type", "binary/octet-stream")),
        ]
        for name in _KEPT_HEADERS[1:]:
            if name in info.attrs:
                headers.append((name, info.attrs[name]))
        for param, name in _OVERRIDES.items():
            if param in q:
                headers = [(k, v) for k, v in headers if k != name] + [(name, q[param])]
        headers += [
            (f"x-amz-meta-{k[5:]}", v) for k, v in info.attrs.items() if k.startswith("meta-")
        ]
        if (r.header("x-amz-checksum-mode") or "").upper() == "ENABLED" and r.header(
            "range"
        ) is None:
            headers += self._checksum_headers(info)
        return headers

    def _preconditions(self, info: ObjectInfo, r: AwsRequest) -> int | None:
        """412 or 304 when a conditional header says so, as S3 (RFC 7232)."""
        etag = etag_of(info)
        modified = modified_of(info).replace(microsecond=0)
        match, none_match = r.header("if-match"), r.header("if-none-match")
        if match is not None and etag not in etag_list(match) and "*" not in etag_list(match):
            return 412
        since = http_time(r.header("if-unmodified-since"))
        if match is None and since is not None and modified > since:
            return 412
        if none_match is not None and (
            etag in etag_list(none_match) or "*" in etag_list(none_match)
        ):
            return 304
        since = http_time(r.header("if-modified-since"))
        if none_match is None and since is not None and modified <= since:
            return 304
        return None

    def _refuse(self, status: int, info: ObjectInfo) -> AwsResponse:
        if status == 304:
            return AwsResponse(
                304, [("etag", etag_of(info)), ("last-modified", xml.http_date(modified_of(info)))]
            )
        raise AwsError(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            status=412,
            Condition="If-Match",
        )

    async def head_object(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        info = await self._head(bucket, key)
        refused = self._preconditions(info, r)
        if refused:
            return self._refuse(refused, info)
        headers = self._object_headers(info, r, q)
        return AwsResponse(200, [*headers, ("content-length", str(info.size))])

    async def get_object(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        info = await self._head(bucket, key)
        refused = self._preconditions(info, r)
        if refused:
            return self._refuse(refused, info)
        headers = self._object_headers(info, r, q)
        start, end = 0, info.size - 1
        status = 200
        wanted = parse_range(r.header("range"), info.size, bucket, key)
        if wanted is not None:
            start, end = wanted
            status = 206
            headers.append(("content-range", f"bytes {start}-{end}/{info.size}"))
        length = end - start + 1
        headers.append(("content-length", str(length)))
        uri = join_uri(bucket, key)
        if wanted is None:
            f = await self._run(self._decrypted, uri)
        else:  # only the records that hold the range
            f = await self._run(self._decrypted_range, uri, start, length)
            start = 0
        return AwsResponse(status, headers, stream=self._send(f, start, length))

    def _decrypted(self, uri: str) -> BinaryIO:
        """The object's plaintext, verified in full, in an already-unlinked temp file."""
        fd, tmp = tempfile.mkstemp(prefix=".s3-get-", dir=self.spool)
        os.close(fd)
        try:
            self.objects.get_file(uri, Path(tmp))
            return open(tmp, "rb")
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _decrypted_range(self, uri: str, start: int, length: int) -> BinaryIO:
        f = tempfile.TemporaryFile(prefix=".s3-get-", dir=self.spool)  # noqa: SIM115 - _send closes
        try:
            self.objects.get_range(uri, start, length, cast(BinaryIO, f))
        except BaseException:
            f.close()
            raise
        return cast(BinaryIO, f)

    async def _send(self, f: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            f.seek(start)
            while length > 0:
                chunk = await self._run(f.read, min(_SEND, length))
                if not chunk:
                    break
                length -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def delete_object(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        with contextlib.suppress(NotFoundError):
            await self._run(self.objects.delete, join_uri(bucket, key))
        return AwsResponse(204)

    async def delete_objects(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        doc = xml.parse(await read_small(r, MAX_XML), "Delete")
        quiet = (xml.text(doc, "Quiet") or "").strip().lower() == "true"
        keys = [xml.text(o, "Key") for o in doc.findall("Object")]
        if not keys or len(keys) > MAX_KEYS:
            raise AwsError(
                "MalformedXML", f"a Delete names 1 to {MAX_KEYS} Objects, not {len(keys)}"
            )
        results: list[str] = []
        for name in keys:
            if not name:
                raise AwsError("MalformedXML", "every Object of a Delete needs a Key")
            try:
                await self._run(self.objects.delete, join_uri(bucket, name))
            except NotFoundError:
                pass
            except OrchestratorError as e:
                error = s3_error(e, bucket, name)
                results.append(
                    xml.el(
                        "Error",
                        xml.el("Key", name),
                        xml.el("Code", error.aws_code),
                        xml.el("Message", error.message),
                    )
                )
                continue
            if not quiet:
                results.append(xml.el("Deleted", xml.el("Key", name)))
        return self._xml("DeleteResult", *results)

    def _copy_source(self, r: AwsRequest) -> tuple[str, str]:
        raw = r.header("x-amz-copy-source") or ""
        quoted, _, version = raw.partition("?")
        source = unquote(quoted).lstrip("/")
        bucket, _, key = source.partition("/")
        if version and version != "versionId=null":
            raise AwsError(
                "NotImplemented", "versioned copy sources are not supported here", status=501
            )
        if not bucket or not key:
            raise AwsError(
                "InvalidArgument",
                f"x-amz-copy-source {raw!r} must be /bucket/key",
                ArgumentName="x-amz-copy-source",
                ArgumentValue=raw,
            )
        return bucket, key

    def _copy(
        self,
        source: str,
        store: ObjectStore,
        dest: str,
        attrs: dict[str, str],
        *,
        first: int | None = None,
        last: int | None = None,
    ) -> ObjectInfo:
        md5 = new_checksum("md5")
        with self._decrypted(source) as f:
            reader: Any = f
            if first is not None and last is not None:
                f.seek(first)
                reader = _Limited(f, last - first + 1)
            hashing = Hashing(reader, [md5])
            return store.put_stream(
                dest,
                cast(BinaryIO, hashing),
                finish=lambda size, sha: {**attrs, "etag": md5.hexdigest()},
            )

    async def copy_object(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        src_bucket, src_key = self._copy_source(r)
        source = await self._head(src_bucket, src_key)
        await self._need_bucket(bucket)
        directive = (r.header("x-amz-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise AwsError(
                "InvalidArgument",
                f"x-amz-metadata-directive must be COPY or REPLACE, not {directive!r}",
                ArgumentName="x-amz-metadata-directive",
            )
        if directive == "COPY" and (src_bucket, src_key) == (bucket, key):
            raise AwsError(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes.",
            )
        if directive == "REPLACE":
            attrs = self._attrs_from_headers(r)
        else:
            attrs = {
                k: v
                for k, v in source.attrs.items()
                if k != "etag" and not k.startswith("checksum-")
            }
        await read_small(r, 0)
        info = await self._run(self._copy, source.uri, self.objects, join_uri(bucket, key), attrs)
        return self._xml(
            "CopyObjectResult",
            xml.el("ETag", etag_of(info)),
            xml.el("LastModified", xml.iso(modified_of(info))),
        )


class _Limited:
    def __init__(self, f: BinaryIO, n: int) -> None:
        self._f = f
        self._left = n

    def readinto(self, view: Any) -> int:
        if self._left <= 0:
            return 0
        out = memoryview(view)[: self._left]
        n = self._f.readinto(out) or 0  # type: ignore[attr-defined]
        self._left -= n
        return int(n)
