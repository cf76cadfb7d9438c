"""The Vault Transit key provider against a real OpenBao dev server (``bao``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from orchestrator.errors import (
    IntegrityError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.objects import FileObjectStore, KeyProvider
from orchestrator.objects.providers import KeyProviderConfig, open_key_provider, with_key
from orchestrator.objects.vault import VaultTransitKeyProvider
from tests.kms.conftest import Bao, free_port

pytestmark = pytest.mark.vault
CHUNK = 64 << 10


def _name(bao: Bao, *options: str) -> str:
    name = f"k-{uuid.uuid4().hex[:10]}"
    bao.create_key(name, *options)
    return name


def _provider(bao: Bao, default: str | None) -> KeyProvider:
    config = KeyProviderConfig(
        kind="vault",
        keyring_path="unused",
        default_key=default,
        vault_addr=bao.addr,
        vault_token_file=str(bao.token_file),
    )
    return open_key_provider(config)


def test_wrap_unwrap_under_default_and_named_keys(bao: Bao) -> None:
    default, other = _name(bao), _name(bao)
    p = _provider(bao, default)
    assert isinstance(p, VaultTransitKeyProvider) and isinstance(p, KeyProvider)
    assert p.active_key_id == f"{default}:v1"
    data_key = os.urandom(32)
    key_id, wrapped = p.wrap(data_key, b"s3://b/k\x00v1")
    assert key_id == f"{default}:v1" and wrapped.startswith(b"vault:v1:")
    assert p.unwrap(key_id, wrapped, b"s3://b/k\x00v1") == data_key
    key_id, wrapped = p.wrap(data_key, b"aad", key=f"alias/{other}")
    assert key_id == f"{other}:v1"
    assert p.unwrap(key_id, wrapped, b"aad") == data_key
    assert p.check_key(other) == other == p.check_key(f"transit/keys/{other}")


def test_wrong_aad_or_tampering_is_an_integrity_error(bao: Bao) -> None:
    p = _provider(bao, _name(bao))
    key_id, wrapped = p.wrap(os.urandom(32), b"s3://b/k")
    with pytest.raises(IntegrityError, match="does not authenticate"):
        p.unwrap(key_id, wrapped, b"s3://b/other")
    tampered = bytearray(wrapped)
    tampered[-3] = ord("A") if tampered[-3] != ord("A") else ord("B")
    with pytest.raises(IntegrityError):
        p.unwrap(key_id, bytes(tampered), b"s3://b/k")
    with pytest.raises(IntegrityError, match="not a Transit ciphertext"):
        p.unwrap(key_id, b"\xff garbage", b"s3://b/k")


def test_unknown_or_unsuitable_keys_name_kms_key_id(bao: Bao) -> None:
    p = _provider(bao, _name(bao))
    with pytest.raises(ValidationError, match="bao write -f transit/keys/NAME") as e:
        p.check_key("nope-" + uuid.uuid4().hex)
    assert e.value.field == "KmsKeyId"
    with pytest.raises(ValidationError, match="not a Transit key name"):
        p.check_key("a/b")
    for options in (("type=rsa-2048",), ("derived=true",)):
        with pytest.raises(ValidationError, match="non-derived key of type") as e:
            p.check_key(_name(bao, *options))
        assert e.value.field == "KmsKeyId"


def test_rotation_keeps_old_objects_readable_and_new_ones_use_the_new_version(
    bao: Bao, tmp_path: Path
) -> None:
    name = _name(bao)
    p = _provider(bao, name)
    store = FileObjectStore(tmp_path / "o", p, chunk_size=CHUNK)
    assert store.put_bytes("s3://bucket/old", b"old").key_id == f"{name}:v1"
    bao.run("write", "-f", f"transit/keys/{name}/rotate")
    assert p.active_key_id == f"{name}:v2"
    assert store.put_bytes("s3://bucket/new", b"new").key_id == f"{name}:v2"
    assert store.get_bytes("s3://bucket/old") == b"old"
    # A version retired by min_decryption_version is refused by name, never garbage.
    bao.run("write", f"transit/keys/{name}/config", "min_decryption_version=2")
    with pytest.raises(PermissionDeniedError, match="min_decryption_version"):
        store.get_bytes("s3://bucket/old")
    assert store.get_bytes("s3://bucket/new") == b"new"


def test_a_deleted_key_is_a_clear_error(bao: Bao, tmp_path: Path) -> None:
    name = _name(bao)
    store = FileObjectStore(tmp_path / "o", _provider(bao, name), chunk_size=CHUNK)
    store.put_bytes("s3://bucket/k", b"secret")
    bao.run("write", f"transit/keys/{name}/config", "deletion_allowed=true")
    bao.run("delete", f"transit/keys/{name}")
    with pytest.raises(IntegrityError, match="cannot be found: Transit key"):
        store.get_bytes("s3://bucket/k")


def test_round_trip_through_the_object_store_with_a_chosen_key(bao: Bao, tmp_path: Path) -> None:
    default, chosen = _name(bao), _name(bao)
    provider = _provider(bao, default)
    data = os.urandom(2 * CHUNK + 11)
    plain = FileObjectStore(tmp_path / "o", provider, chunk_size=CHUNK)
    keyed = FileObjectStore(tmp_path / "o", with_key(provider, chosen), chunk_size=CHUNK)
    assert plain.put_bytes("s3://bucket/a", data).key_id == f"{default}:v1"
    assert keyed.put_bytes("s3://bucket/b", data).key_id == f"{chosen}:v1"
    fresh = FileObjectStore(tmp_path / "o", _provider(bao, default), chunk_size=CHUNK)
    assert fresh.get_bytes("s3://bucket/a") == data == fresh.get_bytes("s3://bucket/b")


def test_a_bad_token_or_no_server_is_refused_clearly(bao: Bao, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("not-a-token")
    p = VaultTransitKeyProvider(_name(bao), addr=bao.addr, token_file=token)
    with pytest.raises(PermissionDeniedError, match="check the token"):
        p.wrap(os.urandom(32), b"aad")
    with pytest.raises(ValidationError) as e:
        VaultTransitKeyProvider("k", addr=bao.addr, token_file=tmp_path / "missing")
    assert e.value.field == "ORCH_OBJECTS__VAULT_TOKEN_FILE"
    down = VaultTransitKeyProvider(
        "k", addr=f"http://127.0.0.1:{free_port()}", token_file=bao.token_file
    )
    with pytest.raises(UnavailableError, match="cannot reach Vault Transit"):
        down.wrap(os.urandom(32), b"aad")
