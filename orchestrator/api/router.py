"""Invocation routing: ``POST /endpoints/{name}/invocations`` to a ready replica.

A variant is picked by weight among those with ready replicas (or the one named in
``X-Target-Variant``), then a replica round-robin. When the connection to a replica fails
before any response arrives (refused, reset, closed: a replica that just died), the request
goes to the next replica of the variant; inference is expected to be free of side effects, as
SageMaker expects of ``/invocations``. A timeout is never retried.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass

import httpx

from orchestrator import metrics
from orchestrator.controller.routing import EndpointRoute, RoutingTable, VariantRoute
from orchestrator.errors import (
    DeadlineExceededError,
    UnavailableError,
    ValidationError,
)

TARGET_VARIANT_HEADER = "x-target-variant"
INVOKED_VARIANT_HEADER = "X-Invoked-Production-Variant"
MODEL_LATENCY_HEADER = "x-orch-model-latency-us"
_FORWARDED = ("content-type", "accept", "x-custom-attributes")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    variant: str


class Router:
    def __init__(self, routes: RoutingTable, *, timeout_seconds: float) -> None:
        self.routes = routes
        self.timeout = timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=2.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            trust_env=False,
        )
        self._counters: dict[tuple[str, str], itertools.count[int]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    def _pick_variant(self, route: EndpointRoute, target: str | None) -> VariantRoute:
        if target:
            for v in route.variants:
                if v.name == target:
                    if not v.urls:
                        raise UnavailableError(
                            f"variant {target!r} of endpoint {route.endpoint!r} has no ready "
                            "replica yet",
                            retry_after=1,
                        )
                    return v
            raise ValidationError(
                f"{TARGET_VARIANT_HEADER}: endpoint {route.endpoint!r} has no variant "
                f"{target!r}; variants: {[v.name for v in route.variants]}",
                field=TARGET_VARIANT_HEADER,
            )
        live = [v for v in route.variants if v.urls and v.weight > 0]
        if not live:
            raise UnavailableError(
                f"endpoint {route.endpoint!r} has no ready replica yet; retry shortly",
                retry_after=1,
            )
        return random.choices(live, weights=[v.weight for v in live])[0]

    async def invoke(
        self, route: EndpointRoute, body: bytes, headers: dict[str, str], target: str | None
    ) -> Answer:
        started = time.perf_counter()
        variant = self._pick_variant(route, target)
        counter = self._counters.setdefault((route.endpoint, variant.name), itertools.count())
        first = next(counter)
        forward = {k: v for k, v in headers.items() if k.lower() in _FORWARDED}
        urls = [variant.urls[(first + i) % len(variant.urls)] for i in range(len(variant.urls))]
        for url in urls:
            try:
                resp = await self._client.post(f"{url}/invocations", content=body, headers=forward)
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
                    f"endpoint {route.endpoint!r}: replica connection failed: {e}", retry_after=1
                ) from e
            model_us = resp.headers.get(MODEL_LATENCY_HEADER)
            model_s = int(model_us) / 1e6 if model_us and model_us.isdigit() else None
            self._record(route, variant, resp.status_code, started, model_s)
            return Answer(
                resp.status_code,
                resp.content,
                resp.headers.get("content-type", "application/octet-stream"),
                variant.name,
            )
        self._record(route, variant, 503, started, None)
        raise UnavailableError(
            f"endpoint {route.endpoint!r}: no replica of variant {variant.name!r} accepted "
            "the connection; retry shortly",
            retry_after=1,
        )

    @staticmethod
    def _record(
        route: EndpointRoute,
        variant: VariantRoute,
        status: int,
        started: float,
        model_s: float | None,
    ) -> None:
        total = time.perf_counter() - started
        metrics.record_invocation(
            route.endpoint,
            variant.name,
            status=status,
            model_seconds=None,  # the replica records model latency itself
            overhead_seconds=max(0.0, total - model_s) if model_s is not None else None,
        )
