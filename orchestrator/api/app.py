"""The control plane's HTTP app: REST API, invocation router, health and metrics.

``build_control_plane`` wires settings, store, object store, backend and controller together;
``create_app`` puts FastAPI in front of it. Tests pass a fake backend and clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from orchestrator import __version__, metrics
from orchestrator.api import handlers
from orchestrator.api.auth import KeyStore, authenticate
from orchestrator.api.aws import services as aws
from orchestrator.api.deps import allowed, principal_of
from orchestrator.api.keyfile import FileKeys
from orchestrator.api.routes import (
    access_keys,
    endpoints,
    keys,
    models,
    monitoring,
    objects,
    search,
    tags,
    training,
    tuning,
)
from orchestrator.api.service import ControlPlane
from orchestrator.backends.base import Backend
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.controller.routing import RoutingTable
from orchestrator.controller.runtime import Controller
from orchestrator.dataplane import DataPlaneFront, build_front
from orchestrator.errors import OrchestratorError, ValidationError
from orchestrator.gpus import GpuInventory, inventory
from orchestrator.monitoring.series import SeriesStore
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.settings import Settings
from orchestrator.store import StateStore

PROTECTED_PREFIXES = ("/api/", "/metrics")


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "process":
        from orchestrator.backends.process import ProcessBackend

        return ProcessBackend(settings)
    if settings.backend == "docker":
        from orchestrator.backends.docker import DockerBackend

        return DockerBackend(settings)
    from orchestrator.backends.fake import FakeBackend

    return FakeBackend()


def build_control_plane(
    settings: Settings,
    *,
    backend: Backend | None = None,
    clock: Clock | None = None,
    gpus: GpuInventory | None = None,
    kube_api: Any = None,
) -> ControlPlane:
    """The control plane ``settings.desired_state`` says: over the SQL store with a local
    reconciler, or (on a cluster) a stateless front of the custom resources.
    ``gpus``: the inventory to allocate from (default: detected, for the local backends);
    ``kube_api``: a ``kubernetes.client.ApiClient`` (default: the pod's service account)."""
    clock = clock or SystemClock()
    settings.home.mkdir(parents=True, exist_ok=True)
    keyring = LocalKeyring(settings.keyring_path)
    objects_store = open_object_store(
        settings.resolved_object_store_url,
        keyring,
        s3_endpoint_url=settings.objects.s3_endpoint_url,
        s3_region=settings.objects.s3_region,
        chunk_size=settings.objects.chunk_size,
    )
    if settings.desired_state == "kubernetes":
        return _cluster_plane(settings, objects_store, keyring, clock, kube_api)
    store = StateStore(settings.resolved_database_url)
    backend = backend or make_backend(settings)
    if gpus is None and not backend.schedules_gpus:
        gpus = inventory(settings.gpu_devices)
    series = SeriesStore(clock=clock)
    routes = RoutingTable()
    # One reader of the jobs' metric series for the API and the tuner: one cache, one read.
    job_metrics = JobMetrics(backend, clock=clock)
    controller = Controller(
        store,
        backend,
        settings,
        clock=clock,
        routes=routes,
        gpus=gpus,
        telemetry=series,
        metric_series=job_metrics,
    )
    keys: KeyStore = FileKeys(settings.api_keys_file) if settings.api_keys_file else store
    return ControlPlane(
        settings=settings,
        store=store,
        keys=keys,
        backend=backend,
        backend_name=backend.name,
        objects=objects_store,
        routes=routes,
        controller=controller,
        clock=clock,
        series=series,
        keyring=keyring,
        job_metrics=job_metrics,
    )


def _cluster_plane(
    settings: Settings, objects_store: ObjectStore, keyring: LocalKeyring, clock: Clock, api: Any
) -> ControlPlane:
    """On a cluster: the custom resources are the store, the operator (another pod) runs the
    work; this process keeps no state: routes are decoded from the Endpoints' status, keys
    come from a mounted Secret, job logs are read from the pods."""
    from orchestrator.kube.backend import KubernetesBackend
    from orchestrator.kube.operator import kube_api_client, load_kube_settings
    from orchestrator.kube.routes import ClusterRoutes
    from orchestrator.kube.source import CustomResources

    if settings.api_keys_file is None:
        raise ValidationError(
            "ORCH_API_KEYS_FILE: with ORCH_DESIRED_STATE=kubernetes the API keys come from a "
            "file (a mounted Secret); set it, as the Helm chart does",
            field="ORCH_API_KEYS_FILE",
        )
    kube = load_kube_settings(settings)
    api = api or kube_api_client()
    source = CustomResources(api, kube.namespace)
    routes = RoutingTable()
    return ControlPlane(
        settings=settings,
        store=source,
        keys=FileKeys(settings.api_keys_file),
        backend=KubernetesBackend(api, kube),
        backend_name="kubernetes",
        objects=objects_store,
        routes=routes,
        clock=clock,
        series=SeriesStore(clock=clock),
        services=[ClusterRoutes(source, routes)],
        keyring=keyring,
    )


def create_app(plane: ControlPlane, *, run_controller: bool = True) -> DataPlaneFront:
    """The ASGI app to serve: the data plane's front, with the management API (FastAPI,
    ``.api``) behind it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_controller and plane.controller is not None:
            plane.controller.start()
        for service in plane.services:
            service.start()
        try:
            yield
        finally:
            for service in plane.services:
                service.stop()
            if run_controller and plane.controller is not None:
                plane.controller.stop()

    app = FastAPI(
        title="Orchestrator",
        version=__version__,
        description="Training jobs, models, endpoint configs and endpoints, shaped after "
        "SageMaker's API. Every route but /healthz needs an API key (Bearer).",
        lifespan=lifespan,
    )
    app.state.plane = plane
    app.state.series = plane.series
    handlers.install(app)
    for module in (training, tuning, models, endpoints, objects, keys, access_keys, search):
        app.include_router(module.router)
    app.include_router(monitoring.router)
    app.include_router(tags.router)

    @app.middleware("http")
    async def authenticate_first(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Before FastAPI reads and parses a body: a caller without a valid key gets 401 and
        # nothing of theirs is parsed. Invocations never get here (the data plane's front).
        if request.url.path.startswith(PROTECTED_PREFIXES):
            try:
                request.state.principal = await principal_of(request)
            except OrchestratorError as e:
                return handlers.render(e)
        return await call_next(request)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.record_api_request(request.method, path, response.status_code)
        return response

    @app.get("/healthz", tags=["Health"])
    def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "time": time.time(),
            "region": plane.settings.region,
        }

    @app.get("/metrics", tags=["Health"], dependencies=[Depends(allowed("metrics:read"))])
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    # The data plane: invocations are served in front of FastAPI (docs/architecture.md), to
    # bearer keys and to SigV4 callers (boto3's sagemaker-runtime) alike.
    front = build_front(
        aws.gateway(app, plane),
        routes=plane.routes,
        key_checker=partial(authenticate, plane.keys),
        signing_keys=plane.access_keys.signing_key,
        endpoint_status=plane.endpoint_status,
        series=plane.series,
        settings=plane.settings,
        clock=plane.clock,
    )
    plane.access_keys.revocation_listeners.append(front.plane.key_revoked)
    return front
