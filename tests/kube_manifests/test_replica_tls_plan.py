"""Replica TLS on a cluster, the pure half (``kube.replica_tls``): when a fleet's serving
certificate is issued or re-issued, what its Secret and the CA Secret hold, and the errors a
missing or malformed CA Secret gets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from orchestrator.errors import ValidationError
from orchestrator.kube import replica_tls as rt
from orchestrator.tls import (
    CertificateInfo,
    PemPair,
    certificate_info,
    issue_pem,
    load_ca_pem,
    new_ca_pem,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NAMES = rt.serving_names("web-blue-cfg", "ml", "cluster.local")
CA = "ca-key-id"


def info(
    names: tuple[str, ...] = tuple(NAMES), days: float = 80, issuer: str = CA
) -> CertificateInfo:
    return CertificateInfo(names, NOW + timedelta(days=days), issuer)


@pytest.mark.parametrize(
    ("exists", "observed", "action", "reason"),
    [
        (False, None, "issue", "no serving certificate"),
        (True, None, "reissue", "no readable certificate"),
        (True, info(), "keep", "valid until"),
        (True, info(days=31), "keep", "valid until"),
        (True, info(days=30), "reissue", "expires at"),
        (True, info(days=-1), "reissue", "expires at"),
        (True, info(names=(NAMES[0],)), "reissue", f"does not name {NAMES[1]}"),
        (True, info(issuer="another"), "reissue", "another CA"),
    ],
    ids=["none", "unreadable", "valid", "just-valid", "near-end", "expired", "names", "other-ca"],
)
def test_the_plan_of_a_fleet_certificate(
    exists: bool, observed: CertificateInfo | None, action: str, reason: str
) -> None:
    plan = rt.plan_certificate(NAMES, observed, exists=exists, ca_key_id=CA, now=NOW)
    assert (plan.action, reason in plan.reason) == (action, True), plan


def test_the_service_names_are_the_in_cluster_dns_names() -> None:
    assert NAMES == ["web-blue-cfg.ml.svc.cluster.local", "web-blue-cfg.ml.svc"]


def _data(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def test_a_serving_secret_holds_a_leaf_of_the_ca_for_the_service_names() -> None:
    ca = new_ca_pem(now=NOW)
    source = rt.ca_source("orchestrator-replica-ca", "ml")
    ca_id = load_ca_pem(ca, source)
    leaf = issue_pem(ca, NAMES, source=source, days=rt.CERT_DAYS, now=NOW)
    secret = rt.serving_secret(
        "web-blue-cfg-tls", "ml", {"a": "b"}, None, leaf=leaf, ca_cert=ca.cert
    )
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"][rt.LABEL_SERVING_CERT] == "true"
    assert _data(secret, "tls.key") == leaf.key and _data(secret, "ca.crt") == ca.cert
    seen = rt.observed_certificate(secret)
    assert seen is not None and seen.names == tuple(NAMES)
    assert seen.issuer_key_id == ca_id
    assert seen.not_after == NOW + timedelta(days=rt.CERT_DAYS)
    assert secret["metadata"]["annotations"][rt.ANNOTATION_SERVING_CERT] == rt.fingerprint_of(
        leaf.cert
    )
    # The same plan a pass makes: kept now, re-issued 60 days on (30 before its end).
    keep = rt.plan_certificate(NAMES, seen, exists=True, ca_key_id=ca_id, now=NOW)
    later = NOW + timedelta(days=60)
    assert keep.action == "keep"
    assert rt.plan_certificate(NAMES, seen, exists=True, ca_key_id=ca_id, now=later).action == (
        "reissue"
    )
    cert = x509.load_pem_x509_certificate(leaf.cert)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_ca_secret_round_trips() -> None:
    ca = new_ca_pem(now=NOW)
    secret = rt.ca_secret("orchestrator-replica-ca", "ml", ca)
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key"}
    assert rt.read_ca(secret, "orchestrator-replica-ca", "ml") == ca


def test_a_missing_ca_secret_names_it_and_the_fix() -> None:
    with pytest.raises(ValidationError) as e:
        rt.read_ca(None, "orchestrator-replica-ca", "ml")
    assert "replica CA Secret ml/orchestrator-replica-ca does not exist" in e.value.message
    assert "restart the operator" in e.value.message and "kubectl" in e.value.message
    assert e.value.field == "ORCH_KUBE__REPLICA_CA_SECRET"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CA_PAIR = new_ca_pem(now=NOW)
OTHER = new_ca_pem(now=NOW)
LEAF = issue_pem(CA_PAIR, ["x.ml.svc"], source=rt.ca_source("c", "ml"), now=NOW)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "needs data tls.crt and tls.key"),
        ({"tls.crt": _b64(CA_PAIR.cert)}, "needs data tls.crt and tls.key"),
        ({"tls.crt": "not base64!", "tls.key": _b64(CA_PAIR.key)}, "needs data"),
        ({"tls.crt": _b64(b"junk"), "tls.key": _b64(CA_PAIR.key)}, "not a PEM certificate"),
        ({"tls.crt": _b64(CA_PAIR.cert), "tls.key": _b64(b"junk")}, "not an unencrypted PEM"),
        ({"tls.crt": _b64(CA_PAIR.cert), "tls.key": _b64(OTHER.key)}, "does not match"),
        ({"tls.crt": _b64(LEAF.cert), "tls.key": _b64(LEAF.key)}, "not a CA certificate"),
    ],
    ids=["empty", "no-key", "not-base64", "bad-cert", "bad-key", "mismatch", "a-leaf"],
)
def test_a_malformed_ca_secret_names_it_and_the_fix(data: dict[str, str], problem: str) -> None:
    secret = {"metadata": {"name": "c"}, "data": data}
    with pytest.raises(ValidationError) as e:
        pair = rt.read_ca(secret, "c", "ml")
        load_ca_pem(pair, rt.ca_source("c", "ml"))
    assert problem in e.value.message
    assert "replica CA Secret ml/c" in e.value.message
    assert "delete it and restart the operator" in e.value.message
    assert e.value.field == "ORCH_KUBE__REPLICA_CA_SECRET"


def test_an_unreadable_certificate_is_none() -> None:
    assert certificate_info(b"junk") is None
    assert rt.observed_certificate(None) is None
    assert rt.observed_certificate({"data": {"tls.crt": _b64(b"junk")}}) is None


def test_a_leaf_needs_a_name() -> None:
    with pytest.raises(ValidationError, match="at least one name"):
        issue_pem(CA_PAIR, [], source=rt.ca_source("c", "ml"))
    assert isinstance(CA_PAIR, PemPair)
