"""``orch operator``: the reconciler core with the custom resources and the Kubernetes backend.

The same ``Reconciler`` that ``orch server`` runs on a laptop, with two other plug-ins: the
desired state is the namespace's custom resources (``source.CustomResources``: a bad spec gets
a ``Valid=False`` condition naming its camelCase path), and the work runs as Jobs and
Deployments (``backend.KubernetesBackend``). It is level-triggered: each pass lists everything
again (one list per kind), so the operator is safe to kill at any line and a restarted one
adopts what exists and creates nothing twice. Watches on the custom resources and on the Jobs,
Pods and Deployments it owns only wake the loop early.

What it feeds the planners: the endpoints' traffic, read from the API pods that route it
(``load.ApiTraffic``), and the requests those pods hold for a variant at zero, from the
Endpoint's ``orchestrator.dev/demand`` annotation (``AnnotationDemand``). It routes nothing
itself: the planner's routes go into each Endpoint's status, which the API pods decode.

Deletion: the finalizer ``orchestrator.dev/cleanup`` is added on first sight; a deleted
TrainingJob is stopped first, then its Jobs, Pods and ConfigMaps are removed, then the
finalizer. Stop: the annotation ``orchestrator.dev/stop: "true"``.

Transform jobs' progress and results are what their runners record in the object store
(``transformer.scratch``): the operator reads them with the installation's keyring
(``ORCH_HOME/keys/keyring.json``) from the store its pods use. Without a keyring there it
still runs them, from what their pods say, but shows no progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from kubernetes import client, watch
from prometheus_client import start_http_server

from orchestrator import metrics
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.reconciler import Policies, Reconciler, Telemetry
from orchestrator.errors import ValidationError
from orchestrator.kube.api import api_client
from orchestrator.kube.backend import KubernetesBackend
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.kube.gc_pause import collector_paused
from orchestrator.kube.source import CustomResources, camel_error
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.resources.kinds import KINDS
from orchestrator.settings import KubeSettings, Settings, TransformSettings, get_settings

log = logging.getLogger("orchestrator.kube.operator")


class AnnotationDemand:
    """Requests held by the API pods for a variant at zero, from the Endpoint's demand
    annotation (read in the pass's listing): one counts while it is younger than the
    longest an API pod holds a request."""

    def __init__(self, source: CustomResources, clock: Clock, hold_seconds: float) -> None:
        self.source = source
        self.clock = clock
        self.hold = timedelta(seconds=hold_seconds)

    def waiting(self, endpoint: str, variant: str) -> int:
        when = self.source.demand_of(endpoint).get(variant)
        return 1 if when is not None and self.clock.now() - when <= self.hold else 0

    def any_waiting(self) -> bool:
        return False  # the API pods' annotation write wakes the operator through its watch


class Operator:
    def __init__(
        self,
        api: client.ApiClient,
        settings: KubeSettings,
        *,
        namespace: str | None = None,
        clock: Clock | None = None,
        policies: Policies | None = None,
        telemetry: Telemetry | None = None,
        hold_seconds: float = 60.0,
        store: ObjectStore | None = None,
        transform: TransformSettings | None = None,
        replica_tls: bool = False,
    ) -> None:
        self.namespace = namespace or settings.namespace
        self.metrics_port = settings.metrics_port
        self.clock = clock or SystemClock()
        self.source = CustomResources(api, self.namespace)
        self.backend = KubernetesBackend(
            api,
            settings,
            namespace=self.namespace,
            store=store,
            transform=transform,
            replica_tls=replica_tls,
            clock=self.clock,
        )
        self.custom = client.CustomObjectsApi(api)
        self.policies = policies or Policies()
        self.reconciler = Reconciler(
            self.source,
            self.backend,
            policies=self.policies,
            clock=self.clock,
            telemetry=telemetry,
            demand=AnnotationDemand(self.source, self.clock, hold_seconds),
            spec_errors=camel_error,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()

    def run_once(self) -> float:
        """Reconcile every custom resource of the namespace once; seconds until the next pass.
        The garbage collector waits while it runs (``collector``: a pass holds every listing)."""
        with collector_paused():
            return self.reconciler.run_pass()

    def run(self, *, watch_events: bool = True) -> None:
        """Passes until ``stop()``; watches (custom resources, Jobs, Pods, Deployments) wake it."""
        self._stop.clear()
        if watch_events:
            for target in self._watch_targets():
                threading.Thread(target=self._watch, args=(target,), daemon=True).start()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.run_once()
            except Exception:
                log.exception("operator pass failed")
                delay = self.policies.resync_seconds
            if delay > 0:
                self._wake.wait(delay)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _watch_targets(self) -> list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
        targets: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
            (
                self.custom.list_namespaced_custom_object,
                (API_GROUP, API_VERSION, self.namespace, kind.crd_plural),
                {},
            )
            for kind in KINDS.values()
        ]
        return targets + self.backend.watch_targets()

    def _watch(self, target: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
        fn, args, kwargs = target
        while not self._stop.is_set():
            try:
                for _event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    fn, *args, timeout_seconds=60, _request_timeout=(5, 30), **kwargs
                ):
                    self._wake.set()
                    if self._stop.is_set():
                        return
            except Exception as e:  # a broken watch only delays: the resync still runs
                log.debug("watch ended: %s", e)
                self._stop.wait(5.0)


def load_kube_settings(settings: Settings) -> KubeSettings:
    """``ORCH_KUBE__*`` (e.g. ``ORCH_KUBE__TRAINING_IMAGE``), read once; the object store the
    pods use defaults to the control plane's (``ORCH_OBJECTS__*``)."""
    kube = settings.kube
    objects = settings.objects
    inherited = {
        "object_store_url": objects.url,
        "s3_endpoint_url": objects.s3_endpoint_url,
        "s3_region": objects.s3_region,
        "chunk_size": objects.chunk_size,
    }
    fill = {k: v for k, v in inherited.items() if k not in kube.model_fields_set and v is not None}
    return kube.model_copy(update=fill)


def operator_store(settings: Settings, kube: KubeSettings) -> ObjectStore | None:
    """The object store the pods use, opened with the installation's keyring; None (and said)
    when there is no keyring: a new one would read nothing the pods wrote."""
    keyring = Path(settings.keyring_path)
    if not keyring.is_file():
        log.warning(
            "no keyring at %s: transform jobs run, but their progress is not shown "
            "(mount the keyring Secret there)",
            keyring,
        )
        return None
    return open_object_store(
        kube.object_store_url,
        LocalKeyring(keyring),
        s3_endpoint_url=kube.s3_endpoint_url,
        s3_region=kube.s3_region,
        chunk_size=kube.chunk_size,
    )


def kube_api_client() -> client.ApiClient:
    """In a pod: its service account; elsewhere: ``KUBECONFIG`` (or ``~/.kube/config``).
    Each call is tried once (``api.api_client``): its deadline is ``api.REQUEST_TIMEOUT``."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return api_client()


def serve_metrics(port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """The controller's collectors (``orchestrator.metrics``) at ``http://ADDR:PORT/metrics``
    from a daemon thread, for the chart's PodMonitor; ``shutdown()`` the server to stop."""
    try:
        server, _thread = start_http_server(port, addr=addr, registry=metrics.REGISTRY)
    except OSError as e:
        raise ValidationError(
            f"cannot serve the operator's metrics on port {port}: {e.strerror or e}; set "
            "ORCH_KUBE__METRICS_PORT to a free port, or unset it",
            field="ORCH_KUBE__METRICS_PORT",
        ) from e
    return server


def operator_from_environment(namespace: str | None = None) -> Operator:
    from orchestrator.controller.runtime import policies_from
    from orchestrator.kube.load import ApiTraffic

    settings = get_settings()
    kube = load_kube_settings(settings)
    api = kube_api_client()
    ns = namespace or kube.namespace
    key = settings.api_key.get_secret_value() if settings.api_key else None
    op = Operator(
        api,
        kube,
        namespace=ns,
        policies=policies_from(settings),
        telemetry=ApiTraffic(api, kube, namespace=ns, api_key=key),
        hold_seconds=settings.serving.invocation_timeout_seconds,
        store=operator_store(settings, kube),
        transform=settings.transform,
        replica_tls=settings.serving.replica_tls,
    )
    if op.backend.certificates is not None:
        op.backend.certificates.ensure_ca()  # the replica CA Secret, made once
    return op


__all__ = [
    "AnnotationDemand",
    "Operator",
    "kube_api_client",
    "load_kube_settings",
    "operator_from_environment",
    "operator_store",
    "serve_metrics",
]
