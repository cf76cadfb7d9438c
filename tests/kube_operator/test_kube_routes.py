"""The API server on a cluster routes by the Endpoint resources the operator keeps current."""

from __future__ import annotations

import random
from collections import Counter

from kube_harness import NS, Cluster
from kubernetes import client
from test_kube_endpoints import setup

from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane.router import pick_variant
from orchestrator.kube.objects import KubeSettings
from orchestrator.kube.operator import Operator
from orchestrator.kube.routes import ClusterRoutes, route_of


def test_status_to_route_is_pure_and_skips_what_takes_no_traffic(settings: KubeSettings) -> None:
    cr = {
        "metadata": {"name": "web"},
        "spec": {"authMode": "None"},
        "status": {
            "endpointStatus": "InService",
            "productionVariants": [
                {"variantName": "Blue", "currentWeight": 3.0, "currentInstanceCount": 2},
                {"variantName": "green", "currentWeight": 1.0, "currentInstanceCount": 0},
            ],
        },
    }
    route = route_of(cr, NS, settings)
    assert route is not None and route.public
    got = {v.name: (v.weight, v.urls) for v in route.variants}
    assert got["Blue"][0] == 3.0 and len(got["Blue"][1]) == 1
    assert got["Blue"][1][0].endswith(f".{NS}.svc.cluster.local:8080")
    assert got["green"] == (1.0, ())  # no ready instance: no URL, never picked
    for status in ("Creating", "Failed", "Deleting"):
        assert (
            route_of({**cr, "status": {**cr["status"], "endpointStatus": status}}, NS, settings)
            is None
        )
    assert (
        route_of({**cr, "metadata": {"name": "web", "deletionTimestamp": "x"}}, NS, settings)
        is None
    )


def test_api_server_routes_by_the_weights_in_the_endpoint_status(
    cluster: Cluster, operator: Operator, api: client.ApiClient, settings: KubeSettings
) -> None:
    setup(cluster)
    operator.run_once()
    blue = next(n for n in cluster.names("Deployment") if n.startswith("web-blue"))
    cluster.deployment_status(blue, {"readyReplicas": 2, "replicas": 2})
    cluster.deployment_status("web-green", {"readyReplicas": 1, "replicas": 1})
    operator.run_once()

    table = RoutingTable()
    routes = ClusterRoutes(api, settings, table)
    routes.refresh()
    route = table.get("web")
    assert route is not None and route.ready
    weights = {v.name: v.weight for v in route.variants}
    assert weights == {"Blue": 3.0, "green": 1.0}

    # The router's weighted pick over that route: about 3 of 4 requests go to Blue.
    random.seed(7)
    picks = Counter(pick_variant(route, None).name for _ in range(4000))
    assert 0.72 < picks["Blue"] / 4000 < 0.78

    # An endpoint that goes away is withdrawn on the next refresh.
    cluster.delete("Endpoint", "web")
    operator.run_once()
    operator.run_once()
    routes.refresh()
    assert table.get("web") is None
