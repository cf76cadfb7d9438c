"""API keys on the invocation path: one seam to the key source, and a cache in front of it.

``KeyChecker`` is the one function the data plane calls to turn a presented key into a
``Principal`` (raising ``AuthenticationError``); it may block (a store lookup), so it runs off
the event loop. ``KeyCache`` keeps verified keys for ``ttl`` seconds so that the hot path is
one dict lookup (by a SHA-256 of the key: no secret is kept). A revoked key is dropped at
once with ``forget(key_id)`` (the API calls it on revocation, and every router worker hears
of it); the TTL bounds how long a key revoked behind the API's back (straight in the
database, by another control plane) keeps working.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Protocol

from orchestrator.access import Principal


class KeyChecker(Protocol):
    def __call__(self, presented: str | None) -> Principal: ...


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a caller sent: ``Authorization: Bearer KEY``, else ``X-Api-Key: KEY``."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key


def _digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode()).digest()


class KeyCache:
    """Recently verified keys (see the module docstring); bounded to ``size`` entries."""

    def __init__(
        self, ttl: float = 5.0, size: int = 1024, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, presented: str) -> Principal | None:
        hit = self._entries.get(_digest(presented))
        if hit is None or hit[1] < self.clock():
            return None
        return hit[0]

    def put(self, presented: str, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[_digest(presented)] = (principal, self.clock() + self.ttl)

    def forget(self, key_id: str) -> int:
        """Drop every entry of ``key_id`` (revoked); returns how many there were."""
        gone = [d for d, (p, _) in self._entries.items() if p.key_id == key_id]
        for d in gone:
            del self._entries[d]
        return len(gone)

    async def check(self, checker: KeyChecker, presented: str | None) -> Principal:
        """The principal of ``presented``: from the cache, else from ``checker`` (off the
        loop), cached when it passes. Raises what ``checker`` raises."""
        if presented:
            hit = self.get(presented)
            if hit is not None:
                return hit
        principal = await asyncio.to_thread(checker, presented)
        if presented:
            self.put(presented, principal)
        return principal
