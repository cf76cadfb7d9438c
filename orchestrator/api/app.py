"""The control plane's HTTP app: REST API, invocation router, health and metrics.

``build_control_plane`` wires settings, store, object store, backend and controller together;
``create_app`` puts FastAPI in front of it. Tests pass a fake backend and clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response

from orchestrator import __version__, metrics, tenancy
from orchestrator.access import Principal
from orchestrator.api import auditing, handlers, inputs
from orchestrator.api.alarms import Alarms
from orchestrator.api.auth import KeyStore, authenticate
from orchestrator.api.aws import services as aws
from orchestrator.api.aws.cloudwatch import alarm_fetch
from orchestrator.api.deps import authorized, principal_of
from orchestrator.api.jobcreds import JobCredentials
from orchestrator.api.keyfile import FileKeys
from orchestrator.api.openapi import install as install_openapi
from orchestrator.api.routes import (
    access_keys,
    accounts,
    algorithms,
    audit,
    console,
    datasources,
    endpoints,
    keys,
    kms,
    master_keys,
    models,
    monitoring,
    objects,
    search,
    tags,
    training,
    transform,
    tuning,
    users,
)
from orchestrator.api.routes import alarms as alarms_routes
from orchestrator.api.routes import logs as logs_routes
from orchestrator.api.routes import usage as usage_routes
from orchestrator.api.service import ControlPlane
from orchestrator.api.usage import UsageFlusher
from orchestrator.audit import AuditTrail, SigningKey
from orchestrator.backends.base import Backend
from orchestrator.clock import Clock, SystemClock
from orchestrator.console.sessions import session_key_of
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.controller.routing import RoutingTable
from orchestrator.controller.runtime import Controller
from orchestrator.dataplane import DataPlaneFront, build_front
from orchestrator.errors import OrchestratorError, PermissionDeniedError, ValidationError
from orchestrator.gpus import GpuInventory, inventory
from orchestrator.monitoring.archive import metrics_archive
from orchestrator.monitoring.series import SeriesStore
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.objects.providers import key_provider_config, open_key_provider
from orchestrator.ratelimit import TokenBuckets, buckets_of
from orchestrator.settings import Settings
from orchestrator.store import StateStore
from orchestrator.store.alarms_sql import AlarmStore
from orchestrator.store.metrics_sql import MetricsStore, UserMetricsStore, open_metrics_store
from orchestrator.usage import load_price_table

PROTECTED_PREFIXES = ("/api/", "/metrics")
_Scraper = Annotated[Principal, Depends(authorized("orchestrator:GetMetrics"))]


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "process":
        from orchestrator.backends.process import ProcessBackend

        return ProcessBackend(settings)
    if settings.backend == "docker":
        from orchestrator.backends.docker import DockerBackend

        return DockerBackend(settings)
    from orchestrator.backends.fake import FakeBackend

    return FakeBackend()


def make_audit_trail(settings: Settings, objects_store: ObjectStore) -> AuditTrail | None:
    """The audit trail ``settings.audit`` asks for, kept through ``objects_store`` and signed
    with its own key (made when absent, except a file named on purpose: a mounted Secret)."""
    if not settings.audit.enabled:
        return None
    key = SigningKey.load_or_create(
        settings.audit_signing_key_path, create=settings.audit.signing_key_file is None
    )
    return AuditTrail(
        objects_store,
        key,
        bucket=settings.audit.bucket,
        writer=settings.audit.writer,
        flush_seconds=settings.audit.flush_seconds,
        digest_seconds=settings.audit.digest_seconds,
        batch_records=settings.audit.batch_records,
    )


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
    if settings.desired_state == "kubernetes" and settings.objects.key_provider != "local":
        raise ValidationError(
            "ORCH_OBJECTS__KEY_PROVIDER: on Kubernetes the pods open the store with the keyring "
            "Secret, so only the local provider is supported there (KmsKeyId names a key made "
            "with `orch kms create-key`; keep keyring-named.json in the Secret)",
            field="ORCH_OBJECTS__KEY_PROVIDER",
        )
    if (
        settings.desired_state == "kubernetes"
        and settings.serving.replica_tls
        and settings.serving.replica_ca_file is None
    ):
        # The operator holds the replica CA in a Secret; a CA made here would verify nothing.
        raise ValidationError(
            "ORCH_SERVING__REPLICA_TLS=true on Kubernetes: set ORCH_SERVING__REPLICA_CA_FILE "
            "to the replica CA Secret's tls.crt mounted in the API pod (the chart does with "
            "replicaTls.enabled=true)",
            field="ORCH_SERVING__REPLICA_CA_FILE",
        )
    keyring = LocalKeyring(settings.keyring_path)
    # What wraps objects' data keys (ORCH_OBJECTS__KEY_PROVIDER); the keyring itself when local,
    # so a rotation through it is seen by the store at once.
    key_provider = open_key_provider(key_provider_config(settings), keyring=keyring)
    objects_store = open_object_store(
        settings.resolved_object_store_url,
        key_provider,
        s3_endpoint_url=settings.objects.s3_endpoint_url,
        s3_region=settings.objects.s3_region,
        chunk_size=settings.objects.chunk_size,
    )
    if settings.desired_state == "kubernetes":
        cluster = _cluster_plane(settings, objects_store, keyring, clock, kube_api)
        cluster.key_provider = key_provider
        cluster.audit = make_audit_trail(settings, objects_store)
        return cluster
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
    local = ControlPlane(
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
        key_provider=key_provider,
    )
    local.audit = make_audit_trail(settings, objects_store)
    if settings.api_keys_file is None:  # keys from a file cannot be minted: no job keys then
        controller.reconciler.executor.credentials = JobCredentials(
            keys, local.access_keys, endpoint_url=settings.endpoint_url,
            region=settings.region, account_id=settings.account_id, now=clock.now,
        )  # fmt: skip
    load_price_table(settings.usage_price_file)  # a malformed price file: fail at start
    local.services.append(UsageFlusher(store, series, clock, settings.usage_flush_seconds))
    metrics_store = MetricsStore(store.engine)
    archive = metrics_archive(settings, series, metrics_store)
    if archive is not None:  # flushed by a service: started and stopped with the app
        local.services.append(archive)
        local.user_metrics = UserMetricsStore(metrics_store)
    if settings.alarms.enabled:  # evaluated by a service: started and stopped with the app
        local.alarms = Alarms(local, AlarmStore(store.engine), alarm_fetch(local))
        local.services.append(local.alarms)
        controller.reconciler.alarm_states = local.alarms.states  # blue/green rollbacks
    return local


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
    plane = ControlPlane(
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
    # Metrics are shared by the API replicas only through a PostgreSQL database; without one
    # each replica keeps its own in memory.
    url = settings.database_url
    if url and plane.series is not None and url.startswith(("postgres", "postgresql")):
        shared_store = open_metrics_store(url)
        archive = metrics_archive(settings, plane.series, shared_store, shared=True)
        if archive is not None:
            plane.services.append(archive)
            plane.user_metrics = UserMetricsStore(shared_store)
            if settings.alarms.enabled:
                plane.alarms = Alarms(plane, AlarmStore(shared_store.engine), alarm_fetch(plane))
                plane.services.append(plane.alarms)
    return plane


def api_rate_limits(settings: Settings) -> TokenBuckets | None:
    """The management API's per-key buckets (None: no limit)."""
    limits = settings.rate_limits
    return buckets_of(
        limits.api_requests_per_second,
        limits.api_burst,
        "ORCH_RATE_LIMITS__API_REQUESTS_PER_SECOND and __API_BURST",
    )


