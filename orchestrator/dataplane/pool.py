"""Keep-alive HTTP/1.1 connections to replicas: a small pool per replica, no per-request scan.

Why hand-written and not httpx or aiohttp (both well kept, both measured): the router does one
thing with a replica, ``POST`` a body and read a small answer, thousands of times a second on
the core it shares with the replica. Measured side by side (``benchmarks/serving/
router_choice.py``: the same raw ASGI front on uvicorn, one replica, both on CPU 0, wrk on
CPU 1, one row; ``docs/benchmarks.md``), the proxy's own CPU per request at concurrency
1 / 8 / 32 was 271 / 278 / 245 us with this pool, 560 / 589 / 548 us with aiohttp's client
and 2523 / 3985 / 6650 us with httpx (its pool bookkeeping and anyio). The pool is what that
path needs and no more:

- one idle list per replica (last in, first out, so the warmest connection goes first); a
  checkout is a ``list.pop``, never a scan of every connection;
- the request head and body go out in one write on a ``TCP_NODELAY`` socket, so a large body
  can never wait for a delayed ACK (the Nagle stall in ``docs/benchmarks.md``);
- answers are parsed by httptools (the parser uvicorn uses); only the status, the content
  type, ``Retry-After`` and ``X-Amzn-SageMaker-Custom-Attributes`` (which SageMaker Runtime
  hands back to its caller; the one more compare per header costs ~50 ns an answer, timeit)
  are kept;
- a connection that fails before any byte of an answer raises ``NoResponseError`` (the caller
  may send the request elsewhere); a timeout raises ``ReplicaTimeoutError`` and closes it.
  Deadlines are checked by ``Pools.expire``, which the data plane calls on its 50 ms tick,
  not by a timer per request (arming and cancelling a loop timer per request cost about
  15 us of the ~125 us a request cost this client, measured alone against a replica).

``https://`` replica URLs (``ORCH_SERVING__REPLICA_TLS``) are connected with TLS, verified
against the ``ssl_context`` the pools were given (the replica CA only); a handshake that fails
(a certificate from another CA, or a replica that speaks plain HTTP) raises
``NoResponseError`` naming the replica and the reason, and no request byte is sent. Without a
context an ``https://`` URL is refused, never sent in the clear.

An idle connection is dropped after ``IDLE_SECONDS``, below uvicorn's 5 s keep-alive timeout
on the replica's side, so a request is rarely written into a connection the replica is closing;
when it is (no byte back), the request is sent again once on a fresh connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from orchestrator.errors import UnavailableError

IDLE_SECONDS = 4.0  # the replica (uvicorn) closes idle keep-alive connections after 5 s
MAX_IDLE_PER_REPLICA = 256
CONNECT_TIMEOUT_SECONDS = 2.0
# Below this the head and body go out as one bytes object (one copy, one plain write); above
# it, as two buffers in one writev without the copy.
_JOIN_BELOW = 256 * 1024
_CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"


class NoResponseError(Exception):
    """The connection failed before any byte of an answer came back: safe to send elsewhere."""


class ReplicaTimeoutError(Exception):
    """No complete answer within the deadline."""


class BrokenAnswerError(Exception):
    """The answer began and then broke off (or did not parse)."""


@dataclass(frozen=True, slots=True)
class ReplicaAnswer:
    status: int
    content_type: bytes
    body: bytes
    retry_after: bytes | None
    custom_attributes: bytes | None = None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request on it at a time."""

    def __init__(self, replica: Replica, loop: asyncio.AbstractEventLoop) -> None:
        self.replica = replica
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[ReplicaAnswer] | None = None
        self.alive = True
        self.idle_since = 0.0
        self.reused = False
        self._answer_begun = False
        self._body: list[bytes] = []
        self._content_type = b"application/octet-stream"
        self._retry_after: bytes | None = None
        self._custom_attributes: bytes | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport; they do its methods.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # uvloop and asyncio both set it today; the stall it prevents is 40 ms a request.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._answer_begun = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(BrokenAnswerError(f"unreadable answer from {self.replica.url}: {e}"))
            self.close()

    def eof_received(self) -> bool | None:
        self.alive = False
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self._answer_begun:
            self._fail(BrokenAnswerError(f"{self.replica.url} closed the connection mid-answer"))
        else:
            self._fail(NoResponseError(f"{self.replica.url} closed the connection: {exc}"))

    # --- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self._content_type = value
        elif lowered == b"retry-after":
            self._retry_after = value
        elif lowered == _CUSTOM_ATTRIBUTES:
            self._custom_attributes = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        chunks = self._body
        answer = ReplicaAnswer(
            self.parser.get_status_code(),
            self._content_type,
            chunks[0] if len(chunks) == 1 else b"".join(chunks),
            self._retry_after,
            self._custom_attributes,
        )
        keep = self.parser.should_keep_alive()
        self._reset()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)
        if keep and self.alive:
            self.replica.checkin(self)
        else:
            self.close()

    # --- ours ---------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._answer_begun = False
        self._body = []
        self._content_type = b"application/octet-stream"
        self._retry_after = None
        self._custom_attributes = None

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def timed_out(self) -> None:
        self._fail(ReplicaTimeoutError(f"{self.replica.url} did not answer in time"))
        self.close()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()


