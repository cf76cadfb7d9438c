"""The routing table the controller publishes and the invocation router reads.

Rebuilt from observation on every reconcile pass: only replicas that answered ``GET /ping``
are in it, so a replica that stops answering drops out within one pass. The table also carries
demand the other way: requests held for a variant scaled to zero are counted here, and
``on_demand`` is told at once (the controller wakes; on a cluster the API pod writes demand on
the Endpoint), so a replica starts without waiting for the next pass.

Readers (the data plane, on every request) take no lock: a route is replaced whole, and a dict
read is atomic. Each change (a route published that differs from the one before, or withdrawn)
bumps ``version`` and calls the listeners, which is how router workers in other processes get
a copy (``orchestrator.dataplane.workers``); the controller republishing the same route every
pass changes nothing.

Each route carries its endpoint's account (``orchestrator.tenancy``: ``ROOT`` for the server's
own), so the data plane tells another account's endpoint from an absent one without a store
read, and answers both alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.controller.plan.types import VariantRoute

__all__ = ["EndpointRoute", "RoutingTable", "VariantRoute"]


@dataclass(frozen=True)
class EndpointRoute:
    endpoint: str
    public: bool
    variants: tuple[VariantRoute, ...]
    # The endpoint's tags, for policies' tag conditions on InvokeEndpoint (no store read on
    # the invocation path).
    tags: tuple[tuple[str, str], ...] = ()
    # The endpoint's account (``orchestrator.tenancy``; "" for the server's own): a keyed
    # caller of another account is answered as for an absent endpoint, unless it is public.
    account: str = ""

    @property
    def ready(self) -> bool:
        return any(v.urls and v.weight > 0 and not v.shadow for v in self.variants)


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[str, EndpointRoute] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        # Told (endpoint, variant) when a request is held: the controller in this process
        # wakes; on a cluster the API pod writes demand on the Endpoint for the operator.
        self.on_demand: Callable[[str, str], None] | None = None
        self.version = 0
        self._listeners: list[Callable[[], None]] = []
        # Variants woken from zero whose first replica is not ready yet (see ``waking``).
        self._waking: set[tuple[str, str]] = set()

    def publish(self, route: EndpointRoute) -> None:
        with self._lock:
            old = self._routes.get(route.endpoint)
            if old == route:
                return
            self._routes[route.endpoint] = route
            self._track_waking(route.endpoint, old, route)
            self.version += 1
        self._changed()

    def waking(self, endpoint: str, variant: str) -> bool:
        """The variant was scaled to zero and is starting its first replica: a request for it
        waits for that replica like the one that woke it, rather than getting a 503."""
        return (endpoint, variant) in self._waking

    def _track_waking(
        self, endpoint: str, old: EndpointRoute | None, new: EndpointRoute | None
    ) -> None:
        """asleep (scaled to zero) -> waking (no replica ready yet) -> awake (a URL)."""
        was = {n for e, n in self._waking if e == endpoint}
        self._waking -= {(endpoint, n) for n in was}
        if new is None or old is None:
            return
        before = {v.name: v for v in old.variants if not v.shadow}
        for v in new.variants:
            prior = before.get(v.name)
            if v.shadow or v.urls or v.scaled_to_zero or prior is None or prior.urls:
                continue
            if prior.scaled_to_zero or v.name in was:
                self._waking.add((endpoint, v.name))

    def withdraw(self, endpoint: str) -> None:
        with self._lock:
            old = self._routes.pop(endpoint, None)
            if old is None:
                return
            self._track_waking(endpoint, old, None)
            self.version += 1
        self._changed()

    def get(self, endpoint: str) -> EndpointRoute | None:
        return self._routes.get(endpoint)  # no lock: see the module docstring

    def all(self) -> list[EndpointRoute]:
        with self._lock:
            return list(self._routes.values())

    def replace_all(self, routes: list[EndpointRoute]) -> None:
        """Make the table exactly ``routes`` (a copy of another process's table)."""
        with self._lock:
            fresh = {r.endpoint: r for r in routes}
            if fresh == self._routes:
                return
            for name in set(fresh) | set(self._routes):
                if fresh.get(name) != self._routes.get(name):
                    self._track_waking(name, self._routes.get(name), fresh.get(name))
            self._routes = fresh
            self.version += 1
        self._changed()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change (from the thread that made it)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    # --- demand: requests held until a replica of their variant is ready -------------------
    def hold(self, endpoint: str, variant: str) -> None:
        with self._lock:
            key = (endpoint, variant)
            self._waiting[key] = self._waiting.get(key, 0) + 1
        if self.on_demand is not None:
            self.on_demand(endpoint, variant)

    def release(self, endpoint: str, variant: str) -> None:
        with self._lock:
            key = (endpoint, variant)
            left = self._waiting.get(key, 0) - 1
            if left > 0:
                self._waiting[key] = left
            else:
                self._waiting.pop(key, None)

    def any_waiting(self) -> bool:
        with self._lock:
            return bool(self._waiting)

    def waiting(self, endpoint: str, variant: str) -> int:
        with self._lock:
            return self._waiting.get((endpoint, variant), 0)
