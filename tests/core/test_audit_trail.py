"""The audit trail's records, chain, digests and verification, over a real (encrypted) object
store: tampering of every kind is named."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.audit import (
    AuditTrail,
    Call,
    LookupFilter,
    SigningKey,
    is_secret_name,
    load_public,
    redact,
    to_record,
    verify,
)
from orchestrator.audit.record import canonical, record_hash
from orchestrator.errors import ValidationError
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.testing import eventually

BUCKET = "orchestrator-audit"


def _store(root: Path) -> ObjectStore:
    return open_object_store((root / "objects").as_uri(), LocalKeyring(root / "keyring.json"))


def _trail(root: Path, **kw: float) -> AuditTrail:
    key = SigningKey.load_or_create(root / "config" / "audit-signing.key")
    trail = AuditTrail(_store(root), key, bucket=BUCKET, **kw)  # type: ignore[arg-type]
    trail.open()
    return trail


def _call(n: int, **kw: object) -> Call:
    fields: dict[str, object] = {
        "time": time.time(),
        "method": "GET",
        "path": f"/api/v1/training-jobs/job-{n}",
        "status": 200,
        "principal_name": "alice",
        "principal_key_id": "k1",
        "action": "DescribeTrainingJob",
        "resource": f"training-jobs/job-{n}",
        "request_id": f"r{n}",
    }
    fields.update(kw)
    return Call(**fields)  # type: ignore[arg-type]


def _fill(trail: AuditTrail, files: int = 3, per_file: int = 3, *, digest: bool = True) -> None:
    n = 0
    for _ in range(files):
        for _ in range(per_file):
            n += 1
            trail.submit(_call(n))
        trail.flush()
    if digest:
        trail.flush(digest=True)


def _lines(trail: AuditTrail, index: int) -> tuple[str, list[bytes]]:
    key = trail.record_files()[index].key
    return key, trail.read(key).splitlines()


def _rewrite(trail: AuditTrail, key: str, lines: list[bytes]) -> None:
    trail.objects.put_bytes(f"s3://{BUCKET}/{key}", b"\n".join(lines) + b"\n")


def _first_problem(trail: AuditTrail) -> tuple[str, str, str]:
    report = verify(trail)
    assert not report.ok
    p = report.problems[0]
    return p.kind, p.where, p.message


# --- records -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("SecretAccessKey", True),
        ("password", True),
        ("DB_PASSWORD", True),
        ("SessionToken", True),
        ("X-Amz-Signature", True),
        ("KeyMaterial", True),
        ("api_key", True),
        ("private-key", True),
        ("Authorization", True),
        ("AccessKeyId", False),
        ("KeyName", False),
        ("TrainingJobName", False),
        ("KmsKeyId", False),
        ("epochs", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_nested() -> None:
    value = {"a": [{"Password": "x", "b": 1}], "Env": {"MY_TOKEN": "t", "MODE": "m"}}
    assert redact(value) == {
        "a": [{"Password": "***", "b": 1}],
        "Env": {"MY_TOKEN": "***", "MODE": "m"},
    }


def test_record_fields_from_a_call() -> None:
    call = _call(
        1,
        method="POST",
        query=b"X-Amz-Credential=AK%2F1&x=1",
        headers=[(b"user-agent", b"boto3/1"), (b"content-type", b"application/json"),
                 (b"authorization", b"Bearer orch_k1_SECRET")],
        body=b'{"Name": "n", "Password": "p"}',
        status=400,
        error_body=b'{"__type": "com.amazon#ValidationException", "message": "no"}',
    )  # fmt: skip
    record = to_record(call)
    assert record["userAgent"] == "boto3/1"
    assert record["requestParameters"] == {
        "X-Amz-Credential": "***",
        "x": "1",
        "Name": "n",
        "Password": "***",
    }
    assert record["errorCode"] == "ValidationException"
    assert "SECRET" not in json.dumps(record)
    s3 = to_record(_call(2, status=404, error_body=b"<Error><Code>NoSuchKey</Code></Error>"))
    assert s3["errorCode"] == "NoSuchKey"


def test_a_record_hash_is_over_its_canonical_json() -> None:
    record = {"b": 1, "a": "é"}
    assert canonical(record) == '{"a":"é","b":1}'.encode()
    assert record_hash({**record, "hash": "x"}) == record_hash(record)


# --- verify --------------------------------------------------------------------------------
def test_verify_ok_with_counts(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail)
    trail.submit(_call(99))  # after the last digest: chained, not yet digested
    report = verify(trail)
    assert report.ok, report.problems
    assert (report.records, report.record_files, report.digests) == (10, 4, 1)
    assert report.undigested_files == 1


def test_a_changed_record_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail)
    key, lines = _lines(trail, 1)
    record = json.loads(lines[1])
    record["statusCode"] = 500
    lines[1] = canonical(record)
    _rewrite(trail, key, lines)
    problems = verify(trail).problems
    assert problems[0].kind == "file-changed" and problems[0].where == key
    changed = next(p for p in problems if p.kind == "record-changed")
    assert changed.where == f"record 5 ({key} line 2)"


def test_a_changed_record_with_its_hash_recomputed_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail, digest=False)
    key, lines = _lines(trail, 0)
    record = json.loads(lines[0])
    record["userIdentity"] = {"userName": "mallory", "keyId": "k9"}
    record["hash"] = record_hash(record)
    lines[0] = canonical(record)
    _rewrite(trail, key, lines)
    kind, where, message = _first_problem(trail)
    assert kind == "record-changed"
    assert where == f"record 2 ({key} line 2)"
    assert "record 1 was changed" in message


def test_a_removed_record_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail, digest=False)
    key, lines = _lines(trail, 1)
    _rewrite(trail, key, [lines[0], lines[2]])
    kind, where, message = _first_problem(trail)
    assert (kind, where) == ("record-removed", f"record 6 ({key} line 2)")
    assert message.startswith("record(s) 5 missing before record 6")


def test_a_reordered_record_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail, digest=False)
    key, lines = _lines(trail, 2)
    _rewrite(trail, key, [lines[1], lines[0], lines[2]])
    kind, where, message = _first_problem(trail)
    assert kind == "record-reordered"
    assert where == f"record 8 ({key} line 1)"
    assert "reordered" in message


def test_a_deleted_record_file_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail)
    key = trail.record_files()[1].key
    trail.objects.delete(f"s3://{BUCKET}/{key}")
    problems = verify(trail).problems
    assert (problems[0].kind, problems[0].where) == ("file-removed", key)
    assert "records 4-6" in problems[0].message
    # ... and the chain says so too, without the digest.
    assert any(p.kind == "record-removed" and "4-6" in p.message for p in problems)


def test_a_deleted_digest_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    for _ in range(3):
        _fill(trail, files=1)
    assert [s for s, _ in trail.digest_keys()] == [1, 2, 3]
    trail.objects.delete(f"s3://{BUCKET}/digests/main/00000002.json")
    kind, where, message = _first_problem(trail)
    assert (kind, where) == ("digest-removed", "digests/main/00000003.json")
    assert "00000002" in message


def test_a_changed_digest_is_named(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail)
    uri = f"s3://{BUCKET}/digests/main/00000001.json"
    digest = json.loads(trail.objects.get_bytes(uri))
    digest["files"] = digest["files"][1:]  # drop a file from what it vouches for
    trail.objects.put_bytes(uri, canonical(digest))
    kind, where, _ = _first_problem(trail)
    assert (kind, where) == ("digest-changed", "digests/main/00000001.json")


def test_a_digest_signed_by_another_key_fails(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail)
    other = Ed25519PrivateKey.generate().public_key()
    report = verify(trail, other)
    assert report.problems[0].kind == "digest-changed"
    assert verify(trail, load_public(trail.public_pem())).ok


# --- keys, restart, the writer -------------------------------------------------------------
def test_the_signing_key_is_its_own_file_not_the_data_key(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    _fill(trail, files=1)
    path = tmp_path / "config" / "audit-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    keyring = (tmp_path / "keyring.json").read_text()
    raw = trail.signing_key._private.private_bytes_raw()
    assert raw.hex() not in keyring
    assert path.read_text() not in keyring
    # The same key after a restart: the digests still verify.
    assert SigningKey.load_or_create(path).fingerprint() == trail.signing_key.fingerprint()


def test_a_bad_or_missing_signing_key_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(ValidationError, match="ORCH_AUDIT__SIGNING_KEY_FILE"):
        SigningKey.load_or_create(bad)
    with pytest.raises(ValidationError, match="does not exist"):
        SigningKey.load_or_create(tmp_path / "absent.key", create=False)
    with pytest.raises(ValidationError, match="public key"):
        load_public("nope")


def test_a_restart_continues_the_chain(tmp_path: Path) -> None:
    first = _trail(tmp_path)
    _fill(first, files=2)
    first.submit(_call(50))
    first.flush()  # a record file after the last digest
    again = _trail(tmp_path)
    again.submit(_call(51))
    again.flush(digest=True)
    report = verify(again)
    assert report.ok, report.problems
    assert report.records == 8 and report.undigested_files == 0
    events, _ = again.lookup(LookupFilter(), max_results=1)
    assert events[0]["seq"] == 8


def test_the_writer_thread_writes_in_batches_and_digests_on_time(tmp_path: Path) -> None:
    trail = _trail(tmp_path, flush_seconds=0.05, digest_seconds=0.2)
    trail.start()
    try:
        for n in range(5):
            trail.submit(_call(n))
        eventually(lambda: len(trail.record_files()) >= 1)
        eventually(lambda: len(trail.digest_keys()) >= 1)
    finally:
        trail.stop()
    report = verify(trail)
    assert report.ok and report.records == 5 and report.undigested_files == 0


def test_stop_writes_what_is_queued(tmp_path: Path) -> None:
    trail = _trail(tmp_path, flush_seconds=3600)
    trail.start()
    for n in range(3):
        trail.submit(_call(n))
    trail.stop()
    assert verify(trail).records == 3


def test_lookup_by_time_and_pages(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    trail.submit(_call(1, time=1_000_000.0))
    trail.flush()
    trail.submit(_call(2, time=2_000_000.0, principal_name="bob"))
    trail.flush()
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(1_500_000, UTC)
    assert [e["seq"] for e in trail.lookup(LookupFilter(start=at))[0]] == [2]
    assert [e["seq"] for e in trail.lookup(LookupFilter(end=at))[0]] == [1]
    assert [e["seq"] for e in trail.lookup(LookupFilter(username="bob"))[0]] == [2]
    assert [e["seq"] for e in trail.lookup(LookupFilter(username="k1"))[0]] == [2, 1]
    _, token = trail.lookup(LookupFilter(), max_results=1)
    assert token is not None
    assert trail.lookup(LookupFilter(), next_token=token) == (
        [trail.lookup(LookupFilter(end=at))[0][0]],
        None,
    )
    with pytest.raises(ValidationError, match="NextToken"):
        trail.lookup(LookupFilter(), next_token="garbage")


def test_two_writers_keep_two_chains_in_one_bucket(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "config" / "audit-signing.key")
    store = _store(tmp_path)
    pods = [AuditTrail(store, key, bucket=BUCKET, writer=w) for w in ("api-0", "api-1")]
    for pod in pods:
        pod.open()
    for n in range(4):
        pods[n % 2].submit(_call(n, time=1000.0 + n))
        pods[n % 2].flush(digest=True)
    assert pods[0].writers() == ["api-0", "api-1"]
    report = verify(pods[0])
    assert report.ok, report.problems
    assert (report.records, report.digests) == (4, 4)
    events, _ = pods[1].lookup(LookupFilter())
    assert [e["requestID"] for e in events] == ["r3", "r2", "r1", "r0"]
    # Removing one pod's record is named in that pod's chain.
    first = pods[1].record_files()[0]
    store.delete(f"s3://{BUCKET}/{first.key}")
    problem = verify(pods[0]).problems[0]
    assert (problem.kind, problem.where) == ("file-removed", first.key)
    assert first.key.startswith("records/api-1/")


def test_a_bad_writer_name_is_refused(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "k")
    with pytest.raises(ValidationError, match=r"audit writer '\.\./x'") as e:
        AuditTrail(_store(tmp_path), key, bucket=BUCKET, writer="../x")
    assert e.value.field == "ORCH_AUDIT__WRITER"


class _Flaky:
    """An object store that fails until told otherwise."""

    def __init__(self, real: ObjectStore) -> None:
        self.real = real
        self.down = True

    def __getattr__(self, name: str) -> object:
        if self.down:
            raise ConnectionError("the store is down")
        return getattr(self.real, name)


def test_a_store_down_at_start_delays_the_writes_not_the_server(tmp_path: Path) -> None:
    real = _store(tmp_path)
    first = AuditTrail(real, SigningKey.load_or_create(tmp_path / "k"), bucket=BUCKET)
    first.submit(_call(1))
    first.flush()  # an earlier run's chain: the next one must continue it, not fork it
    flaky = _Flaky(real)
    trail = AuditTrail(
        flaky,  # type: ignore[arg-type]
        first.signing_key,
        bucket=BUCKET,
        flush_seconds=0.05,
    )
    trail.start()  # logs, does not raise
    try:
        trail.submit(_call(2))
        time.sleep(0.2)
        flaky.down = False
        eventually(lambda: len(first.record_files()) == 2)
    finally:
        trail.stop()
    report = verify(first)
    assert report.ok, report.problems
    assert report.records == 2
