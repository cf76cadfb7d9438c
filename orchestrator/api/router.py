"""Invocation routing: ``POST /endpoints/{name}/invocations`` to a ready replica.

Picking: the variant named in ``X-Target-Variant``, else one by weight among the production
variants (the weights already fold in a blue/green update's traffic shares); then a replica
round-robin. Answers name the variant that served them (``X-Invoked-Production-Variant``).

- A variant scaled to zero holds the request (the routing table counts it and wakes the
  controller) until a replica is ready, within the request's own deadline: held, not dropped.
- When the connection to a replica fails before any response arrives (refused, reset, closed: a
  replica that just died or is draining), the request goes to the next replica of the variant;
  inference is expected to be free of side effects, as SageMaker expects of ``/invocations``.
  A timeout is never retried.
- A request served by the new fleet of an update in progress (a *trial* route) that gets a 5xx
  or no connection is served again by the old fleet: the failure counts against the update's
  alarms, the caller gets the old fleet's answer. So a bad rollout costs no failed request.
- A shadow variant gets a copy of its share of requests after the live answer is under way; its
  answer is measured and dropped, and at most ``shadow_max_in_flight`` copies run at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from orchestrator import metrics
from orchestrator.controller.routing import EndpointRoute, RoutingTable, VariantRoute
from orchestrator.errors import (
    DeadlineExceededError,
    UnavailableError,
    ValidationError,
)

log = logging.getLogger("orchestrator.router")

TARGET_VARIANT_HEADER = "x-target-variant"
INVOKED_VARIANT_HEADER = "X-Invoked-Production-Variant"
MODEL_LATENCY_HEADER = "x-orch-model-latency-us"
_FORWARDED = ("content-type", "accept", "x-custom-attributes")
HOLD_POLL_SECONDS = 0.02


class InvocationRecorder(Protocol):
    """Where the router reports each invocation (the endpoint metrics time series)."""

    def record_invocation(
        self,
        endpoint: str,
        variant: str,
        config: str,
        *,
        status: int,
        model_us: float | None,
        overhead_us: float | None,
        at: float,
    ) -> None: ...

    def request_started(self, endpoint: str, variant: str, config: str, at: float) -> None: ...

    def request_finished(self, endpoint: str, variant: str, config: str, at: float) -> None: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    variant: str
    retry_after: str | None = None  # the replica's Retry-After (a 429 from a full queue)


class _NoReplica(Exception):
    """No replica of the variant accepted the connection."""


class Router:
    def __init__(
        self,
        routes: RoutingTable,
        *,
        timeout_seconds: float,
        recorder: InvocationRecorder | None = None,
        shadow_max_in_flight: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.clock = clock  # epoch seconds for the recorder (the control plane's clock)
        self.timeout = timeout_seconds
        self.recorder = recorder
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            trust_env=False,
        )
        self._counters: dict[tuple[str, str, str], itertools.count[int]] = {}
        self._shadow_slots = asyncio.Semaphore(shadow_max_in_flight)
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.shadow_dropped = 0

    async def aclose(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
        await asyncio.gather(*self._shadow_tasks, return_exceptions=True)
        await self._client.aclose()

    # --- picking ------------------------------------------------------------------------------
    def _pick_variant(self, route: EndpointRoute, target: str | None) -> VariantRoute:
        production = [v for v in route.variants if not v.shadow]
        if target:
            named = [v for v in production if v.name == target]
            if not named:
                raise ValidationError(
                    f"{TARGET_VARIANT_HEADER}: endpoint {route.endpoint!r} has no production "
                    f"variant {target!r}; variants: {sorted({v.name for v in production})}",
                    field=TARGET_VARIANT_HEADER,
                )
            candidates = named
        else:
            candidates = [v for v in production if v.weight > 0]
        live = [v for v in candidates if v.urls and v.weight > 0]
        if live:
            return random.choices(live, weights=[v.weight for v in live])[0]
        if target:
            # A targeted variant whose fleet gets no share right now (an update in progress).
            stable = [v for v in candidates if v.urls and not v.trial]
            if stable:
                return stable[0]
        sleeping = [v for v in candidates if v.scaled_to_zero]
        if sleeping:
            weights = [v.weight for v in sleeping]
            return random.choices(sleeping, weights=weights if sum(weights) > 0 else None)[0]
        what = f"variant {target!r} of endpoint" if target else "endpoint"
        name = route.endpoint
        raise UnavailableError(f"{what} {name!r} has no ready replica yet; retry", retry_after=1)

    def _fallback(self, route: EndpointRoute, tried: VariantRoute) -> VariantRoute | None:
        """A variant of the old fleet to serve a request the new fleet failed."""
        stable = [v for v in route.variants if not v.shadow and not v.trial and v.urls]
        same = [v for v in stable if v.name == tried.name]
        pool = same or stable
        if not pool:
            return None
        weights = [v.weight for v in pool]
        return random.choices(pool, weights=weights if sum(weights) > 0 else None)[0]

    async def _wake(self, endpoint: str, variant: VariantRoute, deadline: float) -> VariantRoute:
        """Hold the request until the variant has a ready replica (or the deadline passes)."""
        self.routes.hold(endpoint, variant.name)
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(HOLD_POLL_SECONDS)
                route = self.routes.get(endpoint)
                if route is None:
                    break
                for v in route.variants:
                    if v.name == variant.name and not v.shadow and not v.trial and v.urls:
                        return v
        finally:
            self.routes.release(endpoint, variant.name)
        raise UnavailableError(
            f"endpoint {endpoint!r}: variant {variant.name!r} is scaled to zero and no replica "
            f"was ready within {self.timeout:g} s; retry",
            retry_after=5,
        )

    # --- invoking -----------------------------------------------------------------------------
    async def invoke(
        self,
        route: EndpointRoute,
        body: bytes,
        headers: dict[str, str],
        target: str | None,
        *,
        path: str = "/invocations",
    ) -> Answer:
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        variant = self._pick_variant(route, target)
        if not variant.urls:
            variant = await self._wake(route.endpoint, variant, deadline)
        forward = {k: v for k, v in headers.items() if k.lower() in _FORWARDED}
        self._maybe_shadow(route, body, forward, path)
        try:
            answer = await self._forward(route, variant, body, forward, started, path=path)
        except _NoReplica:
            answer = None
        if variant.trial and (answer is None or answer.status >= 500):
            fallback = self._fallback(route, variant)
            if fallback is not None:
                try:
                    return await self._forward(
                        route, fallback, body, forward, time.perf_counter(), path=path
                    )
                except _NoReplica:
                    pass
        if answer is None:
            raise UnavailableError(
                f"endpoint {route.endpoint!r}: no replica of variant {variant.name!r} accepted "
                "the connection; retry shortly",
                retry_after=1,
            )
        return answer

    async def _forward(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        body: bytes,
        headers: dict[str, str],
        started: float,
        *,
        path: str,
    ) -> Answer:
        key = (route.endpoint, variant.config, variant.name)
        first = next(self._counters.setdefault(key, itertools.count()))
        urls = variant.urls
        recorder = self.recorder
        metrics.record_request_started(route.endpoint, variant.name)
        if recorder is not None:
            recorder.request_started(route.endpoint, variant.name, variant.config, self.clock())
        try:
            for i in range(len(urls)):
                url = urls[(first + i) % len(urls)]
                try:
                    resp = await self._client.post(f"{url}{path}", content=body, headers=headers)
                except (
                    httpx.ConnectError,
                    httpx.ReadError,
                    httpx.WriteError,
                    httpx.RemoteProtocolError,
                ):
                    continue  # the replica is gone: no response came, try the next one
                except httpx.TimeoutException as e:
                    self._record(route, variant, 504, started, None)
                    raise DeadlineExceededError(
                        f"endpoint {route.endpoint!r} did not answer within {self.timeout:g} s"
                    ) from e
                except httpx.HTTPError as e:
                    self._record(route, variant, 503, started, None)
                    raise UnavailableError(
                        f"endpoint {route.endpoint!r}: replica connection failed: {e}",
                        retry_after=1,
                    ) from e
                model_us = resp.headers.get(MODEL_LATENCY_HEADER)
                model_s = int(model_us) / 1e6 if model_us and model_us.isdigit() else None
                self._record(route, variant, resp.status_code, started, model_s)
                return Answer(
                    resp.status_code,
                    resp.content,
                    resp.headers.get("content-type", "application/octet-stream"),
                    variant.name,
                    resp.headers.get("retry-after"),
                )
            self._record(route, variant, 503, started, None)
            raise _NoReplica
        finally:
            metrics.record_request_finished(route.endpoint, variant.name)
            if recorder is not None:
                recorder.request_finished(
                    route.endpoint, variant.name, variant.config, self.clock()
                )

    # --- shadow traffic -----------------------------------------------------------------------
    def _maybe_shadow(
        self, route: EndpointRoute, body: bytes, headers: dict[str, str], path: str
    ) -> None:
        for shadow in route.variants:
            if not shadow.shadow or not shadow.urls or random.random() >= shadow.weight:
                continue
            if self._shadow_slots.locked():
                self.shadow_dropped += 1
                continue
            task = asyncio.create_task(self._shadow(route, shadow, body, headers, path))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        route: EndpointRoute,
        shadow: VariantRoute,
        body: bytes,
        headers: dict[str, str],
        path: str,
    ) -> None:
        async with self._shadow_slots:
            try:
                await self._forward(route, shadow, body, headers, time.perf_counter(), path=path)
            except Exception as e:  # a shadow's failure is measured, never seen by the caller
                log.debug("shadow copy to %s/%s failed: %s", route.endpoint, shadow.name, e)

    # --- metrics --------------------------------------------------------------------------------
    def _record(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        status: int,
        started: float,
        model_s: float | None,
    ) -> None:
        total = time.perf_counter() - started
        overhead = max(0.0, total - model_s) if model_s is not None else None
        metrics.record_invocation(
            route.endpoint,
            variant.name,
            status=status,
            model_seconds=None,  # the replica records model latency itself
            overhead_seconds=overhead,
        )
        if self.recorder is not None:
            self.recorder.record_invocation(
                route.endpoint,
                variant.name,
                variant.config,
                status=status,
                model_us=model_s * 1e6 if model_s is not None else None,
                overhead_us=overhead * 1e6 if overhead is not None else None,
                at=self.clock(),
            )
