"""S3's rules as pure functions, table-driven: ranges, bucket names, conditional ETags, tokens."""

from __future__ import annotations

import pytest

from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.s3_rules import (
    decode_token,
    encode_token,
    etag_list,
    parse_range,
    s3_name_problem,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=-4", 10, (6, 9)),
        ("bytes=-40", 10, (0, 9)),  # more than there is: all of it
        ("bytes=3-99", 10, (3, 9)),  # past the end: up to the end
        ("bytes=5-2", 10, None),  # last before first: ignored, as RFC 7233
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole object, as S3
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_ranges(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size, "b", "k") == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_ranges_are_invalid_range(header: str, size: int) -> None:
    with pytest.raises(AwsError) as e:
        parse_range(header, size, "b", "k")
    assert (e.value.aws_code, e.value.http_status) == ("InvalidRange", 416)
    assert e.value.extra["ActualObjectSize"] == size


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("good-bucket.1", None),
        ("ab", "3-63"),
        ("a" * 64, "3-63"),
        ("Upper", "3-63"),
        ("10.0.0.1", "IP address"),
        ("a.-b", "dot next to a hyphen"),
        ("xn--abc", "'xn--'"),
        ("data-s3alias", "'-s3alias'"),
    ],
)
def test_bucket_names(name: str, problem: str | None) -> None:
    found = s3_name_problem(name)
    assert found is None if problem is None else problem in (found or "")


def test_etag_lists_and_tokens() -> None:
    assert etag_list('"a", b ,*') == ['"a"', '"b"', "*"]
    assert decode_token(encode_token("dir/ä key")) == "dir/ä key"
    with pytest.raises(AwsError) as e:
        decode_token("%%%")
    assert e.value.aws_code == "InvalidArgument"
