"""S3's REST API (rest-xml, path-style ``http://HOST:PORT/bucket/key``) over the encrypted
object store, so that what ``boto3.client("s3")`` writes is an ``s3://bucket/key`` the control
plane reads: training channels, model artifacts.

Every object is stored as the native API stores it (an envelope, AES-256-GCM, per object); what
S3 keeps beside the bytes (ETag, content type, ``x-amz-meta-*``, checksums) are the object's
attributes, sealed in its trailer (``ObjectStore.put_stream(finish=)``). The ETag is the MD5 of
the body (``"<md5 of the parts' md5s>-N"`` after a multipart upload), computed as the body
streams in and stored; an object written through the native API has none, and is given the
first 32 hex digits of its SHA-256 (S3's ETags are not MD5s for some of its own objects
either). Bodies stream from the socket into the store (``s3_body``): a 100 MiB PutObject is
never held in memory, and an object whose hash or checksum does not match is never visible.

The operations, the policy action each needs (``authorize``) and how each differs from S3 are
``SUPPORTED``; what is not served is ``NOT_SUPPORTED`` (both for the compatibility page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar, cast
from urllib.parse import parse_qsl, quote, unquote

from orchestrator import sigv4
from orchestrator.access import authorize
from orchestrator.api.aws import s3_xml as xml
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse, Message, Receive
from orchestrator.api.aws.s3_body import BodyPipe, Hashing, IncomingBody, new_checksum, read_small
from orchestrator.api.aws.s3_body import b64 as _b64
from orchestrator.api.aws.s3_multipart import (
    MAX_PARTS,
    Upload,
    Uploads,
    composite_checksum,
    multipart_etag,
)
from orchestrator.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    OrchestratorError,
    PermissionDeniedError,
    ValidationError,
)
from orchestrator.objects import ObjectInfo, ObjectStore, join_uri
from orchestrator.objects.uri import is_bucket_name

T = TypeVar("T")
log = logging.getLogger("orchestrator.api.aws")

SUPPORTED: dict[str, str] = {
    "ListBuckets": "every bucket of the store (one owner: the server's account); no paging",
    "CreateBucket": "S3's bucket naming rules; creating one you have again is 200 (us-east-1); "
    "a LocationConstraint other than the server's region is refused",
    "HeadBucket": "200, or 404 with no body",
    "DeleteBucket": "BucketNotEmpty (409) while it holds objects",
    "GetBucketLocation": "the server's region (empty for us-east-1, as S3)",
    "ListObjectsV2": "prefix, delimiter (CommonPrefixes), max-keys (up to 1000), "
    "continuation-token, start-after, encoding-type=url; no Owner or RestoreStatus",
    "ListObjects": "v1: prefix, delimiter, marker, max-keys, NextMarker with a delimiter",
    "PutObject": "streamed into the store, encrypted; x-amz-content-sha256, Content-MD5 and "
    "x-amz-checksum-crc32/sha1/sha256 (header or aws-chunked trailer) verified before the "
    "object is visible; signed aws-chunked chunks verified; 5 GiB at most",
    "GetObject": "Range (bytes=a-b, a-, -n: 206 and Content-Range; 416 InvalidRange), "
    "If-Match/If-None-Match/If-(Un)Modified-Since, response-* overrides, checksums with "
    "ChecksumMode=ENABLED; decrypted and verified in full before the first byte is sent",
    "HeadObject": "the same headers as GetObject; 404 with no body when missing",
    "DeleteObject": "204 whether or not the key existed, as S3",
    "DeleteObjects": "the XML multi-delete, up to 1000 keys, Quiet",
    "CopyObject": "x-amz-copy-source within this server; MetadataDirective COPY or REPLACE; "
    "the copy's ETag is the MD5 of its bytes (a copy is one part)",
    "CreateMultipartUpload": "parts are encrypted in the store's scratch space until completed",
    "UploadPart": "the same checks as PutObject, per part (1-10000)",
    "UploadPartCopy": "a part from an existing object, with x-amz-copy-source-range",
    "CompleteMultipartUpload": "parts checked (InvalidPart, InvalidPartOrder, EntityTooSmall "
    'under 5 MiB but the last); ETag "<md5 of part md5s>-N"; COMPOSITE or FULL_OBJECT '
    "checksum",
    "AbortMultipartUpload": "removes the upload and its parts",
    "ListParts": "part-number-marker and max-parts paging",
}

NOT_SUPPORTED: list[str] = [
    "virtual-host addressing (bucket.HOST): use path style, "
    "Config(s3={'addressing_style': 'path'})",
    "versioning (versionId, ListObjectVersions), object lock, retention",
    "ACLs, bucket policies, CORS, website hosting, public access block (one account owns all)",
    "tagging, lifecycle rules, replication, inventory, notifications, analytics",
    "storage classes other than STANDARD, Glacier restore",
    "server-side encryption options (SSE-S3/SSE-KMS/SSE-C headers are accepted and ignored: "
    "every object is encrypted with the store's own keys anyway)",
    "ListMultipartUploads, ListObjectVersions, SelectObjectContent, GetObjectAttributes",
    "POST object (browser form uploads), PartNumber on GetObject/HeadObject",
    "x-amz-checksum-crc32c and crc64nvme (refused: not verifiable without a library)",
    "signature version 2 and anonymous access: every request is SigV4-signed",
]

MAX_OBJECT = 5 << 30
MAX_META = 2048  # bytes of x-amz-meta-* names and values, as S3
MAX_XML = 2 << 20
MAX_KEYS = 1000
_SEND = 1 << 20
_DRAIN = 1 << 20  # an error's unread body up to this is read and dropped, past it: close
_KEPT_HEADERS = (
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
_OVERRIDES = {f"response-{h}": h for h in _KEPT_HEADERS}
_SUBRESOURCES = {
    "acl",
    "tagging",
    "versioning",
    "versions",
    "policy",
    "cors",
    "lifecycle",
    "website",
    "replication",
    "encryption",
    "notification",
    "logging",
    "object-lock",
    "retention",
    "legal-hold",
    "restore",
    "select",
    "attributes",
    "torrent",
    "accelerate",
    "analytics",
    "inventory",
    "metrics",
    "ownershipControls",
    "publicAccessBlock",
    "requestPayment",
    "intelligent-tiering",
    "policyStatus",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


@dataclass(frozen=True)
class _Op:
    name: str
    action: str
    handler: Callable[[AwsRequest, str, str, dict[str, str]], Awaitable[AwsResponse]]


def s3_name_problem(bucket: str) -> str | None:
    """Why ``bucket`` breaks S3's naming rules, or None."""
    if not is_bucket_name(bucket):
        return "3-63 characters: lowercase letters, digits, dots and hyphens, not an IP address"
    if ".-" in bucket or "-." in bucket:
        return "a dot next to a hyphen"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if bucket.startswith(prefix):
            return f"the prefix {prefix!r} is reserved"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if bucket.endswith(suffix):
            return f"the suffix {suffix!r} is reserved"
    return None