Waiting = dict["asyncio.Future[ReplicaAnswer]", tuple[float, _Connection]]
# Where a replica URL's (host, port) is connected to; None: as written (the system resolves).
Resolve = Callable[[str, int], tuple[str, int]]


class Replica:
    """The connections to one replica URL (``http://host:port`` or ``https://``, with an
    optional base path).
    ``waiting`` holds every request in flight, by its future: (deadline, connection). By the
    future, not the connection: an answer puts the connection back before the caller runs
    again, and the next request may already be on it."""

    def __init__(
        self,
        url: str,
        waiting: Waiting | None = None,
        resolve: Resolve | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # A route the control plane built wrong: not the caller's fault, and not theirs to fix.
            raise UnavailableError(
                f"replica URL {url!r}: the router speaks HTTP or HTTPS to replicas "
                "(http://HOST:PORT, https://HOST:PORT)",
                retry_after=5,
            )
        if parts.scheme == "https" and ssl_context is None:
            raise UnavailableError(
                f"replica URL {url!r} is HTTPS but this data plane has no replica CA; set "
                "ORCH_SERVING__REPLICA_TLS=true on the control plane too",
                retry_after=5,
            )
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl_context if parts.scheme == "https" else None
        self.base_path = parts.path.rstrip("/").encode()
        host_header = parts.netloc.encode("idna")
        self._host_line = b" HTTP/1.1\r\nhost: " + host_header + b"\r\ncontent-length: "
        self._idle: list[_Connection] = []
        self._waiting: Waiting = waiting if waiting is not None else {}
        self._resolve = resolve

    def head(self, path: bytes, length: int, headers: bytes) -> bytes:
        """The request line and headers (``headers``: already formatted ``name: value\\r\\n``)."""
        return (
            b"POST "
            + self.base_path
            + path
            + self._host_line
            + str(length).encode()
            + b"\r\n"
            + headers
            + b"\r\n"
        )

    def checkin(self, conn: _Connection) -> None:
        if len(self._idle) >= MAX_IDLE_PER_REPLICA:
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        conn.reused = True
        self._idle.append(conn)

    def _checkout(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.alive and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        host, port = (
            self._resolve(self.host, self.port) if self._resolve else (self.host, self.port)
        )
        try:
            if self._ssl is None:
                connecting = loop.create_connection(lambda: _Connection(self, loop), host, port)
            else:  # verified against the URL's name, wherever ``resolve`` sends the socket
                connecting = loop.create_connection(
                    lambda: _Connection(self, loop),
                    host,
                    port,
                    ssl=self._ssl,
                    server_hostname=self.host,
                    ssl_handshake_timeout=CONNECT_TIMEOUT_SECONDS,
                )
            _, conn = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_SECONDS)
        except ssl.SSLError as e:
            raise NoResponseError(
                f"TLS handshake with replica {self.url} failed ({e.reason or e}); its "
                "certificate must come from the replica CA"
            ) from e
        except (OSError, TimeoutError) as e:
            raise NoResponseError(f"cannot connect to {self.url}: {e}") from e
        return conn

    async def post(self, head: bytes, body: bytes, deadline: float) -> ReplicaAnswer:
        """Send one request; ``deadline`` is on the loop's clock (``loop.time()``)."""
        loop = asyncio.get_running_loop()
        conn = self._checkout(loop.time())
        if conn is not None:
            try:
                return await self._exchange(conn, head, body, deadline)
            except NoResponseError:
                pass  # the replica closed this idle connection as we wrote: once more, fresh
        conn = await self._connect(loop)
        return await self._exchange(conn, head, body, deadline)

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes, deadline: float
    ) -> ReplicaAnswer:
        transport = conn.transport
        if transport is None or transport.is_closing():
            raise NoResponseError(f"{self.url}: connection closed")
        waiter: asyncio.Future[ReplicaAnswer] = conn.loop.create_future()
        conn.waiter = waiter
        waiting = self._waiting
        waiting[waiter] = (deadline, conn)
        if len(body) < _JOIN_BELOW:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        try:
            return await waiter
        except asyncio.CancelledError:
            conn.close()  # an answer may still come on it: never hand it to another request
            raise
        finally:
            del waiting[waiter]

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class Pools:
    """Every replica's pool, by URL; replicas that left the routing table are dropped by
    ``retain``. ``resolve``: where a URL's (host, port) is connected to, when not as written
    (a test that plays cluster DNS for Service names; set it before the first request)."""

    def __init__(
        self, resolve: Resolve | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._replicas: dict[str, Replica] = {}
        self._waiting: Waiting = {}
        self.resolve = resolve
        # For ``https://`` replicas: verifies them (the replica CA); None refuses them.
        self.ssl_context = ssl_context

    def get(self, url: str) -> Replica:
        replica = self._replicas.get(url)
        if replica is None:
            replica = self._replicas[url] = Replica(
                url, self._waiting, self.resolve, self.ssl_context
            )
        return replica

    def expire(self, now: float) -> int:
        """Fail every request whose deadline (loop clock) has passed; returns how many."""
        late = [
            conn
            for waiter, (deadline, conn) in self._waiting.items()
            if deadline <= now and conn.waiter is waiter  # not answered, still its request
        ]
        for conn in late:
            conn.timed_out()
        return len(late)

    def retain(self, urls: set[str]) -> None:
        for url in [u for u in self._replicas if u not in urls]:
            self._replicas.pop(url).close()

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()
