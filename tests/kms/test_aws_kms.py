"""The AWS KMS key provider against moto's KMS server over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import (
    IntegrityError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.objects import FileObjectStore, KeyProvider
from orchestrator.objects.aws_kms import AwsKmsKeyProvider
from orchestrator.objects.providers import KeyProviderConfig, open_key_provider, with_key
from tests.kms.conftest import free_port, kms_client

CHUNK = 64 << 10


@pytest.fixture
def kms(kms_endpoint: str) -> Any:
    return kms_client(kms_endpoint)


def _key(kms: Any, alias: str | None = None) -> str:
    arn = str(kms.create_key(Description="orchestrator test")["KeyMetadata"]["Arn"])
    if alias is not None:
        kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=arn)
    return arn


def _provider(kms: Any, default: str | None) -> AwsKmsKeyProvider:
    return AwsKmsKeyProvider(default, client=kms)


def test_wrap_unwrap_under_default_and_named_keys(kms: Any) -> None:
    default = _key(kms)
    alias = f"a-{uuid.uuid4().hex[:8]}"
    other = _key(kms, alias)
    p = _provider(kms, default)
    assert isinstance(p, KeyProvider)
    assert p.active_key_id == default
    data_key = os.urandom(32)
    key_id, wrapped = p.wrap(data_key, b"s3://b/k\x00v1")
    assert key_id == default and data_key not in wrapped
    assert p.unwrap(key_id, wrapped, b"s3://b/k\x00v1") == data_key
    key_id, wrapped = p.wrap(data_key, b"aad", key=f"alias/{alias}")
    assert key_id == other  # the header holds the key's ARN, whatever form named it
    assert p.unwrap(key_id, wrapped, b"aad") == data_key
    assert p.check_key(f"alias/{alias}") == other == p.check_key(other.rsplit("/", 1)[1])


def test_wrong_aad_or_tampering_is_an_integrity_error(kms: Any) -> None:
    p = _provider(kms, _key(kms))
    key_id, wrapped = p.wrap(os.urandom(32), b"s3://b/k")
    with pytest.raises(IntegrityError):
        p.unwrap(key_id, wrapped, b"s3://b/other")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(IntegrityError):
        p.unwrap(key_id, bytes(tampered), b"s3://b/k")


def test_unknown_key_names_kms_key_id_and_how_to_create_one(kms: Any) -> None:
    p = _provider(kms, _key(kms))
    for bad in ("alias/nope", str(uuid.uuid4())):
        with pytest.raises(ValidationError, match="aws kms create-key") as e:
            p.check_key(bad)
        assert e.value.field == "KmsKeyId"
        with pytest.raises(ValidationError):
            p.wrap(os.urandom(32), b"aad", key=bad)


def test_no_default_key_is_refused_naming_the_setting(kms: Any) -> None:
    p = _provider(kms, None)
    with pytest.raises(ValidationError) as e:
        p.wrap(os.urandom(32), b"aad")
    assert e.value.field == "ORCH_OBJECTS__KMS_KEY_ID"


def test_a_disabled_key_is_refused_at_check(kms: Any) -> None:
    arn = _key(kms)
    kms.disable_key(KeyId=arn.rsplit("/", 1)[1])  # moto's state changes take the bare id
    with pytest.raises(ValidationError, match="state Disabled") as e:
        _provider(kms, arn).check_key(arn)
    assert e.value.field == "KmsKeyId"


@pytest.mark.parametrize(
    ("code", "error", "said"),
    [
        ("DisabledException", PermissionDeniedError, "is disabled; enable it"),
        ("KMSInvalidStateException", PermissionDeniedError, "pending deletion"),
        ("NotFoundException", IntegrityError, "cannot be found: KMS key .* was deleted"),
        ("AccessDeniedException", PermissionDeniedError, "refused the use of key"),
    ],
)
def test_a_key_kms_will_not_use_on_read_is_a_clear_error(
    kms: Any, tmp_path: Path, code: str, error: type[Exception], said: str
) -> None:
    """What real KMS answers for a disabled, pending-deletion or deleted key (moto decrypts
    whatever the state), given by a stub on the same client: never garbage."""
    from botocore.stub import Stubber

    arn = _key(kms)
    store = FileObjectStore(tmp_path / "o", _provider(kms, arn), chunk_size=CHUNK)
    store.put_bytes("s3://bucket/k", b"secret")
    with Stubber(kms) as stub:
        stub.add_client_error("decrypt", service_error_code=code, service_message="no")
        with pytest.raises(error, match=said):
            store.get_bytes("s3://bucket/k")
    assert store.get_bytes("s3://bucket/k") == b"secret"


def test_round_trip_through_the_object_store_built_from_settings(
    kms_endpoint: str, kms: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    default, chosen = _key(kms), _key(kms, f"c-{uuid.uuid4().hex[:8]}")
    config = KeyProviderConfig(
        kind="aws-kms",
        keyring_path=str(tmp_path / "unused.json"),
        default_key=default,
        aws_endpoint_url=kms_endpoint,
    )
    provider = open_key_provider(config)
    store = FileObjectStore(tmp_path / "o", provider, chunk_size=CHUNK)
    data = os.urandom(3 * CHUNK + 7)
    assert store.put_bytes("s3://bucket/a", data).key_id == default
    keyed = FileObjectStore(tmp_path / "o", with_key(provider, chosen), chunk_size=CHUNK)
    assert keyed.put_bytes("s3://bucket/b", data).key_id == chosen
    # A fresh provider reads both: the key is in each object's header.
    fresh = FileObjectStore(tmp_path / "o", open_key_provider(config), chunk_size=CHUNK)
    assert fresh.get_bytes("s3://bucket/a") == data == fresh.get_bytes("s3://bucket/b")
    assert fresh.head("s3://bucket/b").key_id == chosen
    assert not (tmp_path / "unused.json").exists()  # no local keyring was made


def test_an_unreachable_kms_is_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    p = AwsKmsKeyProvider("alias/x", endpoint_url=f"http://127.0.0.1:{free_port()}")
    p._client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(UnavailableError, match="cannot reach AWS KMS"):
        p.wrap(os.urandom(32), b"aad")
