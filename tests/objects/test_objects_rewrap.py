"""Master key rotation and re-wrap over the file driver: new writes use the new version, a
pass moves every object (header only for format 3, resealed for older formats), readers
never fail and writers never lose data while it runs, a killed pass resumes, a version is
retired only when unused, and reading under a retired version is a clear error."""

from __future__ import annotations

import functools
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, KeyRetiredError, NotFoundError, ValidationError
from orchestrator.objects import FileObjectStore, LocalKeyring, envelope
from orchestrator.objects.rewrap import MasterKeys, Rewrapper, RewrapProgress, RewrapService
from orchestrator.objects.store import TEMP_PREFIX

CHUNK = 64 << 10


def _header(path: Path, uri: str) -> envelope.KeyHeader:
    with open(path, "rb") as f:
        return envelope.read_key_header(f, uri)


def _fill(store: FileObjectStore, n: int, prefix: str = "obj") -> dict[str, bytes]:
    data = {
        f"s3://bucket/{prefix}/{i:04d}": f"{prefix}-{i}".encode() * (i % 7 + 1) for i in range(n)
    }
    for uri, body in data.items():
        store.put_bytes(uri, body)
    return data


@pytest.fixture
def keys(store: FileObjectStore, keyring: LocalKeyring, tmp_path: Path) -> MasterKeys:
    return MasterKeys(store, keyring, tmp_path / "keys" / "rewrap.json")