def create_app(plane: ControlPlane, *, run_controller: bool = True) -> DataPlaneFront:
    """The ASGI app to serve: the data plane's front, with the management API (FastAPI,
    ``.api``) behind it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if plane.audit is not None:
            plane.audit.start()
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
            if plane.audit is not None:
                plane.audit.stop()  # what is queued is written, and a digest over it

    app = FastAPI(
        title="Orchestrator",
        version=__version__,
        description="Training jobs, models, endpoint configs and endpoints, shaped after "
        "SageMaker's API. Every route but /healthz needs an API key (Bearer).",
        lifespan=lifespan,
        docs_url=None,  # served from local files: routes.console
        redoc_url=None,
    )
    app.state.plane = plane
    app.state.series = plane.series
    handlers.install(app)
    install_openapi(app, plane.settings, PROTECTED_PREFIXES)
    console.install(app, plane.settings)
    for module in (
        training,
        tuning,
        transform,
        datasources,
        models,
        endpoints,
        objects,
        keys,
        access_keys,
        master_keys,
        search,
        audit,
        users,
        accounts,
    ):
        app.include_router(module.router)
    app.include_router(accounts.caller_router)
    app.include_router(monitoring.router)
    app.include_router(tags.router)
    app.include_router(kms.router)
    app.include_router(usage_routes.router)
    app.include_router(logs_routes.router)
    app.include_router(alarms_routes.router)
    app.include_router(algorithms.router)

    # Per-key rate limits of the management API and the AWS protocols (orchestrator.ratelimit).
    api_limits = api_rate_limits(plane.settings)
    app.state.api_limits = api_limits

    @app.middleware("http")
    async def authenticate_first(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Before FastAPI reads and parses a body: a caller without a valid key gets 401 and
        # nothing of theirs is parsed. Invocations never get here (the data plane's front).
        if request.url.path.startswith(PROTECTED_PREFIXES):
            try:
                request.state.principal = await principal_of(request)
                inputs.acting_for(request.state.principal)
                if api_limits is not None:  # per key, before any body is read
                    api_limits.check(request.state.principal.key_id)
            except OrchestratorError as e:
                return handlers.render(e)
        return await call_next(request)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.record_api_request(request.method, path, response.status_code)
        metrics.record_api_latency(request.method, path, time.perf_counter() - started)
        return response

    @app.get("/healthz", tags=["Health"])
    def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "time": time.time(),
            "region": plane.settings.region,
        }

    @app.get("/metrics", tags=["Health"])
    def prometheus(principal: _Scraper) -> Response:
        if principal.account != tenancy.ROOT:
            # The scrape is per endpoint and job of every account: the server's own only.
            raise PermissionDeniedError(
                "/metrics (the Prometheus scrape) covers every account's endpoints and jobs, "
                "so only identities of the server's own account may read it; read your "
                "endpoints' metrics with CloudWatch's GetMetricData or ListMetrics",
                field="Action",
            )
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    # The data plane: invocations are served in front of FastAPI (docs/architecture.md), to
    # bearer keys and to SigV4 callers (boto3's sagemaker-runtime) alike.
    outer: auditing.ASGIApp = aws.gateway(app, plane, limits=api_limits)
    if plane.audit is not None:  # every call through the gateway and the API is recorded
        outer = auditing.AuditMiddleware(outer, plane.audit, account_id=plane.settings.account_id)
    front = build_front(
        outer,
        routes=plane.routes,
        key_checker=partial(authenticate, plane.keys),
        signing_keys=plane.access_keys.signing_key,
        endpoint_status=plane.endpoint_status,
        series=plane.series,
        settings=plane.settings,
        clock=plane.clock,
    )
    plane.access_keys.revocation_listeners.append(front.plane.key_revoked)
    sessions = getattr(app.state, "console_sessions", None)
    if sessions is not None:
        front.plane.session_key = partial(session_key_of, sessions)
    if plane.audit is not None:
        front.plane.on_denied = auditing.denied_recorder(plane.audit)
    return front
