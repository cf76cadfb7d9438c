"""One router worker process: ``python -m orchestrator.dataplane.worker --hub ... --port ...``.

Started by the control plane (``orchestrator.dataplane.workers``), never by hand. It listens on
the control plane's own address (``SO_REUSEPORT``) and serves invocations with a data plane
of its own whose routing table is a copy the hub keeps current; its key checker and its
signing-key source ask the hub (which answers with a SigV4 scope's derived key, never the
secret), its metrics and held requests go to the hub. Everything else (the management API,
endpoints it has no route for) is passed to the control plane over its private Unix socket,
streamed both ways (httpx). It exits when the hub goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn

from orchestrator import sigv4
from orchestrator.access import Principal
from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane import wire
from orchestrator.dataplane.fastpath import protocol_for
from orchestrator.dataplane.front import DataPlaneFront, Receive, Scope, Send
from orchestrator.dataplane.plane import DataPlane
from orchestrator.dataplane.recorder import Event
from orchestrator.errors import AuthenticationError, UnavailableError, http_answer

log = logging.getLogger("orchestrator.dataplane")
AUTH_TIMEOUT_SECONDS = 10.0
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade"}
# Not passed back from the control plane: the worker's own server adds its own (else an
# answer passed on would carry two of each, and differ from one the worker gave itself).
_SERVERS_OWN = _HOP_BY_HOP | {b"date", b"server"}


# What a refused invocation's record needs: who it named (the key id, parsed on the hub's
# side and never kept) and its user agent.
_DENIED_HEADERS = frozenset({b"authorization", b"x-api-key", b"user-agent"})


class HubLink:
    """The worker's end of the hub connection: it is the worker's sink, demand, key checker
    and signing-key source."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.index = index
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._asked: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def _send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.encode(message))

    # Sink
    def apply(self, events: Sequence[Event]) -> None:
        if events:
            self._send({"t": "events", "events": list(events)})

    # Demand
    def hold(self, endpoint: str, variant: str) -> None:
        self._send({"t": "hold", "endpoint": endpoint, "variant": variant})

    def release(self, endpoint: str, variant: str) -> None:
        self._send({"t": "release", "endpoint": endpoint, "variant": variant})

    # DataPlane.on_denied: the hub records it (the audit trail lives with the control plane).
    def denied(
        self,
        name: str,
        headers: list[tuple[bytes, bytes]],
        status: int,
        body: bytes,
        client: str,
        *,
        account: str = "",
    ) -> None:
        kept = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k in _DENIED_HEADERS
        ]
        self._send(
            {
                "t": "denied",
                "endpoint": name,
                "headers": kept,
                "status": status,
                "body": body.decode("utf-8", "replace"),
                "client": client,
                "account": account,
            }
        )

    # KeyChecker: called off the loop (the cache runs checkers in a thread).
    def __call__(self, presented: str | None) -> Principal:
        future = asyncio.run_coroutine_threadsafe(self._ask(presented), self.loop)
        reply = future.result(AUTH_TIMEOUT_SECONDS + 1)
        if "principal" in reply:
            return wire.principal_from_wire(reply["principal"])
        if reply.get("temporary"):
            raise UnavailableError(str(reply.get("error", "key check failed")), retry_after=1)
        raise AuthenticationError(str(reply.get("error", "missing or invalid API key")))

    # SigningKeySource: called off the loop too.
    def signing_key(
        self, access_key_id: str, date: str, region: str, service: str
    ) -> tuple[bytes, Principal]:
        question = {"t": "signing_key", "scope": [access_key_id, date, region, service]}
        future = asyncio.run_coroutine_threadsafe(self._ask_hub(question), self.loop)
        reply = future.result(AUTH_TIMEOUT_SECONDS + 1)
        if "signing_key" in reply:
            principal = wire.principal_from_wire(reply["principal"])
            return bytes.fromhex(reply["signing_key"]), principal
        if reply.get("temporary"):
            raise UnavailableError(str(reply.get("error", "key check failed")), retry_after=1)
        kind = reply.get("kind")
        error = str(reply.get("error", "The security token included in the request is invalid."))
        raise sigv4.SignatureError(kind if kind in sigv4.ERROR_CODES else "unknown_key", error)

    async def _ask(self, presented: str | None) -> dict[str, Any]:
        return await self._ask_hub({"t": "auth", "key": presented})

    async def _ask_hub(self, question: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._asked[n] = future
        self._send({**question, "id": n})
        try:
            return await asyncio.wait_for(future, AUTH_TIMEOUT_SECONDS)
        except TimeoutError:
            return {"error": "the control plane did not answer the key check", "temporary": True}
        finally:
            self._asked.pop(n, None)

    async def run(self, plane: DataPlane, server: uvicorn.Server) -> None:
        """Apply what the hub says until it goes; then stop the server."""
        while (message := await wire.read(self.reader)) is not None:
            kind = message.get("t")
            if kind == "routes":
                plane.routes.replace_all(wire.routes_from_wire(message["routes"]))
            elif kind == "revoked":
                plane.key_revoked(str(message["key_id"]))
            elif kind == "auth":
                future = self._asked.get(int(message["id"]))
                if future is not None and not future.done():
                    future.set_result(message)
        log.warning("router worker %d: the control plane has gone; stopping", self.index)
        server.should_exit = True


class MainProxy:
    """An ASGI app that passes every request to the control plane over its Unix socket."""

    def __init__(self, api_path: str, *, tls: bool = False) -> None:
        self.api_path = api_path
        self.tls = tls
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        assert self.client is not None, "the lifespan starts the client"

        async def body() -> Any:
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if message["type"] != "http.request" or not message.get("more_body"):
                    return

        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        base = "https://control-plane" if self.tls else "http://control-plane"
        url = httpx.URL(base, raw_path=path + (b"?" + query if query else b""))
        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            error = UnavailableError(f"the control plane is unreachable: {type(e).__name__}")
            status, raw, payload = http_answer(error)
            head = [(k.encode(), v.encode()) for k, v in raw]
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": payload})
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in _SERVERS_OWN]
            start = {"type": "http.response.start", "status": response.status_code, "headers": out}
            await send(start)
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                transport = httpx.AsyncHTTPTransport(uds=self.api_path, verify=self._verify())
                # No read limit: a management request may stream for long (logs, downloads).
                timeout = httpx.Timeout(connect=5.0, read=None, write=None, pool=None)
                self.client = httpx.AsyncClient(
                    transport=transport, timeout=timeout, trust_env=False
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.tls:
            return True  # unused: plain HTTP
        # The control plane serves every socket with its certificate, this private one too.
        # The peer is the control plane because only it can have made the socket (0600 in a
        # 0700 directory), not by a name the certificate holds: no verification here.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


def reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def run(args: argparse.Namespace) -> None:
    reader, writer = await asyncio.open_unix_connection(args.hub, limit=wire.LIMIT)
    writer.write(wire.encode({"t": "hello", "worker": args.index}))
    welcome = await wire.read(reader)
    if welcome is None or welcome.get("t") != "welcome":
        raise SystemExit("router worker: the control plane did not welcome this worker")
    link = HubLink(args.index, reader, writer)
    routes = RoutingTable()
    plane = DataPlane(
        routes=routes,
        key_checker=link,
        signing_key_source=link.signing_key,
        endpoint_status=lambda _name: None,  # never asked: unrouted requests go to main
        sink=link,
        settings=wire.settings_from_wire(welcome["settings"]),
        demand=link,
    )
    plane.on_denied = link.denied
    proxy = MainProxy(args.api, tls=args.tls_cert is not None)
    front = DataPlaneFront(proxy, plane, unrouted=proxy)
    sock = reuse_port_socket(args.host, args.port)
    config = uvicorn.Config(
        front,
        http=protocol_for(front) if plane.settings.fast_path else "auto",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    server = uvicorn.Server(config)
    follower = asyncio.create_task(link.run(plane, server))
    try:
        await server.serve(sockets=[sock])
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        writer.close()
        sock.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m orchestrator.dataplane.worker")
    p.add_argument("--hub", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--tls-cert")  # with --tls-key: serve HTTPS, as the control plane does
    p.add_argument("--tls-key")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per management request
    # uvicorn drains on SIGTERM, then raises the signal again: let that end the process
    # quietly rather than kill it before its last metrics leave.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        import uvloop

        uvloop.run(run(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
