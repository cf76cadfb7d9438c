"""Checkpoints uploaded while a job runs (``training.checkpoints``): real files, the real
encrypted file store in a temp directory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from core_builders import training_spec

from orchestrator.errors import UnavailableError
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.training.checkpoints import CheckpointSync, Watcher
from orchestrator.training.contract import Host, MlPaths, user_environment
from orchestrator.training.transfer import TrainingFailure, Transfer

URI = "s3://bkt/ckpt"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return open_object_store((tmp_path / "store").as_uri(), LocalKeyring(tmp_path / "k.json"))


@pytest.fixture
def local(tmp_path: Path) -> Path:
    d = tmp_path / "ml" / "checkpoints"
    d.mkdir(parents=True)
    return d


class Counting:
    """The store, counting the puts (to see what is skipped)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.puts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def put_stream(self, uri: str, stream: Any) -> Any:
        self.puts.append(uri.removeprefix(URI + "/"))
        return self.store.put_stream(uri, stream)


def syncer(local: Path, store: Any, said: list[str] | None = None) -> CheckpointSync:
    return CheckpointSync(local, URI, lambda: store, say=[].append if said is None else said.append)


def test_a_file_is_uploaded_once_it_is_unchanged_for_a_whole_pass(
    local: Path, store: ObjectStore
) -> None:
    counting = Counting(store)
    sync = syncer(local, counting)
    (local / "epoch-1.pt").write_bytes(b"one")
    assert sync.sync().uploaded == []  # seen once: it may still be being written
    assert sync.sync().uploaded == ["epoch-1.pt"]
    assert store.get_bytes(f"{URI}/epoch-1.pt") == b"one"
    # Written to again between two passes: waits for it to settle again.
    with open(local / "epoch-1.pt", "ab") as f:
        f.write(b"+more")
    assert sync.sync().uploaded == []
    with open(local / "epoch-1.pt", "ab") as f:
        f.write(b"!")
    assert sync.sync().uploaded == []
    assert sync.sync().uploaded == ["epoch-1.pt"]
    assert store.get_bytes(f"{URI}/epoch-1.pt") == b"one+more!"
    assert counting.puts == ["epoch-1.pt", "epoch-1.pt"]


def test_what_is_uploaded_is_skipped_and_nested_directories_keep_their_paths(
    local: Path, store: ObjectStore
) -> None:
    counting = Counting(store)
    sync = syncer(local, counting)
    (local / "a.pt").write_bytes(b"a")
    (local / "sub" / "deep").mkdir(parents=True)
    (local / "sub" / "deep" / "b.pt").write_bytes(b"b")
    sync.sync()
    assert sorted(sync.sync().uploaded) == ["a.pt", "sub/deep/b.pt"]
    for _ in range(3):
        assert sync.sync().uploaded == []
    assert sync.sync(final=True).uploaded == []
    assert sorted(counting.puts) == ["a.pt", "sub/deep/b.pt"]
    assert [o.uri for o in store.list(URI + "/")] == [f"{URI}/a.pt", f"{URI}/sub/deep/b.pt"]


def test_the_final_sync_uploads_what_has_not_settled_yet(local: Path, store: ObjectStore) -> None:
    sync = syncer(local, store)
    (local / "last.pt").write_bytes(b"written just before the exit")
    assert sync.sync(final=True).uploaded == ["last.pt"]
    assert store.get_bytes(f"{URI}/last.pt") == b"written just before the exit"


def test_checkpoints_already_in_the_store_are_recognised_by_content(
    local: Path, store: ObjectStore
) -> None:
    """A retried attempt downloaded them: the same bytes are not uploaded again, a file
    of the same name with other bytes is."""
    store.put_bytes(f"{URI}/kept.pt", b"same")
    store.put_bytes(f"{URI}/changed.pt", b"old!")
    (local / "kept.pt").write_bytes(b"same")
    (local / "changed.pt").write_bytes(b"new!")  # same size, other content
    counting = Counting(store)
    sync = syncer(local, counting)
    sync.sync(final=True)
    assert counting.puts == ["changed.pt"]
    assert store.get_bytes(f"{URI}/changed.pt") == b"new!"


def test_deletes_are_not_mirrored(local: Path, store: ObjectStore) -> None:
    sync = syncer(local, store)
    (local / "epoch-1.pt").write_bytes(b"1")
    sync.sync(final=True)
    (local / "epoch-1.pt").unlink()
    sync.sync(final=True)
    assert store.exists(f"{URI}/epoch-1.pt")


def test_links_and_store_temp_names_are_not_uploaded(local: Path, store: ObjectStore) -> None:
    (local.parent / "outside.txt").write_bytes(b"secret")
    os.symlink(local.parent / "outside.txt", local / "link.pt")
    (local / ".orch-tmp-x").write_bytes(b"t")
    (local / "real.pt").write_bytes(b"r")
    assert syncer(local, store).sync(final=True).uploaded == ["real.pt"]


