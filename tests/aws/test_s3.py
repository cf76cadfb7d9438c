"""The S3 REST API with boto3's real S3 client (path style) against the control plane: every
operation served, S3's ETag rules, ranges, listing, multipart through s3transfer, the same
objects through the native API (still encrypted at rest), S3's error shapes, and SigV4
refusals made with raw requests signed by botocore where boto3 would not send them."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from orchestrator import sigv4
from orchestrator.api.aws.s3 import NOT_SUPPORTED, SUPPORTED
from orchestrator.objects import FileObjectStore
from tests.aws.conftest import REGION, AwsPlane

MiB = 1 << 20


@pytest.fixture
def s3(aws_plane: AwsPlane) -> Any:
    client = aws_plane.client("s3")
    client.create_bucket(Bucket="data")
    return client


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def _status(e: pytest.ExceptionInfo[ClientError]) -> int:
    return int(e.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _root(aws_plane: AwsPlane) -> Path:
    store = aws_plane.local.plane.objects
    assert isinstance(store, FileObjectStore)
    return store.root


def _signed(
    aws_plane: AwsPlane,
    method: str,
    path: str,
    body: bytes | Any = b"",
    *,
    headers: dict[str, str] | None = None,
    secret: str | None = None,
    context: dict[str, Any] | None = None,
    send: bytes | None = None,
) -> httpx.Response:
    """A request signed by botocore's S3 signer, sent with httpx (so it can be tampered:
    ``send`` goes instead of the body that was signed)."""
    url = aws_plane.url + path
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.context.update(context or {})
    creds = Credentials(aws_plane.access_key_id, secret or aws_plane.secret)
    S3SigV4Auth(creds, "s3", REGION).add_auth(request)
    content = body if isinstance(body, bytes) else b"".join(iter(body))
    if send is not None:
        content = send
    return httpx.request(method, url, headers=dict(request.headers.items()), content=content)


def _xml_code(response: httpx.Response) -> str:
    return str(ElementTree.fromstring(response.content).findtext("Code"))


# --- the table ---------------------------------------------------------------------------
def test_the_compatibility_table_names_every_operation_with_a_note() -> None:
    for name in (
        "ListBuckets", "CreateBucket", "HeadBucket", "DeleteBucket", "GetBucketLocation",
        "PutObject", "GetObject", "HeadObject", "DeleteObject", "DeleteObjects",
        "ListObjectsV2", "ListObjects", "CopyObject", "CreateMultipartUpload", "UploadPart",
        "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts",
    ):  # fmt: skip
        assert SUPPORTED[name].strip()
    assert any("virtual-host" in n for n in NOT_SUPPORTED)
    assert any("versioning" in n for n in NOT_SUPPORTED)


# --- buckets -----------------------------------------------------------------------------
def test_buckets_create_list_head_locate_delete(aws_plane: AwsPlane) -> None:
    s3 = aws_plane.client("s3")
    assert s3.create_bucket(Bucket="models")["Location"] == "/models"
    # Creating a bucket you already own is 200 in us-east-1.
    s3.create_bucket(Bucket="models")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "models" in names
    assert s3.head_bucket(Bucket="models")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket="models")["LocationConstraint"] is None
    s3.delete_bucket(Bucket="models")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="models")
    assert _code(e) == "404"
    assert "models" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_bucket_with_objects_is_not_deleted(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="data")
    assert _code(e) == "BucketNotEmpty"
    assert _status(e) == 409
    s3.delete_object(Bucket="data", Key="k")
    s3.delete_bucket(Bucket="data")


@pytest.mark.parametrize("name", ["ab", "a..b", "xn--bucket", "192.168.1.1", "a-.b", "UpperCase"])
def test_a_bad_bucket_name_is_invalid_bucket_name(aws_plane: AwsPlane, name: str) -> None:
    s3 = aws_plane.client("s3")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert _code(e) == "InvalidBucketName"
    assert e.value.response["Error"]["BucketName"] == name


def test_another_region_is_refused_at_create(aws_plane: AwsPlane) -> None:
    s3 = aws_plane.client("s3")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(
            Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    assert _code(e) == "InvalidLocationConstraint"


def test_no_such_bucket_names_the_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="missing", Key="k", Body=b"x")
    assert _code(e) == "NoSuchBucket"
    assert _status(e) == 404
    assert e.value.response["Error"]["BucketName"] == "missing"
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="missing")
    assert _code(e) == "NoSuchBucket"


# --- objects -----------------------------------------------------------------------------
def test_put_get_head_round_trip_metadata_type_and_etag(s3: Any) -> None:
    body = b"hello, object store"
    out = s3.put_object(
        Bucket="data", Key="dir/a.txt", Body=body, ContentType="text/plain",
        Metadata={"owner": "alice", "Run-Id": "7"}, CacheControl="no-cache",
    )  # fmt: skip
    assert out["ETag"] == f'"{_md5(body)}"'
    got = s3.get_object(Bucket="data", Key="dir/a.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == out["ETag"]
    assert got["ContentType"] == "text/plain"
    assert got["CacheControl"] == "no-cache"
    assert got["Metadata"] == {"owner": "alice", "run-id": "7"}
    assert got["ContentLength"] == len(body)
    head = s3.head_object(Bucket="data", Key="dir/a.txt")
    assert head["ETag"] == out["ETag"]
    assert head["ContentLength"] == len(body)
    assert head["Metadata"] == {"owner": "alice", "run-id": "7"}
    assert isinstance(head["LastModified"], datetime)


def test_an_object_without_a_content_type_is_binary_octet_stream(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="raw", Body=b"\x00\x01")
    assert s3.head_object(Bucket="data", Key="raw")["ContentType"] == "binary/octet-stream"


def test_the_checksum_botocore_sends_is_verified_kept_and_returned(s3: Any) -> None:
    body = os.urandom(3000)
    out = s3.put_object(Bucket="data", Key="c", Body=body)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert out["ChecksumCRC32"] == crc
    got = s3.get_object(Bucket="data", Key="c", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc
    assert got["Body"].read() == body  # botocore checks the body against it as it reads
    sha = s3.put_object(Bucket="data", Key="s", Body=body, ChecksumAlgorithm="SHA256")
    assert sha["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_a_wrong_checksum_is_bad_digest_and_nothing_is_written(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key="bad", Body=b"abc", ChecksumCRC32="AAAAAA==")
    assert _code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="data", Key="bad")
    assert _code(e) == "404"


def test_a_wrong_content_md5_is_bad_digest(s3: Any) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key="m", Body=b"abc", ContentMD5=wrong)
    assert _code(e) == "BadDigest"
    right = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    s3.put_object(Bucket="data", Key="m", Body=b"abc", ContentMD5=right)


def test_crc32c_is_refused_naming_what_to_use(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key="k", Body=b"abc", ChecksumCRC32C="AAAAAA==")
    assert _code(e) == "InvalidRequest"
    assert "CRC32" in e.value.response["Error"]["Message"]


def test_too_much_user_metadata_is_metadata_too_large(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key="k", Body=b"", Metadata={"big": "x" * 2100})
    assert _code(e) == "MetadataTooLarge"


def test_missing_keys_no_such_key_and_head_has_no_body(s3: Any, aws_plane: AwsPlane) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="nope/x")
    assert _code(e) == "NoSuchKey"
    assert _status(e) == 404
    error = e.value.response["Error"]
    assert error["Key"] == "nope/x"
    assert error["BucketName"] == "data"
    assert e.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="data", Key="nope/x")
    assert _code(e) == "404"
    raw = _signed(aws_plane, "HEAD", "/data/nope/x")
    assert raw.status_code == 404
    assert raw.content == b""
    raw = _signed(aws_plane, "GET", "/data/nope/x")
    doc = ElementTree.fromstring(raw.content)
    assert doc.tag == "Error"
    assert [c.tag for c in doc] == ["Code", "Message", "Key", "BucketName", "RequestId"]
    assert doc.findtext("RequestId") == raw.headers["x-amz-request-id"]


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("bytes=0-4", 0, 4), ("bytes=5-", 5, 25), ("bytes=-3", 23, 25), ("bytes=20-100", 20, 25)],
)
def test_ranges_are_206_with_content_range(s3: Any, spec: str, start: int, end: int) -> None:
    body = b"abcdefghijklmnopqrstuvwxyz"
    s3.put_object(Bucket="data", Key="abc", Body=body)
    got = s3.get_object(Bucket="data", Key="abc", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/26"
    assert got["Body"].read() == body[start : end + 1]


def test_a_range_past_the_end_is_invalid_range(s3: Any, aws_plane: AwsPlane) -> None:
    s3.put_object(Bucket="data", Key="abc", Body=b"abc")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="abc", Range="bytes=3-")
    assert _code(e) == "InvalidRange"
    assert _status(e) == 416
    raw = _signed(aws_plane, "GET", "/data/abc", headers={"Range": "bytes=10-20"})
    assert raw.headers["content-range"] == "bytes */3"


def test_if_match_and_if_none_match(s3: Any) -> None:
    etag = s3.put_object(Bucket="data", Key="e", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket="data", Key="e", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="e", IfMatch='"0000"')
    assert _code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="data", Key="e", IfNoneMatch=etag)
    assert _status(e) == 304


def test_delete_object_and_delete_objects(s3: Any) -> None:
    for key in ("a", "b", "c/d"):
        s3.put_object(Bucket="data", Key=key, Body=key.encode())
    assert s3.delete_object(Bucket="data", Key="a")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_object(Bucket="data", Key="a")  # absent: still 204, as S3
    out = s3.delete_objects(
        Bucket="data", Delete={"Objects": [{"Key": "b"}, {"Key": "c/d"}, {"Key": "never"}]}
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == ["b", "c/d", "never"]
    assert s3.list_objects_v2(Bucket="data")["KeyCount"] == 0
    quiet = s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "x"}], "Quiet": True})
    assert "Deleted" not in quiet


def test_malformed_xml_is_malformed_xml(s3: Any, aws_plane: AwsPlane) -> None:
    body = b"<Delete><Object><Key>a</Key></Object"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = _signed(aws_plane, "POST", "/data?delete", body, headers={"Content-MD5": md5})
    assert r.status_code == 400
    assert _xml_code(r) == "MalformedXML"


# --- listing -----------------------------------------------------------------------------
KEYS = ["a/1", "a/2", "b/x/1", "b/y", "c", "d", "e/1"]


def test_list_v2_paginates_with_a_delimiter(s3: Any) -> None:
    for key in KEYS:
        s3.put_object(Bucket="data", Key=key, Body=b"-")
    page = s3.list_objects_v2(Bucket="data", Delimiter="/", MaxKeys=2)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    assert "Contents" not in page
    assert page["KeyCount"] == 2
    assert page["IsTruncated"] is True
    page = s3.list_objects_v2(
        Bucket="data", Delimiter="/", MaxKeys=2, ContinuationToken=page["NextContinuationToken"]
    )
    assert [c["Key"] for c in page["Contents"]] == ["c", "d"]
    page = s3.list_objects_v2(
        Bucket="data", Delimiter="/", MaxKeys=2, ContinuationToken=page["NextContinuationToken"]
    )
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["e/"]
    assert page["IsTruncated"] is False
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="data", PaginationConfig={"PageSize": 3}
    )
    listed = [c["Key"] for p in pages for c in p.get("Contents", [])]
    assert listed == KEYS
    under_b = s3.list_objects_v2(Bucket="data", Prefix="b/", Delimiter="/")
    assert [c["Key"] for c in under_b["Contents"]] == ["b/y"]
    assert [p["Prefix"] for p in under_b["CommonPrefixes"]] == ["b/x/"]
    after = s3.list_objects_v2(Bucket="data", StartAfter="b/y")
    assert [c["Key"] for c in after["Contents"]] == ["c", "d", "e/1"]
    partial = s3.list_objects_v2(Bucket="data", Prefix="b/x")
    assert [c["Key"] for c in partial["Contents"]] == ["b/x/1"]


def test_list_v2_entries_carry_size_etag_and_odd_keys(s3: Any) -> None:
    key = "dir/ä file+name.txt"
    s3.put_object(Bucket="data", Key=key, Body=b"12345")
    (entry,) = s3.list_objects_v2(Bucket="data")["Contents"]
    assert entry["Key"] == key
    assert entry["Size"] == 5
    assert entry["ETag"] == f'"{_md5(b"12345")}"'
    assert s3.get_object(Bucket="data", Key=key)["Body"].read() == b"12345"


def test_list_v1_with_marker(s3: Any) -> None:
    for key in KEYS:
        s3.put_object(Bucket="data", Key=key, Body=b"-")
    page = s3.list_objects(Bucket="data", MaxKeys=3)
    assert [c["Key"] for c in page["Contents"]] == KEYS[:3]
    assert page["IsTruncated"] is True
    page = s3.list_objects(Bucket="data", Marker=KEYS[2])
    assert [c["Key"] for c in page["Contents"]] == KEYS[3:]
    grouped = s3.list_objects(Bucket="data", Delimiter="/", MaxKeys=1)
    assert grouped["NextMarker"] == "a/"


def test_max_keys_must_be_a_number(s3: Any, aws_plane: AwsPlane) -> None:
    r = _signed(aws_plane, "GET", "/data?list-type=2&max-keys=many")
    assert r.status_code == 400
    assert _xml_code(r) == "InvalidArgument"
    assert "max-keys" in r.text


# --- copy --------------------------------------------------------------------------------
def test_copy_object_copies_or_replaces_metadata(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="src", Body=b"model", Metadata={"a": "1"}, ContentType="x/y")
    out = s3.copy_object(Bucket="data", Key="dst", CopySource={"Bucket": "data", "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == f'"{_md5(b"model")}"'
    head = s3.head_object(Bucket="data", Key="dst")
    assert (head["Metadata"], head["ContentType"]) == ({"a": "1"}, "x/y")
    s3.copy_object(
        Bucket="data", Key="dst", CopySource="data/src", MetadataDirective="REPLACE",
        Metadata={"b": "2"},
    )  # fmt: skip
    assert s3.head_object(Bucket="data", Key="dst")["Metadata"] == {"b": "2"}
    assert s3.get_object(Bucket="data", Key="dst")["Body"].read() == b"model"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="data", Key="src", CopySource="data/src")
    assert _code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="data", Key="x", CopySource="data/absent")
    assert _code(e) == "NoSuchKey"


# --- multipart ---------------------------------------------------------------------------
def _parts(s3: Any, upload_id: str, chunks: list[bytes], key: str = "big") -> list[dict[str, Any]]:
    done = []
    for i, chunk in enumerate(chunks, 1):
        out = s3.upload_part(Bucket="data", Key=key, UploadId=upload_id, PartNumber=i, Body=chunk)
        assert out["ETag"] == f'"{_md5(chunk)}"'
        done.append({"PartNumber": i, "ETag": out["ETag"]})
    return done


def test_multipart_upload_etag_is_s3s_formula(s3: Any) -> None:
    chunks = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload = s3.create_multipart_upload(Bucket="data", Key="big", Metadata={"k": "v"})
    upload_id = upload["UploadId"]
    parts = _parts(s3, upload_id, chunks)
    listed = s3.list_parts(Bucket="data", Key="big", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MiB),
        (2, 5 * MiB),
        (3, 4),
    ]
    page = s3.list_parts(Bucket="data", Key="big", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] is True
    assert page["NextPartNumberMarker"] == 2
    with pytest.raises(ClientError) as e:  # not visible before it is completed
        s3.head_object(Bucket="data", Key="big")
    out = s3.complete_multipart_upload(
        Bucket="data", Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    digests = b"".join(hashlib.md5(c).digest() for c in chunks)
    expected = f'"{hashlib.md5(digests).hexdigest()}-3"'
    assert out["ETag"] == expected
    got = s3.get_object(Bucket="data", Key="big")
    assert got["ETag"] == expected
    assert got["Metadata"] == {"k": "v"}
    assert got["Body"].read() == b"".join(chunks)
    with pytest.raises(ClientError) as e:  # the upload is gone
        s3.list_parts(Bucket="data", Key="big", UploadId=upload_id)
    assert _code(e) == "NoSuchUpload"
    assert _status(e) == 404


def test_complete_checks_the_parts_list(s3: Any) -> None:
    upload_id = s3.create_multipart_upload(Bucket="data", Key="big")["UploadId"]
    parts = _parts(s3, upload_id, [os.urandom(5 * MiB), b"second"])

    def complete(listed: list[dict[str, Any]]) -> str:
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket="data", Key="big", UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        return _code(e)

    assert complete(list(reversed(parts))) == "InvalidPartOrder"
    assert complete([parts[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]) == "InvalidPart"
    assert complete([parts[0], {"PartNumber": 3, "ETag": parts[1]["ETag"]}]) == "InvalidPart"
    small = s3.create_multipart_upload(Bucket="data", Key="small")["UploadId"]
    tiny = _parts(s3, small, [b"a", b"b"], key="small")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="data", Key="small", UploadId=small, MultipartUpload={"Parts": tiny}
        )
    assert _code(e) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket="data", Key="big", UploadId=upload_id)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="data", Key="big", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert _code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="data", Key="big", UploadId="f" * 32, PartNumber=0, Body=b"x")
    assert _code(e) in ("NoSuchUpload", "InvalidArgument")


def test_upload_file_and_download_file_of_20_mib(s3: Any, tmp_path: Path) -> None:
    data = os.urandom(20 * MiB)
    src, dest = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), "data", "models/model.tar.gz")  # multipart: 8 MiB parts
    head = s3.head_object(Bucket="data", Key="models/model.tar.gz", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"')
    assert head["ChecksumCRC32"].endswith("-3")  # COMPOSITE, as S3 (botocore skips those)
    (listed,) = s3.list_objects_v2(Bucket="data", Prefix="models/")["Contents"]
    assert listed["ChecksumAlgorithm"] == ["CRC32"]
    assert head["ContentLength"] == len(data)
    s3.download_file("data", "models/model.tar.gz", str(dest))  # ranged GETs with If-Match
    assert dest.read_bytes() == data
    buf = io.BytesIO()
    s3.download_fileobj("data", "models/model.tar.gz", buf)
    assert buf.getvalue() == data


def test_upload_part_copy_builds_an_object_from_ranges(s3: Any) -> None:
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket="data", Key="src", Body=data)
    upload_id = s3.create_multipart_upload(Bucket="data", Key="joined")["UploadId"]
    ranges = [(0, 5 * MiB - 1), (5 * MiB, len(data) - 1)]
    parts = []
    for i, (a, b) in enumerate(ranges, 1):
        out = s3.upload_part_copy(
            Bucket="data", Key="joined", UploadId=upload_id, PartNumber=i,
            CopySource="data/src", CopySourceRange=f"bytes={a}-{b}",
        )  # fmt: skip
        parts.append({"PartNumber": i, "ETag": out["CopyPartResult"]["ETag"]})
    s3.complete_multipart_upload(
        Bucket="data", Key="joined", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket="data", Key="joined")["Body"].read() == data


# --- the same store ----------------------------------------------------------------------
def test_boto3_and_the_native_api_see_the_same_encrypted_objects(
    s3: Any, aws_plane: AwsPlane
) -> None:
    plaintext = b"training rows: " + b"0123456789" * 1000
    s3.put_object(Bucket="data", Key="train/rows.csv", Body=plaintext)
    client = aws_plane.local.client
    assert client.download_bytes("s3://data/train/rows.csv") == plaintext
    assert aws_plane.local.plane.objects.get_bytes("s3://data/train/rows.csv") == plaintext
    assert [o["Uri"] for o in client.list_objects("s3://data/train")] == [
        "s3://data/train/rows.csv"
    ]
    on_disk = (_root(aws_plane) / "data" / "train" / "rows.csv").read_bytes()
    assert plaintext[:64] not in on_disk
    assert b"0123456789" * 3 not in on_disk

    client.upload_bytes(b"from the native api", "s3://data/native.txt")
    got = s3.get_object(Bucket="data", Key="native.txt")
    assert got["Body"].read() == b"from the native api"
    sha = hashlib.sha256(b"from the native api").hexdigest()
    assert got["ETag"] == f'"{sha[:32]}"'  # no MD5 was kept: its SHA-256's first half
    # A bucket made by native puts is an S3 bucket too.
    client.upload_bytes(b"x", "s3://orchestrator/jobs/j/model.tar.gz")
    assert "orchestrator" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    listed = s3.list_objects_v2(Bucket="orchestrator", Prefix="jobs/")["Contents"]
    assert [c["Key"] for c in listed] == ["jobs/j/model.tar.gz"]


def test_a_multipart_object_is_a_training_channel(s3: Any, aws_plane: AwsPlane) -> None:
    upload_id = s3.create_multipart_upload(Bucket="data", Key="ch/part.bin")["UploadId"]
    chunks = [b"a" * (5 * MiB), b"b" * 10]
    parts = _parts(s3, upload_id, chunks, key="ch/part.bin")
    s3.complete_multipart_upload(
        Bucket="data", Key="ch/part.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    store = aws_plane.local.plane.objects
    assert store.get_bytes("s3://data/ch/part.bin") == b"".join(chunks)
    # Parts live in the scratch space, and leave it when the upload completes.
    scratch = _root(aws_plane) / ".orch-uploads"
    assert not [p for p in scratch.rglob("*") if p.is_file()]


# --- refusals ----------------------------------------------------------------------------
def test_an_invoke_only_key_is_access_denied(aws_plane: AwsPlane) -> None:
    plane = aws_plane.local.plane
    record, secret = plane.access_keys.create(name="bob", role="invoke", now=plane.clock.now())
    s3 = aws_plane.client(
        "s3", aws_access_key_id=record.access_key_id, aws_secret_access_key=secret
    )
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert _code(e) == "AccessDenied"
    assert _status(e) == 403


def test_a_wrong_secret_is_signature_does_not_match(aws_plane: AwsPlane) -> None:
    s3 = aws_plane.client("s3", aws_secret_access_key=aws_plane.secret[:-2] + "xx")
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert _code(e) == "SignatureDoesNotMatch"
    assert _status(e) == 403


def test_an_unknown_key_is_invalid_access_key_id(aws_plane: AwsPlane) -> None:
    s3 = aws_plane.client("s3", aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert _code(e) == "InvalidAccessKeyId"
    assert _status(e) == 403


def test_a_tampered_body_is_refused_and_not_written(s3: Any, aws_plane: AwsPlane) -> None:
    r = _signed(aws_plane, "PUT", "/data/t", b"the body signed", send=b"another body sent")
    assert r.status_code == 400
    assert _xml_code(r) == "XAmzContentSHA256Mismatch"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="t")
    assert [p.name for p in (_root(aws_plane) / "data").iterdir()] == [".orch-bucket"]


def test_a_body_over_5_gib_is_entity_too_large_before_it_is_read(
    s3: Any, aws_plane: AwsPlane
) -> None:
    headers = {"X-Amz-Decoded-Content-Length": str(6 << 30)}
    r = _signed(aws_plane, "PUT", "/data/huge", b"x", headers=headers)
    assert r.status_code == 400
    assert _xml_code(r) == "EntityTooLarge"


def test_a_skewed_clock_is_request_time_too_skewed(
    s3: Any, aws_plane: AwsPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: datetime.now(UTC) - timedelta(minutes=20)
    )
    r = _signed(aws_plane, "GET", "/")
    assert r.status_code == 403
    assert _xml_code(r) == "RequestTimeTooSkewed"


def test_presigned_get_works_and_an_expired_one_does_not(
    s3: Any, aws_plane: AwsPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket="data", Key="shared.txt", Body=b"for a browser")
    s3 = aws_plane.client(
        "s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"})
    )
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "shared.txt"})
    assert httpx.get(url).content == b"for a browser"
    import botocore.auth

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: datetime.now(UTC) - timedelta(hours=2)
    )
    old = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "data", "Key": "shared.txt"}, ExpiresIn=60
    )
    r = httpx.get(old)
    assert r.status_code == 403
    assert _xml_code(r) == "AccessDenied"


def test_a_signature_version_2_url_is_refused_naming_the_fix(s3: Any) -> None:
    # boto3 presigns S3 URLs with SigV2 unless told otherwise; this server verifies SigV4 only.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "k"})
    assert "AWSAccessKeyId=" in url
    r = httpx.get(url)
    assert r.status_code == 400
    assert _xml_code(r) == "InvalidRequest"
    assert "signature_version='s3v4'" in r.text


# --- aws-chunked -------------------------------------------------------------------------
def _trailer_put(
    aws_plane: AwsPlane, path: str, data: bytes, *, checksum: str | None = None
) -> httpx.Response:
    """What botocore sends over https: aws-chunked with an unsigned CRC32 trailer."""
    body = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                             checksum_name="x-amz-checksum-crc32", chunk_size=64 << 10)  # fmt: skip
    encoded = b"".join(iter(body))
    if checksum is not None:
        encoded = (
            encoded.rsplit(b"x-amz-checksum-crc32:", 1)[0]
            + f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode()
        )
    headers = {
        "Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }  # fmt: skip
    context = {"checksum": {"request_algorithm": {"in": "trailer", "algorithm": "crc32",
                                                  "name": "x-amz-checksum-crc32"}}}  # fmt: skip
    return _signed(aws_plane, "PUT", path, encoded, headers=headers, context=context)


def test_aws_chunked_with_a_trailer_checksum(s3: Any, aws_plane: AwsPlane) -> None:
    data = os.urandom(200_000)
    r = _trailer_put(aws_plane, "/data/chunked", data)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{_md5(data)}"'
    got = s3.get_object(Bucket="data", Key="chunked", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    bad = _trailer_put(aws_plane, "/data/chunked-bad", data, checksum="AAAAAA==")
    assert bad.status_code == 400
    assert _xml_code(bad) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="chunked-bad")


def _signed_chunks(
    aws_plane: AwsPlane, seed: str, chunks: list[bytes], timestamp: str, trailer: str | None
) -> bytes:
    """S3's signed aws-chunked body (and signed trailer), as the other SDKs write it."""
    date = timestamp[:8]
    key = sigv4.signing_key(aws_plane.secret, date, REGION, "s3")
    cred = sigv4.Credential(aws_plane.access_key_id, date, REGION, "s3", ("host",), seed, timestamp)
    out, previous = [], seed
    for chunk in [*chunks, b""]:
        previous = sigv4.chunk_signature(key, cred, previous, hashlib.sha256(chunk).hexdigest())
        out.append(f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk)
        out.append(b"\r\n" if chunk or trailer is None else b"")
    if trailer is not None:
        signed = sigv4.trailer_signature(key, cred, previous, f"{trailer}\n".encode())
        out.append(f"{trailer}\r\nx-amz-trailer-signature:{signed}\r\n\r\n".encode())
    return b"".join(out)


