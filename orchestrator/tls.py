"""TLS for the control plane and its clients: certificates, fingerprints, SSL contexts.

- ``self_signed(host, directory)`` makes (or reuses) a self-signed certificate for ``host``:
  EC P-256, a year, the host's name or address in the SubjectAltName (with ``localhost``,
  ``127.0.0.1`` and ``::1``, so the same file serves a local client too), the key written 0600;
- ``fingerprint(cert)``: SHA-256 of the DER certificate, colon-separated hex, as ``openssl
  x509 -fingerprint -sha256`` and browsers show it;
- ``server_context(cert, key)`` and ``client_context(ca_bundle)``: the SSL contexts, with
  errors that name the setting to fix;
- ``is_loopback(host)``: whether a bind address is reachable only from this machine;
- ``replica_ca(directory)`` and ``issue(ca, names, directory, stem)``: the private CA that
  signs replica certificates (``replica-ca.crt``/``.key``, made once, kept) and a leaf for a
  replica's names and addresses, so the data plane verifies replicas against that CA only.

Pure of the server and the client: both use it (and the CLI's ``orch tls``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.errors import ValidationError

DEFAULT_DAYS = 365
# Renew a reused self-signed certificate this long before it expires.
RENEW_BEFORE = dt.timedelta(days=30)
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path
    fingerprint: str
    created: bool  # False: an existing, still valid certificate for the host was reused


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; ``""``/``0.0.0.0``/``::`` and every
    other name or address count as reachable from the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def self_signed(
    host: str,
    directory: Path,
    *,
    days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
    renew: bool = False,
    include_local: bool = True,
) -> CertificateFiles:
    """A self-signed certificate and key for ``host`` under ``directory`` (``<host>.crt``,
    ``<host>.key``). An existing pair still valid for ``host`` for another 30 days is reused
    (clients that trust it keep working across restarts) unless ``renew``. ``include_local``
    adds ``localhost``, ``127.0.0.1`` and ``::1`` to the names."""
    name = _check_host(host)
    if days < 1:
        raise ValidationError(f"days must be at least 1, got {days}", field="days")
    now = now or dt.datetime.now(dt.UTC)
    safe = name.replace(":", "_")
    cert_path, key_path = directory / f"{safe}.crt", directory / f"{safe}.key"
    if not renew and _reusable(cert_path, key_path, name, now):
        return CertificateFiles(cert_path, key_path, fingerprint(cert_path), created=False)

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    sans: list[x509.GeneralName] = []
    for entry in dict.fromkeys((name, *(_LOCAL_NAMES if include_local else ()))):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            sans.append(x509.DNSName(entry))
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # clocks a little behind still accept
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the config directory
    directory.mkdir(exist_ok=True, mode=0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    return CertificateFiles(cert_path, key_path, fingerprint(cert_path), created=True)


REPLICA_CA_STEM = "replica-ca"
REPLICA_CA_DAYS = 3650
REPLICA_CERT_DAYS = 365


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key files; ``cert`` is the bundle that verifies its leaves."""

    cert: Path
    key: Path


