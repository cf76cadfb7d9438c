"""AWS Signature Version 4, verified server-side.

Pure (hashlib and hmac only): ``parse`` reads the ``Authorization`` header (or a presigned
URL's query), ``canonical_request`` and ``string_to_sign`` rebuild what the client signed,
``signing_key`` derives the day/region/service key from a secret, and ``verify`` recomputes
the signature and compares it in constant time. Every refusal is a ``SignatureError`` with a
``kind`` that each protocol maps onto its own AWS error code (``InvalidSignatureException``
for the JSON and REST-JSON services, ``SignatureDoesNotMatch`` for S3 and STS, ...): the table
is ``ERROR_CODES`` here, so that both front doors (the AWS gateway in ``orchestrator.api.aws``
and the invocation data plane, which may not import it) answer with the same codes.

Written here rather than taken from a library: botocore signs but has no verifier, and the
canonical form is the published algorithm (docs.aws.amazon.com, "Create a signed AWS API
request"). The tests sign with botocore's own ``SigV4Auth``/``S3SigV4Auth`` and check that
every request they produce verifies, and that each tampered part does not.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 300
MAX_PRESIGNED_EXPIRY = 7 * 24 * 3600
TIMESTAMP = "%Y%m%dT%H%M%SZ"

Kind = Literal[
    "missing",  # no Authorization header and no presigned query
    "malformed",  # a part of the header is missing or unreadable
    "unknown_key",  # no such access key id (or revoked)
    "mismatch",  # the signature does not match
    "skewed",  # the timestamp is more than MAX_SKEW_SECONDS away from now
    "expired",  # a presigned URL past its X-Amz-Expires
    "scope",  # the credential scope's date, region or service is wrong
    "payload",  # the body's SHA-256 is not the one signed
]


# (JSON/REST-JSON services' code, S3/STS (XML) code, HTTP status) per kind of refusal.
ERROR_CODES: dict[Kind, tuple[str, str, int]] = {
    "missing": ("MissingAuthenticationTokenException", "AccessDenied", 403),
    "malformed": ("IncompleteSignatureException", "AuthorizationHeaderMalformed", 400),
    "unknown_key": ("UnrecognizedClientException", "InvalidAccessKeyId", 403),
    "mismatch": ("InvalidSignatureException", "SignatureDoesNotMatch", 403),
    "skewed": ("InvalidSignatureException", "RequestTimeTooSkewed", 403),
    "expired": ("InvalidSignatureException", "AccessDenied", 403),
    "scope": ("InvalidSignatureException", "AuthorizationHeaderMalformed", 400),
    "payload": ("InvalidSignatureException", "XAmzContentSHA256Mismatch", 400),
}


class SignatureError(Exception):
    """Why a request's signature was refused; ``kind`` picks the AWS error code."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Credential:
    """What the client says it signed with: ``Credential=AKID/DATE/REGION/SERVICE/aws4_request``,
    ``SignedHeaders=...``, ``Signature=...``, and when (``X-Amz-Date``)."""

    access_key_id: str
    date: str  # YYYYMMDD
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # YYYYMMDDTHHMMSSZ
    presigned: bool = False
    expires: int = 0

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def is_signed(authorization: str | None, query: str) -> bool:
    """Whether a request carries SigV4 (a header or a presigned URL's query)."""
    if authorization is not None and authorization.startswith(ALGORITHM):
        return True
    return "X-Amz-Credential=" in query and "X-Amz-Signature=" in query


