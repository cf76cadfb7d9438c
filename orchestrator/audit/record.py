"""One audit record: what a call looked like when it reached a front door, and the record
that is kept of it (pure: no I/O).

``Call`` is what a front door captures on the request's path, as cheaply as it can (raw
headers, the raw body of a JSON or form request, the status). ``to_record`` turns it into
the record, off that path: request parameters parsed, secrets removed, the user agent read.
``seal`` chains a record to the one before it (``previousHash``) and hashes it (``hash``):
SHA-256 over its canonical JSON (sorted keys, no spaces, UTF-8), without its own ``hash``.
A stored line need not be canonical itself: a verifier parses it, drops ``hash`` and
serialises it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

GENESIS = "0" * 64
REDACTED = "***"
# Request parameters named like these never reach a record (compared lower-case, without
# separators); a name that ends in "id" or "name" only names a secret (``AccessKeyId``).
_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "privatekey",
    "keymaterial",
    "apikey",
    "authorization",
    "signature",
    "credential",
    "sessionkey",
)
_SEPARATORS = re.compile(r"[-_.\s]")
MAX_PARAMETERS = 64 * 1024  # bytes of a request body parsed into requestParameters


@dataclass(slots=True)
class Call:
    """One call as its front door saw it; the raw parts, converted later."""

    time: float
    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    source: str = ""
    status: int = 0
    principal_name: str | None = None
    principal_key_id: str | None = None
    principal_account: str | None = None  # the caller's account id (12 digits), when known
    action: str | None = None
    resource: str | None = None
    body: bytes | None = None  # a JSON or form body, never an object's
    body_truncated: bool = False
    error_body: bytes | None = None  # the first bytes of an error answer, for its code
    request_id: str = ""
    event_source: str = "orchestrator"
    event_type: str = "ApiCall"


def is_secret_name(name: str) -> bool:
    flat = _SEPARATORS.sub("", name.lower())
    if flat.endswith(("id", "name", "ids", "names")):
        return False
    return any(word in flat for word in _SECRET_WORDS)


def redact(value: Any) -> Any:
    """``value`` with every value under a secret-named key replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_name(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def request_parameters(call: Call) -> dict[str, Any] | None:
    """The query's and the body's parameters, secrets removed (None: there were none)."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(call.query.decode("latin-1"), keep_blank_values=True):
        params[key] = value
    if call.body:
        content_type = (_header(call.headers, b"content-type") or "").lower()
        text = call.body.decode("utf-8", "replace")
        parsed: Any
        if "form-urlencoded" in content_type:
            parsed = dict(parse_qsl(text, keep_blank_values=True))
        else:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict):
            params.update(parsed)
        elif parsed is not None:
            params["body"] = parsed
        elif call.body_truncated:
            params["bodyTruncated"] = True
    if call.body_truncated:
        params["bodyTruncated"] = True
    if not params:
        return None
    redacted: dict[str, Any] = redact(params)
    return redacted


def error_code(call: Call) -> str | None:
    """The error's code from its answer (our JSON's ``code``, AWS JSON's ``__type``, S3's XML
    ``<Code>``), or the status's class when the body names none."""
    if call.status < 400:
        return None
    body = call.error_body or b""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("code", "__type", "Code", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value.rsplit("#", 1)[-1]
    found = re.search(r"<Code>([^<]+)</Code>", text)
    if found:
        return found.group(1)
    return f"Http{call.status}"


def to_record(call: Call) -> dict[str, Any]:
    """The record of ``call``, not yet sealed."""
    when = datetime.fromtimestamp(call.time, UTC)
    identity: dict[str, Any] | None = None
    if call.principal_name is not None or call.principal_key_id is not None:
        identity = {"userName": call.principal_name, "keyId": call.principal_key_id}
        if call.principal_account is not None:
            identity["accountId"] = call.principal_account
    parameters = request_parameters(call)
    resource = call.resource or _named(parameters)
    if call.action is None and parameters and isinstance(parameters.get("Action"), str):
        call.action = parameters["Action"]  # the AWS query protocol names it in the form
    return {
        "eventVersion": "1.0",
        "eventID": secrets.token_hex(16),
        "eventTime": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "eventType": call.event_type,
        "eventSource": call.event_source,
        "eventName": call.action or f"{call.method} {call.path}",
        "userIdentity": identity,
        "sourceIPAddress": call.source,
        "userAgent": _header(call.headers, b"user-agent"),
        "httpMethod": call.method,
        "path": call.path,
        "resources": [resource] if resource else [],
        "requestParameters": parameters,
        "statusCode": call.status,
        "errorCode": error_code(call),
        "requestID": call.request_id,
    }


def _named(parameters: dict[str, Any] | None) -> str | None:
    """What a create names (``TrainingJobName``...): the first top-level ``*Name``."""
    for key, value in (parameters or {}).items():
        if key.endswith("Name") and isinstance(value, str) and value and value != REDACTED:
            return value
    return None


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (orjson: the writer does this for every record)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson does not take (an integer over 64 bits): the same form
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of ``record``'s canonical JSON, its own ``hash`` left out."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def seal(record: dict[str, Any], seq: int, previous: str) -> bytes:
    """``record`` as number ``seq`` of the chain, after the record whose hash is
    ``previous``: its line (JSON, ``hash`` last; ``record`` gets ``hash`` too). One
    serialisation does for both the hash and the line."""
    record["seq"] = seq
    record["previousHash"] = previous
    body = canonical(record)
    digest = hashlib.sha256(body).hexdigest()
    record["hash"] = digest
    return body[:-1] + b',"hash":"' + digest.encode() + b'"}'


def event_time(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
