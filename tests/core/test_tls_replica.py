"""The replica CA and the certificates it signs (``orchestrator.tls``): made once and kept,
private files 0600, leaves for a replica's names that verify against that CA and no other."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from orchestrator import tls
from orchestrator.errors import ValidationError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_is_made_once_and_reused(tmp_path: Path) -> None:
    ca = tls.replica_ca(tmp_path / "tls")
    assert (ca.cert.name, ca.key.name) == ("replica-ca.crt", "replica-ca.key")
    assert mode(ca.cert) == mode(ca.key) == 0o600
    assert mode(tmp_path / "tls") == 0o700
    before = ca.cert.read_bytes()
    again = tls.replica_ca(tmp_path / "tls")
    assert again == ca and again.cert.read_bytes() == before
    cert = x509.load_pem_x509_certificate(before)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_leaf_names_the_replica_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    ca = tls.replica_ca(tmp_path / "tls")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    files = tls.issue(ca, ["fleet-a.ns.svc", "127.0.0.1"], tmp_path / "r1", now=now)
    assert mode(files.cert) == mode(files.key) == 0o600
    assert tls.certificate_names(files.cert) == ["fleet-a.ns.svc", "127.0.0.1"]
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert leaf.issuer == root.subject
    leaf.verify_directly_issued_by(root)
    assert leaf.not_valid_after_utc == now + dt.timedelta(days=tls.REPLICA_CERT_DAYS)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def test_a_leaf_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours, theirs = tls.replica_ca(tmp_path / "a"), tls.replica_ca(tmp_path / "b")
    leaf = tls.issue(theirs, ["127.0.0.1"], tmp_path / "leaf")
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    with pytest.raises(InvalidSignature):  # same CA name, another key
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ours.cert.read_bytes()))


@pytest.mark.parametrize("names", [[], ["0.0.0.0"], ["a b"], ["*.svc"]])
def test_bad_names_are_refused(tmp_path: Path, names: list[str]) -> None:
    ca = tls.replica_ca(tmp_path / "tls")
    with pytest.raises(ValidationError):
        tls.issue(ca, names, tmp_path / "leaf")


def test_a_broken_ca_key_is_an_error_naming_the_setting_never_replaced(tmp_path: Path) -> None:
    ca = tls.replica_ca(tmp_path / "tls")
    ca.key.write_text("not a key")
    with pytest.raises(ValidationError, match="replica CA key") as e:
        tls.replica_ca(tmp_path / "tls")
    assert e.value.field == "ORCH_SERVING__REPLICA_TLS"
    assert ca.key.read_text() == "not a key"


def test_a_missing_ca_for_the_client_context_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ORCH_SERVING__REPLICA_TLS"):
        tls.replica_client_context(tmp_path / "none.crt")