def replica_ca(directory: Path, *, now: dt.datetime | None = None) -> Authority:
    """The CA replica certificates are signed with: ``<directory>/replica-ca.crt`` and
    ``.key``, made (EC P-256, ten years, both 0600) when absent, else reused as they are."""
    cert_path = directory / f"{REPLICA_CA_STEM}.crt"
    key_path = directory / f"{REPLICA_CA_STEM}.key"
    if cert_path.is_file() and key_path.is_file():
        _load_ca(Authority(cert_path, key_path))  # a broken pair is an error, not replaced
        return Authority(cert_path, key_path)
    key, cert = _new_ca(now or dt.datetime.now(dt.UTC))
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the config directory
    directory.mkdir(exist_ok=True, mode=0o700)
    _write_private(key_path, _key_pem(key), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    return Authority(cert_path, key_path)


def issue(
    ca: Authority,
    names: list[str],
    directory: Path,
    stem: str = "replica",
    *,
    days: int = REPLICA_CERT_DAYS,
    now: dt.datetime | None = None,
) -> CertificateFiles:
    """A server certificate signed by ``ca`` for ``names`` (DNS names or IP addresses, the
    first also the subject), written to ``<directory>/<stem>.crt`` and ``.key`` (0600)."""
    if not names:
        raise ValidationError("a replica certificate needs at least one name", field="names")
    checked = [_check_host(n) for n in names]
    ca_cert, ca_key = _load_ca(ca)
    key, cert = _new_leaf(ca_cert, ca_key, checked, days, now or dt.datetime.now(dt.UTC))
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the config directory
    directory.mkdir(exist_ok=True, mode=0o700)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_private(key_path, _key_pem(key), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    return CertificateFiles(cert_path, key_path, fingerprint(cert_path), created=True)


def replica_client_context(ca_cert: Path) -> ssl.SSLContext:
    """The data plane's context toward replicas: only the replica CA is trusted."""
    if not ca_cert.is_file():
        raise ValidationError(
            f"replica CA {ca_cert} does not exist; with ORCH_SERVING__REPLICA_TLS=true the "
            "control plane makes it under <config dir>/tls/ on start",
            field="ORCH_SERVING__REPLICA_TLS",
        )
    try:
        ctx = ssl.create_default_context(cafile=str(ca_cert))
    except (ssl.SSLError, OSError) as e:
        raise ValidationError(
            f"cannot read the replica CA {ca_cert}: {e}", field="ORCH_SERVING__REPLICA_TLS"
        ) from e
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def fingerprint(cert: Path) -> str:
    """SHA-256 of the first certificate in ``cert`` (PEM), as ``AB:CD:...``."""
    digest = _load_cert(cert, field="tls_cert_file").fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def is_self_signed(cert: Path) -> bool:
    """Whether the first certificate in ``cert`` is its own issuer (then it is its own CA
    bundle for a client)."""
    c = _load_cert(cert, field="tls_cert_file")
    return c.issuer == c.subject


def certificate_names(cert: Path) -> list[str]:
    """The DNS names and addresses in the first certificate's SubjectAltName, in order."""
    c = _load_cert(cert, field="tls_cert_file")
    try:
        sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v.value).lower() for v in sans if isinstance(v, x509.DNSName | x509.IPAddress)]


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The listening side's context; a missing, unreadable or mismatched pair is a
    ``ValidationError`` naming the setting."""
    for path, field in ((cert, "ORCH_SERVER__TLS_CERT_FILE"), (key, "ORCH_SERVER__TLS_KEY_FILE")):
        if not path.is_file():
            raise ValidationError(
                f"TLS file {path} does not exist; set {field} (--tls-cert/--tls-key) to a PEM "
                "file, or make a pair with `orch tls self-signed HOST`",
                field=field,
            )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as e:
        raise ValidationError(
            f"cannot load the TLS certificate {cert} with the key {key}: {e}; both must be PEM, "
            "the key unencrypted and matching the certificate",
            field="ORCH_SERVER__TLS_CERT_FILE",
        ) from e
    return ctx


def client_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or only ``ca_bundle`` when given."""
    if ca_bundle is None:
        return ssl.create_default_context()
    if not ca_bundle.is_file():
        raise ValidationError(
            f"CA bundle {ca_bundle} does not exist; pass a PEM file with --ca-bundle or "
            "ORCH_CA_BUNDLE (for a self-signed server: its certificate)",
            field="ORCH_CA_BUNDLE",
        )
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (ssl.SSLError, OSError) as e:
        raise ValidationError(
            f"cannot read the CA bundle {ca_bundle}: {e}; it must hold PEM certificates",
            field="ORCH_CA_BUNDLE",
        ) from e


