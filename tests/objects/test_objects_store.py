from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from orchestrator.objects import FileObjectStore, LocalKeyring, ObjectStore, open_object_store
from orchestrator.objects import store as store_mod

CHUNK = 64 << 10  # as in conftest.py


def _files(store: FileObjectStore) -> list[Path]:
    # Not the rename lock's stripes: they are no objects.
    return sorted(
        p for p in store.root.rglob("*") if p.is_file() and store_mod.LOCK_DIR not in p.parts
    )


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_round_trips(store: FileObjectStore, tmp_path: Path, size: int) -> None:
    assert isinstance(store, ObjectStore)
    data = os.urandom(size)
    info = store.put_bytes("s3://bucket/a/b.bin", data)
    assert info.size == size and info.uri == "s3://bucket/a/b.bin"
    assert store.get_bytes("s3://bucket/a/b.bin") == data
    dest = tmp_path / "out" / "b.bin"
    assert store.get_file("s3://bucket/a/b.bin", dest) == info
    assert dest.read_bytes() == data
    assert store.head("s3://bucket/a/b.bin") == info


def test_put_file_and_stream(store: FileObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * CHUNK))
    assert store.put_file("s3://bucket/f", src).size == 2 * CHUNK
    assert store.get_bytes("s3://bucket/f") == src.read_bytes()
    with src.open("rb") as f:
        store.put_stream("s3://bucket/s", f)
    assert store.get_bytes("s3://bucket/s") == src.read_bytes()
    with pytest.raises(NotFoundError, match="no such file"):
        store.put_file("s3://bucket/g", tmp_path / "absent")


def test_list_exists_delete(store: FileObjectStore) -> None:
    for key in ("data/train/b.csv", "data/train/a.csv", "data/test.csv", "other"):
        store.put_bytes(f"s3://bucket/{key}", key.encode())
    listed = [i.uri for i in store.list("s3://bucket/data/")]
    assert listed == ["s3://bucket/data/test.csv", "s3://bucket/data/train/a.csv",
                      "s3://bucket/data/train/b.csv"]  # fmt: skip
    assert [i.uri for i in store.list("s3://bucket/data/tr")] == listed[1:]
    assert len(store.list("s3://bucket")) == 4
    assert store.list("s3://empty-bucket/") == []
    assert store.exists("s3://bucket/other")
    store.delete("s3://bucket/other")
    assert not store.exists("s3://bucket/other")
    for call in (store.delete, store.head, store.get_bytes):
        with pytest.raises(NotFoundError, match="s3://bucket/other"):
            call("s3://bucket/other")


def test_overwrite_gets_a_new_version(store: FileObjectStore) -> None:
    first = store.put_bytes("s3://bucket/k", b"one")
    second = store.put_bytes("s3://bucket/k", b"two")
    assert first.version != second.version
    assert store.get_bytes("s3://bucket/k") == b"two"


def test_flipped_byte_leaves_nothing_at_destination(store: FileObjectStore, tmp_path: Path) -> None:
    store.put_bytes("s3://bucket/k", os.urandom(CHUNK + 10))
    (path,) = _files(store)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x80
    path.write_bytes(raw)
    dest = tmp_path / "dl"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="s3://bucket/k failed its integrity check"):
        store.get_file("s3://bucket/k", dest / "k")
    assert list(dest.iterdir()) == []
    with pytest.raises(IntegrityError):
        store.get_bytes("s3://bucket/k")


def test_failed_get_keeps_an_existing_destination(store: FileObjectStore, tmp_path: Path) -> None:
    store.put_bytes("s3://bucket/k", b"data")
    (path,) = _files(store)
    path.write_bytes(path.read_bytes()[:-1])
    dest = tmp_path / "k"
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        store.get_file("s3://bucket/k", dest)
    assert dest.read_bytes() == b"previous"


def test_object_copied_to_another_key_fails(store: FileObjectStore) -> None:
    store.put_bytes("s3://bucket/a", b"secret")
    store.put_bytes("s3://bucket/b", b"other")
    root = store.root / "bucket"
    (root / "b").write_bytes((root / "a").read_bytes())
    with pytest.raises(IntegrityError):
        store.get_bytes("s3://bucket/b")
    with pytest.raises(IntegrityError):
        store.head("s3://bucket/b")


