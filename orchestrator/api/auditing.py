"""Recording calls into the audit trail at the front doors.

``AuditMiddleware`` is raw ASGI (no Starlette middleware: those cost throughput) around the
AWS gateway and the management API. On the request's path it only notes the raw parts
(headers, a JSON or form body up to 64 KiB, never an object's, the status, the start of an
error answer) and queues them; the trail's writer turns them into records. Who called and
what they did are read, once the call is over, from the request's state: ``principal``
(set by authentication), ``authorized`` (``(action, resource ARN)``, set by authorization),
or the AWS gateway's ``audit_action`` / ``audit_resource`` / ``audit_source``; failing
those, from the route that served the call.

Every answer carries a request id: the AWS gateway's ``x-amzn-RequestId``, or one made here
and sent as ``X-Request-Id`` and ``x-amzn-RequestId``.

``denied_recorder`` is the invocation data plane's hook: it records every invocation
refused with 401 or 403, or answered to a keyed caller as for an absent endpoint, with the
caller's account id (the data plane imports nothing of the audit trail).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from orchestrator import tenancy
from orchestrator.audit import AuditTrail, Call
from orchestrator.audit.record import MAX_PARAMETERS
from orchestrator.dataplane.plane import DeniedHook

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNRECORDED = frozenset({"/healthz"})  # probes, many a minute: not calls anyone made
_ERROR_BYTES = 4096
_REST = "/api/v1/"
_OBJECTS = "/api/v1/objects"
_REQUEST_ID = b"x-request-id"
_AMZN_REQUEST_ID = b"x-amzn-requestid"
_CAMEL = re.compile(r"(?:^|_)([a-z0-9])")


def _parameters_body(headers: list[tuple[bytes, bytes]], path: str) -> bool:
    """Whether the body is a request's parameters (JSON or a form), not an object."""
    content_type = b""
    target = False
    for key, value in headers:
        if key == b"content-type":
            content_type = value.lower()
        elif key == b"x-amz-target":
            target = True
    if b"json" not in content_type and b"form-urlencoded" not in content_type:
        return False
    if path.startswith(_OBJECTS):
        return False
    # The management API's JSON, the AWS JSON protocols (a target), the query protocol (a
    # form posted to /); an S3 PutObject has a bucket and key in its path.
    return path.startswith(_REST) or target or path == "/"


def action_name(route_name: str) -> str:
    """``describe_training_job`` -> ``DescribeTrainingJob``."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), route_name)


class AuditMiddleware:
    def __init__(self, app: ASGIApp, trail: AuditTrail, *, account_id: str = "") -> None:
        self.app = app
        self.trail = trail
        self.account_id = account_id  # the server's own account id, for its callers' records

    @property
    def state(self) -> Any:
        """The wrapped app's ``state`` (FastAPI's), for code that reaches into it."""
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNRECORDED:
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        client = scope.get("client")
        call = Call(
            time=time.time(),
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=headers,
            source=client[0] if client else "",
        )
        inner_receive = receive
        if _parameters_body(headers, call.path):
            parts: list[bytes] = []
            size = 0

            async def receive_noting() -> Message:
                nonlocal size
                message = await receive()
                if message["type"] == "http.request":
                    chunk = message.get("body", b"")
                    if chunk:
                        if size < MAX_PARAMETERS:
                            parts.append(chunk[: MAX_PARAMETERS - size])
                        size += len(chunk)
                    if not message.get("more_body", False):
                        call.body = b"".join(parts)
                        call.body_truncated = size > MAX_PARAMETERS
                return message

            inner_receive = receive_noting

        async def send_noting(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                call.status = message["status"]
                out = message.get("headers") or []
                for key, value in out:
                    if key in (_AMZN_REQUEST_ID, _REQUEST_ID):
                        call.request_id = value.decode("latin-1")
                        break
                else:
                    rid = os.urandom(16).hex().encode()
                    call.request_id = rid.decode()
                    message = {
                        **message,
                        "headers": [*out, (_REQUEST_ID, rid), (_AMZN_REQUEST_ID, rid)],
                    }
            elif kind == "http.response.body" and call.status >= 400 and call.error_body is None:
                call.error_body = bytes(message.get("body", b""))[:_ERROR_BYTES]
            await send(message)

        try:
            await self.app(scope, inner_receive, send_noting)
        finally:
            if call.status == 0:
                call.status = 500  # the app raised before answering
            _who_and_what(call, scope, state, self.account_id)
            self.trail.submit(call)


def _who_and_what(
    call: Call, scope: Scope, state: MutableMapping[str, Any], server_account_id: str = ""
) -> None:
    principal = state.get("principal")
    if principal is not None:
        call.principal_name = getattr(principal, "name", None)
        call.principal_key_id = getattr(principal, "key_id", None)
        account = str(getattr(principal, "account", "") or "")
        # its 12 digits, as its ARNs carry them (the server's own: its id, when known)
        call.principal_account = tenancy.arn_account(account, server_account_id) or None
    source = state.get("audit_source")
    if source is not None:
        call.event_source = f"{source}.amazonaws.com"
        call.event_type = "AwsApiCall"
        call.action = state.get("audit_action")
        call.resource = state.get("audit_resource")
        return
    authorized = state.get("authorized")
    if isinstance(authorized, tuple) and len(authorized) == 2:
        # ``sagemaker:CreateTrainingJob`` is recorded as CloudTrail names it: the operation.
        action = str(authorized[0])
        call.action = action.rpartition(":")[2] or action
        call.resource = str(authorized[1]) or None
        return
    route = scope.get("route")
    name = getattr(route, "name", None)
    if isinstance(name, str):
        call.action = action_name(name)
    params = scope.get("path_params")
    if params and call.path.startswith(_REST):
        call.resource = call.path.removeprefix(_REST)


def _presented_key_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key id the caller named (never the secret): a bearer key's middle part, or a
    SigV4 credential's access key id."""
    for key, value in headers:
        text = value.decode("latin-1")
        if key == b"authorization":
            if "Credential=" in text:
                return text.split("Credential=", 1)[1].split("/", 1)[0] or None
            token = text.removeprefix("Bearer ").strip()
        elif key == b"x-api-key":
            token = text.strip()
        else:
            continue
        parts = token.split("_", 2)
        if len(parts) == 3 and parts[1]:
            return parts[1]
        return None
    return None


def denied_recorder(trail: AuditTrail) -> DeniedHook:
    """The data plane's hook: a refused invocation of endpoint ``name`` (``account``: the
    caller's account id, "" when no key was verified)."""

    def record(
        name: str,
        headers: list[tuple[bytes, bytes]],
        status: int,
        body: bytes,
        client: str,
        *,
        account: str = "",
    ) -> None:
        trail.submit(
            Call(
                time=time.time(),
                method="POST",
                path=f"/endpoints/{name}/invocations",
                headers=headers,
                source=client,
                status=status,
                principal_key_id=_presented_key_id(headers),
                principal_account=account or None,
                action="InvokeEndpoint",
                resource=f"endpoint/{name}",
                error_body=body[:_ERROR_BYTES],
                request_id=os.urandom(16).hex(),
                event_source="runtime.sagemaker.amazonaws.com",
                event_type="AwsApiCall",
            )
        )

    return record
