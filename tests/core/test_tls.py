"""TLS pieces without a server: certificates, fingerprints, the listening decision, the
credentials file and the client's CA bundle (docs/security.md, "TLS")."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from orchestrator import tls
from orchestrator.api.https import listener_tls, local_url, record_endpoint
from orchestrator.client import Client
from orchestrator.client.connection import resolve
from orchestrator.errors import ValidationError
from orchestrator.settings import Settings

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def settings(tmp_path: Path, **server: object) -> Settings:
    return Settings(home=tmp_path / "home", config_dir=tmp_path / "config", server=server)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.4", False),
        ("orch.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert tls.is_loopback(host) is loopback


def test_self_signed_certificate_names_the_host_and_is_private(tmp_path: Path) -> None:
    made = tls.self_signed("orch.example.com", tmp_path / "tls", now=NOW)
    assert made.created
    assert made.key.stat().st_mode & 0o777 == 0o600
    assert made.cert.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["orch.example.com", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=365)
    assert tls.is_self_signed(made.cert)
    # The fingerprint is SHA-256 of the DER certificate, as openssl and browsers show it.
    der = ssl.PEM_cert_to_DER_cert(made.cert.read_text())
    assert made.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert tls.fingerprint(made.cert) == made.fingerprint


def test_an_address_goes_into_the_certificate_as_an_address(tmp_path: Path) -> None:
    made = tls.self_signed("192.0.2.10", tmp_path, now=NOW)
    assert tls.certificate_names(made.cert) == ["192.0.2.10", "localhost", "127.0.0.1", "::1"]


def test_a_valid_certificate_is_reused_and_renewed_near_its_end(tmp_path: Path) -> None:
    first = tls.self_signed("orch.lan", tmp_path, now=NOW)
    again = tls.self_signed("orch.lan", tmp_path, now=NOW + dt.timedelta(days=300))
    assert not again.created and again.fingerprint == first.fingerprint
    late = tls.self_signed("orch.lan", tmp_path, now=NOW + dt.timedelta(days=340))
    assert late.created and late.fingerprint != first.fingerprint
    forced = tls.self_signed("orch.lan", tmp_path, now=NOW, renew=True)
    assert forced.created and forced.fingerprint != late.fingerprint


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "a b", "*.example.com"])
def test_a_certificate_needs_a_real_host_name(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValidationError, match="name the host clients connect to") as e:
        tls.self_signed(host, tmp_path)
    assert e.value.field == "host"


def test_days_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="days must be at least 1"):
        tls.self_signed("orch.lan", tmp_path, days=0)


def test_the_server_context_names_a_missing_or_wrong_file(tmp_path: Path) -> None:
    a = tls.self_signed("a.lan", tmp_path, now=NOW)
    b = tls.self_signed("b.lan", tmp_path, now=NOW)
    with pytest.raises(ValidationError, match="does not exist") as e:
        tls.server_context(tmp_path / "nope.crt", a.key)
    assert e.value.field == "ORCH_SERVER__TLS_CERT_FILE"
    with pytest.raises(ValidationError, match="does not exist") as e:
        tls.server_context(a.cert, tmp_path / "nope.key")
    assert e.value.field == "ORCH_SERVER__TLS_KEY_FILE"
    with pytest.raises(ValidationError, match="matching the certificate"):
        tls.server_context(a.cert, b.key)
    assert isinstance(tls.server_context(a.cert, a.key), ssl.SSLContext)


def test_the_client_context_names_a_bad_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist") as e:
        tls.client_context(tmp_path / "nope.pem")
    assert e.value.field == "ORCH_CA_BUNDLE"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ValidationError, match="cannot read the CA bundle"):
        tls.client_context(junk)
    with pytest.raises(ValidationError, match="not a PEM certificate"):
        tls.fingerprint(junk)


# --- what orch server listens with -------------------------------------------------------------
def test_plain_http_on_loopback_is_allowed(tmp_path: Path) -> None:
    assert listener_tls(settings(tmp_path, host="127.0.0.1")) is None
    assert listener_tls(settings(tmp_path, host="localhost")) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "orch.lan"])
def test_plain_http_on_the_network_is_refused_naming_the_fix(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValidationError) as e:
        listener_tls(settings(tmp_path, host=host))
    assert e.value.field == "ORCH_SERVER__ALLOW_INSECURE_HTTP"
    for fix in ("--tls-cert", "ORCH_SERVER__TLS_CERT_FILE", "--self-signed HOST",
                "--insecure-http-on-network", "ORCH_SERVER__ALLOW_INSECURE_HTTP=true"):  # fmt: skip
        assert fix in e.value.message
    assert listener_tls(settings(tmp_path, host=host, allow_insecure_http=True)) is None


def test_a_certificate_serves_any_address(tmp_path: Path) -> None:
    made = tls.self_signed("orch.lan", tmp_path / "tls", now=dt.datetime.now(dt.UTC))
    found = listener_tls(
        settings(tmp_path, host="0.0.0.0", tls_cert_file=made.cert, tls_key_file=made.key)
    )
    assert found is not None
    assert (found.cert, found.key, found.self_signed) == (made.cert, made.key, True)
    assert found.fingerprint == made.fingerprint
    assert local_url("0.0.0.0", 8443, found) == "https://127.0.0.1:8443"
    assert local_url("orch.lan", 8443, found) == "https://orch.lan:8443"
    assert local_url("::1", 8443, found) == "https://[::1]:8443"
    assert local_url("0.0.0.0", 8686, None) == "http://0.0.0.0:8686"


def test_a_certificate_needs_its_key_and_the_key_its_certificate(tmp_path: Path) -> None:
    made = tls.self_signed("orch.lan", tmp_path, now=NOW)
    with pytest.raises(ValidationError, match="without its key") as e:
        listener_tls(settings(tmp_path, tls_cert_file=made.cert))
    assert e.value.field == "ORCH_SERVER__TLS_KEY_FILE"
    with pytest.raises(ValidationError, match="without a certificate") as e:
        listener_tls(settings(tmp_path, tls_key_file=made.key))
    assert e.value.field == "ORCH_SERVER__TLS_CERT_FILE"
    with pytest.raises(ValidationError, match="does not exist"):
        listener_tls(settings(tmp_path, tls_cert_file=tmp_path / "x", tls_key_file=made.key))


# --- the credentials file and the client's CA bundle -------------------------------------------
def write_creds(path: Path, **fields: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_key": "orch_k", **fields}))


def test_the_credentials_file_follows_this_server_to_https_and_back(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    write_creds(creds, endpoint_url="http://127.0.0.1:8686")
    cert = tmp_path / "orch.crt"
    assert record_endpoint(creds, "https://127.0.0.1:8686", cert)
    saved = json.loads(creds.read_text())
    assert saved == {
        "api_key": "orch_k",
        "endpoint_url": "https://127.0.0.1:8686",
        "ca_bundle": str(cert.resolve()),
    }
    assert creds.stat().st_mode & 0o777 == 0o600
    assert not record_endpoint(creds, "https://127.0.0.1:8686", cert)  # nothing to change
    assert record_endpoint(creds, "http://127.0.0.1:8686", None)
    assert json.loads(creds.read_text()) == {
        "api_key": "orch_k",
        "endpoint_url": "http://127.0.0.1:8686",
    }


def test_the_credentials_file_of_another_server_is_left_alone(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    write_creds(creds, endpoint_url="https://orch.example.com:8686")
    before = creds.read_text()
    assert not record_endpoint(creds, "https://127.0.0.1:8686", tmp_path / "c.crt")
    assert creds.read_text() == before
    write_creds(creds, endpoint_url="http://127.0.0.1:9999")
    assert not record_endpoint(creds, "https://127.0.0.1:8686", tmp_path / "c.crt")
    assert not record_endpoint(tmp_path / "missing.json", "https://127.0.0.1:8686", None)
    creds.write_text("not json")
    assert not record_endpoint(creds, "https://127.0.0.1:8686", None)
    assert creds.read_text() == "not json"


def test_the_saved_ca_bundle_is_used_for_the_saved_server_only(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", config_dir=tmp_path / "config")
    saved = tls.self_signed("127.0.0.1", tmp_path / "tls").cert
    write_creds(s.credentials_path, endpoint_url="https://127.0.0.1:8443", ca_bundle=str(saved))
    assert resolve(settings=s).ca_bundle == saved
    assert resolve("https://127.0.0.1:8443/", settings=s).ca_bundle == saved
    assert resolve("https://orch.example.com", settings=s).ca_bundle is None
    assert resolve(settings=s, ca_bundle="/y/ca.pem").ca_bundle == Path("/y/ca.pem")
    with_env = Settings(home=tmp_path / "h", config_dir=tmp_path / "config", ca_bundle="/z.pem")
    assert resolve("https://orch.example.com", settings=with_env).ca_bundle == Path("/z.pem")


def test_a_saved_ca_bundle_that_is_gone_is_named(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", config_dir=tmp_path / "config")
    write_creds(s.credentials_path, endpoint_url="https://127.0.0.1:8443", ca_bundle="/x/gone.crt")
    with pytest.raises(ValidationError, match="start `orch server` again") as e:
        resolve(settings=s)
    assert str(s.credentials_path) in e.value.message and e.value.field == "ORCH_CA_BUNDLE"
    assert resolve(settings=s, ca_bundle=str(tmp_path)).ca_bundle == tmp_path  # given: used


# --- the client against an HTTPS server in this process ---------------------------------------
class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"Endpoints": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[Callable[[tls.CertificateFiles], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(made: tls.CertificateFiles) -> str:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        httpd.socket = tls.server_context(made.cert, made.key).wrap_socket(
            httpd.socket, server_side=True
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"https://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_the_client_verifies_with_the_ca_bundle(
    https_server: Callable[[tls.CertificateFiles], str], tmp_path: Path
) -> None:
    made = tls.self_signed("orch.lan", tmp_path)
    url = https_server(made)
    with Client(url, "k", ca_bundle=made.cert) as c:
        assert c.list_endpoints().Endpoints == []


def test_the_client_refuses_an_unknown_certificate_naming_the_fix(
    https_server: Callable[[tls.CertificateFiles], str], tmp_path: Path
) -> None:
    url = https_server(tls.self_signed("orch.lan", tmp_path / "a"))
    with Client(url, "k") as c, pytest.raises(ValidationError) as e:
        c.list_endpoints()
    assert e.value.field == "ORCH_CA_BUNDLE"
    assert "not trusted by the system's CA certificates" in e.value.message
    assert "--ca-bundle, ORCH_CA_BUNDLE or Client(ca_bundle=...)" in e.value.message
    other = tls.self_signed("orch.lan", tmp_path / "b")  # another key, the same name
    with Client(url, "k", ca_bundle=other.cert) as c, pytest.raises(ValidationError) as e:
        c.list_endpoints()
    assert f"not trusted by the CA bundle {other.cert}" in e.value.message


def test_the_client_names_a_host_the_certificate_does_not_hold(
    https_server: Callable[[tls.CertificateFiles], str], tmp_path: Path
) -> None:
    made = tls.self_signed("orch.lan", tmp_path, include_local=False)
    assert tls.certificate_names(made.cert) == ["orch.lan"]
    url = https_server(made)
    with Client(url, "k", ca_bundle=made.cert) as c, pytest.raises(ValidationError) as e:
        c.list_endpoints()
    assert e.value.field == "ORCH_ENDPOINT_URL"
    assert "does not name the host in that URL" in e.value.message
