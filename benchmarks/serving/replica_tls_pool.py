"""What TLS to replicas (``ORCH_SERVING__REPLICA_TLS``) costs the router's pool per request:
the same keep-alive ``POST`` through ``orchestrator.dataplane.pool`` to a minimal replica
that answers at once, over plain TCP and over TLS (a leaf from a replica CA, verified), on
asyncio and on uvloop. Both ends run in this one process, so the CPU time per request counts
the encryption on both sides; the handshake is outside the timed part (connections are kept).

    python benchmarks/serving/replica_tls_pool.py [--requests 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

from orchestrator import tls
from orchestrator.dataplane.pool import Pools

ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n{"ok":true}'
)
BODY = b"[[1.0, 2.0, 3.0, 4.0]]"


class _Replica(asyncio.Protocol):
    """Answers each request (head plus a Content-Length body) at once."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
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
            self.buffer = rest[length:]
            assert self.transport is not None
            self.transport.write(ANSWER)


async def per_request(
    server_ctx: ssl.SSLContext | None, client_ctx: ssl.SSLContext | None, n: int
) -> tuple[float, float]:
    """(CPU us, wall us) per request."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Replica, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    pools = Pools(ssl_context=client_ctx)
    replica = pools.get(f"{'https' if server_ctx else 'http'}://127.0.0.1:{port}")
    head = replica.head(b"/invocations", len(BODY), b"content-type: application/json\r\n")
    for _ in range(200):  # warm: the connection (and its handshake) is made here
        await replica.post(head, BODY, loop.time() + 5)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await replica.post(head, BODY, loop.time() + 5)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pools.close()
    server.close()
    await server.wait_closed()
    return cpu / n * 1e6, wall / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    d = Path(tempfile.mkdtemp(prefix="orch-bench-replica-tls-"))
    ca = tls.replica_ca(d)
    leaf = tls.issue(ca, ["127.0.0.1"], d / "leaf")
    server_ctx = tls.server_context(leaf.cert, leaf.key)
    client_ctx = tls.replica_client_context(ca.cert)
    loops: dict[str, Callable[[Coroutine[Any, Any, tuple[float, float]]], tuple[float, float]]]
    loops = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    print(
        f"{'loop':<8} {'round':>5} {'plain cpu us':>13} {'tls cpu us':>11} {'plain wall us':>14} {'tls wall us':>12}"
    )
    for name, run in loops.items():
        for r in range(args.rounds):
            p_cpu, p_wall = run(per_request(None, None, args.requests))
            t_cpu, t_wall = run(per_request(server_ctx, client_ctx, args.requests))
            print(f"{name:<8} {r:>5} {p_cpu:13.1f} {t_cpu:11.1f} {p_wall:14.1f} {t_wall:12.1f}")


if __name__ == "__main__":
    main()
