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