def test_a_failed_upload_is_reported_and_tried_again(
    local: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = syncer(local, store)
    (local / "a.pt").write_bytes(b"a")
    real = store.put_stream

    def broken(*_args: Any) -> Any:
        raise UnavailableError("the object store did not answer")

    monkeypatch.setattr(store, "put_stream", broken)
    report = sync.sync(final=True)
    assert report.uploaded == []
    assert report.errors == ["a.pt: the object store did not answer"]
    monkeypatch.setattr(store, "put_stream", real)
    assert sync.sync(final=True).uploaded == ["a.pt"]


def test_a_missing_directory_is_nothing_to_sync(tmp_path: Path, store: ObjectStore) -> None:
    assert syncer(tmp_path / "none", store).sync(final=True).uploaded == []


def test_the_watcher_uploads_while_running_and_syncs_at_the_end(
    local: Path, store: ObjectStore
) -> None:
    said: list[str] = []
    watcher = Watcher(syncer(local, store, said), interval=0.05)
    watcher.start()
    (local / "early.pt").write_bytes(b"e")
    deadline = time.monotonic() + 10
    while not store.exists(f"{URI}/early.pt"):
        assert time.monotonic() < deadline, "the watcher never uploaded the closed file"
        time.sleep(0.02)
    (local / "late.pt").write_bytes(b"l")
    assert watcher.finish() == []
    assert store.get_bytes(f"{URI}/late.pt") == b"l"
    assert any("checkpoints uploaded: early.pt" in s for s in said)


def test_a_local_path_is_the_checkpoint_directory_everywhere(
    tmp_path: Path, store: ObjectStore
) -> None:
    spec = training_spec(CheckpointConfig={"S3Uri": URI, "LocalPath": "/opt/ml/state/ckpt"})
    store.put_bytes(f"{URI}/saved.pt", b"s")
    t = Transfer(spec, MlPaths(tmp_path / "ml"), lambda: store, output_uri="s3://bkt/o/m.tgz")
    t.download()
    assert (tmp_path / "ml/state/ckpt/saved.pt").read_bytes() == b"s"
    env = user_environment(MlPaths(tmp_path / "ml"), spec, {}, host=Host())
    assert env["SM_CHECKPOINT_DIR"] == str(tmp_path / "ml/state/ckpt")
    (tmp_path / "ml/state/ckpt/new.pt").write_bytes(b"n")
    t.upload()
    assert store.get_bytes(f"{URI}/new.pt") == b"n"


def test_a_checkpoint_that_cannot_be_uploaded_fails_the_upload(
    tmp_path: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = training_spec(CheckpointConfig={"S3Uri": URI})
    t = Transfer(spec, MlPaths(tmp_path / "ml"), lambda: store, output_uri="s3://bkt/o/m.tgz")
    t.paths.checkpoint_dir.mkdir(parents=True)
    (t.paths.checkpoint_dir / "a.pt").write_bytes(b"a")
    sync = t.checkpoints
    assert sync is not None
    monkeypatch.setattr(
        sync, "_upload", lambda *_a, **_k: (_ for _ in ()).throw(UnavailableError("store down"))
    )
    with pytest.raises(TrainingFailure, match=r"upload failed: checkpoints: a\.pt: store down"):
        t.upload()


def test_a_throttled_read_keeps_to_its_rate() -> None:
    import io

    from orchestrator.training.checkpoints import Throttled

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    raw = Throttled(io.BytesIO(b"x" * 300), 100.0, clock=lambda: now[0], sleep=sleep)
    buf = bytearray(100)
    assert [raw.readinto(buf) for _ in range(4)] == [100, 100, 100, 0]
    assert slept == [1.0, 1.0, 1.0]  # 100 bytes a second: a second after each 100


def test_uploads_while_running_are_throttled_and_the_final_sync_is_not(
    local: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.training import checkpoints

    made: list[float] = []
    real = checkpoints.Throttled

    def spy(f: Any, rate: float, **kw: Any) -> Any:
        made.append(rate)
        return real(f, rate, **kw)

    monkeypatch.setattr(checkpoints, "Throttled", spy)
    sync = CheckpointSync(local, URI, lambda: store, rate=1e9)
    (local / "a.pt").write_bytes(b"a")
    sync.sync()
    assert sync.sync().uploaded == ["a.pt"] and made == [1e9]
    (local / "b.pt").write_bytes(b"b")
    assert sync.sync(final=True).uploaded == ["b.pt"] and made == [1e9]
    assert store.get_bytes(f"{URI}/a.pt") == b"a"


def test_downloaded_checkpoints_are_not_uploaded_again_nor_hashed(
    tmp_path: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.training import checkpoints

    store.put_bytes(f"{URI}/epoch-1.pt", b"1")
    spec = training_spec(CheckpointConfig={"S3Uri": URI})
    counting = Counting(store)
    t = Transfer(spec, MlPaths(tmp_path / "ml"), lambda: counting, output_uri="s3://bkt/o/m.tgz")
    t.download()
    monkeypatch.setattr(checkpoints, "_sha256", lambda _p: pytest.fail("hashed"))
    sync = t.checkpoints
    assert sync is not None
    assert sync.sync(final=True).uploaded == []
    assert counting.puts == []
