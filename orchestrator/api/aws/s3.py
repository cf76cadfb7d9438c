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
Here: dispatch, errors, buckets and listing; the object operations and what every operation
shares are ``s3_objects``, the multipart ones ``s3_multipart``, S3's rules as pure functions
(names, ranges, conditions, error codes) ``s3_rules``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qsl, quote, unquote

from orchestrator import tenancy
from orchestrator.access import authorize
from orchestrator.api.aws import s3_xml as xml
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse, Message, Receive
from orchestrator.api.aws.s3_body import read_small
from orchestrator.api.aws.s3_multipart import MultipartOps
from orchestrator.api.aws.s3_rules import (
    MAX_XML,
    decode_token,
    encode_token,
    etag_of,
    invalid_bucket,
    modified_of,
    no_bucket,
    s3_error,
    s3_name_problem,
)
from orchestrator.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from orchestrator.objects import ObjectInfo, buckets, join_uri
from orchestrator.objects.uri import is_bucket_name

log = logging.getLogger("orchestrator.api.aws")

SUPPORTED: dict[str, str] = {
    "ListBuckets": "the buckets of the caller's account; no paging",
    "CreateBucket": "S3's bucket naming rules; names are server-wide: one another account holds "
    "is BucketAlreadyExists (409), one you hold 200 in us-east-1 and BucketAlreadyOwnedByYou "
    "elsewhere, as S3; a LocationConstraint other than the server's region is refused",
    "HeadBucket": "200, or 404 with no body (every operation answers another account's bucket "
    "as an absent one: NoSuchBucket)",
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
    "ACLs, bucket policies, CORS, website hosting, public access block (a bucket is its "
    "account's alone: another account's is answered as absent, NoSuchBucket)",
    "tagging, lifecycle rules, replication, inventory, notifications, analytics",
    "storage classes other than STANDARD, Glacier restore",
    "server-side encryption options (SSE-S3/SSE-KMS/SSE-C headers are accepted and ignored: "
    "every object is encrypted with the store's own keys anyway)",
    "ListMultipartUploads, ListObjectVersions, SelectObjectContent, GetObjectAttributes",
    "POST object (browser form uploads), PartNumber on GetObject/HeadObject",
    "x-amz-checksum-crc32c and crc64nvme (refused: not verifiable without a library)",
    "signature version 2 and anonymous access: every request is SigV4-signed",
]
_DRAIN = 1 << 20  # an error's unread body up to this is read and dropped, past it: close
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


@dataclass(frozen=True)
class _Op:
    name: str
    action: str
    handler: Callable[[AwsRequest, str, str, dict[str, str]], Awaitable[AwsResponse]]


_WRITES = ("PUT", "POST", "DELETE")


def reserved_bucket_error(bucket: str) -> AwsError:
    return AwsError(
        "AccessDenied",
        f"bucket {bucket!r} holds the audit trail: only the server writes there "
        "(read it with `orch audit lookup`; choose another bucket for your objects)",
        status=403,
    )


