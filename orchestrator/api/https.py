"""What ``orch server`` listens with: HTTPS when given a certificate, plain HTTP only on
loopback unless told otherwise, and the local credentials file kept pointing at it.

``listener_tls(settings)`` is the one decision (``docs/security.md``, "TLS"):

- a certificate and key (``ORCH_SERVER__TLS_CERT_FILE`` / ``ORCH_SERVER__TLS_KEY_FILE``):
  HTTPS on the one port, for the API, invocations and every router worker;
- neither, on a loopback address: plain HTTP, as before;
- neither, on any other address: refused, unless ``ORCH_SERVER__ALLOW_INSECURE_HTTP`` (a proxy
  or an Ingress in front terminates TLS).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator import tls
from orchestrator.errors import ValidationError
from orchestrator.settings import Settings

_WILDCARDS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class ListenerTls:
    cert: Path
    key: Path
    fingerprint: str
    # The certificate is its own issuer: a local client trusts it as its CA bundle.
    self_signed: bool


def listener_tls(settings: Settings) -> ListenerTls | None:
    """The certificate to serve with, or None for plain HTTP; raises where plain HTTP is not
    allowed or the files are wrong (``ValidationError`` naming the setting)."""
    s = settings.server
    cert, key = s.tls_cert_file, s.tls_key_file
    if cert is None and key is not None:
        raise ValidationError(
            "ORCH_SERVER__TLS_KEY_FILE is set without a certificate; set "
            "ORCH_SERVER__TLS_CERT_FILE (--tls-cert) too",
            field="ORCH_SERVER__TLS_CERT_FILE",
        )
    if cert is not None and key is None:
        raise ValidationError(
            "ORCH_SERVER__TLS_CERT_FILE is set without its key; set ORCH_SERVER__TLS_KEY_FILE "
            "(--tls-key) too",
            field="ORCH_SERVER__TLS_KEY_FILE",
        )
    if cert is not None and key is not None:
        tls.server_context(cert, key)  # fails here, naming the file, rather than in uvicorn
        return ListenerTls(cert, key, tls.fingerprint(cert), tls.is_self_signed(cert))
    if not tls.is_loopback(s.host) and not s.allow_insecure_http:
        where = s.host or "every address"
        raise ValidationError(
            f"refusing to serve plain HTTP on {where}, which other machines can reach: API keys "
            "and data would cross the network unencrypted. Give a certificate with --tls-cert "
            "and --tls-key (ORCH_SERVER__TLS_CERT_FILE, ORCH_SERVER__TLS_KEY_FILE) or make one "
            "with --self-signed HOST; or bind 127.0.0.1; or, behind a proxy or Ingress that "
            "terminates TLS, pass --insecure-http-on-network "
            "(ORCH_SERVER__ALLOW_INSECURE_HTTP=true)",
            field="ORCH_SERVER__ALLOW_INSECURE_HTTP",
        )
    return None


def local_url(host: str, port: int, listener: ListenerTls | None) -> str:
    """The URL a client on this machine uses (the ready file, the credentials file). Over TLS
    a wildcard bind is named by a name the certificate holds, so that it verifies."""
    if listener is None:
        return f"http://{_bracket(host)}:{port}"
    name = host
    if host in _WILDCARDS:
        names = tls.certificate_names(listener.cert)
        local = [n for n in ("127.0.0.1", "localhost", "::1") if n in names]
        name = (local or names or ["127.0.0.1"])[0]
    return f"https://{_bracket(name)}:{port}"


def record_endpoint(credentials: Path, url: str, ca_bundle: Path | None) -> bool:
    """Point an existing credentials file that names this server (same port, a local or the
    same host) at ``url`` and the CA bundle to verify it with (or none); True if changed.

    So ``orch`` keeps working when a server that ran on HTTP is restarted with a certificate,
    and a self-signed one is trusted without options."""
    try:
        saved = json.loads(credentials.read_text())
    except (FileNotFoundError, PermissionError, json.JSONDecodeError):
        return False
    if not isinstance(saved, dict) or not isinstance(saved.get("endpoint_url"), str):
        return False
    old, new = urlsplit(saved["endpoint_url"]), urlsplit(url)
    local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", new.hostname}
    try:
        same_port = old.port == new.port
    except ValueError:
        return False
    if not same_port or old.hostname not in local:
        return False
    updated = {**saved, "endpoint_url": url}
    if ca_bundle is not None:
        updated["ca_bundle"] = str(ca_bundle.resolve())
    else:
        updated.pop("ca_bundle", None)
    if updated == saved:
        return False
    tmp = credentials.with_name(f".{credentials.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(updated, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, credentials)
    return True


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["ListenerTls", "listener_tls", "local_url", "record_endpoint"]