def _etag(info: ObjectInfo) -> str:
    return f'"{info.attrs.get("etag") or info.sha256[:32]}"'


def _modified(info: ObjectInfo) -> datetime:
    when = info.last_modified
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class S3Service:
    signing_name: ClassVar[str] = "s3"
    streams_body: ClassVar[bool] = True

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
        self.uploads = Uploads(objects.scratch("uploads"))
        # Bodies are read on these threads while the loop feeds them: a pool of its own, so
        # that slow uploads never hold up the default executor the gateway uses.
        self._pool = ThreadPoolExecutor(32, thread_name_prefix="s3-body")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    # --- dispatch ------------------------------------------------------------------------
    def _route(self, method: str, bucket: str, key: str, q: dict[str, str], r: AwsRequest) -> _Op:
        for name in q:
            if name in _SUBRESOURCES:
                raise AwsError(
                    "NotImplemented",
                    f"the ?{name} subresource is not supported by this server (see "
                    "docs/sagemaker-compat.md for the S3 operations served)",
                    status=501,
                )
        if not bucket:
            if method == "GET":
                return _Op("ListBuckets", "object:list", self.list_buckets)
        elif not key:
            table = {
                ("PUT", None): ("CreateBucket", "object:put", self.create_bucket),
                ("HEAD", None): ("HeadBucket", "object:list", self.head_bucket),
                ("DELETE", None): ("DeleteBucket", "object:delete", self.delete_bucket),
                ("GET", "location"): ("GetBucketLocation", "object:list", self.bucket_location),
                ("GET", None): ("ListObjects", "object:list", self.list_objects),
                ("POST", "delete"): ("DeleteObjects", "object:delete", self.delete_objects),
            }
            sub = next((s for s in ("location", "delete", "uploads") if s in q), None)
            if sub == "uploads":
                raise AwsError(
                    "NotImplemented", "ListMultipartUploads is not supported here", status=501
                )
            found = table.get((method, sub))
            if found is not None:
                return _Op(*found)
        else:
            upload = "uploadId" in q
            copy = r.header("x-amz-copy-source") is not None
            if method == "PUT" and upload and "partNumber" in q:
                if copy:
                    return _Op("UploadPartCopy", "object:put", self.upload_part_copy)
                return _Op("UploadPart", "object:put", self.upload_part)
            if method == "PUT" and copy:
                return _Op("CopyObject", "object:put", self.copy_object)
            key_table = {
                ("PUT", False): ("PutObject", "object:put", self.put_object),
                ("GET", False): ("GetObject", "object:get", self.get_object),
                ("HEAD", False): ("HeadObject", "object:get", self.head_object),
                ("DELETE", False): ("DeleteObject", "object:delete", self.delete_object),
                ("GET", True): ("ListParts", "object:list", self.list_parts),
                ("DELETE", True): ("AbortMultipartUpload", "object:delete", self.abort),
                ("POST", True): ("CompleteMultipartUpload", "object:put", self.complete),
            }
            if method == "POST" and "uploads" in q:
                return _Op("CreateMultipartUpload", "object:put", self.create_upload)
            found = key_table.get((method, upload))
            if found is not None:
                return _Op(*found)
        where = f"/{bucket}/{key}" if key else f"/{bucket}"
        raise AwsError(
            "MethodNotAllowed",
            f"{method} {where} is not an S3 operation this server supports",
            status=405,
            Method=method,
            ResourceType="OBJECT" if key else "BUCKET",
        )

    async def handle(self, request: AwsRequest) -> AwsResponse:
        bucket, _, key = request.path.lstrip("/").partition("/")
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        body = _Tracked(request.receive)
        request.receive = body
        try:
            op = self._route(request.method, bucket, key, query, request)
            authorize(request.principal, op.action)
            if bucket and op.name != "CreateBucket" and not is_bucket_name(bucket):
                raise _invalid_bucket(bucket, "it breaks the S3 bucket naming rules")
            return await op.handler(request, bucket, key, query)
        except Exception as e:
            error = _s3_error(e, bucket, key)
            if error.http_status >= 500:
                log.error("s3 %s %s failed", request.method, request.path, exc_info=e)
            if request.method == "HEAD":  # as S3: the status and headers only
                return AwsResponse(error.http_status, [("x-amz-error-code", error.aws_code)])
            response = self.render_error(error, request.request_id)
            # A body left unread would be taken for the next request on the connection.
            if not await body.drain(_DRAIN):
                response.headers.append(("connection", "close"))
            return response

    def render_error(self, error: AwsError, request_id: str) -> AwsResponse:
        if error.aws_code == "InternalFailure":  # the gateway's name; S3's is InternalError
            error = AwsError("InternalError", error.message, status=error.http_status)
        headers = [("content-type", "application/xml")]
        if error.aws_code == "InvalidRange" and "ActualObjectSize" in error.extra:
            headers.append(("content-range", f"bytes */{error.extra['ActualObjectSize']}"))
        return AwsResponse(error.http_status, headers, xml.error_document(error, request_id))

    def _xml(self, root: str, *children: object, status: int = 200) -> AwsResponse:
        return AwsResponse(
            status, [("content-type", "application/xml")], xml.document(root, *children)
        )

    async def _need_bucket(self, bucket: str) -> None:
        if not await self._run(self.objects.bucket_exists, bucket):
            raise _no_bucket(bucket)

    # --- buckets -------------------------------------------------------------------------
    def _owner(self) -> str:
        return xml.el(
            "Owner", xml.el("ID", self.account_id), xml.el("DisplayName", self.account_id)
        )

    async def list_buckets(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        buckets = await self._run(self.objects.list_buckets)
        items = [
            xml.el(
                "Bucket",
                xml.el("Name", b.name),
                xml.el("CreationDate", xml.iso(b.created or self.now())),
            )
            for b in buckets
        ]
        return self._xml("ListAllMyBucketsResult", self._owner(), xml.el("Buckets", *items))

    async def create_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        problem = s3_name_problem(bucket)
        if problem:
            raise _invalid_bucket(bucket, problem)
        body = await read_small(r, MAX_XML)
        if body.strip():
            doc = xml.parse(body, "CreateBucketConfiguration")
            where = xml.text(doc, "LocationConstraint")
            if where and where != self.region:
                raise AwsError(
                    "InvalidLocationConstraint",
                    f"The specified location-constraint {where!r} is not valid: this server's "
                    f"region is {self.region!r}",
                    BucketName=bucket,
                    LocationConstraint=where,
                )
        await self._run(self.objects.create_bucket, bucket)  # yours already: 200, as us-east-1
        return AwsResponse(200, [("location", f"/{bucket}")])

    async def head_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        return AwsResponse(200, [("x-amz-bucket-region", self.region)])

    async def delete_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        try:
            await self._run(self.objects.delete_bucket, bucket)
        except NotFoundError:
            raise _no_bucket(bucket) from None
        except ConflictError:
            raise AwsError(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
                status=409,
                BucketName=bucket,
            ) from None
        return AwsResponse(204)

    async def bucket_location(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        return self._xml("LocationConstraint", None if self.region == "us-east-1" else self.region)

    # --- listing -------------------------------------------------------------------------
    async def _entries(
        self, bucket: str, prefix: str, delimiter: str, after: str, limit: int
    ) -> tuple[list[ObjectInfo], list[str], bool]:
        await self._need_bucket(bucket)
        infos = await self._run(self._list, bucket, prefix)
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        last_prefix = None
        for info in infos:
            name = info.uri.split("/", 3)[3]
            entry: ObjectInfo | str = info
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    common = name[: cut + len(delimiter)]
                    if common == last_prefix:
                        continue
                    last_prefix = entry = common
                    name = common
            if name <= after:
                continue
            if len(contents) + len(prefixes) >= limit:
                truncated = True
                break
            if isinstance(entry, str):
                prefixes.append(entry)
            else:
                contents.append(entry)
        return contents, prefixes, truncated

    def _list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        # The store's listing is by path segment; S3's prefix is any string: list the
        # directory part and filter.
        base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        try:
            found = self.objects.list(join_uri(bucket, base))
        except ValidationError:  # a prefix no key can have (an empty segment, ..)
            return []
        keyed = [(i.uri.split("/", 3)[3], i) for i in found]
        return [i for name, i in sorted(keyed, key=lambda p: p[0]) if name.startswith(prefix)]

    def _content(self, info: ObjectInfo, enc: Callable[[str], str]) -> str:
        return xml.el(
            "Contents",
            xml.el("Key", enc(info.uri.split("/", 3)[3])),
            xml.el("LastModified", xml.iso(_modified(info))),
            xml.el("ETag", _etag(info)),
            *[
                xml.el("ChecksumAlgorithm", a.removeprefix("checksum-").upper())
                for a in info.attrs
                if a.startswith("checksum-") and a != "checksum-type"
            ],
            xml.el("Size", info.size),
            xml.el("StorageClass", "STANDARD"),
        )

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

    async def list_objects(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        limit = self._max_keys(q)
        url = q.get("encoding-type") == "url"
        enc: Callable[[str], str] = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
        if v2:
            token = q.get("continuation-token")
            after = _decode_token(token) if token is not None else q.get("start-after", "")
        else:
            after = q.get("marker", "")
        contents, prefixes, truncated = await self._entries(bucket, prefix, delimiter, after, limit)
        names = [c.uri.split("/", 3)[3] for c in contents] + prefixes
        last = max(names) if names else ""
        common = [xml.el("CommonPrefixes", xml.el("Prefix", enc(p))) for p in prefixes]
        head: list[object] = [xml.el("Name", bucket), xml.el("Prefix", enc(prefix))]
        if v2:
            head += [
                xml.opt("StartAfter", enc(q.get("start-after", ""))),
                xml.opt("ContinuationToken", q.get("continuation-token")),
                xml.el("KeyCount", len(names)),
                xml.opt("NextContinuationToken", _encode_token(last) if truncated else None),
            ]
        else:
            head += [
                xml.el("Marker", enc(q.get("marker", ""))),
                xml.opt("NextMarker", enc(last) if truncated and delimiter else None),
            ]
        head += [
            xml.el("MaxKeys", limit),
            xml.opt("Delimiter", enc(delimiter)),
            xml.el("IsTruncated", truncated),
            xml.opt("EncodingType", "url" if url else None),
        ]
        return self._xml(
            "ListBucketResult", *head, *[self._content(c, enc) for c in contents], *common
        )

    # --- objects -------------------------------------------------------------------------
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
        return AwsResponse(200, [("etag", _etag(info)), *self._checksum_headers(info)])

    async def _head(self, bucket: str, key: str) -> ObjectInfo:
        await self._need_bucket(bucket)
        try:
            return await self._run(self.objects.head, join_uri(bucket, key))
        except NotFoundError:
            raise _no_key(bucket, key) from None

    def _object_headers(
        self, info: ObjectInfo, r: AwsRequest, q: dict[str, str]
    ) -> list[tuple[str, str]]:
        headers = [
            ("etag", _etag(info)),
            ("last-modified", xml.http_date(_modified(info))),
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
        etag = _etag(info)
        modified = _modified(info).replace(microsecond=0)
        match, none_match = r.header("if-match"), r.header("if-none-match")
        if match is not None and etag not in _etags(match) and "*" not in _etags(match):
            return 412
        since = _http_time(r.header("if-unmodified-since"))
        if match is None and since is not None and modified > since:
            return 412
        if none_match is not None and (etag in _etags(none_match) or "*" in _etags(none_match)):
            return 304
        since = _http_time(r.header("if-modified-since"))
        if none_match is None and since is not None and modified <= since:
            return 304
        return None

    def _refuse(self, status: int, info: ObjectInfo) -> AwsResponse:
        if status == 304:
            return AwsResponse(
                304, [("etag", _etag(info)), ("last-modified", xml.http_date(_modified(info)))]
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
        wanted = _parse_range(r.header("range"), info.size, bucket, key)
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
                error = _s3_error(e, bucket, name)
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
            xml.el("ETag", _etag(info)),
            xml.el("LastModified", xml.iso(_modified(info))),
        )

    # --- multipart -----------------------------------------------------------------------
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
        return AwsResponse(200, [("etag", _etag(info)), *self._checksum_headers(info)])

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
            xml.el("ETag", _etag(info)),
            xml.el("LastModified", xml.iso(_modified(info))),
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
            xml.el("ETag", _etag(info)),
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


class _Tracked:
    """The request's ``receive``, noting when the body has been read to its end."""

    def __init__(self, receive: Receive | None) -> None:
        self._receive = receive
        self.done = receive is None

    async def __call__(self) -> Message:
        assert self._receive is not None
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drain(self, limit: int) -> bool:
        """Read and drop up to ``limit`` more bytes; whether the body was then all read."""
        seen = 0
        while not self.done and seen <= limit:
            seen += len((await self()).get("body", b""))
        return self.done


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


def _encode_token(name: str) -> str:
    import base64

    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    import base64
    import binascii

    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AwsError(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
        ) from None


def _etags(header: str) -> list[str]:
    return [
        t.strip() if t.strip().startswith('"') or t.strip() == "*" else f'"{t.strip()}"'
        for t in header.split(",")
    ]


def _http_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _parse_range(header: str | None, size: int, bucket: str, key: str) -> tuple[int, int] | None:
    """``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` as (first, last); None for no (or an
    unreadable, or a multi-) range: the whole object, as S3; InvalidRange (416) when it starts
    past the end."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # the last n bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise _bad_range(size, bucket, key)
        return max(0, size - n), size - 1
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if m[2] and last < first:
        return None  # syntactically invalid: ignored, as RFC 7233
    if first >= size:
        raise _bad_range(size, bucket, key)
    return first, min(last, size - 1)


def _bad_range(size: int, bucket: str, key: str) -> AwsError:
    return AwsError(
        "InvalidRange",
        "The requested range is not satisfiable",
        status=416,
        RangeRequested=None,
        ActualObjectSize=size,
        Key=key,
        BucketName=bucket,
    )


def _no_bucket(bucket: str) -> AwsError:
    return AwsError(
        "NoSuchBucket", "The specified bucket does not exist", status=404, BucketName=bucket
    )


def _no_key(bucket: str, key: str) -> AwsError:
    return AwsError(
        "NoSuchKey", "The specified key does not exist.", status=404, Key=key, BucketName=bucket
    )


def _invalid_bucket(bucket: str, why: str) -> AwsError:
    return AwsError(
        "InvalidBucketName", f"The specified bucket is not valid: {why}", BucketName=bucket
    )


def _s3_error(e: Exception, bucket: str, key: str) -> AwsError:
    """S3's code for a failure of the product's code (or the refusal already made)."""
    if isinstance(e, AwsError):
        if e.aws_code in ("NoSuchKey", "NoSuchBucket", "InvalidRange", "InvalidBucketName"):
            return e
        extra = {"BucketName": bucket or None, **e.extra} if bucket else e.extra
        return AwsError(e.aws_code, e.message, status=e.http_status, **extra)
    if isinstance(e, sigv4.SignatureError):
        from orchestrator.api.aws.errors import signature_error

        return signature_error(e, "s3")
    if isinstance(e, PermissionDeniedError):
        return AwsError("AccessDenied", f"Access Denied: {e.message}", status=403)
    if isinstance(e, NotFoundError):
        return _no_key(bucket, key) if key else _no_bucket(bucket)
    if isinstance(e, ValidationError):
        if bucket and not is_bucket_name(bucket):
            return _invalid_bucket(bucket, e.message)
        return AwsError("InvalidArgument", e.message, Key=key or None, BucketName=bucket or None)
    if isinstance(e, ConflictError):
        return AwsError("InvalidRequest", e.message, status=409, Key=key or None)
    if isinstance(e, IntegrityError):
        return AwsError("InternalError", e.message, status=500)
    if isinstance(e, OrchestratorError):
        return AwsError("InternalError", e.message, status=500)
    return AwsError("InternalError", f"internal error: {type(e).__name__}", status=500)
