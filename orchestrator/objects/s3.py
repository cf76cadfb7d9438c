"""S3 driver: the same envelopes, kept in a backing bucket of any S3-compatible service.

Logical ``s3://b/k`` is stored at ``<backing-bucket>/<prefix>/b/k``. Encryption is client-side
(the service only ever sees envelopes). A PUT encrypts into a local temp file and uploads it
(multipart above 8 MiB); a GET downloads into a temp file and decrypts into the destination
only through the same verify-then-release path as the file driver. ``head()`` and ``list()``
read the plaintext size, SHA-256, version and key id from object metadata written at upload;
those are not authenticated, but every GET re-checks the authenticated trailer. An object
with attributes (format 2) also records its header's size, and ``head()`` reads its header and
trailer with two ranged GETs to open them. A bucket's marker is ``<prefix>/<bucket>/.orch-bucket``,
its account in the marker's metadata (``orch-account``; none: the server's own account's).
``boto3`` is imported lazily so the package works without the ``s3`` extra.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator import metrics
from orchestrator.errors import (
    BackendError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.objects import envelope
from orchestrator.objects._pipeline import Digest
from orchestrator.objects.envelope import Finish
from orchestrator.objects.keys import KeyProvider
from orchestrator.objects.store import (
    BUCKET_MARKER,
    TEMP_PREFIX,
    BucketInfo,
    ObjectInfo,
    StoreBase,
    atomic_file,
    new_version,
)
from orchestrator.objects.uri import (
    check_bucket,
    is_bucket_name,
    join_uri,
    parse_object_uri,
    parse_prefix_uri,
)
from orchestrator.tenancy import ROOT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_META = ("orch-size", "orch-sha256", "orch-version", "orch-key-id")
_HEADER_SIZE = "orch-header-size"  # format 2 objects: head() opens the trailer's attributes
_ACCOUNT = "orch-account"  # a bucket marker's: the account the bucket belongs to
_MISSING = ("NoSuchKey", "404", "NotFound")
_DENIED = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _make_client(endpoint_url: str | None, region: str) -> S3Client:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise ValidationError(
            "an s3:// object store needs boto3: pip install orchestrator[s3]",
            field="ORCH_OBJECTS__URL",
        ) from e
    # Path-style addressing: what MinIO and most self-hosted services expect.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


class S3ObjectStore(StoreBase):
    def __init__(
        self,
        bucket: str,
        prefix: str,
        provider: KeyProvider,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        chunk_size: int = envelope.DEFAULT_CHUNK_SIZE,
        client: S3Client | None = None,
    ) -> None:
        envelope.check_chunk_size(chunk_size)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.provider = provider
        self.chunk_size = chunk_size
        self._client = client if client is not None else _make_client(endpoint_url, region)
        self.endpoint_url = endpoint_url or self._client.meta.endpoint_url

    def _key(self, bucket: str, key: str) -> str:
        return f"{self.prefix}/{bucket}/{key}" if self.prefix else f"{bucket}/{key}"

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """Map botocore's errors onto the product's tree, naming the object and endpoint."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        where = f"S3 endpoint {self.endpoint_url} (bucket {self.bucket})"
        try:
            yield
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise NotFoundError(f"object {uri} does not exist", field="uri") from e
            if code == "NoSuchBucket":
                metrics.record_object_store_error("backend")  # the store's own bucket
                raise NotFoundError(f"backing bucket missing at {where}", field="uri") from e
            if code in _DENIED:
                metrics.record_object_store_error("permission")
                raise PermissionDeniedError(f"{where} refused access to {uri}: {e}") from e
            metrics.record_object_store_error("backend")
            raise BackendError(f"{where} failed on {uri}: {e}") from e
        except (ConnectionError, HTTPClientError) as e:
            metrics.record_object_store_error("unavailable")
            raise UnavailableError(f"cannot reach {where} for {uri}: {e}") from e
        except S3UploadFailedError as e:
            metrics.record_object_store_error("backend")
            raise BackendError(f"upload of {uri} to {where} failed: {e}") from e

    def put_stream(
        self,
        uri: str,
        stream: BinaryIO,
        *,
        finish: Finish | None = None,
        digests: Sequence[Digest] = (),
    ) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        if key == BUCKET_MARKER or any(p.startswith(TEMP_PREFIX) for p in key.split("/")):
            raise ValidationError(
                f"invalid object URI {uri!r}: the key {BUCKET_MARKER!r} is reserved", field="uri"
            )
        with tempfile.TemporaryFile() as sealed:
            env = envelope.encrypt_stream(
                stream,
                sealed,
                name=uri,
                version=new_version(),
                provider=self.provider,
                chunk_size=self.chunk_size,
                finish=finish,
                digests=digests,
            )
            sealed.seek(0)
            meta = dict(
                zip(_META, (str(env.size), env.sha256, env.version, env.key_id), strict=True)
            )
            if env.attrs is not None:
                meta[_HEADER_SIZE] = str(env.header_size)
            with self._errors(uri):
                self._client.upload_fileobj(
                    sealed, self.bucket, self._key(bucket, key), ExtraArgs={"Metadata": meta}
                )
        return self.head(uri)

    def _download(self, uri: str, dst: BinaryIO) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        info = self.head(uri)
        with tempfile.TemporaryFile() as sealed:
            with self._errors(uri):
                self._client.download_fileobj(self.bucket, self._key(bucket, key), sealed)
            sealed.seek(0)
            envelope.decrypt_stream(sealed, dst, name=uri, provider=self.provider)
        return info

    def get_file(self, uri: str, path: Path) -> ObjectInfo:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as dst:
            return self._download(uri, dst)

    def get_bytes(self, uri: str) -> bytes:
        buf = io.BytesIO()
        self._download(uri, buf)
        return buf.getvalue()

    def _info(self, uri: str, meta: dict[str, str], modified: Any) -> ObjectInfo:
        try:
            size, sha, version, key_id = (meta[k] for k in _META)
            return ObjectInfo(uri, int(size), version, sha, key_id, modified)
        except (KeyError, ValueError) as e:
            metrics.record_object_store_error("integrity")
            raise IntegrityError(
                f"object {uri} failed its integrity check: its envelope metadata is missing"
            ) from e

    def _range(self, uri: str, key: str, spec: str) -> bytes:
        with self._errors(uri):
            body = self._client.get_object(Bucket=self.bucket, Key=key, Range=spec)["Body"]
            return bytes(body.read())

    def head(self, uri: str) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        backing = self._key(bucket, key)
        with self._errors(uri):
            resp = self._client.head_object(Bucket=self.bucket, Key=backing)
        meta = resp.get("Metadata", {})
        info = self._info(uri, meta, resp["LastModified"])
        if _HEADER_SIZE not in meta:
            return info
        total = int(resp["ContentLength"])
        header = self._range(uri, backing, f"bytes=0-{int(meta[_HEADER_SIZE]) - 1}")
        tail = envelope.TRAILER_BYTES + envelope.ATTRS_BYTES
        trailer = self._range(uri, backing, f"bytes=-{tail}")
        env = envelope.info_of(header, trailer, name=uri, provider=self.provider, total=total)
        if (env.size, env.sha256, env.version) != (info.size, info.sha256, info.version):
            metrics.record_object_store_error("integrity")
            raise IntegrityError(
                f"object {uri} failed its integrity check: its metadata does not match it"
            )
        return ObjectInfo(
            uri, info.size, info.version, info.sha256, info.key_id, info.last_modified,
            env.attrs or {},
        )  # fmt: skip

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        bucket, prefix = parse_prefix_uri(prefix_uri)
        strip = len(self._key(bucket, ""))
        keys: list[str] = []
        with self._errors(prefix_uri):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(bucket, prefix)
            )
            for page in pages:
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        keys = [k for k in keys if k != BUCKET_MARKER]
        return [self.head(join_uri(bucket, key)) for key in sorted(keys)]

    def delete(self, uri: str) -> None:
        bucket, key = parse_object_uri(uri)
        self.head(uri)  # S3 deletes of absent keys succeed; the protocol says NotFoundError.
        with self._errors(uri):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(bucket, key))

    # --- buckets ---------------------------------------------------------------------------
    def list_buckets(self) -> builtins.list[BucketInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        names: builtins.list[str] = []
        with self._errors(f"s3://{self.bucket}/{base}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(base) :].rstrip("/"))
        return [BucketInfo(n, *self._marker(n)) for n in sorted(names) if is_bucket_name(n)]

    def _marker(self, bucket: str) -> tuple[Any, str]:
        """When ``bucket`` was made and whose it is (``None`` created: it has no objects)."""
        marker = self._key(bucket, BUCKET_MARKER)
        try:
            with self._errors(f"s3://{bucket}"):
                head = self._client.head_object(Bucket=self.bucket, Key=marker)
            return head["LastModified"], head.get("Metadata", {}).get(_ACCOUNT, ROOT)
        except NotFoundError:  # made by a put, not created: the server's, since its first object
            with self._errors(f"s3://{bucket}"):
                page = self._client.list_objects_v2(
                    Bucket=self.bucket, Prefix=self._key(bucket, ""), MaxKeys=1
                )
            return (page["Contents"][0]["LastModified"] if page.get("Contents") else None), ROOT

    def _first_keys(self, bucket: str, n: int) -> builtins.list[str]:
        check_bucket(bucket)
        with self._errors(f"s3://{bucket}"):
            page = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._key(bucket, ""), MaxKeys=n
            )
        return [obj["Key"] for obj in page.get("Contents", [])]

    def bucket_exists(self, bucket: str) -> bool:
        return bool(self._first_keys(bucket, 1))

    def bucket_owner(self, bucket: str) -> str | None:
        check_bucket(bucket)
        try:
            with self._errors(f"s3://{bucket}"):
                head = self._client.head_object(
                    Bucket=self.bucket, Key=self._key(bucket, BUCKET_MARKER)
                )
        except NotFoundError:
            return ROOT if self.bucket_exists(bucket) else None
        return str(head.get("Metadata", {}).get(_ACCOUNT, ROOT))

    def create_bucket(self, bucket: str, account: str = ROOT) -> bool:
        if self.bucket_exists(bucket):
            return False
        with self._errors(f"s3://{bucket}"):
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(bucket, BUCKET_MARKER),
                Body=b"",
                Metadata={_ACCOUNT: account} if account else {},
            )
        return True

    def delete_bucket(self, bucket: str) -> None:
        keys = self._first_keys(bucket, 2)
        if not keys:
            raise NotFoundError(f"bucket {bucket} does not exist", field="bucket")
        marker = self._key(bucket, BUCKET_MARKER)
        if any(k != marker for k in keys):
            raise ConflictError(f"bucket {bucket} is not empty", field="bucket")
        with self._errors(f"s3://{bucket}"):
            self._client.delete_object(Bucket=self.bucket, Key=marker)

    def scratch(self, name: str) -> S3ObjectStore:
        # A leading dot is never a bucket name: nothing here is listed as a bucket.
        prefix = f"{self.prefix}/.orch-{name}" if self.prefix else f".orch-{name}"
        return S3ObjectStore(
            self.bucket, prefix, self.provider, chunk_size=self.chunk_size, client=self._client
        )
