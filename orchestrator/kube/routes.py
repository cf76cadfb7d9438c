"""Routes for the API pods on a cluster: decoded from each Endpoint's status, never rebuilt.

The operator runs in another pod, so the API cannot share its in-process routing table. The
endpoint planner writes the routes it computed (weights with the fleets' shares folded in,
shadow copies, the trial fleet of a blue/green update, variants held at zero) into the
Endpoint's status (``EndpointState.Routes``); ``route_of`` only decodes them, so the data
plane routes on a cluster exactly as on a laptop. ``ClusterRoutes`` keeps a ``RoutingTable``
in step with the resources (a watch wakes it; a full relist every ``interval`` catches up on
anything a broken watch missed) and carries the other direction: a request held for a variant
at zero is written as demand on the Endpoint, off the event loop, at most once a second per
variant, and the operator (watching the Endpoints) scales the variant from zero.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pydantic
from kubernetes import client, watch

from orchestrator.controller.plan.types import route_from_state
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.kube.convert import API_GROUP, API_VERSION, to_pascal
from orchestrator.kube.source import ACCOUNT_LABEL, CustomResources
from orchestrator.resources.endpoints import EndpointState

log = logging.getLogger("orchestrator.kube.routes")
ROUTABLE = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})
DEMAND_EVERY = 1.0  # seconds between two demand writes for one variant
WATCH_IDLE_SECONDS = 30.0


def route_of(cr: dict[str, Any]) -> EndpointRoute | None:
    """The route an Endpoint resource's status carries, or None when it takes no traffic."""
    meta = cr.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not name or meta.get("deletionTimestamp"):
        return None
    try:
        status = EndpointState.model_validate(to_pascal(cr.get("status") or {}))
    except pydantic.ValidationError:
        log.warning("unreadable status of Endpoint %s: not routed", name)
        return None
    if status.EndpointStatus not in ROUTABLE or not status.Routes:
        return None
    public = (cr.get("spec") or {}).get("authMode") == "None"
    tags = tuple(
        (str(t.get("key", "")), str(t.get("value", "")))
        for t in (cr.get("spec") or {}).get("tags") or []
        if isinstance(t, dict)
    )
    account = str((meta.get("labels") or {}).get(ACCOUNT_LABEL, ""))
    return EndpointRoute(
        endpoint=name, public=public, variants=tuple(route_from_state(r) for r in status.Routes),
        tags=tags, account=account,
    )  # fmt: skip


class ClusterRoutes:
    """Keeps a ``RoutingTable`` in step with the cluster's Endpoint resources."""

    def __init__(
        self,
        source: CustomResources,
        table: RoutingTable,
        *,
        interval: float = 30.0,
    ) -> None:
        self.source = source
        self.custom = client.CustomObjectsApi(source.api)
        self.namespace = source.namespace
        self.table = table
        self.interval = interval
        self._known: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._demand: queue.Queue[tuple[str, str]] = queue.Queue()
        self._last_demand: dict[tuple[str, str], float] = {}
        table.on_demand = self.demand

    # --- routes ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List every Endpoint and publish (or withdraw) its route."""
        listing = self.custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, "endpoints", _request_timeout=(5, 15)
        )
        items = listing.get("items", []) if isinstance(listing, dict) else []
        seen: set[str] = set()
        for cr in items:
            self.apply(cr)
            route = self.table.get(str((cr.get("metadata") or {}).get("name", "")))
            if route is not None:
                seen.add(route.endpoint)
        for gone in self._known - seen:
            self.table.withdraw(gone)
        self._known = seen

    def apply(self, cr: dict[str, Any], *, deleted: bool = False) -> None:
        """One Endpoint resource's route, as a watch event or a listing shows it."""
        name = str((cr.get("metadata") or {}).get("name", ""))
        route = None if deleted else route_of(cr)
        if route is None:
            self.table.withdraw(name)
            self._known.discard(name)
        else:
            self.table.publish(route)
            self._known.add(name)

    # --- demand: a request held for a variant at zero ----------------------------------------
    def demand(self, endpoint: str, variant: str) -> None:
        """Called on the event loop when a request is held: queue it for the writer thread."""
        key = (endpoint, variant)
        now = time.monotonic()
        if now - self._last_demand.get(key, -DEMAND_EVERY) < DEMAND_EVERY:
            return
        self._last_demand[key] = now
        self._demand.put(key)

    def _write_demand(self) -> None:
        while not self._stop.is_set():
            try:
                endpoint, variant = self._demand.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.source.request_replicas(endpoint, variant, datetime.now(UTC))
            except Exception as e:  # the request keeps waiting; the next hold writes again
                log.warning("cannot ask for a replica of %s/%s: %s", endpoint, variant, e)
                self._last_demand.pop((endpoint, variant), None)

    # --- loops -------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in (
            (self._watch, "cluster-routes"),
            (self._relist, "cluster-routes-relist"),
            (self._write_demand, "cluster-demand"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            # The watch may sit in a read for up to WATCH_IDLE_SECONDS: it keeps nothing to
            # save (a daemon thread, it ends with its stream); the other loops wait on _stop.
            t.join(0.2 if t.name == "cluster-routes" else 5)

    def _relist(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as e:  # the API being briefly away must not end the loop
                log.warning("cannot read Endpoint resources: %s", e)
            self._stop.wait(self.interval)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.custom.list_namespaced_custom_object,
                    API_GROUP,
                    API_VERSION,
                    self.namespace,
                    "endpoints",
                    timeout_seconds=60,
                    # An idle stream reconnects after this, so that stop() takes effect.
                    _request_timeout=(5, WATCH_IDLE_SECONDS),
                ):
                    if self._stop.is_set():
                        return
                    obj = event.get("object")
                    if isinstance(obj, dict):
                        self.apply(obj, deleted=event.get("type") == "DELETED")
            except Exception as e:  # a broken watch only delays: the relist still runs
                log.debug("endpoint watch ended: %s", e)
                self._stop.wait(1.0)