class S3Service(MultipartOps):
    signing_name: ClassVar[str] = "s3"
    streams_body: ClassVar[bool] = True
    # The audit trail's bucket: no S3 call writes to it or deletes from it.
    reserved_bucket: str | None = None

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
                return _Op("ListBuckets", "s3:ListAllMyBuckets", self.list_buckets)
        elif not key:
            table = {
                ("PUT", None): ("CreateBucket", "s3:CreateBucket", self.create_bucket),
                ("HEAD", None): ("HeadBucket", "s3:ListBucket", self.head_bucket),
                ("DELETE", None): ("DeleteBucket", "s3:DeleteBucket", self.delete_bucket),
                ("GET", "location"): (
                    "GetBucketLocation",
                    "s3:GetBucketLocation",
                    self.bucket_location,
                ),
                ("GET", None): ("ListObjects", "s3:ListBucket", self.list_objects),
                ("POST", "delete"): ("DeleteObjects", "s3:DeleteObject", self.delete_objects),
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
                    return _Op("UploadPartCopy", "s3:PutObject", self.upload_part_copy)
                return _Op("UploadPart", "s3:PutObject", self.upload_part)
            if method == "PUT" and copy:
                return _Op("CopyObject", "s3:PutObject", self.copy_object)
            key_table = {
                ("PUT", False): ("PutObject", "s3:PutObject", self.put_object),
                ("GET", False): ("GetObject", "s3:GetObject", self.get_object),
                ("HEAD", False): ("HeadObject", "s3:GetObject", self.head_object),
                ("DELETE", False): ("DeleteObject", "s3:DeleteObject", self.delete_object),
                ("GET", True): ("ListParts", "s3:ListMultipartUploadParts", self.list_parts),
                ("DELETE", True): ("AbortMultipartUpload", "s3:AbortMultipartUpload", self.abort),
                ("POST", True): ("CompleteMultipartUpload", "s3:PutObject", self.complete),
            }
            if method == "POST" and "uploads" in q:
                return _Op("CreateMultipartUpload", "s3:PutObject", self.create_upload)
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
        with tenancy.acting_as(request.principal.account):  # the caller's buckets only
            return await self._handle(request, bucket, key, query, body)

    async def _handle(
        self, request: AwsRequest, bucket: str, key: str, query: dict[str, str], body: _Tracked
    ) -> AwsResponse:
        try:
            op = self._route(request.method, bucket, key, query, request)
            request.operation = op.name
            request.resource = f"{bucket}/{key}" if key else bucket or None
            arn = f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket or '*'}"
            request.authorized = (op.action, arn)
            authorize(request.principal, op.action, arn)
            source = request.header("x-amz-copy-source")
            if source is not None and op.name in ("CopyObject", "UploadPartCopy"):
                # A copy reads its source: the caller must be allowed to read that too.
                src = unquote(source.lstrip("/").split("?", 1)[0])
                authorize(request.principal, "s3:GetObject", f"arn:aws:s3:::{src}")
            reserved = bucket and bucket == self.reserved_bucket
            # The audit trail's bucket is the server's account's: to another, absent.
            if reserved and request.method in _WRITES and tenancy.stamp() == tenancy.ROOT:
                raise reserved_bucket_error(bucket)
            if bucket and op.name != "CreateBucket" and not is_bucket_name(bucket):
                raise invalid_bucket(bucket, "it breaks the S3 bucket naming rules")
            return await op.handler(request, bucket, key, query)
        except Exception as e:
            error = s3_error(e, bucket, key)
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

    # --- buckets -------------------------------------------------------------------------
    async def list_buckets(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        found = await self._run(buckets.listed, self.objects)
        items = [
            xml.el(
                "Bucket",
                xml.el("Name", b.name),
                xml.el("CreationDate", xml.iso(b.created or self.now())),
            )
            for b in found
        ]
        return self._xml("ListAllMyBucketsResult", self._owner(), xml.el("Buckets", *items))

    async def create_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        problem = s3_name_problem(bucket)
        if problem:
            raise invalid_bucket(bucket, problem)
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
        made = await self._run(buckets.create, self.objects, bucket)
        if made is buckets.Created.TAKEN:
            raise AwsError(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by "
                "all users of the system. Please select a different name and try again.",
                status=409,
                BucketName=bucket,
            )
        if made is buckets.Created.YOURS and self.region != "us-east-1":  # there: 200, as S3
            raise AwsError(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                status=409,
                BucketName=bucket,
            )
        return AwsResponse(200, [("location", f"/{bucket}")])

    async def head_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        return AwsResponse(200, [("x-amz-bucket-region", self.region)])

    async def delete_bucket(
        self, r: AwsRequest, bucket: str, key: str, q: dict[str, str]
    ) -> AwsResponse:
        await self._need_bucket(bucket)
        try:
            await self._run(self.objects.delete_bucket, bucket)
        except NotFoundError:
            raise no_bucket(bucket) from None
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
            xml.el("LastModified", xml.iso(modified_of(info))),
            xml.el("ETag", etag_of(info)),
            *[
                xml.el("ChecksumAlgorithm", a.removeprefix("checksum-").upper())
                for a in info.attrs
                if a.startswith("checksum-") and a != "checksum-type"
            ],
            xml.el("Size", info.size),
            xml.el("StorageClass", "STANDARD"),
        )

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
            after = decode_token(token) if token is not None else q.get("start-after", "")
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
                xml.opt("NextContinuationToken", encode_token(last) if truncated else None),
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
