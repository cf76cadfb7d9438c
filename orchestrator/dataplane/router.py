"""Invocation routing: pick a variant and a replica, send the body, handle what goes wrong.

Picking (``pick_variant``): the variant named in ``X-Target-Variant``, else one by weight among
the production variants (the weights already fold in a blue/green update's traffic shares);
then a replica round-robin. Answers name the variant that served them.

- A variant scaled to zero holds the request (``Demand.hold``: the routing table counts it and
  wakes the controller) until a replica is ready, within the request's own deadline: held, not
  dropped (past it, ``ModelNotReadyError``).
- When the connection to a replica fails before any answer arrives (refused, reset, closed: a
  replica that just died or is draining), the request goes to the next replica of the variant;
  inference is expected to be free of side effects, as SageMaker expects of ``/invocations``.
  A timeout is never retried.
- A request served by the new fleet of an update in progress (a *trial* route) that gets a 5xx
  or no connection is served again by the old fleet: the failure counts against the update's
  alarms, the caller gets the old fleet's answer. So a bad rollout costs no failed request.
- A shadow variant gets a copy of its share of requests after the live request is on the wire;
  its answer is measured and dropped, and at most ``shadow_max_in_flight`` copies run at once.

Every attempt on a variant is recorded once in the ``InvocationLog`` (in flight while it runs,
then its status and latencies); the live answer is recorded by the front once it is sent, so
that OverheadLatency covers the whole request.
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

from orchestrator.controller.routing import EndpointRoute, RoutingTable, VariantRoute
from orchestrator.dataplane.pool import (
    BrokenAnswerError,
    NoResponseError,
    Pools,
    ReplicaAnswer,
    ReplicaTimeoutError,
)
from orchestrator.dataplane.recorder import InvocationLog
from orchestrator.errors import (
    DeadlineExceededError,
    ModelNotReadyError,
    UnavailableError,
    ValidationError,
)

log = logging.getLogger("orchestrator.dataplane")

TARGET_VARIANT_HEADER = "x-target-variant"
HOLD_POLL_SECONDS = 0.02


class Demand(Protocol):
    """Where held requests are counted (the routing table the controller reads)."""

    def hold(self, endpoint: str, variant: str) -> None: ...

    def release(self, endpoint: str, variant: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Served:
    """An answer and what the front needs to record it once it has been sent. ``model_us``
    is ModelLatency as SageMaker defines it: the model's time as the router sees it, from
    sending the request to the replica to having its whole answer."""

    answer: ReplicaAnswer
    variant: VariantRoute
    model_us: float


class _NoReplica(Exception):
    """No replica of the variant accepted the connection."""


def pick_variant(
    route: EndpointRoute, target: str | None, waking: Callable[[str], bool] | None = None
) -> VariantRoute:
    """The variant to serve a request: ``target`` (X-Target-Variant) or one by weight.
    ``waking(name)``: the variant is starting its first replica after a scale to zero (it is
    picked, and the request held, as a sleeping one would be)."""
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
    if len(live) == 1:
        return live[0]
    if live:
        return random.choices(live, weights=[v.weight for v in live])[0]
    if target:
        # A targeted variant whose fleet gets no share right now (an update in progress).
        stable = [v for v in candidates if v.urls and not v.trial]
        if stable:
            return stable[0]
    sleeping = [
        v for v in candidates if v.scaled_to_zero or (waking is not None and waking(v.name))
    ]
    if sleeping:
        weights = [v.weight for v in sleeping]
        return random.choices(sleeping, weights=weights if sum(weights) > 0 else None)[0]
    what = f"variant {target!r} of endpoint" if target else "endpoint"
    raise UnavailableError(
        f"{what} {route.endpoint!r} has no ready replica yet; retry", retry_after=1
    )


def fallback_variant(route: EndpointRoute, tried: VariantRoute) -> VariantRoute | None:
    """A variant of the old fleet to serve a request the new fleet failed."""
    stable = [v for v in route.variants if not v.shadow and not v.trial and v.urls]
    same = [v for v in stable if v.name == tried.name]
    pool = same or stable
    if not pool:
        return None
    weights = [v.weight for v in pool]
    return random.choices(pool, weights=weights if sum(weights) > 0 else None)[0]


class Router:
    def __init__(
        self,
        routes: RoutingTable,
        *,
        timeout_seconds: float,
        log_: InvocationLog,
        demand: Demand | None = None,
        shadow_max_in_flight: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.demand: Demand = demand if demand is not None else routes
        self.timeout = timeout_seconds
        self.log = log_
        self.clock = clock  # epoch seconds for the metrics (the control plane's clock)
        self.pools = Pools()
        self._counters: dict[tuple[str, str, str], itertools.count[int]] = {}
        self._shadow_max = shadow_max_in_flight
        self._shadows_in_flight = 0
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.shadow_dropped = 0

    async def aclose(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
        await asyncio.gather(*self._shadow_tasks, return_exceptions=True)
        self.pools.close()

    def retain_pools(self) -> None:
        """Close the connections to replicas no route names any more."""
        urls: set[str] = set()
        for route in self.routes.all():
            for v in route.variants:
                urls.update(v.urls)
        self.pools.retain(urls)

    # --- held requests ----------------------------------------------------------------------
    async def _wake(self, endpoint: str, variant: VariantRoute, deadline: float) -> VariantRoute:
        """Hold the request until the variant has a ready replica (or the deadline passes)."""
        self.demand.hold(endpoint, variant.name)
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
            self.demand.release(endpoint, variant.name)
        raise ModelNotReadyError(
            f"endpoint {endpoint!r}: variant {variant.name!r} is scaled to zero and no replica "
            f"was ready within {self.timeout:g} s; retry",
            retry_after=5,
        )

    # --- invoking -----------------------------------------------------------------------------
    async def invoke(
        self,
        route: EndpointRoute,
        path: bytes,
        headers: bytes,
        body: bytes,
        *,
        target: str | None,
        started: float,
    ) -> Served:
        """Serve one request: ``path`` on the replica, ``headers`` formatted as
        ``name: value\\r\\n`` lines (those passed on), ``body`` as received; ``started`` is
        ``time.perf_counter()`` when it arrived."""
        deadline = time.monotonic() + self.timeout
        endpoint = route.endpoint
        variant = pick_variant(route, target, lambda name: self.routes.waking(endpoint, name))
        if not variant.urls:
            variant = await self._wake(route.endpoint, variant, deadline)
        self._maybe_shadow(route, path, headers, body)
        try:
            served = await self._forward(route, variant, path, headers, body, deadline=deadline)
        except _NoReplica:
            served = None
        if variant.trial and (served is None or served.answer.status >= 500):
            if served is not None:  # the new fleet's failure counts against its alarms
                self.answered(route, served, started)
            fallback = fallback_variant(route, variant)
            if fallback is not None:
                try:
                    return await self._forward(
                        route, fallback, path, headers, body, deadline=deadline
                    )
                except _NoReplica:
                    pass
        if served is None:
            raise UnavailableError(
                f"endpoint {route.endpoint!r}: no replica of variant {variant.name!r} accepted "
                "the connection; retry shortly",
                retry_after=1,
            )
        return served

    async def _forward(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        path: bytes,
        headers: bytes,
        body: bytes,
        *,
        deadline: float,
    ) -> Served:
        """Send to the variant's replicas in turn until one answers. Failures are recorded
        here; an answer is recorded by whoever sends it on (``answered``)."""
        endpoint, name, config = route.endpoint, variant.name, variant.config
        key = (endpoint, config, name)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = itertools.count()
        first = next(counter)
        urls = variant.urls
        n = len(urls)
        events = self.log
        events.started(endpoint, name, config, self.clock())
        loop_deadline = asyncio.get_running_loop().time() + (deadline - time.monotonic())
        try:
            for i in range(n):
                replica = self.pools.get(urls[(first + i) % n])
                head = replica.head(path, len(body), headers)
                sent = time.perf_counter()
                try:
                    answer = await replica.post(head, body, loop_deadline)
                except NoResponseError:
                    continue  # the replica is gone: no answer came, try the next one
                except ReplicaTimeoutError as e:
                    self._answered(route, variant, 504, None, None)
                    raise DeadlineExceededError(
                        f"endpoint {endpoint!r} did not answer within {self.timeout:g} s"
                    ) from e
                except BrokenAnswerError as e:
                    self._answered(route, variant, 503, None, None)
                    raise UnavailableError(
                        f"endpoint {endpoint!r}: the replica's answer broke off: {e}",
                        retry_after=1,
                    ) from e
                return Served(answer, variant, (time.perf_counter() - sent) * 1e6)
            self._answered(route, variant, 503, None, None)
            raise _NoReplica
        finally:
            events.finished(endpoint, name, config, self.clock())

    def _answered(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        status: int,
        model_us: float | None,
        overhead_us: float | None,
    ) -> None:
        self.log.answered(
            route.endpoint,
            variant.name,
            variant.config,
            self.clock(),
            status,
            model_us,
            overhead_us,
        )

    def answered(self, route: EndpointRoute, served: Served, started: float) -> None:
        """Record a served answer; ``started`` is ``time.perf_counter()`` when the request
        arrived. OverheadLatency, as SageMaker's: from then until the answer was sent, less
        ModelLatency (``Served.model_us``)."""
        total_us = (time.perf_counter() - started) * 1e6
        model_us = served.model_us
        overhead_us = max(0.0, total_us - model_us)
        self._answered(route, served.variant, served.answer.status, model_us, overhead_us)

    # --- shadow traffic -----------------------------------------------------------------------
    def _maybe_shadow(self, route: EndpointRoute, path: bytes, headers: bytes, body: bytes) -> None:
        for shadow in route.variants:
            if not shadow.shadow or not shadow.urls or random.random() >= shadow.weight:
                continue
            if self._shadows_in_flight >= self._shadow_max:
                self.shadow_dropped += 1
                continue
            self._shadows_in_flight += 1
            task = asyncio.create_task(self._shadow(route, shadow, path, headers, body))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_done)

    def _shadow_done(self, task: asyncio.Task[None]) -> None:
        self._shadows_in_flight -= 1
        self._shadow_tasks.discard(task)

    async def _shadow(
        self,
        route: EndpointRoute,
        shadow: VariantRoute,
        path: bytes,
        headers: bytes,
        body: bytes,
    ) -> None:
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        try:
            served = await self._forward(route, shadow, path, headers, body, deadline=deadline)
        except Exception as e:  # a shadow's failure is measured, never seen by the caller
            log.debug("shadow copy to %s/%s failed: %s", route.endpoint, shadow.name, e)
            return
        self.answered(route, served, started)
