"""The data plane's front: a raw ASGI app that serves invocations and hands the rest on.

``POST /endpoints/{name}/invocations`` and ``POST /endpoints/{name}/v2/models/{model}/infer``
are matched by two string compares and served here, on the server's event loop, without
FastAPI's routing, its middleware or a request object; every other request (the management
API, ``/metrics``, ``/healthz``) goes to the wrapped app unchanged. In order, an invocation:

1. finds the endpoint's route (a dict read) and, unless the endpoint is public and no key was
   sent, checks the key: a cache hit is a dict read, a miss asks the ``KeyChecker`` off the
   loop (401 before the body is read, and the same 401 whether or not the endpoint exists);
   a SigV4 caller (``Authorization: AWS4-HMAC-SHA256``, boto3's ``sagemaker-runtime``) is
   checked as the next paragraph says;
2. without a route, answers 404, 409 (Failed) or 503 (not in service yet) from the endpoint's
   status (``endpoint_status``, off the loop);
3. refuses a body over ``max_payload_bytes`` (413): by Content-Length before reading, or as
   soon as a chunked body passes the limit;
4. hands the body, as bytes, to the ``Router`` and sends its answer back with
   ``X-Invoked-Production-Variant`` (and SageMaker's ``x-Amzn-Invoked-Production-Variant``,
   and the replica's ``Retry-After``), then records it.

Errors are rendered by ``orchestrator.errors.http_answer``, like the management API's.

A SigV4 caller is served the same way, in SageMaker Runtime's shapes (``runtime``): its
credential is checked (form, time, region, service) and its signing key found (a
``SigningKeyCache`` hit is a dict read, a miss asks the ``SigningKeySource`` off the loop)
before the body is read; then the limit, the body, and the signature over it; then
``authorize``. A public endpoint serves a SigV4 caller whatever it signed with, as it serves
a bad API key. The answer carries SageMaker's headers, a replica's non-2xx becomes ModelError,
and every refusal is SageMaker Runtime's error; what is recorded is the same either way.

Tenancy (``orchestrator.tenancy``): each route carries its endpoint's account. A keyed caller
of another account (its ``Principal.account`` differs) is answered exactly as for an absent
endpoint: the route is dropped once the key is verified (one string compare, no lock, no
I/O) and the request goes on as one without a route, so the authorization (on an ARN in the
caller's own account), the rate limit, the status lookup (``endpoint_status``, asked as the
caller's account) and the 404 (SageMaker Runtime's names the caller's account) are an absent
endpoint's. A public endpoint (AuthMode None) serves any caller, as before; another
account's key is not authorized against it (its policies speak of its own account). A
served invocation is authorized on the endpoint's ARN in the endpoint's own account.

Besides 401 and 403, ``plane.on_denied`` (the audit trail) is told of every keyed caller's
invocation answered as for an absent endpoint, and of a SigV4 caller's AccessDenied (a 400
in SageMaker Runtime's shapes), with the caller's account: the same record whether the
endpoint is another account's or absent.

The front also runs the ASGI lifespan of the wrapped app, starting the data plane before it and
stopping it (flushing the last metrics) before the wrapped app shuts down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from orchestrator import sigv4, tenancy
from orchestrator.access import Principal, authorize
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane import runtime
from orchestrator.dataplane.keys import presented_key
from orchestrator.dataplane.plane import DataPlane
from orchestrator.dataplane.router import Served
from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OrchestratorError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
    http_answer,
)

log = logging.getLogger("orchestrator.dataplane")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INVOKED_VARIANT_HEADER = "X-Invoked-Production-Variant"
INVOKE = "sagemaker:InvokeEndpoint"
_PREFIX = "/endpoints/"
_V2 = "v2/models/"
_INVOKED = INVOKED_VARIANT_HEADER.lower().encode()
_AMZN = runtime.PREFIX
# Request headers passed on to the replica, as SageMaker's InvokeEndpoint passes them (and
# SageMaker's own X-Amzn-SageMaker-* ones: ``runtime.sagemaker_headers``).
_FORWARDED = {b"content-type", b"accept", b"x-custom-attributes"}


class ClientGone(Exception):
    """The caller disconnected while its body was being read."""


class _Caller:
    """Who one invocation's caller turned out to be, for the audit trail: its principal once
    its key is verified, and whether it was refused in a way a 401/403 status does not show
    (an endpoint absent to it; SigV4's AccessDenied, a 400)."""

    __slots__ = ("principal", "refused")

    def __init__(self) -> None:
        self.principal: Principal | None = None
        self.refused = False


def match_invocation(path: str) -> tuple[str, bytes] | None:
    """(endpoint name, path on the replica) for an invocation path, else None."""
    if not path.startswith(_PREFIX):
        return None
    name, sep, tail = path[len(_PREFIX) :].partition("/")
    if not name or not sep:
        return None
    if tail == "invocations":
        return name, b"/invocations"
    if tail.startswith(_V2) and tail.endswith("/infer"):
        model = tail[len(_V2) : -len("/infer")]
        if model and "/" not in model:
            return name, f"/v2/models/{quote(model, safe='')}/infer".encode()
    return None


class DataPlaneFront:
    """The ASGI app a control plane serves: invocations here, the rest to ``api``.
    ``unrouted``: where an invocation of an endpoint with no route goes, as it came (a router
    worker passes it to the control plane); by default the front answers from its status."""

    def __init__(self, api: ASGIApp, plane: DataPlane, *, unrouted: ASGIApp | None = None) -> None:
        self.api = api
        self.plane = plane
        self.unrouted = unrouted

    @property
    def state(self) -> Any:
        """The wrapped app's ``state`` (FastAPI's), for code that reaches into it."""
        return getattr(self.api, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            matched = match_invocation(scope["path"])
            if matched is not None:
                await self._invocation(scope, receive, send, *matched)
                return
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.api(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        plane = self.plane

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await plane.start()
            elif message["type"] == "lifespan.shutdown":
                await plane.stop()
            return message

        await self.api(scope, wrapped, send)

    async def _invocation(
        self, scope: Scope, receive: Receive, send: Send, name: str, replica_path: bytes
    ) -> None:
        started = time.perf_counter()
        if scope["method"] != "POST":
            reply = method_not_allowed(scope["path"])
        else:
            if self.unrouted is not None and self.plane.routes.get(name) is None:
                await self.unrouted(scope, receive, send)
                return
            raw_target: bytes = scope.get("raw_path") or scope["path"].encode()
            query: bytes = scope.get("query_string", b"")
            if query:
                raw_target += b"?" + query
            try:
                reply = await self.answer(
                    name, replica_path, scope["headers"], lambda limit: _read_body(receive, limit),
                    started, raw_target=raw_target, client=_client(scope),
                )  # fmt: skip
            except ClientGone:
                return
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
        )
        await send({"type": "http.response.body", "body": reply.body})
        reply.record(self.plane, started)

    async def answer(
        self,
        name: str,
        replica_path: bytes,
        headers: list[tuple[bytes, bytes]],
        read_body: Callable[[int], Awaitable[bytes]],
        started: float,
        *,
        raw_target: bytes = b"",
        client: str = "",
    ) -> Reply:
        """The answer to one invocation, whichever server carries it (``read_body(limit)``
        reads the body, refusing one over ``limit``; ``raw_target``: the request target as
        sent, which a signature covers; ``client``: the caller's address, for the refusals
        told to ``plane.on_denied``). Raises only ``ClientGone``."""
        caller = _Caller()
        try:
            reply = await self._serve(
                name, replica_path, headers, read_body, caller, started=started,
                raw_target=raw_target,
            )  # fmt: skip
        except OrchestratorError as e:
            reply = error_reply(e)
        except ClientGone:
            raise
        except Exception as e:  # a bug here must answer 500, not drop the connection
            log.exception("invocation of %s failed", name, exc_info=e)
            reply = error_reply(OrchestratorError(f"internal error: {type(e).__name__}"))
        on_denied = self.plane.on_denied
        if on_denied is not None and (caller.refused or reply.status in {401, 403}):
            who = caller.principal
            server = self.plane.settings.account_id
            account = "" if who is None else tenancy.arn_account(who.account, server)
            on_denied(name, headers, reply.status, reply.body, client, account=account)
        return reply

    async def _serve(
        self,
        name: str,
        replica_path: bytes,
        headers: list[tuple[bytes, bytes]],
        read_body: Callable[[int], Awaitable[bytes]],
        caller: _Caller,
        *,
        started: float,
        raw_target: bytes,
    ) -> Reply:
        plane = self.plane
        authorization = api_key = target = cookie = csrf = None
        declared: bytes | None = None
        forwarded: list[bytes] = []
        amzn: list[tuple[bytes, bytes]] | None = None
        for key, value in headers:
            if key in _FORWARDED:
                forwarded.append(key + b": " + value + b"\r\n")
            elif key == b"content-length":
                declared = value
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-api-key":
                api_key = value.decode("latin-1")
            elif key == b"x-target-variant":
                target = value.decode("latin-1")
            elif key == b"cookie":
                cookie = value.decode("latin-1")
            elif key == b"x-csrf-token":
                csrf = value.decode("latin-1")
            elif key.startswith(_AMZN):
                if amzn is None:
                    amzn = []
                amzn.append((key, value))
        if authorization is not None and authorization.startswith(sigv4.ALGORITHM):
            request = _Signed(name, replica_path, headers, raw_target, authorization, declared)
            return await self._serve_signed(
                request, read_body, caller, forwarded=forwarded, target=target, amzn=amzn,
                started=started,
            )  # fmt: skip
        presented = presented_key(authorization, api_key)
        if presented is None and cookie is not None and plane.session_key is not None:
            presented = plane.session_key(cookie, csrf)  # the console's test requests
        route = await self._authenticate(plane.routes.get(name), presented, name, caller)
        if route is None:
            raise await self._not_routed(name, caller)
        if amzn is not None:
            target = runtime.sagemaker_headers(amzn, forwarded, target, name)
        limit = plane.max_payload_bytes
        _check_length(declared, limit)
        body = await read_body(limit)
        served = await plane.router.invoke(
            route, replica_path, b"".join(forwarded), body, target=target, started=started
        )
        answer = served.answer
        variant = served.variant.name.encode()
        out = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (_INVOKED, variant),
            # SageMaker's name too, for boto3 calling a public endpoint unsigned.
            (runtime.INVOKED_VARIANT, variant),
        ]
        if answer.retry_after is not None:
            out.append((b"retry-after", answer.retry_after))
        return Reply(answer.status, out, answer.body, route, served)

    async def _serve_signed(
        self,
        request: _Signed,
        read_body: Callable[[int], Awaitable[bytes]],
        caller: _Caller,
        *,
        forwarded: list[bytes],
        target: str | None,
        amzn: list[tuple[bytes, bytes]] | None,
        started: float,
    ) -> Reply:
        """A SigV4 caller's invocation, answered in SageMaker Runtime's shapes (never raises
        but ``ClientGone``)."""
        plane = self.plane
        settings = plane.settings
        request_id = _request_id()
        route = plane.routes.get(request.name)
        principal: Principal | None = None
        try:
            principal = await self._check_signature(route, request, read_body)
            if principal is not None:
                caller.principal = principal
                route = self._admit(principal, request.name, route)
            if route is None:
                raise await self._not_routed(request.name, caller)
            if amzn is not None:
                target = runtime.sagemaker_headers(amzn, forwarded, target, request.name)
            served = await plane.router.invoke(
                route, request.replica_path, b"".join(forwarded), request.body, target=target,
                started=started,
            )  # fmt: skip
        except ClientGone:
            raise
        except Exception as e:
            if not isinstance(e, (OrchestratorError, sigv4.SignatureError)):
                log.exception("invocation of %s failed", request.name, exc_info=e)
            if isinstance(e, PermissionDeniedError):
                caller.refused = True  # AccessDeniedException is a 400: told all the same
            # What the answer names: the endpoint's account, or (none the caller may see) the
            # caller's own, as SageMaker names it for an endpoint that is not there.
            if route is not None:
                owner = route.account
            else:
                owner = principal.account if principal is not None else tenancy.ROOT
            status, headers, body = runtime.error_answer(
                e, endpoint=request.name, region=settings.region,
                account=tenancy.arn_account(owner, settings.account_id), request_id=request_id,
            )  # fmt: skip
            return Reply(status, headers, body)
        answer = served.answer
        variant = served.variant.name
        if 200 <= answer.status < 300:
            out = runtime.answer_headers(answer, variant, request_id)
            return Reply(answer.status, out, answer.body, route, served)
        status, out, body = runtime.model_error(
            answer, variant=variant, endpoint=request.name, region=settings.region,
            account=tenancy.arn_account(route.account, settings.account_id), request_id=request_id,
        )  # fmt: skip
        return Reply(status, out, body, route, served)

    async def _check_signature(
        self,
        route: EndpointRoute | None,
        request: _Signed,
        read_body: Callable[[int], Awaitable[bytes]],
    ) -> Principal | None:
        """Check the credential and find its key, then read the body (into ``request.body``)
        and check the signature over it: the signer's principal, or None for a public
        endpoint's caller whose signature did not pass. Raises ``sigv4.SignatureError``
        otherwise, before the body is read when the credential or its key is refused."""
        plane = self.plane
        decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        found: tuple[bytes, Principal] | None = None
        try:
            credential = runtime.credential(
                request.authorization, decoded, region=plane.settings.region,
                now=plane.wall_clock(),
            )  # fmt: skip
            scope = (
                credential.access_key_id, credential.date, credential.region, credential.service
            )  # fmt: skip
            found = plane.signing_keys.get(scope)
            if found is None:
                found = await plane.signing_keys.check(plane.signing_key_source, scope)
        except sigv4.SignatureError:
            # The same refusal whether or not the endpoint exists; a public one serves anyway.
            if route is None or not route.public:
                raise
        limit = plane.max_payload_bytes
        _check_length(request.declared, limit)
        request.body = await read_body(limit)
        if found is None:
            return None
        try:
            runtime.verify(found[0], request.raw_target, decoded, credential, request.body)
        except sigv4.SignatureError:
            if route is None or not route.public:
                raise
            return None
        return found[1]

    async def _authenticate(
        self, route: EndpointRoute | None, key: str | None, name: str, caller: _Caller
    ) -> EndpointRoute | None:
        """Check the key, then ``_admit``: the route the caller is served by, None when it
        has none (absent, or another account's)."""
        if route is not None and route.public and not key:
            return route
        plane = self.plane
        try:
            principal = plane.keys.get(key) if key else None
            if principal is None:
                principal = await plane.keys.check(plane.key_checker, key)
        except AuthenticationError:
            # A caller without a valid key gets the same 401 whether or not the endpoint
            # exists; a public endpoint ignores a bad key.
            if route is None or not route.public:
                raise
            return route
        caller.principal = principal
        return self._admit(principal, name, route)

    def _admit(
        self, principal: Principal, name: str, route: EndpointRoute | None
    ) -> EndpointRoute | None:
        """Authorize a verified caller and count it against its key's limit (before the body
        is read); the route it is served by. Another account's endpoint is absent to it
        (None, from here on answered as an absent endpoint), unless the endpoint is public:
        then anyone may invoke it, without authorization by another account's policies."""
        foreign = route is not None and route.account != principal.account
        if foreign and route is not None and not route.public:
            route, foreign = None, False
        if not foreign:
            self._authorize(principal, name, route)
        if self.plane.invocation_limits is not None:  # per key, before the body is read
            self.plane.invocation_limits.check(principal.key_id)
        return route

    def _authorize(self, principal: Principal, name: str, route: EndpointRoute | None) -> None:
        """``sagemaker:InvokeEndpoint`` on the endpoint's ARN (in the endpoint's account;
        without a route, in the caller's, where the endpoint would be), its tags from the
        route."""
        s = self.plane.settings
        account = route.account if route is not None else principal.account
        arn = (
            f"arn:aws:sagemaker:{s.region}:{tenancy.arn_account(account, s.account_id)}:"
            f"endpoint/{name.lower()}"
        )
        tags = route.tags if route is not None else ()
        authorize(principal, INVOKE, arn, (lambda: dict(tags)) if tags else None)

    async def _not_routed(self, name: str, caller: _Caller) -> OrchestratorError:
        """The answer for an endpoint with no route the caller may use, from its status as
        the caller's account sees it (another account's endpoint is absent)."""
        who = caller.principal
        account = who.account if who is not None else None
        status = await asyncio.to_thread(_status_as, self.plane.endpoint_status, name, account)
        if status is None:
            caller.refused = who is not None  # a keyed caller's unknown endpoint: audited
            return NotFoundError(f"Endpoint {name!r} does not exist")
        if status[0] == "Failed":
            return ConflictError(f"endpoint {name!r} is Failed: {status[1]}")
        return UnavailableError(
            f"endpoint {name!r} is {status[0]}, not in service yet", retry_after=1
        )


def _status_as(
    endpoint_status: Callable[[str], tuple[str, str] | None], name: str, account: str | None
) -> tuple[str, str] | None:
    """``endpoint_status(name)`` asked as ``account`` (the stores show it only its own)."""
    with tenancy.acting_as(account):
        return endpoint_status(name)


@dataclass(slots=True)
class _Signed:
    """What a SigV4 invocation's checks need of the request."""

    name: str
    replica_path: bytes
    headers: list[tuple[bytes, bytes]]
    raw_target: bytes
    authorization: str
    declared: bytes | None
    body: bytes = b""


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _request_id() -> bytes:
    """A random id in a UUID's form, as SageMaker's ``x-amzn-RequestId`` (without building a
    ``uuid.UUID``: a third of its time, timeit)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


def _check_length(declared: bytes | None, limit: int) -> None:
    """Refuse a declared Content-Length that is not a number or is over ``limit``."""
    if declared is None:
        return
    if not declared.isdigit():
        raise ValidationError(
            f"Content-Length {declared.decode('latin-1')!r} is not a number of bytes",
            field="Content-Length",
        )
    if int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {int(declared)} bytes is over the {limit}-byte limit; "
            "send smaller batches",
            field="Content-Length",
        )


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        if size > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body is over the {limit}-byte limit; send smaller batches", field="body"
    )


@dataclass(slots=True)
class Reply:
    """An invocation's answer, and what to record once it has been sent."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    route: EndpointRoute | None = None
    served: Served | None = None

    def record(self, plane: DataPlane, started: float) -> None:
        if self.route is not None and self.served is not None:
            plane.router.answered(self.route, self.served, started)


def error_reply(error: OrchestratorError) -> Reply:
    status, headers, body = http_answer(error)
    raw = [(k.encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    if isinstance(error, PayloadTooLargeError):
        raw.append((b"connection", b"close"))  # the rest of the body is never read
    return Reply(status, raw, body)


def method_not_allowed(path: str) -> Reply:
    # An HTTP-level refusal, worded like the management API's (no error class: not ours).
    body = json.dumps({"code": "MethodNotAllowed", "message": f"use POST for {path}"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"allow", b"POST"),
    ]
    return Reply(405, headers, body)
