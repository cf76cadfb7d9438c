"""Replicas that misbehave on purpose, for the data plane's tests.

``RawServer`` is a plain asyncio server whose answer to each request is chosen by the test
(answer, close at once, answer half, stay silent), so every failure the pool and router
handle can be produced exactly. ``fake_replica_app`` is an ASGI replica for tests that go
through a served control plane: it answers ``{"n": <body bytes>, "path": ...}`` with a model
latency header, and obeys ``X-Custom-Attributes`` (which the router passes on) such as
``status=429`` or ``sleep=0.3``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

Behaviour = Callable[[bytes], bytes | None]  # request bytes -> answer bytes, or None: close


def answer(status: int = 200, body: bytes = b'{"ok":true}', **headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawReplica(asyncio.Protocol):
    """One connection of ``RawServer``: collects a request (head + Content-Length body)."""

    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.server.transports.append(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        request, self.buffer = head + sep + rest[:length], rest[length:]
        self.server.requests.append(request)
        reply = self.server.behaviour(request)
        assert self.transport is not None
        if reply is None:
            self.transport.close()
        elif reply:
            self.transport.write(reply)


class RawServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context  # HTTPS (a replica with ORCH_SERVING__REPLICA_TLS)
        self.behaviour: Behaviour = lambda _request: answer()
        self.requests: list[bytes] = []
        self.connections = 0
        self.transports: list[asyncio.Transport] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RawReplica(self), "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for t in self.transports:
            t.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def fake_replica_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI stand-in for a replica (see the module docstring)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    attributes = dict(scope["headers"]).get(b"x-custom-attributes", b"").decode()
    options = dict(kv.split("=", 1) for kv in attributes.split(";") if "=" in kv)
    if "sleep" in options:
        await asyncio.sleep(float(options["sleep"]))
    status = int(options.get("status", "200"))
    payload = json.dumps({"n": len(body), "path": scope["path"]}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-orch-model-latency-us", b"250"),
    ]
    if status == 429:
        headers.append((b"retry-after", b"3"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
