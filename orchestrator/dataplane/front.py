"""The data plane's front: a raw ASGI app that serves invocations and hands the rest on.

``POST /endpoints/{name}/invocations`` and ``POST /endpoints/{name}/v2/models/{model}/infer``
are matched by two string compares and served here, on the server's event loop, without
FastAPI's routing, its middleware or a request object; every other request (the management
API, ``/metrics``, ``/healthz``) goes to the wrapped app unchanged. In order, an invocation:

1. finds the endpoint's route (a dict read) and, unless the endpoint is public and no key was
   sent, checks the key: a cache hit is a dict read, a miss asks the ``KeyChecker`` off the
   loop (401 before the body is read, and the same 401 whether or not the endpoint exists);
2. without a route, answers 404, 409 (Failed) or 503 (not in service yet) from the endpoint's
   status (``endpoint_status``, off the loop);
3. refuses a body over ``max_payload_bytes`` (413): by Content-Length before reading, or as
   soon as a chunked body passes the limit;
4. hands the body, as bytes, to the ``Router`` and sends its answer back with
   ``X-Invoked-Production-Variant`` (and the replica's ``Retry-After``), then records it.

Errors are rendered by ``orchestrator.errors.http_answer``, like the management API's. The
front also runs the ASGI lifespan of the wrapped app, starting the data plane before it and
stopping it (flushing the last metrics) before the wrapped app shuts down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from orchestrator.access import authorize
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane.keys import presented_key
from orchestrator.dataplane.plane import DataPlane
from orchestrator.dataplane.router import Served
from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OrchestratorError,
    PayloadTooLargeError,
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
_PREFIX = "/endpoints/"
_V2 = "v2/models/"
_INVOKED = INVOKED_VARIANT_HEADER.lower().encode()
# Request headers passed on to the replica, as SageMaker's InvokeEndpoint passes them.
_FORWARDED = {b"content-type", b"accept", b"x-custom-attributes"}


class ClientGone(Exception):
    """The caller disconnected while its body was being read."""


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
            try:
                reply = await self.answer(
                    name, replica_path, scope["headers"], lambda limit: _read_body(receive, limit),
                    started,
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
    ) -> Reply:
        """The answer to one invocation, whichever server carries it (``read_body(limit)``
        reads the body, refusing one over ``limit``). Raises only ``ClientGone``."""
        try:
            return await self._serve(name, replica_path, headers, read_body, started)
        except OrchestratorError as e:
            return error_reply(e)
        except ClientGone:
            raise
        except Exception as e:  # a bug here must answer 500, not drop the connection
            log.exception("invocation of %s failed", name, exc_info=e)
            return error_reply(OrchestratorError(f"internal error: {type(e).__name__}"))

    async def _serve(
        self,
        name: str,
        replica_path: bytes,
        headers: list[tuple[bytes, bytes]],
        read_body: Callable[[int], Awaitable[bytes]],
        started: float,
    ) -> Reply:
        plane = self.plane
        authorization = api_key = target = None
        declared: bytes | None = None
        forwarded: list[bytes] = []
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
        route = plane.routes.get(name)
        await self._authenticate(route, presented_key(authorization, api_key))
        if route is None:
            raise await self._not_routed(name)
        limit = plane.max_payload_bytes
        if declared is not None:
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
        body = await read_body(limit)
        served = await plane.router.invoke(
            route, replica_path, b"".join(forwarded), body, target=target, started=started
        )
        answer = served.answer
        out = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (_INVOKED, served.variant.name.encode()),
        ]
        if answer.retry_after is not None:
            out.append((b"retry-after", answer.retry_after))
        return Reply(answer.status, out, answer.body, route, served)

    async def _authenticate(self, route: EndpointRoute | None, key: str | None) -> None:
        if route is not None and route.public and not key:
            return
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
            return
        authorize(principal, "endpoint:invoke")

    async def _not_routed(self, name: str) -> OrchestratorError:
        status = await asyncio.to_thread(self.plane.endpoint_status, name)
        if status is None:
            return NotFoundError(f"Endpoint {name!r} does not exist")
        if status[0] == "Failed":
            return ConflictError(f"endpoint {name!r} is Failed: {status[1]}")
        return UnavailableError(
            f"endpoint {name!r} is {status[0]}, not in service yet", retry_after=1
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