def _new_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orchestrator replica CA")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=REPLICA_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _new_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    checked: list[str],
    days: int,
    now: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    sans: list[x509.GeneralName] = []
    for entry in dict.fromkeys(checked):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            sans.append(x509.DNSName(entry))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, checked[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


# --- in memory: a cluster keeps the CA and the replicas' certificates in Secrets --------------
@dataclass(frozen=True)
class PemPair:
    """A certificate and its unencrypted PKCS#8 key, PEM, in memory."""

    cert: bytes
    key: bytes


@dataclass(frozen=True)
class CertificateInfo:
    """What a reconcile needs of a certificate: its names, its end, who signed it."""

    names: tuple[str, ...]
    not_after: dt.datetime
    issuer_key_id: str  # the AuthorityKeyIdentifier, hex; "" when absent


def new_ca_pem(*, now: dt.datetime | None = None) -> PemPair:
    """A new replica CA (the same as ``replica_ca`` makes on disk), in memory."""
    key, cert = _new_ca(now or dt.datetime.now(dt.UTC))
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class PemSource:
    """Where a CA pair held in memory came from, for its errors: ``"<where>: <problem>;
    <fix>"`` with ``field``."""

    where: str
    fix: str
    field: str


def load_ca_pem(ca: PemPair, source: PemSource) -> str:
    """Check a CA pair held in memory; returns the CA's key identifier (hex), which the
    leaves it signs carry as their issuer's."""
    cert, _key = _ca_of_pem(ca, source)
    return _key_id(cert)


def issue_pem(
    ca: PemPair,
    names: list[str],
    *,
    source: PemSource,
    days: int = REPLICA_CERT_DAYS,
    now: dt.datetime | None = None,
) -> PemPair:
    """A server certificate for ``names`` signed by ``ca``, as ``issue`` makes on disk."""
    if not names:
        raise ValidationError("a replica certificate needs at least one name", field="names")
    checked = [_check_host(n) for n in names]
    ca_cert, ca_key = _ca_of_pem(ca, source)
    key, cert = _new_leaf(ca_cert, ca_key, checked, days, now or dt.datetime.now(dt.UTC))
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def certificate_info(pem: bytes) -> CertificateInfo | None:
    """The first certificate's names, end and issuer, or None when ``pem`` is not one."""
    try:
        c = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    try:
        sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            str(v.value).lower() for v in sans if isinstance(v, x509.DNSName | x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        names = ()
    try:
        aki = c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer = (aki.key_identifier or b"").hex()
    except x509.ExtensionNotFound:
        issuer = ""
    return CertificateInfo(names, c.not_valid_after_utc, issuer)


def _key_id(cert: x509.Certificate) -> str:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return ski.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def _ca_of_pem(
    ca: PemPair, source: PemSource
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    def bad(problem: str) -> ValidationError:
        return ValidationError(f"{source.where}: {problem}; {source.fix}", field=source.field)

    try:
        cert = x509.load_pem_x509_certificate(ca.cert)
    except ValueError as e:
        raise bad(f"tls.crt is not a PEM certificate ({e})") from e
    try:
        key = serialization.load_pem_private_key(ca.key, password=None)
    except (ValueError, TypeError) as e:
        raise bad(f"tls.key is not an unencrypted PEM key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise bad("tls.key is not an EC key")
    if key.public_key() != cert.public_key():
        raise bad("tls.key does not match tls.crt")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise bad("tls.crt is not a CA certificate")
    return cert, key


# --- helpers ---------------------------------------------------------------------------------
def _check_host(host: str) -> str:
    name = host.strip().strip("[]").lower()
    if not name or name in {"0.0.0.0", "::"} or any(c in name for c in "/ \\*"):
        raise ValidationError(
            f"cannot make a certificate for {host!r}: name the host clients connect to "
            "(a DNS name or an IP address, e.g. orch.example.com or 192.0.2.10)",
            field="host",
        )
    return name


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(ca: Authority) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = _load_cert(ca.cert, field="ORCH_SERVING__REPLICA_TLS")
    try:
        key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ValidationError(
            f"cannot read the replica CA key {ca.key}: {e}; remove both replica-ca files to "
            "make a new CA (replicas then get new certificates as they restart)",
            field="ORCH_SERVING__REPLICA_TLS",
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValidationError(
            f"the replica CA key {ca.key} is not an EC key", field="ORCH_SERVING__REPLICA_TLS"
        )
    return cert, key


def _load_cert(path: Path, *, field: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as e:
        raise ValidationError(f"no certificate at {path}", field=field) from e
    except ValueError as e:
        raise ValidationError(f"{path} is not a PEM certificate: {e}", field=field) from e


def _reusable(cert_path: Path, key_path: Path, name: str, now: dt.datetime) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    names = {str(v).lower() for v in sans.get_values_for_type(x509.DNSName)}
    names |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    try:
        wanted = str(ipaddress.ip_address(name))
    except ValueError:
        wanted = name
    return wanted in names and cert.not_valid_after_utc - RENEW_BEFORE > now


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


__all__ = [
    "Authority",
    "CertificateFiles",
    "CertificateInfo",
    "PemPair",
    "PemSource",
    "certificate_info",
    "certificate_names",
    "client_context",
    "fingerprint",
    "is_loopback",
    "is_self_signed",
    "issue",
    "issue_pem",
    "load_ca_pem",
    "new_ca_pem",
    "replica_ca",
    "replica_client_context",
    "self_signed",
    "server_context",
]