def _streaming_signed_put(
    aws_plane: AwsPlane,
    path: str,
    chunks: list[bytes],
    *,
    tamper: bool = False,
    trailer: str | None = None,
) -> httpx.Response:
    data = b"".join(chunks)
    url = aws_plane.url + path
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))}
    if trailer is not None:
        headers["X-Amz-Trailer"] = trailer.partition(":")[0]
    request = AWSRequest(method="PUT", url=url, headers=headers)
    payload = sigv4.STREAMING_SIGNED if trailer is None else sigv4.STREAMING_SIGNED_TRAILER

    class Streaming(S3SigV4Auth):
        def payload(self, request: Any) -> str:
            return payload

    Streaming(Credentials(aws_plane.access_key_id, aws_plane.secret), "s3", REGION).add_auth(
        request
    )
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = _signed_chunks(aws_plane, seed, chunks, request.context["timestamp"], trailer)
    if tamper:
        body = body.replace(b"A" * 10, b"B" * 10, 1)
    return httpx.put(url, headers=dict(request.headers.items()), content=body)


def test_signed_aws_chunked_chunks_are_verified(s3: Any, aws_plane: AwsPlane) -> None:
    chunks = [b"A" * 65536, b"B" * 1000]
    r = _streaming_signed_put(aws_plane, "/data/signed", chunks)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket="data", Key="signed")["Body"].read() == b"".join(chunks)
    bad = _streaming_signed_put(aws_plane, "/data/signed-bad", chunks, tamper=True)
    assert bad.status_code == 403
    assert _xml_code(bad) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="signed-bad")