def _scope_parts(raw: str) -> tuple[str, str, str, str]:
    parts = raw.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise SignatureError(
            "malformed",
            f"Credential {raw!r} is not ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    return parts[0], parts[1], parts[2], parts[3]


def parse(authorization: str | None, query: str, headers: dict[str, str]) -> Credential:
    """The credential of a request: from ``Authorization`` or a presigned query string.
    ``headers`` are lower-cased names. Raises ``SignatureError`` ("missing"/"malformed")."""
    if authorization is None or not authorization.startswith(ALGORITHM):
        if "X-Amz-Signature=" in query:
            return _parse_presigned(query)
        if authorization:
            raise SignatureError(
                "malformed",
                f"Authorization must start with {ALGORITHM} (only Signature Version 4 is "
                "supported)",
            )
        raise SignatureError("missing", "Missing Authentication Token")
    fields: dict[str, str] = {}
    for part in authorization[len(ALGORITHM) :].split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value.strip()
    for needed in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(needed):
            raise SignatureError(
                "malformed",
                f"Authorization header requires '{needed}' parameter. Authorization header "
                "requires 'Credential', 'SignedHeaders' and 'Signature'",
            )
    akid, date, region, service = _scope_parts(fields["Credential"])
    timestamp = headers.get("x-amz-date") or _from_http_date(headers.get("date"))
    if not timestamp:
        raise SignatureError(
            "malformed", "Authorization header requires existence of either a 'X-Amz-Date' or "
            "a 'Date' header",
        )  # fmt: skip
    signed = tuple(fields["SignedHeaders"].split(";"))
    if "host" not in signed:
        raise SignatureError("malformed", "SignedHeaders must include 'host'")
    return Credential(akid, date, region, service, signed, fields["Signature"], timestamp)


def _parse_presigned(query: str) -> Credential:
    params = {unquote(k): unquote(v) for k, _, v in (p.partition("=") for p in query.split("&"))}
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise SignatureError("malformed", f"X-Amz-Algorithm must be {ALGORITHM}")
    for needed in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"):
        if not params.get(needed):
            raise SignatureError("malformed", f"a presigned URL needs the {needed} parameter")
    akid, date, region, service = _scope_parts(params["X-Amz-Credential"])
    expires = params["X-Amz-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_PRESIGNED_EXPIRY:
        raise SignatureError(
            "malformed", f"X-Amz-Expires must be 1 to {MAX_PRESIGNED_EXPIRY} seconds"
        )
    return Credential(
        akid, date, region, service, tuple(params["X-Amz-SignedHeaders"].split(";")),
        params["X-Amz-Signature"], params["X-Amz-Date"], presigned=True, expires=int(expires),
    )  # fmt: skip


def _from_http_date(value: str | None) -> str | None:
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).astimezone(UTC).strftime(TIMESTAMP)
    except (TypeError, ValueError):
        return None


def _timestamp(value: str) -> datetime:
    # By slices rather than ``strptime`` (7 us of the ~40 us a request's check cost, measured
    # with timeit): this runs on every signed invocation.
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        raise ValueError(value)
    day, clock = value[:8], value[9:15]
    if not (day.isdigit() and clock.isdigit()):
        raise ValueError(value)
    return datetime(
        int(day[:4]), int(day[4:6]), int(day[6:]),
        int(clock[:2]), int(clock[2:4]), int(clock[4:]), tzinfo=UTC,
    )  # fmt: skip


def check_time(credential: Credential, now: datetime) -> None:
    """The scope's date is the timestamp's, and the timestamp is within the skew window (or,
    presigned, not past its expiry)."""
    try:
        when = _timestamp(credential.timestamp)
    except ValueError as e:
        raise SignatureError(
            "malformed", f"X-Amz-Date {credential.timestamp!r} is not YYYYMMDDTHHMMSSZ"
        ) from e
    if credential.timestamp[:8] != credential.date:
        raise SignatureError(
            "scope",
            f"Credential should be scoped to a valid date: {credential.date} is not the "
            f"request's date {credential.timestamp[:8]}",
        )
    delta = (now - when).total_seconds()
    if credential.presigned:
        if delta > credential.expires:
            raise SignatureError("expired", "Request has expired")
        if delta < -MAX_SKEW_SECONDS:
            raise SignatureError("skewed", "Request is not valid yet (X-Amz-Date in the future)")
        return
    if abs(delta) > MAX_SKEW_SECONDS:
        earlier = "earlier" if delta > 0 else "later"
        raise SignatureError(
            "skewed",
            f"Signature expired: {credential.timestamp} is now {earlier} than "
            f"{now.strftime(TIMESTAMP)} ({MAX_SKEW_SECONDS // 60} minutes either way); "
            "check the client's clock",
        )


def check_scope(credential: Credential, region: str, services: Iterable[str]) -> None:
    if credential.region != region:
        raise SignatureError(
            "scope",
            f"Credential should be scoped to a valid region: {credential.region!r} is not "
            f"this server's region {region!r} (set the client's region_name to {region!r})",
        )
    allowed = tuple(services)
    if credential.service not in allowed:
        raise SignatureError(
            "scope",
            f"Credential should be scoped to correct service: {credential.service!r} is not "
            f"one of {', '.join(repr(s) for s in allowed)}",
        )


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    joined = "/" + "/".join(out)
    if path.endswith("/") and joined != "/":
        joined += "/"
    return joined


def canonical_uri(raw_path: str, service: str) -> str:
    """The path as signed: S3 signs the path as sent; the other services sign it normalized
    and percent-encoded once more (so ``%20`` is signed as ``%2520``)."""
    if service == "s3":
        return raw_path or "/"
    return _normalized_uri(raw_path)


@functools.lru_cache(maxsize=4096)
def _normalized_uri(raw_path: str) -> str:
    # Cached: a signed invocation's path is one of a few (an endpoint's), and normalizing it
    # was 1.1 us of the ~20 us its check cost (timeit).
    return quote(_remove_dot_segments(raw_path) if raw_path else "/", safe="/~")


def canonical_query(query: str, *, drop_signature: bool = False) -> str:
    """Every parameter, decoded and encoded again the one SigV4 way, sorted."""
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key = unquote(key.replace("+", "%20"))
        if drop_signature and key == "X-Amz-Signature":
            continue
        value = unquote(value.replace("+", "%20"))
        pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP request a signature covers: the path and query as sent
    (percent-encoded), and the headers as (lower-case name, value), repeated names in order."""

    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]


def canonical_request(request: Request, credential: Credential, payload_hash: str) -> str:
    signed_headers = credential.signed_headers
    values: dict[str, list[str]] = {}
    for name, value in request.headers:
        if name in signed_headers:  # only what is signed is normalized
            values.setdefault(name, []).append(" ".join(value.split()))
    lines = []
    for name in credential.signed_headers:
        if name not in values:
            raise SignatureError(
                "malformed", f"header {name!r} is in SignedHeaders but not in the request"
            )
        lines.append(f"{name}:{','.join(values[name])}")
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.raw_path, credential.service),
            canonical_query(request.query, drop_signature=credential.presigned),
            "\n".join(lines) + "\n",
            ";".join(credential.signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(credential: Credential, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{credential.timestamp}\n{credential.scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key a day's requests to one region's service are signed with."""
    k = _hmac(f"AWS4{secret}".encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(key: bytes, request: Request, credential: Credential, payload_hash: str) -> None:
    """Raise ``SignatureError("mismatch")`` unless the request was signed with ``key``."""
    canonical = canonical_request(request, credential, payload_hash)
    expected = signature(key, string_to_sign(credential, canonical))
    if not hmac.compare_digest(expected, credential.signature):
        raise SignatureError(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


def payload_hash_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# S3's signed streaming uploads (``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD``):
# every ``aws-chunked`` chunk carries a signature chained from the previous one, the first
# from the request's own ("seed") signature; a ``...-TRAILER`` upload signs its trailer too.
# docs.aws.amazon.com: "Signature calculations for the Authorization header: transferring
# payload in multiple chunks".
def chunk_signature(key: bytes, credential: Credential, previous: str, chunk_sha256: str) -> str:
    """The signature of one chunk whose data has SHA-256 ``chunk_sha256`` (hex)."""
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            credential.timestamp,
            credential.scope,
            previous,
            EMPTY_SHA256,
            chunk_sha256,
        ]
    )
    return signature(key, to_sign)


def trailer_signature(key: bytes, credential: Credential, previous: str, trailer: bytes) -> str:
    """The signature of a signed upload's trailing headers (``name:value\\n`` each)."""
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            credential.timestamp,
            credential.scope,
            previous,
            hashlib.sha256(trailer).hexdigest(),
        ]
    )
    return signature(key, to_sign)


def check_chunk(expected: str, given: str) -> None:
    if not hmac.compare_digest(expected, given):
        raise SignatureError(
            "mismatch",
            "The chunk signature we calculated does not match the signature you provided "
            "(a chunk of the body was changed, dropped or reordered).",
        )