def test_rotation(store: FileObjectStore, keyring: LocalKeyring) -> None:
    old = store.put_bytes("s3://bucket/old", b"before")
    new_id = keyring.rotate()
    new = store.put_bytes("s3://bucket/new", b"after")
    assert old.key_id != new_id and new.key_id == new_id
    assert store.get_bytes("s3://bucket/old") == b"before"
    assert store.head("s3://bucket/old").key_id == old.key_id


def test_crash_mid_write_keeps_old_version(
    store: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_bytes("s3://bucket/k", b"old")

    class Crash(Exception):
        pass

    class Exploding(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            raise Crash

    with pytest.raises(Crash):
        store.put_stream("s3://bucket/k", Exploding())  # type: ignore[arg-type]
    assert store.get_bytes("s3://bucket/k") == b"old"
    assert [p.name for p in _files(store)] == ["k"]

    # A process killed after writing part of the temp file leaves it behind: never listed.
    (store.root / "bucket" / f"{store_mod.TEMP_PREFIX}abc").write_bytes(b"partial")
    assert [i.uri for i in store.list("s3://bucket/")] == ["s3://bucket/k"]
    with pytest.raises(ValidationError, match="reserved"):
        store.put_bytes(f"s3://bucket/{store_mod.TEMP_PREFIX}x", b"")


def test_key_and_prefix_clash(store: FileObjectStore) -> None:
    store.put_bytes("s3://bucket/a/b", b"x")
    with pytest.raises(ConflictError):
        store.put_bytes("s3://bucket/a", b"y")
    store.put_bytes("s3://bucket/c", b"x")
    with pytest.raises(ConflictError):
        store.put_bytes("s3://bucket/c/d", b"y")


def test_download_prefix(store: FileObjectStore, tmp_path: Path) -> None:
    store.put_bytes("s3://bucket/train/x.csv", b"x")
    store.put_bytes("s3://bucket/train/sub/y.csv", b"y")
    store.put_bytes("s3://bucket/model.tar.gz", b"m")
    one = store.download_prefix("s3://bucket/model.tar.gz", tmp_path / "m")
    assert one == [tmp_path / "m" / "model.tar.gz"] and one[0].read_bytes() == b"m"
    tree = store.download_prefix("s3://bucket/train", tmp_path / "t")
    assert tree == [tmp_path / "t" / "sub" / "y.csv", tmp_path / "t" / "x.csv"]
    assert store.download_prefix("s3://bucket/train/", tmp_path / "u")[1].read_bytes() == b"x"
    with pytest.raises(NotFoundError, match="s3://bucket/nothing"):
        store.download_prefix("s3://bucket/nothing", tmp_path / "n")


def test_open_object_store(tmp_path: Path, keyring: LocalKeyring) -> None:
    store = open_object_store((tmp_path / "o").as_uri(), keyring)
    assert isinstance(store, FileObjectStore) and store.root == tmp_path / "o"
    for bad in ("file://relative/x", "ftp://x/y", "/abs/path", "s3://B", "file:///x?y=1"):
        with pytest.raises(ValidationError, match=r"ORCH_OBJECTS__URL|expected"):
            open_object_store(bad, keyring)


def test_attributes_are_kept_sealed_and_a_refused_body_is_never_visible(
    store: FileObjectStore,
) -> None:
    data = os.urandom(CHUNK + 3)
    seen: list[tuple[int, str]] = []

    def finish(size: int, sha256: str) -> dict[str, str]:
        seen.append((size, sha256))
        return {"etag": "e1", "content-type": "text/csv", "meta-owner": "ä"}

    info = store.put_stream("s3://bucket/a", io.BytesIO(data), finish=finish)
    assert seen == [(len(data), hashlib.sha256(data).hexdigest())]
    assert info.attrs == {"etag": "e1", "content-type": "text/csv", "meta-owner": "ä"}
    assert store.head("s3://bucket/a").attrs == info.attrs
    assert store.list("s3://bucket")[0].attrs == info.attrs
    assert store.get_bytes("s3://bucket/a") == data
    raw = (store.root / "bucket" / "a").read_bytes()
    assert b"text/csv" not in raw  # the attributes are encrypted with the object
    assert store.put_bytes("s3://bucket/plain", b"x").attrs == {}  # format 1: none

    def refuse(size: int, sha256: str) -> dict[str, str]:
        raise ValidationError("checksum mismatch")

    with pytest.raises(ValidationError, match="checksum mismatch"):
        store.put_stream("s3://bucket/a", io.BytesIO(b"other"), finish=refuse)
    assert store.get_bytes("s3://bucket/a") == data  # the old version stays, whole
    with pytest.raises(ValidationError, match="checksum mismatch"):
        store.put_stream("s3://bucket/new", io.BytesIO(b"other"), finish=refuse)
    assert not store.exists("s3://bucket/new")
    assert [p.name for p in _files(store)] == ["a", "plain"]


def test_too_many_attributes_are_refused_naming_the_limit(store: FileObjectStore) -> None:
    with pytest.raises(ValidationError, match="4096-byte limit"):
        store.put_stream("s3://bucket/a", io.BytesIO(b"x"), finish=lambda n, h: {"m": "x" * 5000})
    assert not store.exists("s3://bucket/a")


def test_a_tampered_attribute_fails_the_integrity_check(store: FileObjectStore) -> None:
    store.put_stream("s3://bucket/a", io.BytesIO(b"body"), finish=lambda n, h: {"etag": "e"})
    path = store.root / "bucket" / "a"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 1  # inside the trailer's sealed attributes
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="trailer"):
        store.head("s3://bucket/a")
    with pytest.raises(IntegrityError):
        store.get_bytes("s3://bucket/a")


def test_buckets_create_list_delete(store: FileObjectStore) -> None:
    assert store.list_buckets() == []
    assert store.create_bucket("made") is True
    assert store.create_bucket("made") is False
    store.put_bytes("s3://implicit/k", b"x")  # a put makes its bucket
    assert [b.name for b in store.list_buckets()] == ["implicit", "made"]
    assert store.bucket_exists("made") and not store.bucket_exists("other")
    assert store.list("s3://made") == []  # the marker is not an object
    with pytest.raises(ValidationError, match="reserved"):
        store.put_bytes(f"s3://made/{store_mod.BUCKET_MARKER}", b"x")
    store.put_bytes("s3://made/a/b", b"x")
    with pytest.raises(ConflictError, match="not empty"):
        store.delete_bucket("made")
    store.delete("s3://made/a/b")
    store.delete_bucket("made")
    assert not store.bucket_exists("made")
    with pytest.raises(NotFoundError, match="made"):
        store.delete_bucket("made")
    scratch = store.scratch("uploads")
    scratch.put_bytes("s3://mpu/x", b"part")
    assert [b.name for b in store.list_buckets()] == ["implicit"]  # scratch is never a bucket


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, 0), (0, 1), (5, CHUNK), (CHUNK - 1, 2), (CHUNK, CHUNK), (2 * CHUNK + 1, CHUNK + 6)],
)
def test_get_range_reads_only_the_records_it_needs(
    store: FileObjectStore, start: int, length: int
) -> None:
    data = os.urandom(3 * CHUNK + 7)
    store.put_bytes("s3://bucket/r", data)
    out = io.BytesIO()
    info = store.get_range("s3://bucket/r", start, length, out)
    assert out.getvalue() == data[start : start + length]
    assert info.size == len(data)


def test_get_range_checks_bounds_and_authenticates(store: FileObjectStore) -> None:
    data = os.urandom(2 * CHUNK)
    store.put_bytes("s3://bucket/r", data)
    with pytest.raises(ValidationError, match="outside"):
        store.get_range("s3://bucket/r", CHUNK, CHUNK + 1, io.BytesIO())
    path = store.root / "bucket" / "r"
    raw = bytearray(path.read_bytes())
    raw[-(CHUNK // 2)] ^= 1  # in the second record
    path.write_bytes(bytes(raw))
    out = io.BytesIO()
    assert store.get_range("s3://bucket/r", 0, 10, out).size == len(data)  # first record: fine
    with pytest.raises(IntegrityError, match="record 1"):
        store.get_range("s3://bucket/r", CHUNK, 10, io.BytesIO())
