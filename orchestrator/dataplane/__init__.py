"""The endpoint data plane: ``InvokeEndpoint`` on the control plane, as lean as a proxy hop.

Invocations (``/endpoints/NAME/invocations``, ``/endpoints/NAME/v2/models/M/infer``) never
reach the management API's framework: a raw ASGI front (``front``) matches them and a router
(``router``) sends the body, as bytes, over a per-replica pool of keep-alive HTTP/1.1
connections (``pool``), and the metrics are appended to a list that is flushed in batches
(``recorder``). ``keys`` holds the seams to the key sources (API keys, SigV4 signing keys),
with their caches; ``runtime`` is SageMaker Runtime's shapes for SigV4 callers; ``plane`` holds one
process's pieces together; ``workers`` runs several router processes on one port, fed by the
control plane. ``build_front`` is what the control plane's app factory calls.

    front.py     the front: match, authenticate, limit, route, answer (as ASGI, or...)
    fastpath.py  ...straight from uvicorn's HTTP protocol, without an ASGI cycle
    plane.py     DataPlane: routes, keys, router, log, and their upkeep
    router.py    variant choice, held requests, retries, trial fallback, shadow copies
    pool.py      keep-alive connections to replicas (asyncio + httptools)
    keys.py      KeyChecker, SigningKeySource (the seams) and their caches (O(1), revocable)
    runtime.py   SageMaker Runtime's InvokeEndpoint: its headers, SigV4 checks, answers
    recorder.py  InvocationLog (append only) and the sinks it is flushed into
    workers.py   several router processes: the hub in the control plane, the worker side
"""

from __future__ import annotations

from typing import Any

from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane.front import ASGIApp, DataPlaneFront, match_invocation
from orchestrator.dataplane.keys import KeyCache, KeyChecker, SigningKeySource
from orchestrator.dataplane.plane import DataPlane, DataPlaneSettings, EndpointStatus
from orchestrator.dataplane.recorder import LocalSink
from orchestrator.monitoring.series import SeriesStore
from orchestrator.settings import Settings
from orchestrator.tls import replica_ca

__all__ = [
    "DataPlane",
    "DataPlaneFront",
    "DataPlaneSettings",
    "KeyCache",
    "KeyChecker",
    "SigningKeySource",
    "build_front",
    "http_protocol",
    "match_invocation",
]


def http_protocol(app: object) -> Any:
    """What to pass as uvicorn's ``http=`` to serve ``app``: for a ``DataPlaneFront``, the
    protocol that serves its invocations without an ASGI cycle (``fastpath``); else uvicorn's
    own choice."""
    if isinstance(app, DataPlaneFront):
        from orchestrator.dataplane.fastpath import protocol_for

        return protocol_for(app)
    return "auto"


def build_front(
    app: ASGIApp,
    *,
    routes: RoutingTable,
    key_checker: KeyChecker,
    signing_keys: SigningKeySource,
    endpoint_status: EndpointStatus,
    series: SeriesStore | None,
    settings: Settings,
    clock: Clock,
) -> DataPlaneFront:
    """The front a control plane serves: invocations through the data plane, the rest to
    ``app``. Its key cache and data plane are put on ``app.state`` (``key_cache``,
    ``dataplane``) when ``app`` has one, so the management API shares the cache.
    ``signing_keys``: where SigV4 callers' signing keys come from (the access keys)."""
    plane = DataPlane(
        routes=routes,
        key_checker=key_checker,
        signing_key_source=signing_keys,
        endpoint_status=endpoint_status,
        sink=LocalSink(series),
        settings=settings_of(settings),
        clock=_epoch_seconds(clock),
    )
    state: Any = getattr(app, "state", None)
    if state is not None:
        state.key_cache = plane.keys
        state.dataplane = plane
    return DataPlaneFront(app, plane)


def settings_of(settings: Settings) -> DataPlaneSettings:
    return DataPlaneSettings(
        max_payload_bytes=settings.serving.max_payload_bytes,
        invocation_timeout_seconds=settings.serving.invocation_timeout_seconds,
        shadow_max_in_flight=settings.controller.shadow_max_in_flight,
        fast_path=settings.server.invocation_fast_path,
        region=settings.region,
        account_id=settings.account_id,
        invocations_per_second=settings.rate_limits.invocations_per_second,
        invocation_burst=settings.rate_limits.invocation_burst,
        replica_ca_file=_replica_ca_file(settings),
    )


def _replica_ca_file(settings: Settings) -> str:
    """The CA replicas are verified against: the one named (on a cluster, the operator's,
    mounted from its Secret), else the control plane's own (made on first use)."""
    if not settings.serving.replica_tls:
        return ""
    if settings.serving.replica_ca_file is not None:
        return str(settings.serving.replica_ca_file)
    return str(replica_ca(settings.replica_ca_dir).cert)


def _epoch_seconds(clock: Clock) -> Any:
    import time

    if isinstance(clock, SystemClock):
        return time.time  # the same time, without building a datetime per request
    return lambda: clock.now().timestamp()
