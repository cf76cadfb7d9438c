"""Replica TLS on a cluster (``ORCH_SERVING__REPLICA_TLS=true``): the Secrets, and when a
fleet's serving certificate is (re-)issued. Pure: the backend reads and writes the Secrets.

- The replica CA lives in one Secret of the namespace (``ORCH_KUBE__REPLICA_CA_SECRET``, type
  ``kubernetes.io/tls``), made once by the operator when it starts (``ca_secret``) and kept;
  the API pods mount its ``tls.crt`` only, to verify replicas against it (the key stays with
  the operator). A missing or malformed one is a ``ValidationError`` naming the Secret and the
  fix (``read_ca``): the endpoint that needs it fails with that message.
- Each variant of each fleet (a Deployment and its Service) has its own serving certificate,
  a ``kubernetes.io/tls`` Secret ``<fleet object>-tls`` owned by the Endpoint, for the
  Service's names (``serving_names``) and mounted read-only into the model server container
  only; the Deployment's pod template carries the certificate's fingerprint
  (``ANNOTATION_SERVING_CERT``), so a re-issued certificate rolls the pods onto it.
- ``plan_certificate(names, observed, ca_key_id, now)`` is level-triggered: it looks at what
  the Secret holds and says keep, issue (none yet) or re-issue (unreadable, missing a name,
  signed by another CA, or within ``RENEW_BEFORE`` of its end).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestrator.errors import ValidationError
from orchestrator.kube.objects import PREFIX, meta
from orchestrator.tls import CertificateInfo, PemPair, PemSource, certificate_info

SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 - a Secret type, not a password
ANNOTATION_SERVING_CERT = f"{PREFIX}/serving-cert"
LABEL_SERVING_CERT = f"{PREFIX}/serving-cert"
TLS_VOLUME = "serving-tls"
TLS_MOUNT = "/opt/ml/tls"  # as on Docker
CERT_FILE, KEY_FILE, CA_FILE = "tls.crt", "tls.key", "ca.crt"
CERT_DAYS = 90
RENEW_BEFORE = timedelta(days=30)
CA_SETTING = "ORCH_KUBE__REPLICA_CA_SECRET"

Action = Literal["keep", "issue", "reissue"]


@dataclass(frozen=True)
class CertPlan:
    action: Action
    reason: str


@dataclass(frozen=True)
class ServingTls:
    """What a fleet's pod template needs: the Secret to mount and its certificate's print."""

    secret: str
    fingerprint: str


def serving_secret_name(fleet_object: str) -> str:
    return f"{fleet_object}-tls"


def serving_names(service: str, namespace: str, cluster_domain: str) -> list[str]:
    """The names the data plane reaches a fleet's Service by (``service_url`` uses the
    first), and the short cluster form."""
    return [f"{service}.{namespace}.svc.{cluster_domain}", f"{service}.{namespace}.svc"]


def plan_certificate(
    names: list[str],
    observed: CertificateInfo | None,
    *,
    exists: bool,
    ca_key_id: str,
    now: datetime,
    renew_before: timedelta = RENEW_BEFORE,
) -> CertPlan:
    """Keep, issue or re-issue a fleet's serving certificate, from what its Secret holds."""
    if not exists:
        return CertPlan("issue", "no serving certificate yet")
    if observed is None:
        return CertPlan("reissue", "the Secret holds no readable certificate")
    missing = [n for n in names if n.lower() not in observed.names]
    if missing:
        return CertPlan("reissue", f"the certificate does not name {', '.join(missing)}")
    if observed.issuer_key_id != ca_key_id:
        return CertPlan("reissue", "the certificate is signed by another CA")
    if observed.not_after - renew_before <= now:
        return CertPlan("reissue", f"the certificate expires at {observed.not_after.isoformat()}")
    return CertPlan("keep", f"valid until {observed.not_after.isoformat()}")


def observed_certificate(secret: dict[str, Any] | None) -> CertificateInfo | None:
    """The certificate a Secret holds (``data["tls.crt"]``), None when none is readable."""
    pem = _decoded(secret, CERT_FILE)
    return certificate_info(pem) if pem else None


def fingerprint_of(cert_pem: bytes) -> str:
    return hashlib.sha256(cert_pem).hexdigest()[:16]


def secret_fingerprint(secret: dict[str, Any]) -> str:
    """The print of the certificate a serving Secret holds now (what its pods should run)."""
    return fingerprint_of(_decoded(secret, CERT_FILE))


def serving_secret(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any] | None,
    *,
    leaf: PemPair,
    ca_cert: bytes,
) -> dict[str, Any]:
    metadata = meta(name, namespace, {**labels, LABEL_SERVING_CERT: "true"}, owner)
    metadata["annotations"] = {ANNOTATION_SERVING_CERT: fingerprint_of(leaf.cert)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": metadata,
        "data": {CERT_FILE: _b64(leaf.cert), KEY_FILE: _b64(leaf.key), CA_FILE: _b64(ca_cert)},
    }


def ca_secret(name: str, namespace: str, ca: PemPair) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": meta(name, namespace, {}, None),
        "data": {CERT_FILE: _b64(ca.cert), KEY_FILE: _b64(ca.key)},
    }


def read_ca(secret: dict[str, Any] | None, name: str, namespace: str) -> PemPair:
    """The CA pair a Secret holds; missing or incomplete is an error naming it and the fix
    (a pair that does not parse is caught by ``tls.load_ca_pem``, with the same source)."""
    where = f"replica CA Secret {namespace}/{name}"
    if secret is None:
        raise ValidationError(
            f"the {where} does not exist; the operator makes it when it starts with "
            "ORCH_SERVING__REPLICA_TLS=true (restart the operator), or create it: "
            f"kubectl -n {namespace} create secret tls {name} --cert ca.crt --key ca.key "
            f"(an EC CA); {CA_SETTING} names another Secret",
            field=CA_SETTING,
        )
    cert, key = _decoded(secret, CERT_FILE), _decoded(secret, KEY_FILE)
    if not cert or not key:
        raise ValidationError(
            f"the {where} is malformed: it needs data {CERT_FILE} and {KEY_FILE} (PEM); "
            f"delete it and restart the operator to make a new CA, or recreate it with "
            f"kubectl -n {namespace} create secret tls {name} --cert ca.crt --key ca.key",
            field=CA_SETTING,
        )
    return PemPair(cert, key)


def ca_source(name: str, namespace: str) -> PemSource:
    """How errors about the CA pair name it (``tls.load_ca_pem``, ``tls.issue_pem``)."""
    return PemSource(
        where=f"the replica CA Secret {namespace}/{name} is malformed",
        fix=(
            "delete it and restart the operator to make a new CA (each fleet's serving "
            "certificate is then re-issued), or recreate it with "
            f"kubectl -n {namespace} create secret tls {name} --cert ca.crt --key ca.key"
        ),
        field=CA_SETTING,
    )


def _decoded(secret: dict[str, Any] | None, key: str) -> bytes:
    value = ((secret or {}).get("data") or {}).get(key)
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return b""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


__all__ = [
    "ANNOTATION_SERVING_CERT",
    "CertPlan",
    "ServingTls",
    "ca_secret",
    "ca_source",
    "fingerprint_of",
    "observed_certificate",
    "plan_certificate",
    "read_ca",
    "secret_fingerprint",
    "serving_names",
    "serving_secret",
    "serving_secret_name",
]
