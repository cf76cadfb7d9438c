"""The one door for AWS requests: tell them from the rest, check the signature, hand each to its
service.

A request is an AWS one when it carries a SigV4 signature (``Authorization: AWS4-HMAC-SHA256
...`` or a presigned URL's query) or an ``X-Amz-Target``; every other request goes to the
wrapped app (the management API) unchanged, so bearer keys keep working there. The service is
the signature's scope (``.../us-east-1/s3/aws4_request``), which is what boto3 signs for the
client it was asked for; an unsigned request with a target is told apart by the target's
prefix, to be refused in its own protocol's words.

In order: parse the credential, check its date (within five minutes of now), region and
service, find the key (an unknown or revoked key is the same refusal), then verify the
signature: over the body's SHA-256 for the JSON and query services (the body is read first,
up to ``max_body`` bytes), or over the signed ``x-amz-content-sha256`` for S3, whose handler
streams the body and checks that hash as it goes. Only then is the operation run. Every answer
carries ``x-amzn-RequestId`` (and ``x-amz-request-id`` for S3).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from orchestrator import sigv4, tenancy
from orchestrator.access import Principal
from orchestrator.api.aws.errors import AwsError, aws_error
from orchestrator.api.inputs import acting_for
from orchestrator.errors import ThrottlingError
from orchestrator.ratelimit import TokenBuckets

log = logging.getLogger("orchestrator.api.aws")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SigningKeys = Callable[[str, str, str, str], tuple[bytes, Principal]]

MAX_BODY = 16 * 1024 * 1024


@dataclass
class AwsRequest:
    """One verified AWS request, as a service handler sees it."""

    service: str
    method: str
    raw_path: str  # as sent (percent-encoded)
    path: str  # decoded
    query: str  # as sent
    headers: list[tuple[str, str]]  # lower-case names, in order
    principal: Principal
    credential: sigv4.Credential | None
    request_id: str
    region: str
    body: bytes = b""  # the whole body, verified (services that do not stream)
    receive: Receive | None = None  # streaming services read the body themselves
    # What ``authorize`` was asked (action, resource ARN), for the audit trail.
    authorized: tuple[str, str] | None = None
    payload_hash: str = sigv4.EMPTY_SHA256  # what was signed for the body
    signing_key: bytes = b""  # the day's key the request verified with (S3's signed chunks)
    # What the audit trail records (a service that knows sets them: S3 names its operation).
    operation: str | None = None
    resource: str | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class AwsResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None  # sent after ``body`` when set


class AwsService(Protocol):
    """One AWS service on the wire: its signing name, whether it reads its own body, its
    operations, and how its protocol writes an error."""

    signing_name: ClassVar[str]
    streams_body: ClassVar[bool]

    async def handle(self, request: AwsRequest) -> AwsResponse: ...

    def render_error(self, error: AwsError, request_id: str) -> AwsResponse: ...


# The X-Amz-Target prefix of each JSON service, for unsigned requests.
_TARGETS = {"SageMaker.": "sagemaker", "Logs_20140328.": "logs"}
_TARGETS["GraniteServiceVersion20100801."] = "monitoring"


class AwsGateway:
    """ASGI: AWS requests to ``services`` (by signing name), the rest to ``api``."""

    def __init__(
        self,
        api: ASGIApp,
        services: list[AwsService],
        *,
        signing_keys: SigningKeys,
        region: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_body: int = MAX_BODY,
        limits: TokenBuckets | None = None,
    ) -> None:
        self.api = api
        self.limits = limits  # per access key, checked once the signature is
        self.services = {s.signing_name: s for s in services}
        self.signing_keys = signing_keys
        self.region = region
        self.now = now
        self.max_body = max_body

    @property
    def state(self) -> Any:
        return getattr(self.api, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        authorization = target = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-amz-target":
                target = value.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        if target is None and not sigv4.is_signed(authorization, query):
            if "s3" in self.services and _is_sigv2(authorization, query):
                with tenancy.acting_as(None):  # whatever the request sets ends with it
                    await self._serve(
                        scope, receive, send, (authorization, target, query), sigv2=True
                    )
                return
            await self.api(scope, receive, send)
            return
        with tenancy.acting_as(None):  # whatever the request sets ends with it
            await self._serve(scope, receive, send, (authorization, target, query))

    def _service_of(self, authorization: str | None, target: str | None, query: str) -> str:
        try:
            cred = sigv4.parse(authorization, query, {"x-amz-date": "0"})
            if cred.service in self.services:
                return cred.service
        except sigv4.SignatureError:
            pass
        for prefix, name in _TARGETS.items():
            if target and target.startswith(prefix):
                return name
        return "sagemaker"

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        found: tuple[str | None, str | None, str],
        *,
        sigv2: bool = False,
    ) -> None:
        authorization, target, query = found
        name = "s3" if sigv2 else self._service_of(authorization, target, query)
        service = self.services.get(name)
        if service is None:  # a signing name no service has: answer as the JSON services do
            service = self.services["sagemaker"]
        request_id = str(uuid.uuid4())
        # For the audit trail (orchestrator.api.auditing): the service, the operation, who.
        noted: dict[str, Any] = scope.setdefault("state", {})
        noted["audit_source"] = service.signing_name
        if target is not None:
            noted["audit_action"] = target.rpartition(".")[2]
        request: AwsRequest | None = None
        try:
            if sigv2:
                raise AwsError(
                    "InvalidRequest",
                    "The authorization mechanism you have provided is not supported (Signature "
                    "Version 2). Please use AWS4-HMAC-SHA256: with boto3, "
                    "Config(signature_version='s3v4'), also for generate_presigned_url.",
                )
            request = await self._verified(scope, receive, service, authorization, query)
            request.request_id = request_id
            if self.limits is not None:
                self.limits.check(request.principal.key_id)
            acting_for(request.principal)
            # The operation acts for the caller's account (the stores read it), in this task
            # and every thread it hands work to (asyncio.to_thread, run_in_threadpool copy
            # the context).
            tenancy.enter(request.principal.account)
            noted["principal"] = request.principal
            response = await service.handle(request)
        except Exception as e:
            error = aws_error(e, service.signing_name)
            if error.http_status >= 500:
                log.exception("%s request failed", service.signing_name, exc_info=e)
            response = service.render_error(error, request_id)
            if isinstance(e, ThrottlingError):  # when this key's next request goes through
                wait = str(max(1, math.ceil(e.retry_after)))
                kept = [(k, v) for k, v in response.headers if k != "retry-after"]
                response.headers = [*kept, ("retry-after", wait)]
            if service.streams_body:  # its body is still unread: not a connection to reuse
                response.headers.append(("connection", "close"))
        if request is not None and request.operation is not None:
            noted["audit_action"] = request.operation
            noted["audit_resource"] = request.resource
        headers = [(b"x-amzn-requestid", request_id.encode())]
        if service.signing_name == "s3":
            headers.append((b"x-amz-request-id", request_id.encode()))
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        if response.stream is None and not any(k == "content-length" for k, _ in response.headers):
            headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        if response.body:
            await send({"type": "http.response.body", "body": response.body, "more_body": True})
        async for chunk in response.stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _verified(
        self,
        scope: Scope,
        receive: Receive,
        service: AwsService,
        authorization: str | None,
        query: str,
    ) -> AwsRequest:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        first = {k: v for k, v in reversed(headers)}
        credential = sigv4.parse(authorization, query, first)
        sigv4.check_time(credential, self.now())
        sigv4.check_scope(credential, self.region, [service.signing_name])
        key, principal = await asyncio.to_thread(
            self.signing_keys, credential.access_key_id, credential.date, credential.region,
            credential.service,
        )  # fmt: skip
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw = raw_path.decode("latin-1").partition("?")[0]
        request = AwsRequest(
            service=service.signing_name, method=scope["method"], raw_path=raw,
            path=scope["path"], query=query, headers=headers, principal=principal,
            credential=credential, request_id="", region=self.region,
        )  # fmt: skip
        signed_hash = first.get("x-amz-content-sha256")
        signed = sigv4.Request(request.method, raw, query, headers)
        if service.streams_body:
            if credential.presigned:
                signed_hash = signed_hash or sigv4.UNSIGNED_PAYLOAD
            if not signed_hash:
                raise AwsError(
                    "InvalidRequest",
                    "Missing required header for this request: x-amz-content-sha256",
                )
            sigv4.verify(key, signed, credential, signed_hash)
            request.receive = receive
            request.payload_hash = signed_hash
            request.signing_key = key
            return request
        body = await read_body(receive, self.max_body)
        actual = sigv4.payload_hash_of(body)
        if signed_hash is not None and signed_hash not in (sigv4.UNSIGNED_PAYLOAD, actual):
            raise sigv4.SignatureError(
                "payload", "The provided 'x-amz-content-sha256' header does not match the body"
            )
        sigv4.verify(key, signed, credential, signed_hash or actual)
        request.body = body
        request.payload_hash = actual
        return request


def _is_sigv2(authorization: str | None, query: str) -> bool:
    """S3's old signatures: ``Authorization: AWS AKID:SIG`` or a ``Signature=`` query."""
    if authorization is not None and authorization.startswith("AWS "):
        return True
    return "AWSAccessKeyId=" in query and "Signature=" in query


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise AwsError("RequestTimeout", "the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise AwsError(
                "ValidationException", f"request body is over the {limit}-byte limit",
                status=413,
            )  # fmt: skip
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
