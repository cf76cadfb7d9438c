from __future__ import annotations

import pytest

from orchestrator.errors import ValidationError
from orchestrator.objects import join_uri, parse_object_uri, parse_prefix_uri


def test_parse_object_uri() -> None:
    assert parse_object_uri("s3://my-bucket.v2/a/b/c.tar.gz") == ("my-bucket.v2", "a/b/c.tar.gz")


@pytest.mark.parametrize(
    "uri",
    [
        "bucket/key",
        "file:///tmp/x",
        "s3://",
        "s3:///key",
        "s3://bucket",
        "s3://bucket/",
        "s3://bucket//key",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
        "s3://bucket/..",
        "s3://bucket/./a",
        "s3://bucket/a/",
        "s3://bucket/a\x00b",
        "s3://ab/key",
        "s3://" + "a" * 64 + "/key",
        "s3://Bucket/key",
        "s3://bucket_x/key",
        "s3://-bucket/key",
        "s3://bucket-/key",
        "s3://a..b/key",
        "s3://192.168.1.1/key",
    ],
)
def test_bad_object_uris(uri: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_object_uri(uri)
    assert repr(uri) in err.value.message
    assert "expected s3://bucket/key" in err.value.message


def test_prefix_uris() -> None:
    assert parse_prefix_uri("s3://bucket") == ("bucket", "")
    assert parse_prefix_uri("s3://bucket/") == ("bucket", "")
    assert parse_prefix_uri("s3://bucket/data/") == ("bucket", "data/")
    assert parse_prefix_uri("s3://bucket/data/tr") == ("bucket", "data/tr")
    for bad in ("s3://bucket/a//", "s3://bucket/../x/", "s3://B/x", "gs://bucket/x"):
        with pytest.raises(ValidationError, match=r"expected s3://bucket\[/prefix\]"):
            parse_prefix_uri(bad)


def test_join_uri() -> None:
    assert join_uri("bucket", "a/b") == "s3://bucket/a/b"
    assert join_uri("bucket", "") == "s3://bucket"
    assert parse_object_uri(join_uri("bucket", "k")) == ("bucket", "k")
    with pytest.raises(ValidationError):
        join_uri("B", "k")
