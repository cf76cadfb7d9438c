"""Invocations served by uvicorn's HTTP protocol itself, without an ASGI request cycle.

``protocol_for(front)`` is uvicorn's httptools protocol with one change: a ``POST`` to an
invocation path, on a connection with no request in flight, is answered by
``DataPlaneFront.answer`` straight from the protocol, and the answer leaves in one write. Every
other request (and a pipelined one) takes uvicorn's usual ASGI path, unchanged.

Why: measured A/B on the whole control plane (``orch server``, an API key, one replica on the
same core; ``docs/benchmarks.md``), the control plane's CPU per invocation was 280-301 us this
way against 312-366 us through the ASGI front (medians of three runs at concurrency 1, 8,
32); alone, without auth, routing or metrics, a protocol-level proxy cost 170-220 us against
265-295 us under uvicorn's ASGI cycle (the scope, an ``asyncio.Event``, a task with its
context, two ``send`` calls that validate every header, two writes). What is kept of uvicorn:
parsing (httptools), connection handling, keep-alive, pipelining order (the request cycle of
a fast request is a stand-in uvicorn's code reads like its own), flow control, ``Expect:
100-continue``, graceful shutdown (the task is one of the server's tasks).

It reads uvicorn's protocol internals (``HttpToolsProtocol``: ``cycle``, ``headers``, ``url``,
``flow``, ``pipeline``, ``on_response_complete``), which is why uvicorn is pinned to a
tested range (pyproject.toml); ``ORCH_SERVER__INVOCATION_FAST_PATH=false`` turns it
off (the plain ASGI front then serves invocations, as under any other ASGI server).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from orchestrator.dataplane.front import ClientGone, DataPlaneFront, Reply, match_invocation
from orchestrator.errors import PayloadTooLargeError


class _Signal:
    """What uvicorn's code calls ``message_event``: set on more body, its end, or a
    disconnect; our task waits on a future only when the body is not all there yet."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _FastCycle:
    """Stands in for uvicorn's ``RequestResponseCycle`` while a fast request is in flight:
    the attributes uvicorn's protocol reads and writes, and nothing else."""

    __slots__ = (
        "chunks",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "response_complete",
        "size",
        "waiting_for_100_continue",
    )

    def __init__(self, keep_alive: bool, expect_100_continue: bool) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.more_body = True
        self.disconnected = False
        self.keep_alive = keep_alive
        self.response_complete = False
        self.message_event = _Signal()
        self.waiting_for_100_continue = expect_100_continue


def protocol_for(front: DataPlaneFront) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, serving ``front``'s invocations itself."""

    class FrontProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            if not self._fast():
                super().on_headers_complete()

        def _fast(self) -> bool:
            parser = self.parser
            if (
                parser.get_method() != b"POST"
                or not self.url.startswith(b"/endpoints/")
                or (self.cycle is not None and not self.cycle.response_complete)
                or parser.should_upgrade()
            ):
                return False
            path = httptools.parse_url(self.url).path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
            matched = match_invocation(path)
            if matched is None:
                return False
            if front.unrouted is not None and front.plane.routes.get(matched[0]) is None:
                return False  # a router worker passes these to the control plane (ASGI)
            keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
            cycle = _FastCycle(keep_alive, self.expect_100_continue)
            self.cycle = cycle  # type: ignore[assignment]
            # The header list and target now, before a pipelined request's replace them.
            task = self.loop.create_task(self._serve(cycle, self.headers, self.url, *matched))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return True

        async def _serve(
            self,
            cycle: _FastCycle,
            headers: list[tuple[bytes, bytes]],
            raw_target: bytes,
            name: str,
            replica_path: bytes,
        ) -> None:
            started = time.perf_counter()

            async def read_body(limit: int) -> bytes:
                while cycle.more_body and not cycle.disconnected:
                    if cycle.size > limit:
                        raise PayloadTooLargeError(
                            f"request body is over the {limit}-byte limit; send smaller batches",
                            field="body",
                        )
                    if cycle.waiting_for_100_continue and not self.transport.is_closing():
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                        cycle.waiting_for_100_continue = False
                    self.flow.resume_reading()
                    waiter = self.loop.create_future()
                    cycle.message_event.waiter = waiter
                    await waiter
                if cycle.disconnected:
                    raise ClientGone
                if cycle.size > limit:
                    raise PayloadTooLargeError(
                        f"request body is over the {limit}-byte limit; send smaller batches",
                        field="body",
                    )
                chunks = cycle.chunks
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

            try:
                reply = await front.answer(
                    name, replica_path, headers, read_body, started, raw_target=raw_target,
                    client=self.client[0] if self.client else "",
                )  # fmt: skip
            except ClientGone:
                reply = None
            self._respond(cycle, reply)
            if reply is not None:
                reply.record(front.plane, started)

        def _respond(self, cycle: _FastCycle, reply: Reply | None) -> None:
            transport = self.transport
            if reply is not None and not cycle.disconnected and not transport.is_closing():
                close = not cycle.keep_alive or cycle.more_body  # a body left unread
                lines = [STATUS_LINE[reply.status]]
                for name, value in (*self.server_state.default_headers, *reply.headers):
                    lines.append(name + b": " + value + b"\r\n")
                if close:
                    lines.append(b"connection: close\r\n")
                lines.append(b"\r\n")
                lines.append(reply.body)
                transport.write(b"".join(lines))
                if close:
                    cycle.keep_alive = False
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive or cycle.disconnected:
                transport.close()
            else:
                self.on_response_complete()

        def on_body(self, body: bytes) -> None:
            cycle: Any = self.cycle
            if not isinstance(cycle, _FastCycle):
                super().on_body(body)
                return
            if cycle.response_complete:
                return
            cycle.chunks.append(body)
            cycle.size += len(body)
            if cycle.size > HIGH_WATER_LIMIT:
                self.flow.pause_reading()  # until the task asks for more
            cycle.message_event.set()

        def on_message_complete(self) -> None:
            cycle: Any = self.cycle
            if not isinstance(cycle, _FastCycle):
                super().on_message_complete()
                return
            if cycle.response_complete:
                return
            cycle.more_body = False
            cycle.message_event.set()

    return FrontProtocol
