"""The hub answers a router worker's signing-key questions over the wire: the derived key of
the scope and whose it is (never the secret), a refusal with its SigV4 kind, and a revocation
sent to the worker before ``key_revoked`` returns, from whichever thread it is called."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import orjson
import pytest

from orchestrator import sigv4
from orchestrator.access import Principal
from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane import wire
from orchestrator.dataplane.plane import DataPlane, DataPlaneSettings
from orchestrator.dataplane.recorder import LocalSink
from orchestrator.dataplane.workers import RouterWorkers
from orchestrator.errors import AuthenticationError

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ALICE = Principal("AKIAALICE", "alice", "invoke")


def _signing_key(akid: str, date: str, region: str, service: str) -> tuple[bytes, Principal]:
    if akid != ALICE.key_id:
        raise sigv4.SignatureError("unknown_key", "The security token included is invalid.")
    return sigv4.signing_key(SECRET, date, region, service), ALICE


def _refuse(_key: str | None) -> Principal:
    raise AuthenticationError("missing or invalid API key")


@pytest.mark.anyio
async def test_a_worker_gets_the_derived_key_never_the_secret() -> None:
    plane = DataPlane(
        routes=RoutingTable(),
        key_checker=_refuse,
        signing_key_source=_signing_key,
        endpoint_status=lambda _name: None,
        sink=LocalSink(None),
        settings=DataPlaneSettings(1024, 1.0, 1),
    )
    await plane.start()
    run_dir = Path(tempfile.mkdtemp(prefix="orch-t-"))
    hub = RouterWorkers(
        plane, count=0, host="127.0.0.1", port=0, run_dir=run_dir, series=None, clock=lambda: 0
    )
    await hub.start()
    reader, writer = await asyncio.open_unix_connection(str(hub.hub_path), limit=wire.LIMIT)
    try:
        writer.write(wire.encode({"t": "hello", "worker": 1}))
        welcome = await wire.read(reader)
        assert welcome is not None and welcome["settings"]["region"] == "us-east-1"
        assert (await wire.read(reader) or {})["t"] == "routes"

        scope = ["AKIAALICE", "20261202", "us-east-1", "sagemaker"]
        writer.write(wire.encode({"t": "signing_key", "id": 7, "scope": scope}))
        line = await reader.readline()
        assert SECRET.encode() not in line
        answer = orjson.loads(line)
        assert answer["id"] == 7
        assert bytes.fromhex(answer["signing_key"]) == sigv4.signing_key(SECRET, *scope[1:])
        assert wire.principal_from_wire(answer["principal"]) == ALICE

        writer.write(wire.encode({"t": "signing_key", "id": 8, "scope": ["AKIANOPE", *scope[1:]]}))
        refused = await wire.read(reader)
        assert refused == {
            "t": "auth", "id": 8, "error": "The security token included is invalid.",
            "kind": "unknown_key",
        }  # fmt: skip

        # Revoked from another thread: told to the worker before key_revoked returns.
        assert plane.signing_keys.get(tuple(scope)) is not None  # type: ignore[arg-type]
        await asyncio.to_thread(plane.key_revoked, "AKIAALICE")
        assert plane.signing_keys.get(tuple(scope)) is None  # type: ignore[arg-type]
        assert await asyncio.wait_for(wire.read(reader), 1) == {
            "t": "revoked",
            "key_id": "AKIAALICE",
        }
    finally:
        writer.close()
        await hub.stop()
        await plane.stop()


@pytest.mark.anyio
async def test_a_worker_s_refused_invocation_reaches_the_hub_s_audit_hook() -> None:
    from orchestrator.dataplane.worker import HubLink

    plane = DataPlane(
        routes=RoutingTable(),
        key_checker=_refuse,
        signing_key_source=_signing_key,
        endpoint_status=lambda _name: None,
        sink=LocalSink(None),
        settings=DataPlaneSettings(1024, 1.0, 1),
    )
    told: list[tuple[str, list[tuple[bytes, bytes]], int, bytes, str, str]] = []
    plane.on_denied = lambda *args, account="": told.append((*args, account))
    await plane.start()
    run_dir = Path(tempfile.mkdtemp(prefix="orch-t-"))
    hub = RouterWorkers(
        plane, count=0, host="127.0.0.1", port=0, run_dir=run_dir, series=None, clock=lambda: 0
    )
    await hub.start()
    reader, writer = await asyncio.open_unix_connection(str(hub.hub_path), limit=wire.LIMIT)
    try:
        writer.write(wire.encode({"t": "hello", "worker": 1}))
        await wire.read(reader)
        await wire.read(reader)
        link = HubLink(1, reader, writer)
        headers = [
            (b"authorization", b"Bearer orch_k1_s3cret"),
            (b"user-agent", b"ua/1"),
            (b"cookie", b"not-sent"),
        ]
        link.denied("ep-1", headers, 401, b'{"code":"AuthenticationFailed"}', "10.0.0.9")
        link.denied("ep-2", headers, 404, b'{"code":"ResourceNotFound"}', "", account="1" * 12)
        await writer.drain()
        for _ in range(100):
            if len(told) == 2:
                break
            await asyncio.sleep(0.01)
        [(name, got, status, body, client, account), second] = told
        assert (name, status, client, account) == ("ep-1", 401, "10.0.0.9", "")
        assert got == headers[:2]  # only what the record needs crosses
        assert body == b'{"code":"AuthenticationFailed"}'
        # The caller's account crosses too (an endpoint absent to a keyed caller).
        assert (second[0], second[2], second[5]) == ("ep-2", 404, "1" * 12)
    finally:
        writer.close()
        await hub.stop()
        await plane.stop()
