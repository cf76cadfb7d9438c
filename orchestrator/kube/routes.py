"""Routes for the control-plane API on Kubernetes, read from the Endpoint custom resources.

The API server runs in its own pod, apart from the operator, so it cannot share the
operator's in-process routing table. Each refresh lists the Endpoint resources of the
namespace and publishes, per endpoint, every production variant with its current weight and
its Service (the variant's pods behind kube-proxy), when the variant has ready instances. The
router then picks variants by weight exactly as on the process backend.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from orchestrator.controller.routing import EndpointRoute, RoutingTable, VariantRoute
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.kube.objects import service_url
from orchestrator.settings import KubeSettings

log = logging.getLogger("orchestrator.kube.routes")
ROUTABLE = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})


def route_of(cr: dict[str, Any], namespace: str, settings: KubeSettings) -> EndpointRoute | None:
    """The route an Endpoint resource's status describes, or None when it takes no traffic. Pure."""
    meta = cr.get("metadata") or {}
    status = cr.get("status") or {}
    name = str(meta.get("name", ""))
    if not name or meta.get("deletionTimestamp") or status.get("endpointStatus") not in ROUTABLE:
        return None
    variants = []
    for v in status.get("productionVariants") or []:
        variant = str(v.get("variantName", ""))
        ready = int(v.get("currentInstanceCount") or 0)
        urls = (service_url(name, variant, namespace, settings),) if variant and ready else ()
        variants.append(VariantRoute(variant, float(v.get("currentWeight") or 0.0), urls))
    public = (cr.get("spec") or {}).get("authMode") == "None"
    return EndpointRoute(endpoint=name, public=public, variants=tuple(variants))


class ClusterRoutes:
    """Keeps a ``RoutingTable`` in step with the cluster's Endpoint resources."""

    def __init__(
        self, api: Any, settings: KubeSettings, table: RoutingTable, *, interval: float = 1.0
    ) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api)
        self.settings = settings
        self.namespace = settings.namespace
        self.table = table
        self.interval = interval
        self._known: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        listing = self.custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, "endpoints"
        )
        items = listing.get("items", []) if isinstance(listing, dict) else []
        seen: set[str] = set()
        for cr in items:
            route = route_of(cr, self.namespace, self.settings)
            if route is None:
                continue
            seen.add(route.endpoint)
            self.table.publish(route)
        for gone in self._known - seen:
            self.table.withdraw(gone)
        self._known = seen

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cluster-routes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as e:  # the API being briefly away must not end the loop
                log.warning("cannot read Endpoint resources: %s", e)
            self._stop.wait(self.interval)


def cluster_routes_from_environment(settings: KubeSettings, table: RoutingTable) -> ClusterRoutes:
    """In a pod: its service account token; elsewhere: ``KUBECONFIG``."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return ClusterRoutes(client.ApiClient(), settings, table)
