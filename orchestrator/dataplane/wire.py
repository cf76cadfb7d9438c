"""What the control plane and its router workers say to each other, one JSON line at a time.

Over a Unix socket in a private (0700) directory. The control plane (the hub) sends:

    {"t": "welcome", "settings": {...}}           once, first
    {"t": "routes", "routes": [...]}               the whole table, after every change (each
                                                   route with its endpoint's account)
    {"t": "revoked", "key_id": "..."}              drop this key (API or access key) now
    {"t": "auth", "id": N, "principal": {...}}     the answer to an auth question, or
    {"t": "auth", "id": N, "error": "..."}         its refusal (401; with "kind": a SigV4
                                                   refusal's sigv4 kind; with "temporary":
                                                   the key source failed, 503)
    {"t": "auth", "id": N, "signing_key": "HEX",   the answer to a signing-key question:
     "principal": {...}}                           the derived key, never the secret

A worker sends:

    {"t": "hello", "worker": I}                    once, first
    {"t": "events", "events": [...]}               a flush of its invocation log
    {"t": "hold" | "release", "endpoint": E, "variant": V}
    {"t": "auth", "id": N, "key": "..."}           a key its cache does not hold
    {"t": "signing_key", "id": N,                  a SigV4 scope its cache does not hold
     "scope": [AKID, DATE, REGION, SERVICE]}
    {"t": "denied", "endpoint": E, "status": S,    an invocation it refused (401/403, or an
     "headers": [[K, V]...], "body": B,            endpoint absent to a keyed caller), for
     "client": ADDR, "account": A}                 the audit trail: only the headers that
                                                   name the key and the user agent, and the
                                                   caller's account id ("" without a key)
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import orjson

from orchestrator import access
from orchestrator.access import Principal
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane.plane import DataPlaneSettings

LIMIT = 64 << 20  # one line: a routing table or a flush of events


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


async def read(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None when the other side has gone."""
    try:
        line = await reader.readline()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return None
    if not line:
        return None
    message = orjson.loads(line)
    return message if isinstance(message, dict) else None


def routes_to_wire(routes: list[EndpointRoute]) -> list[dict[str, Any]]:
    return [asdict(r) for r in routes]


def routes_from_wire(routes: list[dict[str, Any]]) -> list[EndpointRoute]:
    return [
        EndpointRoute(
            endpoint=r["endpoint"],
            public=r["public"],
            variants=tuple(VariantRoute(**{**v, "urls": tuple(v["urls"])}) for v in r["variants"]),
            tags=tuple((str(k), str(v)) for k, v in r.get("tags", ())),
            account=str(r.get("account", "")),
        )
        for r in routes
    ]


def principal_to_wire(principal: Principal) -> dict[str, Any]:
    return access.principal_to_wire(principal)


def principal_from_wire(data: dict[str, Any]) -> Principal:
    return access.principal_from_wire(data)


def settings_to_wire(settings: DataPlaneSettings) -> dict[str, Any]:
    return asdict(settings)


def settings_from_wire(data: dict[str, Any]) -> DataPlaneSettings:
    return DataPlaneSettings(**data)
