"""The routing table the controller publishes and the invocation router reads.

Rebuilt from observation on every reconcile pass: only replicas that answered ``GET /ping``
are in it, so a replica that stops answering drops out within one pass. The table also carries
demand the other way: requests held for a variant scaled to zero are counted here, and
``on_demand`` is told at once (the controller wakes; on a cluster the API pod writes demand on
the Endpoint), so a replica starts without waiting for the next pass.
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

    def publish(self, route: EndpointRoute) -> None:
        with self._lock:
            self._routes[route.endpoint] = route

    def withdraw(self, endpoint: str) -> None:
        with self._lock:
            self._routes.pop(endpoint, None)

    def get(self, endpoint: str) -> EndpointRoute | None:
        with self._lock:
            return self._routes.get(endpoint)

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