def test_a_signed_trailer_is_verified_and_its_checksum_checked(
    s3: Any, aws_plane: AwsPlane
) -> None:
    chunks = [b"A" * 9000, b"C" * 20]
    crc = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    ok = _streaming_signed_put(aws_plane, "/data/st", chunks, trailer=f"x-amz-checksum-crc32:{crc}")
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-amz-checksum-crc32"] == crc
    wrong = _streaming_signed_put(
        aws_plane, "/data/st-bad", chunks, trailer="x-amz-checksum-crc32:AAAAAA=="
    )
    assert _xml_code(wrong) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="st-bad")


def test_chunk_signatures_match_the_aws_documentation_example() -> None:
    """docs.aws.amazon.com, "Signature calculations for the Authorization header: transferring
    payload in multiple chunks": 64 KiB then 1 KiB of 'a', then the final chunk."""
    cred = sigv4.Credential(
        "AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3", ("host",),
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", "20130524T000000Z",
    )  # fmt: skip
    key = sigv4.signing_key(
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"
    )
    signatures, previous = [], cred.signature
    for data in (b"a" * 65536, b"a" * 1024, b""):
        previous = sigv4.chunk_signature(key, cred, previous, hashlib.sha256(data).hexdigest())
        signatures.append(previous)
    assert signatures == [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]


