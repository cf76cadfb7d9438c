"""S3's rules, as pure functions: bucket names, ETags, list tokens, ranges, conditional headers,
and the S3 error each refusal (and each failure of the product's code) is."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from orchestrator import sigv4
from orchestrator.api.aws.errors import AwsError, signature_error
from orchestrator.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    OrchestratorError,
    PermissionDeniedError,
    ValidationError,
)
from orchestrator.objects import ObjectInfo
from orchestrator.objects.uri import is_bucket_name

MAX_XML = 2 << 20  # a request document (Delete, CompleteMultipartUpload)
MAX_KEYS = 1000
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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


def etag_of(info: ObjectInfo) -> str:
    return f'"{info.attrs.get("etag") or info.sha256[:32]}"'


def modified_of(info: ObjectInfo) -> datetime:
    when = info.last_modified
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def encode_token(name: str) -> str:
    """A ListObjectsV2 continuation token: the last name listed, opaque to the client."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AwsError(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
        ) from None


def etag_list(header: str) -> list[str]:
    return [
        t.strip() if t.strip().startswith('"') or t.strip() == "*" else f'"{t.strip()}"'
        for t in header.split(",")
    ]


def http_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def parse_range(header: str | None, size: int, bucket: str, key: str) -> tuple[int, int] | None:
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
            raise bad_range(size, bucket, key)
        return max(0, size - n), size - 1
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if m[2] and last < first:
        return None  # syntactically invalid: ignored, as RFC 7233
    if first >= size:
        raise bad_range(size, bucket, key)
    return first, min(last, size - 1)


def bad_range(size: int, bucket: str, key: str) -> AwsError:
    return AwsError(
        "InvalidRange",
        "The requested range is not satisfiable",
        status=416,
        RangeRequested=None,
        ActualObjectSize=size,
        Key=key,
        BucketName=bucket,
    )


def no_bucket(bucket: str) -> AwsError:
    return AwsError(
        "NoSuchBucket", "The specified bucket does not exist", status=404, BucketName=bucket
    )


def no_key(bucket: str, key: str) -> AwsError:
    return AwsError(
        "NoSuchKey", "The specified key does not exist.", status=404, Key=key, BucketName=bucket
    )


def invalid_bucket(bucket: str, why: str) -> AwsError:
    return AwsError(
        "InvalidBucketName", f"The specified bucket is not valid: {why}", BucketName=bucket
    )


def s3_error(e: Exception, bucket: str, key: str) -> AwsError:
    """S3's code for a failure of the product's code (or the refusal already made)."""
    if isinstance(e, AwsError):
        if e.aws_code in ("NoSuchKey", "NoSuchBucket", "InvalidRange", "InvalidBucketName"):
            return e
        extra = {"BucketName": bucket or None, **e.extra} if bucket else e.extra
        return AwsError(e.aws_code, e.message, status=e.http_status, **extra)
    if isinstance(e, sigv4.SignatureError):
        return signature_error(e, "s3")
    if isinstance(e, PermissionDeniedError):
        return AwsError("AccessDenied", f"Access Denied: {e.message}", status=403)
    if isinstance(e, NotFoundError):
        return no_key(bucket, key) if key else no_bucket(bucket)
    if isinstance(e, ValidationError):
        if bucket and not is_bucket_name(bucket):
            return invalid_bucket(bucket, e.message)
        return AwsError("InvalidArgument", e.message, Key=key or None, BucketName=bucket or None)
    if isinstance(e, ConflictError):
        return AwsError("InvalidRequest", e.message, status=409, Key=key or None)
    if isinstance(e, IntegrityError):
        return AwsError("InternalError", e.message, status=500)
    if isinstance(e, OrchestratorError):
        return AwsError("InternalError", e.message, status=500)
    return AwsError("InternalError", f"internal error: {type(e).__name__}", status=500)
