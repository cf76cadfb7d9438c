"""Object URIs: every object is addressed as ``s3://bucket/key``, whatever the driver.

Validation is strict on purpose: a key becomes a path on the file driver, so anything that
could step outside the bucket directory (``..``, empty segments, NUL, a leading slash) is
refused here, once, for every driver.
"""

from __future__ import annotations

import re

from orchestrator.errors import ValidationError

SCHEME = "s3://"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_OBJECT_FORM = "s3://bucket/key (bucket: 3-63 lowercase letters, digits, dots, hyphens)"
_PREFIX_FORM = "s3://bucket[/prefix] (bucket: 3-63 lowercase letters, digits, dots, hyphens)"


def _fail(uri: str, why: str, form: str) -> ValidationError:
    return ValidationError(f"invalid object URI {uri!r}: {why}; expected {form}", field="uri")


def _split(uri: str, form: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise _fail(str(uri), "it must start with s3://", form)
    if "\x00" in uri:
        raise _fail(uri, "it contains a NUL character", form)
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    check_bucket(bucket, uri=uri, form=form)
    return bucket, key


def is_bucket_name(bucket: str) -> bool:
    """Whether ``bucket`` follows the S3 bucket naming rules (see ``check_bucket``)."""
    return bool(_BUCKET_RE.match(bucket)) and ".." not in bucket and not _IP_RE.match(bucket)


def check_bucket(bucket: str, *, uri: str | None = None, form: str = _OBJECT_FORM) -> None:
    """Apply the S3 bucket naming rules (3-63 chars, lowercase letters, digits, dots, hyphens)."""
    shown = uri if uri is not None else f"{SCHEME}{bucket}"
    if not bucket:
        raise _fail(shown, "the bucket name is empty", form)
    if not is_bucket_name(bucket):
        raise _fail(shown, f"bucket name {bucket!r} breaks the S3 naming rules", form)


def _check_key(uri: str, key: str, form: str, *, allow_trailing_slash: bool) -> None:
    if key.startswith("/"):
        raise _fail(uri, "the key starts with a slash", form)
    body = key[:-1] if allow_trailing_slash and key.endswith("/") else key
    for segment in body.split("/"):
        if segment == "":
            raise _fail(uri, "the key has an empty path segment", form)
        if segment in (".", ".."):
            raise _fail(uri, f"the key has a {segment!r} path segment", form)


def parse_object_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; ValidationError naming the URI otherwise."""
    bucket, key = _split(uri, _OBJECT_FORM)
    if not key:
        raise _fail(uri, "the key is empty", _OBJECT_FORM)
    _check_key(uri, key, _OBJECT_FORM, allow_trailing_slash=False)
    return bucket, key


def parse_prefix_uri(uri: str) -> tuple[str, str]:
    """Like ``parse_object_uri`` but the prefix may be empty or end with a slash."""
    bucket, prefix = _split(uri, _PREFIX_FORM)
    if prefix:
        _check_key(uri, prefix, _PREFIX_FORM, allow_trailing_slash=True)
    return bucket, prefix


def join_uri(bucket: str, key: str) -> str:
    """The inverse of ``parse_object_uri`` (the key may be empty for a bucket-wide prefix)."""
    check_bucket(bucket)
    return f"{SCHEME}{bucket}/{key}" if key else f"{SCHEME}{bucket}"
