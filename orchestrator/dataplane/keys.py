"""Keys on the invocation path: two seams to the key sources, and a cache in front of each.

``KeyChecker`` is the one function the data plane calls to turn a presented key into a
``Principal`` (raising ``AuthenticationError``); it may block (a store lookup), so it runs off
the event loop. ``KeyCache`` keeps verified keys for ``ttl`` seconds so that the hot path is
one dict lookup (by a SHA-256 of the key: no secret is kept). A revoked key is dropped at
once with ``forget(key_id)`` (the API calls it on revocation, and every router worker hears
of it); the TTL bounds how long a key revoked behind the API's back (straight in the
database, by another control plane) keeps working.

SigV4 callers (``Authorization: AWS4-HMAC-SHA256 ...``, as boto3's ``sagemaker-runtime``
signs) have the same pair: ``SigningKeySource`` turns (access key id, date, region, service)
into the day's derived signing key and the key's ``Principal`` (raising
``sigv4.SignatureError("unknown_key")``; the control plane's is ``AccessKeys.signing_key``),
and ``SigningKeyCache`` keeps the derived keys by that scope, so that a signed request costs a
dict read, one HMAC and a SHA-256 of what was signed. The derived key is what crosses to a
router worker, never the secret; ``forget(key_id)`` drops a revoked key's entries at once.
In a router worker both caches sit in front of the hub's, so for a key revoked behind the
API's back the TTLs add up (the hub's, then the worker's, and ``AccessKeys``' own).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Protocol

from orchestrator.access import Principal

Scope = tuple[str, str, str, str]  # (access key id, YYYYMMDD, region, service)


class KeyChecker(Protocol):
    def __call__(self, presented: str | None) -> Principal: ...


class SigningKeySource(Protocol):
    def __call__(
        self, access_key_id: str, date: str, region: str, service: str
    ) -> tuple[bytes, Principal]: ...


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
        # A snapshot, and pops: safe while the loop's thread uses the cache (a revocation may
        # come from another thread).
        gone = [d for d, (p, _) in list(self._entries.items()) if p.key_id == key_id]
        for d in gone:
            self._entries.pop(d, None)
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


class SigningKeyCache:
    """Recently derived SigV4 signing keys by scope (see the module docstring); bounded to
    ``size`` entries, each kept ``ttl`` seconds."""

    def __init__(
        self, ttl: float = 5.0, size: int = 1024, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[Scope, tuple[bytes, Principal, float]] = {}
        self._revocations = 0  # a lookup that a revocation overtook is not cached

    def get(self, scope: Scope) -> tuple[bytes, Principal] | None:
        hit = self._entries.get(scope)
        if hit is None or hit[2] < self.clock():
            return None
        return hit[0], hit[1]

    def put(self, scope: Scope, key: bytes, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[scope] = (key, principal, self.clock() + self.ttl)

    def forget(self, key_id: str) -> int:
        """Drop every scope of access key ``key_id`` (revoked); returns how many there were."""
        self._revocations += 1
        gone = [s for s in list(self._entries) if s[0] == key_id]  # as KeyCache.forget
        for s in gone:
            self._entries.pop(s, None)
        return len(gone)

    async def check(self, source: SigningKeySource, scope: Scope) -> tuple[bytes, Principal]:
        """The key and principal of ``scope``: from the cache, else from ``source`` (off the
        loop), cached when found. Raises what ``source`` raises."""
        hit = self.get(scope)
        if hit is not None:
            return hit
        revocations = self._revocations
        key, principal = await asyncio.to_thread(source, *scope)
        if revocations == self._revocations:
            self.put(scope, key, principal)
        return key, principal
