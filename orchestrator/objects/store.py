"""The object store: a small protocol, a local-directory driver and the factory.

Objects are always named ``s3://bucket/key``; the file driver keeps one encrypted envelope per
object at ``<root>/<bucket>/<key>``. A write goes to a temp file in the same directory, is
fsynced, then renamed over the old version, and the directory is fsynced: a crash leaves the
old version or the new one, never a mix. Temp files carry a reserved name that ``list()``
skips and that keys may not use. ``head()`` reads only the header and the trailer.

``put_stream(..., finish=)`` keeps string attributes with the object, sealed in its trailer
(S3's ETag, content type and user metadata, see ``envelope``), and lets the caller refuse
the body once it has been read (a checksum that does not match): the object is then never
visible. Buckets are directories here (``<root>/<bucket>``, a marker file records when one was
created and the account it belongs to, as JSON); a bucket that holds objects exists whether or
not it was created, and one with no marker (made by a put, or from before accounts) is the
server's own account's (``tenancy.ROOT``). Who may see a bucket is decided above the store
(``objects.buckets``): the store records and answers, for everyone.
``scratch(name)`` is a store beside this one for the server's own work in progress (S3's
multipart parts), never listed with it.

Every rename over an object and every delete is made holding a lock (``flock`` on one of
``LOCK_STRIPES`` files under ``<root>/.orch-locks``, chosen by the object's path; shared by
every process and by the scratch stores): the master key re-wrap replaces an object only if it
is still the file it read (a compare-and-swap), so it never brings back what a writer replaced
or deleted meanwhile.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import io
import json
import os
import secrets
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from orchestrator import metrics
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.objects import envelope
from orchestrator.objects._pipeline import Digest
from orchestrator.objects.envelope import Attrs, Finish
from orchestrator.objects.keys import KeyProvider
from orchestrator.objects.uri import (
    check_bucket,
    is_bucket_name,
    join_uri,
    parse_object_uri,
    parse_prefix_uri,
)
from orchestrator.tenancy import ROOT

TEMP_PREFIX = ".orch-tmp-"
BUCKET_MARKER = ".orch-bucket"  # in a bucket's top directory: when it was made, and whose
LOCK_DIR = ".orch-locks"  # in the store's root: the stripes of the rename lock
LOCK_STRIPES = 64


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int  # plaintext bytes
    version: str
    sha256: str  # hex digest of the plaintext
    key_id: str
    last_modified: datetime
    attrs: Attrs = field(default_factory=dict)  # what ``put_stream(finish=)`` kept


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: datetime
    account: str = ROOT  # the account it belongs to (``tenancy.ROOT``: the server's own)


def marker_body(created: datetime, account: str) -> bytes:
    """What a bucket's marker holds (the file driver's; the S3 driver keeps the same)."""
    return json.dumps({"created": created.isoformat(), "account": account}).encode()


def read_marker(body: bytes) -> tuple[datetime | None, str]:
    """A marker's creation time and account. Before accounts a marker held only the time
    (ISO 8601), and an S3 driver's marker nothing: both are the server's own account's."""
    text = body.decode(errors="replace").strip()
    try:
        doc = json.loads(text) if text.startswith("{") else {"created": text}
        created = datetime.fromisoformat(doc["created"]) if doc.get("created") else None
        account = doc.get("account", ROOT)
    except (ValueError, TypeError, AttributeError):
        return None, ROOT
    return created, account if isinstance(account, str) else ROOT


@runtime_checkable
class ObjectStore(Protocol):
    def put_file(self, uri: str, path: Path) -> ObjectInfo: ...
    def put_bytes(self, uri: str, data: bytes) -> ObjectInfo: ...
    def put_stream(
        self,
        uri: str,
        stream: BinaryIO,
        *,
        finish: Finish | None = None,
        digests: Sequence[Digest] = (),
    ) -> ObjectInfo: ...
    def get_file(self, uri: str, path: Path) -> ObjectInfo: ...
    def get_bytes(self, uri: str) -> bytes: ...
    def head(self, uri: str) -> ObjectInfo: ...
    def exists(self, uri: str) -> bool: ...
    def list(self, prefix_uri: str) -> list[ObjectInfo]: ...
    def delete(self, uri: str) -> None: ...
    def download_prefix(self, prefix_uri: str, dest: Path) -> builtins.list[Path]: ...
    def get_range(self, uri: str, start: int, length: int, dst: BinaryIO) -> ObjectInfo: ...
    def list_buckets(self) -> builtins.list[BucketInfo]: ...
    def bucket_exists(self, bucket: str) -> bool: ...
    def bucket_owner(self, bucket: str) -> str | None: ...  # its account; None: no such bucket
    # False: it was there already (whoever's it is: ``bucket_owner`` says).
    def create_bucket(self, bucket: str, account: str = ROOT) -> bool: ...
    def delete_bucket(self, bucket: str) -> None: ...  # ConflictError when it holds objects
    def scratch(self, name: str) -> ObjectStore: ...


