from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from orchestrator.errors import IntegrityError, NotFoundError, ValidationError
from orchestrator.objects import KeyProvider, LocalKeyring


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keyring_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "keys" / "keyring.json"
    ring = LocalKeyring(path)
    assert isinstance(ring, KeyProvider)
    key_id = ring.active_key_id
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    doc = json.loads(path.read_text())
    assert doc["active"] == key_id and list(doc["keys"]) == [key_id]
    again = LocalKeyring(path)
    assert again.active_key_id == key_id
    assert not [p for p in path.parent.iterdir() if p.name != "keyring.json"]  # no temp left


def test_wrap_unwrap_binds_aad(keyring: LocalKeyring) -> None:
    data_key = os.urandom(32)
    key_id, wrapped = keyring.wrap(data_key, b"s3://b/k")
    assert keyring.unwrap(key_id, wrapped, b"s3://b/k") == data_key
    with pytest.raises(IntegrityError):
        keyring.unwrap(key_id, wrapped, b"s3://b/other")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(IntegrityError):
        keyring.unwrap(key_id, bytes(tampered), b"s3://b/k")


def test_rotation_keeps_old_keys(keyring: LocalKeyring) -> None:
    old_id, wrapped = keyring.wrap(b"k" * 32, b"aad")
    new_id = keyring.rotate()
    assert new_id != old_id and keyring.active_key_id == new_id
    assert keyring.wrap(b"k" * 32, b"aad")[0] == new_id
    assert keyring.unwrap(old_id, wrapped, b"aad") == b"k" * 32
    # Another process's view picks the rotation up from the file.
    assert LocalKeyring(keyring.path).unwrap(old_id, wrapped, b"aad") == b"k" * 32


def test_unknown_key_id_names_it_and_the_keyring(keyring: LocalKeyring) -> None:
    with pytest.raises(NotFoundError) as err:
        keyring.unwrap("k-missing", b"x" * 60, b"aad")
    assert "k-missing" in err.value.message and str(keyring.path) in err.value.message


def test_loose_permissions_are_tightened(keyring: LocalKeyring) -> None:
    keyring.active_key_id  # noqa: B018 - creates the file
    os.chmod(keyring.path, 0o644)
    LocalKeyring(keyring.path).active_key_id  # noqa: B018
    assert _mode(keyring.path) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"active": "a", "keys": {}}',
        '{"active": "a", "keys": {"a": "c2hvcnQ="}}',
        '{"keys": {}}',
    ],
)
def test_malformed_keyring_is_a_validation_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(content)
    with pytest.raises(ValidationError, match="keyring file"):
        LocalKeyring(path).active_key_id  # noqa: B018
