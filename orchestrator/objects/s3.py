"""S3 driver: the same envelopes, kept in a backing bucket of any S3-compatible service.

Logical ``s3://b/k`` is stored at ``<backing-bucket>/<prefix>/b/k``. Encryption is client-side
(the service only ever sees envelopes). A PUT encrypts into a local temp file and uploads it
(multipart above 8 MiB); a GET downloads into a temp file and decrypts into the destination
only through the same verify-then-release path as the file driver. ``head()`` and ``list()``
read the plaintext size, SHA-256, version and key id from object metadata written at upload;
those are not authenticated, but every GET re-checks the authenticated trailer.
``boto3`` is imported lazily so the package works without the ``s3`` extra.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator.errors import (
    BackendError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.objects import envelope
from orchestrator.objects.keys import KeyProvider
from orchestrator.objects.store import ObjectInfo, StoreBase, atomic_file, new_version
from orchestrator.objects.uri import join_uri, parse_object_uri, parse_prefix_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_META = ("orch-size", "orch-sha256", "orch-version", "orch-key-id")
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
                raise NotFoundError(f"backing bucket missing at {where}", field="uri") from e
            if code in _DENIED:
                raise PermissionDeniedError(f"{where} refused access to {uri}: {e}") from e
            raise BackendError(f"{where} failed on {uri}: {e}") from e
        except (ConnectionError, HTTPClientError) as e:
            raise UnavailableError(f"cannot reach {where} for {uri}: {e}") from e
        except S3UploadFailedError as e:
            raise BackendError(f"upload of {uri} to {where} failed: {e}") from e

    def put_stream(self, uri: str, stream: BinaryIO) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        with tempfile.TemporaryFile() as sealed:
            env = envelope.encrypt_stream(
                stream,
                sealed,
                name=uri,
                version=new_version(),
                provider=self.provider,
                chunk_size=self.chunk_size,
            )
            sealed.seek(0)
            meta = dict(
                zip(_META, (str(env.size), env.sha256, env.version, env.key_id), strict=True)
            )
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
            raise IntegrityError(
                f"object {uri} failed its integrity check: its envelope metadata is missing"
            ) from e

    def head(self, uri: str) -> ObjectInfo:
        bucket, key = parse_object_uri(uri)
        with self._errors(uri):
            resp = self._client.head_object(Bucket=self.bucket, Key=self._key(bucket, key))
        return self._info(uri, resp.get("Metadata", {}), resp["LastModified"])

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
        return [self.head(join_uri(bucket, key)) for key in sorted(keys)]

    def delete(self, uri: str) -> None:
        bucket, key = parse_object_uri(uri)
        self.head(uri)  # S3 deletes of absent keys succeed; the protocol says NotFoundError.
        with self._errors(uri):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(bucket, key))
