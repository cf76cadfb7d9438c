"""The S3 driver against moto's S3 server over HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConflictError, IntegrityError, NotFoundError, UnavailableError
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store

try:
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "moto[server] is not installed (pip install 'moto[server]')", allow_module_level=True
    )

import boto3
from botocore.config import Config

from orchestrator.objects.s3 import S3ObjectStore
from orchestrator.objects.store import BUCKET_MARKER

pytestmark = pytest.mark.s3
CHUNK = 64 << 10


def _client(endpoint: str) -> Any:
    # Explicit dummy credentials: nothing from the machine's environment or profiles.
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, keyring: LocalKeyring, request: pytest.FixtureRequest) -> S3ObjectStore:
    client = _client(endpoint)
    backing = f"backing-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(Bucket=backing)
    return S3ObjectStore(backing, "orch/objects", keyring, chunk_size=CHUNK, client=client)


def test_round_trip_and_layout(s3: S3ObjectStore, tmp_path: Path) -> None:
    assert isinstance(s3, ObjectStore)
    for size in (0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5):
        data = os.urandom(size)
        info = s3.put_bytes("s3://bucket/a/b", data)
        assert info.size == size
        assert s3.get_bytes("s3://bucket/a/b") == data
        assert s3.get_file("s3://bucket/a/b", tmp_path / "x" / "b") == info
        assert (tmp_path / "x" / "b").read_bytes() == data
        assert s3.head("s3://bucket/a/b") == info
    stored = s3._client.get_object(Bucket=s3.bucket, Key="orch/objects/bucket/a/b")
    assert stored["Body"].read().startswith(b"ORCENV")


def test_list_delete_download_prefix(s3: S3ObjectStore, tmp_path: Path) -> None:
    for key in ("train/b", "train/a", "test/c"):
        s3.put_bytes(f"s3://bucket/{key}", key.encode())
    assert [i.uri for i in s3.list("s3://bucket/train/")] == [
        "s3://bucket/train/a",
        "s3://bucket/train/b",
    ]
    assert len(s3.list("s3://bucket")) == 3
    paths = s3.download_prefix("s3://bucket/train", tmp_path / "ch")
    assert [p.read_bytes() for p in paths] == [b"train/a", b"train/b"]
    s3.delete("s3://bucket/train/a")
    assert not s3.exists("s3://bucket/train/a")
    for call in (s3.delete, s3.head, s3.get_bytes):
        with pytest.raises(NotFoundError, match="s3://bucket/train/a"):
            call("s3://bucket/train/a")


def test_tampered_object_fails_and_writes_nothing(s3: S3ObjectStore, tmp_path: Path) -> None:
    s3.put_bytes("s3://bucket/k", os.urandom(CHUNK))
    key = "orch/objects/bucket/k"
    head = s3._client.head_object(Bucket=s3.bucket, Key=key)
    raw = bytearray(s3._client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    raw[len(raw) // 2] ^= 1
    s3._client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(raw), Metadata=head["Metadata"])
    with pytest.raises(IntegrityError, match="s3://bucket/k failed its integrity check"):
        s3.get_file("s3://bucket/k", tmp_path / "dl" / "k")
    assert list((tmp_path / "dl").iterdir()) == []


def test_open_object_store_s3_url(endpoint: str, keyring: LocalKeyring) -> None:
    store = open_object_store("s3://some-bucket/pre/fix/", keyring, s3_endpoint_url=endpoint)
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == ("some-bucket", "pre/fix", endpoint)


def test_unreachable_endpoint_is_unavailable(keyring: LocalKeyring) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    store = S3ObjectStore("bucket", "", keyring, client=_client(url))
    with pytest.raises(UnavailableError, match=url):
        store.head("s3://bucket/k")
    with pytest.raises(UnavailableError, match=url):
        store.put_bytes("s3://bucket/k", b"x")


def test_attributes_and_buckets_on_the_s3_driver(s3: S3ObjectStore) -> None:
    attrs = {"etag": "abc", "meta-k": "v"}
    info = s3.put_stream("s3://bucket/a/b", io.BytesIO(b"data"), finish=lambda n, h: attrs)
    assert info.attrs == attrs
    assert s3.head("s3://bucket/a/b").attrs == attrs
    assert s3.put_bytes("s3://bucket/plain", b"x").attrs == {}
    assert s3.create_bucket("made") is True
    assert s3.create_bucket("made") is False
    assert [b.name for b in s3.list_buckets()] == ["bucket", "made"]
    assert s3.list("s3://made") == []
    with pytest.raises(ConflictError):
        s3.delete_bucket("bucket")
    s3.delete_bucket("made")
    assert not s3.bucket_exists("made")
    s3.scratch("uploads").put_bytes("s3://mpu/x", b"part")
    assert [b.name for b in s3.list_buckets()] == ["bucket"]


def test_bucket_accounts_on_the_s3_driver(s3: S3ObjectStore) -> None:
    assert s3.create_bucket("alpha", "111111111111") is True
    assert s3.create_bucket("alpha", "222222222222") is False  # still the first account's
    assert s3.bucket_owner("alpha") == "111111111111"
    s3.put_bytes("s3://implicit/k", b"x")  # made by a put: the server's own account's
    assert s3.bucket_owner("implicit") == ""
    # A marker from before accounts: no metadata, the server's.
    s3._client.put_object(Bucket=s3.bucket, Key=s3._key("legacy", BUCKET_MARKER), Body=b"")
    assert s3.bucket_owner("legacy") == ""
    assert s3.bucket_owner("absent") is None
    listed = {b.name: b.account for b in s3.list_buckets()}
    assert listed == {"alpha": "111111111111", "implicit": "", "legacy": ""}


def test_get_range_on_the_s3_driver(s3: S3ObjectStore) -> None:
    data = os.urandom(2 * CHUNK + 3)
    s3.put_bytes("s3://bucket/r", data)
    out = io.BytesIO()
    s3.get_range("s3://bucket/r", CHUNK - 2, 10, out)
    assert out.getvalue() == data[CHUNK - 2 : CHUNK + 8]