def test_a_large_put_streams_without_holding_the_body(
    s3: Any, aws_plane: AwsPlane, tmp_path: Path
) -> None:
    import tracemalloc

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(48 * MiB))
    tracemalloc.start()
    try:
        with open(src, "rb") as f:
            s3.put_object(Bucket="data", Key="big", Body=f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The client reads the file in blocks and the server holds at most its 8 MiB pipe and the
    # store's 4 MiB chunk buffers: far from the 48 MiB of the body.
    assert peak < 32 * MiB, peak
    head = s3.head_object(Bucket="data", Key="big")
    assert head["ContentLength"] == 48 * MiB
    assert head["ETag"] == f'"{_md5(src.read_bytes())}"'


def test_unsupported_subresources_say_so(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="data")
    assert _code(e) == "NotImplemented"
    assert "versioning" in e.value.response["Error"]["Message"]


def test_a_tampered_part_fails_completion_and_nothing_is_visible(
    s3: Any, aws_plane: AwsPlane
) -> None:
    upload_id = s3.create_multipart_upload(Bucket="data", Key="t")["UploadId"]
    parts = _parts(s3, upload_id, [os.urandom(5 * MiB), b"end"], key="t")
    (stored,) = (_root(aws_plane) / ".orch-uploads").rglob("part-00001")
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="data", Key="t", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    assert _code(e) == "InternalError"
    assert "integrity" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="t")


def test_the_sdks_source_upload_with_sse_kms_is_stored_as_any_object(
    s3: Any, tmp_path: Path
) -> None:
    # The SageMaker SDK uploads sourcedir.tar.gz with ServerSideEncryption=aws:kms: accepted,
    # and the object is encrypted by the store's own keys anyway.
    src = tmp_path / "sourcedir.tar.gz"
    src.write_bytes(b"tarball")
    s3.upload_file(str(src), "data", "job/source/sourcedir.tar.gz",
                   ExtraArgs={"ServerSideEncryption": "aws:kms"})  # fmt: skip
    assert (
        s3.get_object(Bucket="data", Key="job/source/sourcedir.tar.gz")["Body"].read() == b"tarball"
    )


@pytest.mark.parametrize(("key", "why"), [("a//b", "empty path segment"), ("a/../b", "'..'")])
def test_a_key_the_store_cannot_hold_is_invalid_argument_saying_why(
    s3: Any, key: str, why: str
) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="data", Key=key, Body=b"x")
    assert _code(e) == "InvalidArgument"
    assert why in e.value.response["Error"]["Message"]