def new_version() -> str:
    """Time-ordered and unique: nanoseconds then 32 random bits, as hex."""
    return f"{time.time_ns():016x}{secrets.token_hex(4)}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: Path, lock: Callable[[], contextlib.AbstractContextManager[object]] | None = None
) -> Iterator[BinaryIO]:
    """Yield a temp file next to ``path``; on success fsync it, rename it over (holding
    ``lock()`` if given), fsync the dir."""
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with lock() if lock is not None else contextlib.nullcontext():
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class StoreBase:
    """What every driver derives from its ``put_stream``/``get_file``/``head``/``list``."""

    def put_stream(
        self,
        uri: str,
        stream: BinaryIO,
        *,
        finish: Finish | None = None,
        digests: Sequence[Digest] = (),
    ) -> ObjectInfo:
        raise NotImplementedError

    def get_file(self, uri: str, path: Path) -> ObjectInfo:
        raise NotImplementedError

    def head(self, uri: str) -> ObjectInfo:
        raise NotImplementedError

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        raise NotImplementedError

    def put_file(self, uri: str, path: Path) -> ObjectInfo:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below, after the error mapping
        except FileNotFoundError as e:
            raise NotFoundError(f"cannot upload {path} to {uri}: no such file") from e
        with f:
            return self.put_stream(uri, f)

    def put_bytes(self, uri: str, data: bytes) -> ObjectInfo:
        return self.put_stream(uri, io.BytesIO(data))

    def exists(self, uri: str) -> bool:
        try:
            self.head(uri)
        except NotFoundError:
            return False
        return True

    def get_range(self, uri: str, start: int, length: int, dst: BinaryIO) -> ObjectInfo:
        """Write plaintext bytes ``start`` .. ``start + length - 1`` to ``dst``. Here: the
        whole object, decrypted and verified into a temp file, then the range copied."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
            path = Path(tmp) / "object"
            info = self.get_file(uri, path)
            if start < 0 or length < 0 or start + length > info.size:
                raise ValidationError(
                    f"range {start}+{length} is outside object {uri}'s {info.size} bytes",
                    field="range",
                )
            with open(path, "rb") as f:
                f.seek(start)
                left = length
                while left > 0 and (block := f.read(min(left, 4 << 20))):
                    dst.write(block)
                    left -= len(block)
        return info

    def download_prefix(self, prefix_uri: str, dest: Path) -> builtins.list[Path]:
        """SageMaker channel semantics: one object to ``dest/<basename>``, or a whole tree."""
        paths = []
        for uri, relative in prefix_objects(self, prefix_uri):
            target = dest / relative
            self.get_file(uri, target)
            paths.append(target)
        return paths


class Listing(Protocol):
    """What ``prefix_objects`` needs of a store."""

    def exists(self, uri: str) -> bool: ...
    def list(self, prefix_uri: str) -> list[ObjectInfo]: ...


def prefix_objects(store: Listing, prefix_uri: str) -> list[tuple[str, str]]:
    """What a channel URI names, as (object URI, path relative to the channel), sorted by key:
    the one object the URI names, or every object under it as a prefix (SageMaker's
    ``S3Prefix``). ``NotFoundError`` when there is none."""
    bucket, prefix = parse_prefix_uri(prefix_uri)
    if prefix and not prefix.endswith("/"):
        single = join_uri(bucket, prefix)
        if store.exists(single):
            return [(single, prefix.rsplit("/", 1)[-1])]
        prefix += "/"
    found = store.list(join_uri(bucket, prefix))
    if not found:
        raise NotFoundError(f"no objects under {prefix_uri}", field="uri")
    return sorted((info.uri, parse_object_uri(info.uri)[1][len(prefix) :]) for info in found)


class FileObjectStore(StoreBase):
    """Objects as encrypted files under a local directory."""

    def __init__(
        self,
        root: Path,
        provider: KeyProvider,
        *,
        chunk_size: int = envelope.DEFAULT_CHUNK_SIZE,
        lock_dir: Path | None = None,
    ) -> None:
        envelope.check_chunk_size(chunk_size)
        self.root = Path(root)
        self.provider = provider
        self.chunk_size = chunk_size
        self.lock_dir = lock_dir if lock_dir is not None else self.root / LOCK_DIR

    @contextlib.contextmanager
    def path_lock(self, path: Path) -> Iterator[None]:
        """Held around every rename over ``path`` and its delete, in every process."""
        stripe = zlib.crc32(os.fsencode(os.path.abspath(path))) % LOCK_STRIPES
        lock = self.lock_dir / f"{stripe:02x}"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _path(self, uri: str) -> Path:
        bucket, key = parse_object_uri(uri)
        if any(part.startswith(TEMP_PREFIX) for part in key.split("/")) or key == BUCKET_MARKER:
            raise ValidationError(
                f"invalid object URI {uri!r}: names starting {TEMP_PREFIX!r} and the key "
                f"{BUCKET_MARKER!r} are reserved",
                field="uri",
            )
        return self.root / bucket / key

    def _info(self, uri: str, env: envelope.EnvelopeInfo, mtime: float) -> ObjectInfo:
        when = datetime.fromtimestamp(mtime, tz=UTC)
        attrs = env.attrs or {}
        return ObjectInfo(uri, env.size, env.version, env.sha256, env.key_id, when, attrs)

    def _open(self, uri: str) -> BinaryIO:
        path = self._path(uri)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise NotFoundError(f"object {uri} does not exist", field="uri") from e
        except OSError:  # permissions, a failing disk: the store's fault, not the caller's
            metrics.record_object_store_error("io")
            raise

    def put_stream(
        self,
        uri: str,
        stream: BinaryIO,
        *,
        finish: Finish | None = None,
        digests: Sequence[Digest] = (),
    ) -> ObjectInfo:
        path = self._path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, lambda: self.path_lock(path)) as f:
                env = envelope.encrypt_stream(
                    stream,
                    f,
                    name=uri,
                    version=new_version(),
                    provider=self.provider,
                    chunk_size=self.chunk_size,
                    finish=finish,
                    digests=digests,
                )
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
            raise ConflictError(
                f"cannot write {uri}: a key on its path is both an object and a prefix here",
                field="uri",
            ) from e
        except OSError:  # a full disk, permissions
            metrics.record_object_store_error("io")
            raise
        return self._info(uri, env, path.stat().st_mtime)

    def get_file(self, uri: str, path: Path) -> ObjectInfo:
        with self._open(uri) as src:
            mtime = os.fstat(src.fileno()).st_mtime
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as dst:
                env = envelope.decrypt_stream(src, dst, name=uri, provider=self.provider)
        return self._info(uri, env, mtime)

    def get_bytes(self, uri: str) -> bytes:
        buf = io.BytesIO()
        with self._open(uri) as src:
            envelope.decrypt_stream(src, buf, name=uri, provider=self.provider)
        return buf.getvalue()

    def head(self, uri: str) -> ObjectInfo:
        with self._open(uri) as src:
            st = os.fstat(src.fileno())
            env = envelope.read_info(src, name=uri, provider=self.provider, total=st.st_size)
        return self._info(uri, env, st.st_mtime)

    def get_range(self, uri: str, start: int, length: int, dst: BinaryIO) -> ObjectInfo:
        """Only the records that hold the range are read and decrypted, each authenticated."""
        with self._open(uri) as src:
            st = os.fstat(src.fileno())
            env = envelope.decrypt_range(
                src, dst, name=uri, provider=self.provider, total=st.st_size, start=start,
                length=length,
            )  # fmt: skip
        return self._info(uri, env, st.st_mtime)

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        bucket, prefix = parse_prefix_uri(prefix_uri)
        base = self.root / bucket
        # Walk only below the prefix's directory part.
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        found = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(base).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                reserved = name.startswith(TEMP_PREFIX) or key == BUCKET_MARKER
                if not reserved and key.startswith(prefix):
                    found.append(key)
        return [self.head(join_uri(bucket, key)) for key in sorted(found)]

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        try:
            with self.path_lock(path):
                path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise NotFoundError(f"object {uri} does not exist", field="uri") from e
        except OSError:
            metrics.record_object_store_error("io")
            raise
        fsync_dir(path.parent)

    # --- buckets ---------------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        check_bucket(bucket)
        return self.root / bucket

    def list_buckets(self) -> builtins.list[BucketInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and is_bucket_name(entry.name):
                created, account = self._marker(Path(entry.path))
                found.append(BucketInfo(entry.name, created, account))
        return found

    @staticmethod
    def _marker(directory: Path) -> tuple[datetime, str]:
        try:
            created, account = read_marker((directory / BUCKET_MARKER).read_bytes())
        except OSError:  # made by a put, not created: the server's, since its directory's time
            created, account = None, ROOT
        if created is None:
            created = datetime.fromtimestamp(directory.stat().st_mtime, tz=UTC)
        return created, account

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(bucket).is_dir()

    def bucket_owner(self, bucket: str) -> str | None:
        directory = self._bucket_dir(bucket)
        try:
            body = (directory / BUCKET_MARKER).read_bytes()
        except OSError:
            return ROOT if directory.is_dir() else None
        return read_marker(body)[1]

    def create_bucket(self, bucket: str, account: str = ROOT) -> bool:
        directory = self._bucket_dir(bucket)
        if directory.exists():
            return False
        # Made aside with its marker, then renamed into place over the empty directory that
        # claims the name: the bucket is seen without its owner only while it is empty.
        self.root.mkdir(parents=True, exist_ok=True)
        aside = self.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        aside.mkdir()
        try:
            with atomic_file(aside / BUCKET_MARKER) as f:
                f.write(marker_body(datetime.now(UTC), account))
            try:
                directory.mkdir()
            except FileExistsError:
                return False
            try:
                os.rename(aside, directory)
            except OSError:  # a put raced into the empty directory: the bucket is its
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                (aside / BUCKET_MARKER).unlink()
            with contextlib.suppress(FileNotFoundError, OSError):
                aside.rmdir()
        fsync_dir(self.root)
        return True

    def delete_bucket(self, bucket: str) -> None:
        directory = self._bucket_dir(bucket)
        if not directory.is_dir():
            raise NotFoundError(f"bucket {bucket} does not exist", field="bucket")
        for _dirpath, _dirs, files in os.walk(directory):
            for name in files:
                if not name.startswith(TEMP_PREFIX) and name != BUCKET_MARKER:
                    raise ConflictError(f"bucket {bucket} is not empty", field="bucket")
        (directory / BUCKET_MARKER).unlink(missing_ok=True)
        for dirpath, _dirs, _files in os.walk(directory, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError as e:  # a put raced in: leave what it wrote
                raise ConflictError(f"bucket {bucket} is not empty", field="bucket") from e
        fsync_dir(self.root)

    def scratch(self, name: str) -> FileObjectStore:
        # A leading dot is never a bucket name: nothing here is listed as a bucket.
        return FileObjectStore(
            self.root / f".orch-{name}", self.provider, chunk_size=self.chunk_size,
            lock_dir=self.lock_dir,
        )  # fmt: skip


def open_object_store(
    url: str,
    provider: KeyProvider,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str = "us-east-1",
    chunk_size: int = envelope.DEFAULT_CHUNK_SIZE,
) -> ObjectStore:
    """``file:///abs/dir`` or ``s3://backing-bucket[/prefix]`` (setting ORCH_OBJECTS__URL)."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        path = Path(unquote(parts.path))
        if path.is_absolute() and not parts.query and not parts.fragment:
            return FileObjectStore(path, provider, chunk_size=chunk_size)
    if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
        check_bucket(parts.netloc, uri=url, form="s3://backing-bucket[/prefix]")
        from orchestrator.objects.s3 import S3ObjectStore

        return S3ObjectStore(
            parts.netloc,
            parts.path.strip("/"),
            provider,
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            chunk_size=chunk_size,
        )
    raise ValidationError(
        f"object store URL {url!r} is not supported (setting ORCH_OBJECTS__URL); use "
        "file:///absolute/dir or s3://backing-bucket[/prefix]",
        field="ORCH_OBJECTS__URL",
    )
