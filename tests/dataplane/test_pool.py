"""The replica connection pool against a replica that misbehaves on purpose (both loops)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from dataplane_harness import RawServer, answer

from orchestrator.dataplane.pool import (
    BrokenAnswerError,
    NoResponseError,
    Pools,
    Replica,
    ReplicaTimeoutError,
)
from orchestrator.errors import UnavailableError

pytestmark = pytest.mark.anyio
BODY = b"[[1.0, 2.0]]"
HEADERS = b"content-type: application/json\r\n"


async def post(replica: Replica, body: bytes = BODY, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    return await replica.post(replica.head(b"/invocations", len(body), HEADERS), body, deadline)


async def test_answers_are_read_and_the_connection_is_kept(raw: RawServer) -> None:
    raw.behaviour = lambda _r: answer(
        429, b'{"busy":1}', content_type="application/json", retry_after="2"
    )
    replica = Pools().get(raw.url)
    for _ in range(3):
        got = await post(replica)
        assert (got.status, got.body, got.content_type) == (429, b'{"busy":1}', b"application/json")
        assert got.retry_after == b"2"
    assert raw.connections == 1  # one keep-alive connection for all three
    request = raw.requests[0]
    assert request.startswith(b"POST /invocations HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{raw.port}\r\n".encode() in request
    assert b"content-length: 12\r\ncontent-type: application/json\r\n\r\n" + BODY in request


async def test_the_upstream_socket_has_tcp_nodelay(raw: RawServer) -> None:
    replica = Replica(raw.url)
    await post(replica)
    [conn] = replica._idle
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_a_connection_the_replica_closed_while_idle_is_replaced(raw: RawServer) -> None:
    replica = Replica(raw.url)
    await post(replica)
    for t in raw.transports:
        t.close()  # the replica's keep-alive timeout
    await asyncio.sleep(0.05)
    assert (await post(replica)).status == 200
    assert raw.connections == 2


async def test_a_close_racing_the_request_is_sent_again_on_a_fresh_connection(
    raw: RawServer,
) -> None:
    replica = Replica(raw.url)
    await post(replica)
    calls = iter([None])  # the next request finds the connection closing: no answer
    raw.behaviour = lambda _r: next(calls, answer())
    assert (await post(replica)).status == 200
    assert raw.connections == 2 and len(raw.requests) == 3


async def test_a_fresh_connection_closed_without_an_answer_is_no_response(
    raw: RawServer,
) -> None:
    raw.behaviour = lambda _r: None
    with pytest.raises(NoResponseError, match="closed the connection"):
        await post(Replica(raw.url))


async def test_refused_is_no_response() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(NoResponseError, match="cannot connect"):
            await post(Replica(f"http://127.0.0.1:{port}"))


async def test_half_an_answer_is_broken_not_retried(raw: RawServer) -> None:
    raw.behaviour = lambda _r: answer(body=b"x" * 100)[:-50]
    replica = Replica(raw.url)
    task = asyncio.ensure_future(post(replica))
    await asyncio.sleep(0.1)
    for t in raw.transports:
        t.close()
    with pytest.raises(BrokenAnswerError, match="mid-answer"):
        await task
    assert len(raw.requests) == 1


async def test_garbage_is_a_broken_answer(raw: RawServer) -> None:
    raw.behaviour = lambda _r: b"NOT HTTP AT ALL\r\n\r\n"
    with pytest.raises(BrokenAnswerError, match="unreadable answer"):
        await post(Replica(raw.url))


async def test_a_late_answer_times_out_by_expire_and_the_connection_goes(raw: RawServer) -> None:
    raw.behaviour = lambda _r: b""  # silent
    pools = Pools()
    replica = pools.get(raw.url)
    task = asyncio.ensure_future(post(replica, timeout=0.05))
    await asyncio.sleep(0.02)
    assert pools.expire(asyncio.get_running_loop().time()) == 0  # not yet
    await asyncio.sleep(0.05)
    assert pools.expire(asyncio.get_running_loop().time()) == 1
    with pytest.raises(ReplicaTimeoutError):
        await task
    assert replica._idle == []
    raw.behaviour = lambda _r: answer()
    assert (await post(replica)).status == 200
    assert raw.connections == 2


async def test_a_large_body_goes_whole(raw: RawServer) -> None:
    body = b"7" * (3 << 20)
    got = await post(Replica(raw.url), body)
    assert got.status == 200
    assert raw.requests[0].endswith(b"\r\n\r\n" + body)


async def test_replicas_no_route_names_are_closed(raw: RawServer) -> None:
    pools = Pools()
    replica = pools.get(raw.url)
    await post(replica)
    [conn] = replica._idle
    pools.retain({"http://127.0.0.1:1"})
    assert not conn.alive and pools.get(raw.url) is not replica


def test_only_plain_http_urls() -> None:
    with pytest.raises(UnavailableError, match="https://x:1"):
        Replica("https://x:1")


def test_a_base_path_in_the_url_prefixes_every_request() -> None:
    replica = Replica("http://fake-replica/ep/r1")
    assert replica.head(b"/invocations", 2, b"").startswith(b"POST /ep/r1/invocations HTTP/1.1")


async def test_a_connection_reused_before_its_last_caller_resumed_keeps_both_deadlines(
    raw: RawServer,
) -> None:
    # The answer puts the connection back at once; another request may take it before the
    # coroutine that got the answer runs again. Many at once make that happen.
    pools = Pools()
    replica = pools.get(raw.url)

    async def caller() -> set[int]:
        return {(await post(replica)).status for _ in range(100)}

    got = await asyncio.gather(*(caller() for _ in range(8)))
    assert set().union(*got) == {200}
    assert pools.expire(asyncio.get_running_loop().time() + 1e6) == 0  # nothing left waiting


async def test_a_resolver_says_where_a_url_connects_and_the_host_header_keeps_its_name(
    raw: RawServer,
) -> None:
    """How a test plays cluster DNS: the route names a Service, the pool connects elsewhere."""
    from urllib.parse import urlsplit

    local = urlsplit(raw.url)
    service = "http://web-main-cfg.ml.svc.cluster.local:8080"
    seen: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> tuple[str, int]:
        seen.append((host, port))
        return str(local.hostname), int(local.port or 80)

    raw.behaviour = lambda _r: answer(200, b"ok")
    got = await post(Pools(resolve=resolve).get(service))
    assert (got.status, got.body) == (200, b"ok")
    assert seen == [("web-main-cfg.ml.svc.cluster.local", 8080)]
    assert b"host: web-main-cfg.ml.svc.cluster.local:8080" in raw.requests[0].lower()
