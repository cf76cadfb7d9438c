"""The routing table the controller publishes and the invocation router reads.

Rebuilt from observation on every reconcile pass: only replicas that answered ``GET /ping``
are in it, so a replica that stops answering drops out within one pass.
"""

from __future__ import annotations

import threading
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
        self._lock = threading.Lock()

    def publish(self, route: EndpointRoute) -> None:
        with self._lock:
            self._routes[route.endpoint] = route

    def withdraw(self, endpoint: str) -> None:
        with self._lock:
            self._routes.pop(endpoint, None)

    def get(self, endpoint: str) -> EndpointRoute | None:
        with self._lock:
            return self._routes.get(endpoint)
