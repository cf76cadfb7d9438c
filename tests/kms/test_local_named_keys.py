"""The local keyring's named keys: what a KmsKeyId names when the provider is local."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, IntegrityError, ValidationError
from orchestrator.objects import FileObjectStore, KeyProvider, LocalKeyring
from orchestrator.objects.providers import KeyChoice, with_key

CHUNK = 64 << 10


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring(tmp_path / "keys" / "keyring.json")


def test_create_and_list_named_keys_beside_an_unchanged_keyring(ring: LocalKeyring) -> None:
    default = ring.active_key_id
    before = json.loads(ring.path.read_text())
    key = ring.create_key("team-a")
    other = ring.create_key()
    assert key.key_id.startswith("mk-") and key.alias == "team-a" and other.alias is None
    assert [k.key_id for k in ring.list_keys()] == [key.key_id, other.key_id]
    # The keyring's own file is as it was: readable by any version that knows only it.
    assert json.loads(ring.path.read_text()) == before and ring.active_key_id == default
    named = ring.path.with_name("keyring-named.json")
    assert stat.S_IMODE(named.stat().st_mode) == 0o600
    assert sorted(json.loads(named.read_text())["keys"]) == sorted([key.key_id, other.key_id])
    # Another process's view reads the same keys.
    again = LocalKeyring(ring.path)
    assert again.check_key("alias/team-a") == key.key_id


def test_check_key_resolves_every_kms_key_id_form(ring: LocalKeyring) -> None:
    key = ring.create_key("team-a")
    for form in (
        key.key_id,
        "alias/team-a",
        f"arn:aws:kms:us-east-1:000000000000:key/{key.key_id}",
        "arn:aws:kms:eu-west-1:111122223333:alias/team-a",
    ):
        assert ring.check_key(form) == key.key_id
    assert ring.check_key("alias/default") == "default" == ring.check_key("default")


@pytest.mark.parametrize(
    "bad", ["alias/nope", "mk-00000000", "1234abcd-12ab-34cd-56ef-1234567890ab"]
)
def test_unknown_key_is_a_validation_error_naming_kms_key_id(ring: LocalKeyring, bad: str) -> None:
    with pytest.raises(ValidationError, match="orch kms create-key") as e:
        ring.check_key(bad)
    assert e.value.field == "KmsKeyId" and "KmsKeyId" in e.value.message
    with pytest.raises(ValidationError):
        ring.wrap(os.urandom(32), b"aad", key=bad)


@pytest.mark.parametrize("alias", ["", "alias/", "aws/x", "alias/aws/x", "default", "a b", "é"])
def test_bad_aliases_are_refused(ring: LocalKeyring, alias: str) -> None:
    with pytest.raises(ValidationError) as e:
        ring.create_key(alias)
    assert e.value.field == "Alias"


def test_an_alias_names_one_key(ring: LocalKeyring) -> None:
    ring.create_key("a")
    with pytest.raises(ConflictError):
        ring.create_key("alias/a")


def test_wrap_under_a_named_key_and_bad_aad_fails(ring: LocalKeyring) -> None:
    key = ring.create_key("team-a")
    data_key = os.urandom(32)
    key_id, wrapped = ring.wrap(data_key, b"s3://b/k", key="alias/team-a")
    assert key_id == key.key_id
    assert ring.unwrap(key_id, wrapped, b"s3://b/k") == data_key
    with pytest.raises(IntegrityError):
        ring.unwrap(key_id, wrapped, b"s3://b/other")
    # A data key wrapped by one named key does not open as another's.
    second = ring.create_key("team-b")
    with pytest.raises(IntegrityError):
        ring.unwrap(second.key_id, wrapped, b"s3://b/k")
    # The default key is still the default, and alias/default names it.
    assert ring.wrap(data_key, b"x")[0] == ring.active_key_id
    assert ring.wrap(data_key, b"x", key="alias/default")[0] == ring.active_key_id


def test_store_writes_under_the_chosen_key_and_reads_need_no_choice(
    ring: LocalKeyring, tmp_path: Path
) -> None:
    key = ring.create_key("team-a")
    chosen = with_key(ring, "alias/team-a")
    assert isinstance(chosen, KeyChoice) and isinstance(chosen, KeyProvider)
    writer = FileObjectStore(tmp_path / "objects", chosen, chunk_size=CHUNK)
    info = writer.put_bytes("s3://bucket/model.tar.gz", b"m" * (CHUNK + 3))
    assert info.key_id == key.key_id
    reader = FileObjectStore(tmp_path / "objects", LocalKeyring(ring.path), chunk_size=CHUNK)
    assert reader.get_bytes("s3://bucket/model.tar.gz") == b"m" * (CHUNK + 3)
    assert reader.head("s3://bucket/model.tar.gz").key_id == key.key_id


def test_a_lost_named_key_is_a_clear_error_not_garbage(ring: LocalKeyring, tmp_path: Path) -> None:
    ring.create_key("gone")
    store = FileObjectStore(tmp_path / "objects", with_key(ring, "alias/gone"), chunk_size=CHUNK)
    store.put_bytes("s3://bucket/k", b"secret")
    ring.path.with_name("keyring-named.json").unlink()
    fresh = FileObjectStore(tmp_path / "objects", LocalKeyring(ring.path), chunk_size=CHUNK)
    with pytest.raises(IntegrityError, match="cannot be found"):
        fresh.get_bytes("s3://bucket/k")


def test_concurrent_creates_keep_every_key(ring: LocalKeyring) -> None:
    rings = [LocalKeyring(ring.path) for _ in range(8)]
    made: list[str] = []
    threads = [
        threading.Thread(target=lambda r=r: made.append(r.create_key().key_id)) for r in rings
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(k.key_id for k in ring.list_keys()) == sorted(made)
