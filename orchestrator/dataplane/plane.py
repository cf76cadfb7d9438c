"""The data plane of one process: what the front needs to serve invocations, and its upkeep.

``DataPlane`` holds the routing table it reads, the key seams and their caches (API keys and
SigV4 signing keys), the endpoint status
lookup, the router (with its replica connections) and the invocation log; ``start`` and
``stop`` run with the server (the front calls them from the ASGI lifespan). While it runs, a
task flushes the log into the ``Sink`` every ``FLUSH_SECONDS``, fails requests to replicas
whose deadline passed (504) and, every few seconds, closes connections to replicas that left
the routing table. ``key_revoked`` drops a key (an API key's id or an access key's id) from
both caches here and tells the listeners (the router workers in other processes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane.keys import KeyCache, KeyChecker, SigningKeyCache, SigningKeySource
from orchestrator.dataplane.recorder import FLUSH_SECONDS, InvocationLog, Sink
from orchestrator.dataplane.router import Demand, Router
from orchestrator.ratelimit import buckets_of

log = logging.getLogger("orchestrator.dataplane")

EndpointStatus = Callable[[str], "tuple[str, str] | None"]
_RETAIN_EVERY_SECONDS = 5.0
_TELL_TIMEOUT_SECONDS = 2.0  # a revocation waits this long at most for the loop to pass it on


@dataclass(frozen=True)
class DataPlaneSettings:
    max_payload_bytes: int
    invocation_timeout_seconds: float
    shadow_max_in_flight: int
    fast_path: bool = True  # served from uvicorn's protocol (orchestrator.dataplane.fastpath)
    # What SigV4 requests are signed for, and what SageMaker Runtime's answers name.
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # Per-key invocation rate limit in this process (0: none) and its burst.
    invocations_per_second: float = 0.0
    invocation_burst: int = 1000
    # The replica CA's certificate (PEM path) that ``https://`` replicas are verified against
    # (ORCH_SERVING__REPLICA_TLS); empty: replicas speak plain HTTP and HTTPS ones are refused.
    replica_ca_file: str = ""


class DeniedHook(Protocol):
    """Told of a refused invocation: (endpoint, request headers, status, answer body, client
    address) and the caller's ``account`` id (12 digits; "" when no key was verified)."""

    def __call__(
        self,
        name: str,
        headers: list[tuple[bytes, bytes]],
        status: int,
        body: bytes,
        client: str,
        *,
        account: str = "",
    ) -> None: ...


class DataPlane:
    def __init__(
        self,
        *,
        routes: RoutingTable,
        key_checker: KeyChecker,
        signing_key_source: SigningKeySource,
        endpoint_status: EndpointStatus,
        sink: Sink,
        settings: DataPlaneSettings,
        keys: KeyCache | None = None,
        demand: Demand | None = None,
        clock: Callable[[], float] = time.time,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.key_checker = key_checker
        self.signing_key_source = signing_key_source
        self.signing_keys = SigningKeyCache()
        # Signatures are checked against the wall clock, whatever clock the metrics use.
        self.wall_clock = wall_clock
        self.endpoint_status = endpoint_status
        self.keys = keys if keys is not None else KeyCache()
        self.sink = sink
        self.settings = settings
        self.max_payload_bytes = settings.max_payload_bytes
        # Per-key invocation buckets (None: no limit; orchestrator.ratelimit).
        self.invocation_limits = buckets_of(
            settings.invocations_per_second,
            settings.invocation_burst,
            "ORCH_RATE_LIMITS__INVOCATIONS_PER_SECOND and __INVOCATION_BURST",
        )
        # Told of every invocation refused (401, 403, or answered as for an absent endpoint
        # to a keyed caller; the audit trail, set by whoever builds the front).
        self.on_denied: DeniedHook | None = None
        # The API key of a console session: (Cookie header, X-CSRF-Token) -> the key, or None
        # without a session cookie; raises for an expired one or a missing token. Set by the
        # control plane (api.app); a router worker has none, so there a cookie is no key.
        self.session_key: Callable[[str, str | None], str | None] | None = None
        self.log = InvocationLog()
        self.router = Router(
            routes,
            timeout_seconds=settings.invocation_timeout_seconds,
            log_=self.log,
            demand=demand,
            shadow_max_in_flight=settings.shadow_max_in_flight,
            clock=clock,
        )
        if settings.replica_ca_file:
            from orchestrator.tls import replica_client_context

            self.router.pools.ssl_context = replica_client_context(Path(settings.replica_ca_file))
        self.revocation_listeners: list[Callable[[str], None]] = []
        self.started_hooks: list[Callable[[], object]] = []
        self.stopping_hooks: list[Callable[[], object]] = []
        self._upkeep: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._upkeep is None:
            self._upkeep = asyncio.create_task(self._run_upkeep(), name="dataplane-upkeep")
        for hook in self.started_hooks:
            result = hook()
            if asyncio.iscoroutine(result):
                await result

    async def stop(self) -> None:
        for hook in self.stopping_hooks:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
            self._upkeep = None
        await self.router.aclose()
        self.flush()

    def flush(self) -> None:
        """Hand what was recorded so far to the sink (the upkeep task does this on a tick)."""
        events = self.log.drain()
        if events:
            try:
                self.sink.apply(events)
            except Exception:  # metrics must never break serving
                log.exception("recording %d invocation events failed", len(events))

    def key_revoked(self, key_id: str) -> None:
        """Drop ``key_id`` from both caches at once and tell the listeners. Safe from any
        thread (an access key may be revoked off the loop): the listeners, which write to
        the router workers, then run on the loop, and this returns once they have."""
        self.keys.forget(key_id)
        self.signing_keys.forget(key_id)
        loop = self._loop
        if loop is None or loop.is_closed() or _running_on(loop):
            self._tell_revoked(key_id)
            return
        told: concurrent.futures.Future[None] = concurrent.futures.Future()

        def tell() -> None:
            try:
                self._tell_revoked(key_id)
            finally:
                told.set_result(None)

        loop.call_soon_threadsafe(tell)
        with contextlib.suppress(TimeoutError):
            told.result(_TELL_TIMEOUT_SECONDS)

    def _tell_revoked(self, key_id: str) -> None:
        for listener in self.revocation_listeners:
            listener(key_id)

    async def _run_upkeep(self) -> None:
        loop = asyncio.get_running_loop()
        next_retain = time.monotonic() + _RETAIN_EVERY_SECONDS
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.router.pools.expire(loop.time())
            self.flush()
            if time.monotonic() >= next_retain:
                next_retain = time.monotonic() + _RETAIN_EVERY_SECONDS
                self.router.retain_pools()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
