"""The pool toward HTTPS replicas (``ORCH_SERVING__REPLICA_TLS``): verified against the
replica CA only, refused (no request byte sent) for a certificate from another CA or a
replica that speaks plain HTTP, and never sent in the clear without a CA (both loops)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dataplane_harness import RawServer

from orchestrator import tls
from orchestrator.dataplane.plane import DataPlaneSettings
from orchestrator.dataplane.pool import NoResponseError, Pools
from orchestrator.dataplane.wire import settings_from_wire, settings_to_wire
from orchestrator.errors import UnavailableError

pytestmark = pytest.mark.anyio
BODY = b"[[1.0]]"


def leaf_context(root: Path, ca_dir: str) -> tuple[ssl.SSLContext, tls.Authority]:
    ca = tls.replica_ca(root / ca_dir)
    files = tls.issue(ca, ["127.0.0.1", "localhost"], root / ca_dir / "leaf")
    return tls.server_context(files.cert, files.key), ca


@pytest.fixture
async def tls_raw(tmp_path: Path) -> AsyncIterator[tuple[RawServer, tls.Authority]]:
    ctx, ca = leaf_context(tmp_path, "ours")
    server = RawServer(ssl_context=ctx)
    await server.start()
    try:
        yield server, ca
    finally:
        await server.stop()


async def post(pools: Pools, url: str):  # type: ignore[no-untyped-def]
    replica = pools.get(url)
    deadline = asyncio.get_running_loop().time() + 5
    return await replica.post(replica.head(b"/invocations", len(BODY), b""), BODY, deadline)


async def test_an_https_replica_is_reached_over_verified_tls(
    tls_raw: tuple[RawServer, tls.Authority],
) -> None:
    raw, ca = tls_raw
    pools = Pools(ssl_context=tls.replica_client_context(ca.cert))
    for _ in range(2):
        assert (await post(pools, raw.url)).status == 200
    assert raw.connections == 1  # keep-alive over TLS too
    [conn] = pools.get(raw.url)._idle
    assert conn.transport is not None
    assert conn.transport.get_extra_info("ssl_object") is not None
    assert raw.requests[0].startswith(b"POST /invocations HTTP/1.1\r\n")
    pools.close()


async def test_a_certificate_from_another_ca_is_refused_before_any_request(
    tls_raw: tuple[RawServer, tls.Authority], tmp_path: Path
) -> None:
    raw, _ = tls_raw
    other = tls.replica_ca(tmp_path / "other")
    pools = Pools(ssl_context=tls.replica_client_context(other.cert))
    with pytest.raises(NoResponseError, match=r"TLS handshake with replica .* failed"):
        await post(pools, raw.url)
    assert raw.requests == []


async def test_a_plain_http_replica_behind_an_https_url_is_refused(
    raw: RawServer, tmp_path: Path
) -> None:
    ca = tls.replica_ca(tmp_path / "ca")
    pools = Pools(ssl_context=tls.replica_client_context(ca.cert))
    with pytest.raises(NoResponseError):
        await post(pools, raw.url.replace("http://", "https://"))
    assert raw.requests == []  # the ClientHello is not a request


async def test_an_https_url_without_a_replica_ca_is_refused_not_sent_in_the_clear() -> None:
    with pytest.raises(UnavailableError, match="ORCH_SERVING__REPLICA_TLS"):
        Pools().get("https://127.0.0.1:1")


def test_the_replica_ca_reaches_router_workers_over_the_wire() -> None:
    s = DataPlaneSettings(
        max_payload_bytes=1,
        invocation_timeout_seconds=1.0,
        shadow_max_in_flight=1,
        replica_ca_file="/ca.crt",
    )
    assert settings_from_wire(settings_to_wire(s)).replica_ca_file == "/ca.crt"