def test_rotation_new_writes_use_the_new_version_in_every_process(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    old = store.put_bytes("s3://bucket/before", b"a").key_id
    # Another process's keyring over the same file, already loaded.
    other = FileObjectStore(store.root, LocalKeyring(keyring.path), chunk_size=CHUNK)
    assert other.put_bytes("s3://bucket/other-before", b"b").key_id == old
    new = keys.rotate().key_id
    assert new != old and keyring.active_key_id == new
    assert store.put_bytes("s3://bucket/after", b"c").key_id == new
    assert other.put_bytes("s3://bucket/other-after", b"d").key_id == new
    assert store.get_bytes("s3://bucket/before") == b"a"  # old versions still read
    states = {v.key_id: v.state for v in keyring.key_versions()}
    assert states == {old: "enabled", new: "active"}
    assert keys.rewrapper.progress().pending  # the rotation asked for a pass


def test_a_pass_moves_every_object_header_only(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    data = _fill(store, 30)
    scratch = store.scratch("uploads")
    scratch.put_bytes("s3://parts/u1/1", b"part one")
    old = keyring.active_key_id
    path = store.root / "bucket" / "obj" / "0005"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    header = len(_header(path, "s3://bucket/obj/0005").raw)
    new = keys.rotate().key_id
    assert keys.rewrapper.census() == {old: 31}
    p = keys.rewrapper.run_pass()
    assert (p.state, p.total, p.done, p.rewrapped, p.resealed, p.pending) == (
        "done", 31, 31, 31, 0, False,
    )  # fmt: skip
    assert keys.rewrapper.census() == {new: 31} == p.last_counts
    for uri, body in data.items():
        assert store.get_bytes(uri) == body
        assert store.head(uri).key_id == new
    assert scratch.get_bytes("s3://parts/u1/1") == b"part one"
    after = path.read_bytes()
    # Only the header changed: the records are the same bytes; the object's time stays.
    assert after[header:] == before[header:] and after[:header] != before[:header]
    assert path.stat().st_mtime_ns == mtime
    # A second pass finds nothing to do.
    again = keys.rewrapper.run_pass()
    assert (again.rewrapped, again.current) == (0, 31)


def test_older_formats_are_resealed_keeping_version_and_attributes(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = functools.partial(envelope._encode_header, fmt=envelope.FORMAT_ATTRS)
    monkeypatch.setattr(envelope, "_encode_header", legacy)
    with_attrs = store.put_stream(
        "s3://bucket/v2", io.BytesIO(b"x" * 100_000), finish=lambda n, s: {"etag": s[:8]}
    )
    plain = store.put_bytes("s3://bucket/v1", b"no attributes")
    monkeypatch.undo()
    assert _header(store.root / "bucket/v2", "s3://bucket/v2").fmt == 2
    assert _header(store.root / "bucket/v1", "s3://bucket/v1").fmt == 1
    new = keys.rotate().key_id
    p = keys.rewrapper.run_pass()
    assert (p.resealed, p.rewrapped) == (2, 0)
    v2, v1 = store.head("s3://bucket/v2"), store.head("s3://bucket/v1")
    assert (v2.key_id, v2.version, v2.attrs) == (new, with_attrs.version, with_attrs.attrs)
    assert (v1.key_id, v1.version, v1.attrs) == (new, plain.version, {})
    assert store.get_bytes("s3://bucket/v2") == b"x" * 100_000
    assert store.get_bytes("s3://bucket/v1") == b"no attributes"
    fmt = _header(store.root / "bucket/v2", "s3://bucket/v2").fmt
    assert fmt == envelope.FORMAT_REWRAP


def test_a_writer_or_delete_during_the_rewrap_wins(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    _fill(store, 10)
    keys.rotate()
    rw = keys.rewrapper
    decide = rw.decide
    hit = {"s3://bucket/obj/0003": "write", "s3://bucket/obj/0007": "delete"}
    seen: list[str] = []

    def racing_decide(key_id: str) -> tuple[bool, str | None]:
        # Called between reading an object and replacing it: the worst moment for a writer.
        uri = f"s3://bucket/obj/{len(seen):04d}"
        seen.append(uri)
        if hit.get(uri) == "write":
            store.put_bytes(uri, b"the writer's new data")
        elif hit.get(uri) == "delete":
            store.delete(uri)
        return decide(key_id)

    rw.workers = 1  # one object at a time: the race lands on the object meant
    rw.decide = racing_decide  # type: ignore[method-assign]
    p = rw.run_pass()
    assert (p.raced, p.gone, p.rewrapped, p.pending) == (1, 1, 8, True)
    assert store.get_bytes("s3://bucket/obj/0003") == b"the writer's new data"
    assert not store.exists("s3://bucket/obj/0007")  # not brought back
    rw.decide = decide  # type: ignore[method-assign]
    again = rw.run_pass()
    assert again.pending is False and again.done == 9
    assert set(rw.census()) == {keyring.active_key_id}


def test_concurrent_readers_see_no_failure_and_writers_lose_nothing(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    data = _fill(store, 200)
    uris = sorted(data)
    keys.rotate()
    stop = threading.Event()
    failures: list[str] = []
    reads = [0]
    last_write: dict[str, bytes] = {}

    def reader(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            uri = rnd.choice(uris)
            try:
                body = store.get_bytes(uri)
                if not (body == data[uri] or body.startswith(b"rewritten " + uri.encode())):
                    failures.append(f"{uri}: unexpected content")
                reads[0] += 1
            except Exception as e:
                failures.append(f"{uri}: {e!r}")

    def writer() -> None:
        rnd = random.Random(99)
        n = 0
        while not stop.is_set():
            uri = rnd.choice(uris)
            body = b"rewritten " + uri.encode() + b" #%d" % n
            store.put_bytes(uri, body)
            last_write[uri] = body
            n += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            p = keys.rewrapper.run_pass()
            if not p.pending:
                break
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and reads[0] > 0
    for uri in uris:
        assert store.get_bytes(uri) == last_write.get(uri, data[uri])
    assert set(keys.rewrapper.census()) == {keyring.active_key_id}


class _Killed(Exception):
    pass


def test_a_pass_killed_half_way_resumes_and_finishes(
    store: FileObjectStore, keyring: LocalKeyring, tmp_path: Path
) -> None:
    data = _fill(store, 60)
    state = tmp_path / "keys" / "rewrap.json"
    new = keyring.rotate()

    def die(done: int) -> None:
        if done == 37:
            raise _Killed

    first = Rewrapper(store, keyring, state, checkpoint_every=10, after_object=die)
    first.request()
    with pytest.raises(_Killed):
        first.run_pass()
    saved = RewrapProgress.load(state)
    assert (saved.state, saved.done) == ("running", 30)  # the last checkpoint
    resumed = Rewrapper(store, keyring, state).run_pass()
    assert resumed.state == "done" and resumed.pass_id == saved.pass_id
    # Objects 31..37 were done before the kill, and are found current on the way again.
    assert resumed.done == 60 and resumed.rewrapped + resumed.current >= 30
    assert Rewrapper(store, keyring, state).census() == {new: 60}
    assert all(store.get_bytes(u) == b for u, b in data.items())


def test_a_pass_killed_by_sigkill_resumes(store: FileObjectStore, keyring: LocalKeyring,
                                          tmp_path: Path) -> None:  # fmt: skip
    data = _fill(store, 150)
    state = tmp_path / "keys" / "rewrap.json"
    new = keyring.rotate()
    script = textwrap.dedent(f"""
        from pathlib import Path
        from orchestrator.objects import FileObjectStore, LocalKeyring
        from orchestrator.objects.rewrap import Rewrapper
        kr = LocalKeyring(Path({str(keyring.path)!r}))
        store = FileObjectStore(Path({str(store.root)!r}), kr, chunk_size={CHUNK})
        import time
        def hang(done):  # the kill lands mid-pass however fast the machine is
            if done >= 47:
                time.sleep(3600)
        Rewrapper(
            store, kr, Path({str(state)!r}), rate=100, checkpoint_every=5, after_object=hang
        ).run_pass()
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if state.exists() and json.loads(state.read_text()).get("done", 0) >= 40:
                break
            assert proc.poll() is None, "the pass ended before it was killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    saved = RewrapProgress.load(state)
    assert saved.state == "running" and 40 <= saved.done < 150
    done = Rewrapper(store, keyring, state).run_pass()
    assert done.state == "done" and done.done == 150
    assert Rewrapper(store, keyring, state).census() == {new: 150}
    assert all(store.get_bytes(u) == b for u, b in data.items())
    # A temp file the killed process left is never listed as an object.
    assert all(TEMP_PREFIX not in i.uri for i in store.list("s3://bucket/"))


def test_retire_is_refused_while_in_use_then_allowed(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    _fill(store, 12)
    old = keyring.active_key_id
    with pytest.raises(ConflictError, match="active one; rotate first"):
        keys.retire(old)
    keys.rotate()
    with pytest.raises(ConflictError) as refused:
        keys.retire(old)
    assert f"{old!r} is still in use" in refused.value.message
    assert "12 objects" in refused.value.message and "wait for the re-wrap" in refused.value.message
    keys.rewrapper.run_pass()
    retired = keys.retire(old)
    assert retired.state == "retired" and retired.retired is not None
    assert keys.retire(old).state == "retired"  # again: the same answer
    assert old not in keyring.path.read_text().split('"keys"')[1].split("versions")[0]
    with pytest.raises(NotFoundError, match="not in the keyring"):
        keys.retire("k-0000000000000000")


def test_other_users_block_retirement(store: FileObjectStore, keyring: LocalKeyring,
                                      tmp_path: Path) -> None:  # fmt: skip
    old = keyring.active_key_id
    mk = MasterKeys(store, keyring, tmp_path / "rw.json",
                    other_users=lambda k: {"access keys": 2 if k == old else 0})  # fmt: skip
    mk.rotate()
    with pytest.raises(ConflictError, match="2 access keys"):
        mk.retire(old)


def test_reading_under_a_retired_version_is_a_clear_error(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    store.put_bytes("s3://bucket/stranded", b"secret")
    old = keyring.active_key_id
    keys.rotate()
    keys.provider_retire(old)  # past the in-use check, as a destroyed key would be
    for read in (store.get_bytes, store.head):
        with pytest.raises(KeyRetiredError) as err:
            read("s3://bucket/stranded")
        assert "object s3://bucket/stranded cannot be read" in err.value.message
        assert old in err.value.message and "retired" in err.value.message
    # A keyring loaded afresh says the same (the retirement is in the file).
    fresh = FileObjectStore(store.root, LocalKeyring(keyring.path), chunk_size=CHUNK)
    with pytest.raises(KeyRetiredError):
        fresh.get_bytes("s3://bucket/stranded")
    # The re-wrap cannot move it either: it is counted unreadable, and the pass ends.
    p = keys.rewrapper.run_pass()
    assert p.unreadable == 1 and "retired" in p.errors[0] and not p.pending


def test_rate_limit_paces_the_pass(store: FileObjectStore, keyring: LocalKeyring,
                                   tmp_path: Path) -> None:  # fmt: skip
    _fill(store, 5)
    keyring.rotate()
    slept: list[float] = []
    rw = Rewrapper(store, keyring, tmp_path / "rw.json", rate=10, sleep=slept.append)
    rw.request()
    rw.run_pass()
    # The fake sleep does not pass time: each wait is one more tenth of a second behind.
    assert len(slept) == 5 and 0 < slept[0] <= 0.1
    assert all(0.05 < b - a <= 0.1 for a, b in itertools.pairwise(slept))
    with pytest.raises(ValidationError, match="rate"):
        Rewrapper(store, keyring, tmp_path / "rw.json", rate=0)


def test_the_service_thread_runs_a_pass_after_rotation(
    store: FileObjectStore, keyring: LocalKeyring, keys: MasterKeys
) -> None:
    _fill(store, 8)
    service = keys.service
    assert isinstance(service, RewrapService)
    service.start()
    try:
        new = keys.rotate().key_id
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            p = keys.rewrapper.progress()
            if p.state == "done" and not p.pending:
                break
            time.sleep(0.02)
        assert keys.rewrapper.census() == {new: 8}
    finally:
        service.stop()


def test_malformed_state_and_keyring_versions_are_named(
    store: FileObjectStore, keyring: LocalKeyring, tmp_path: Path
) -> None:
    bad = tmp_path / "rw.json"
    bad.write_text("{nope")
    with pytest.raises(ValidationError, match="re-wrap state file"):
        Rewrapper(store, keyring, bad).progress()
    keyring.active_key_id  # noqa: B018 - creates the file
    doc = json.loads(keyring.path.read_text())
    doc["versions"] = {"x": {"created": "yesterday"}}
    keyring.path.write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="'versions' is malformed"):
        LocalKeyring(keyring.path).key_versions()


def test_one_pass_at_a_time_across_processes(
    store: FileObjectStore, keyring: LocalKeyring, tmp_path: Path
) -> None:
    _fill(store, 3)
    keyring.rotate()
    state = tmp_path / "rw.json"
    first = Rewrapper(store, keyring, state)
    first.request()
    with first._process_lock() as mine:
        assert mine
        # Another process (here: another instance) finds the lock held and runs nothing.
        p = Rewrapper(store, keyring, state).run_pass()
        assert p.state == "idle" and p.pending
    assert first.run_pass().rewrapped == 3


def test_a_rotation_during_a_pass_asks_for_another(
    store: FileObjectStore, keyring: LocalKeyring, tmp_path: Path
) -> None:
    _fill(store, 40)
    keys = MasterKeys(store, keyring, tmp_path / "rw.json")
    keys.rotate()
    newest: list[str] = []

    def rotate_mid_pass(done: int) -> None:
        if done == 20:
            # From the pass's own thread: asking must not wait for the pass.
            newest.append(keys.rotate().key_id)

    keys.rewrapper.after_object = rotate_mid_pass
    p = keys.rewrapper.run_pass()
    assert p.state == "done" and p.pending and keys.rewrapper.wanted()
    keys.rewrapper.after_object = None
    again = keys.rewrapper.run_pass()
    assert not again.pending and keys.rewrapper.census() == {newest[0]: 40}
