"""The API pods on a cluster route by the routes the planner wrote into the Endpoint status."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from kube_harness import Cluster, make_ready
from kubernetes import client
from test_kube_endpoints import deployment, setup

from orchestrator.controller.plan.endpoint import DesiredEndpoint, plan_endpoint
from orchestrator.controller.plan.types import FleetHealth, ObservedReplica
from orchestrator.controller.routing import RoutingTable
from orchestrator.dataplane.router import pick_variant
from orchestrator.kube.convert import to_camel
from orchestrator.kube.operator import Operator
from orchestrator.kube.routes import ClusterRoutes, route_of
from orchestrator.kube.source import ACCOUNT_LABEL, CustomResources
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
    EndpointStatus,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.testing import eventually

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MODELS = {
    "model-1": CreateModelRequest.model_validate(
        {"ModelName": "model-1", "PrimaryContainer": {"Image": "example/serve:1"}}
    )
}
V1 = CreateEndpointConfigRequest.model_validate(
    {
        "EndpointConfigName": "v1",
        "ProductionVariants": [{"VariantName": "main", "ModelName": "model-1"}],
    }
)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def ready(config: str, variant: str, generation: int) -> ObservedReplica:
    rid = f"{variant}-0-{generation}"
    return ObservedReplica(
        "web", variant, 0, rid, "ready", url=f"http://{config}-{rid}", started_at=NOW,
        generation=generation, config=config,
    )  # fmt: skip


SHADOWED = CreateEndpointConfigRequest.model_validate(
    {
        "EndpointConfigName": "v2",
        "ProductionVariants": [{"VariantName": "main", "ModelName": "model-1"}],
        "ShadowProductionVariants": [
            {"VariantName": "shadow", "ModelName": "model-1", "InitialVariantWeight": 0.5}
        ],
    }
)


V1_SHADOWED = SHADOWED.model_copy(update={"EndpointConfigName": "v1"})


def as_resource(name: str, spec: CreateEndpointRequest, status: EndpointState) -> dict[str, Any]:
    """What the operator writes (camelCase status), as the API pod reads it."""
    return {
        "metadata": {"name": name},
        "spec": to_camel(spec.model_dump(mode="json", exclude={"EndpointName"})),
        "status": to_camel(status.model_dump(mode="json")),
    }


def test_a_canary_update_with_a_shadow_routes_exactly_as_planned_through_the_status() -> None:
    """The planner's routes (canary shares, the trial fleet, the shadow's copy fraction) go
    into the status and come back out of ``route_of`` unchanged: nothing is rebuilt."""
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                "WaitIntervalInSeconds": 600,
            }
        }
    }
    spec = CreateEndpointRequest.model_validate(
        {"EndpointName": "web", "EndpointConfigName": "v2", "DeploymentConfig": canary}
    )
    status = EndpointState(EndpointStatus="InService", CurrentEndpointConfigName="v1")
    observed = [
        ready("v1", "main", 1),
        ready("v1", "shadow", 2),
        ready("v2", "main", 3),
        ready("v2", "shadow", 4),
    ]
    plan = None
    for second in range(4):  # provision, then shift the canary share
        desired = DesiredEndpoint(
            name="web",
            spec=spec,
            status=status,
            config=SHADOWED,
            models=MODELS,
            current_config=V1_SHADOWED,
            target_health=FleetHealth(),
        )
        plan = plan_endpoint(desired, observed, at(second))
        status = plan.status
    assert plan is not None and plan.routes
    assert status.EndpointStatus == "Updating" and status.Deployment is not None
    by = {(r.config, r.name): r for r in plan.routes}
    assert by[("v2", "main")].trial and round(by[("v2", "main")].weight, 6) == 0.2
    assert round(by[("v1", "main")].weight, 6) == 0.8
    assert by[("v1", "main")].urls == ("http://v1-main-0-1",)
    # The serving fleet's shadow gets its copy fraction; the new fleet's shadow waits.
    assert by[("v1", "shadow")].shadow and by[("v1", "shadow")].weight == 0.5
    assert ("v2", "shadow") not in by

    route = route_of(as_resource("web", spec, status))
    assert route is not None and not route.public
    assert route.variants == plan.routes  # decoded, not rebuilt

    # The data plane's pick over the decoded route: about a fifth of requests on the canary.
    random.seed(11)
    picks = Counter(pick_variant(route, None).config for _ in range(5000))
    assert 0.17 < picks["v2"] / 5000 < 0.23


def test_what_takes_no_traffic_has_no_route() -> None:
    spec = CreateEndpointRequest(EndpointName="web", EndpointConfigName="v1", AuthMode="None")
    desired = DesiredEndpoint(
        name="web", spec=spec, status=EndpointState(), config=V1, models=MODELS
    )
    plan = plan_endpoint(desired, [ready("v1", "main", 1)], NOW)
    doc = as_resource("web", spec, plan.status)
    route = route_of(doc)
    assert route is not None and route.public and route.ready
    for phase in ("Creating", "Failed", "Deleting"):
        st = plan.status.model_copy(update={"EndpointStatus": EndpointStatus(phase)})
        assert route_of(as_resource("web", spec, st)) is None
    assert route_of({**doc, "metadata": {"name": "web", "deletionTimestamp": "x"}}) is None
    assert route_of({**doc, "status": {"endpointStatus": {"not": "a status"}}}) is None


def test_cluster_routes_follow_the_operator_and_carry_demand_back(
    cluster: Cluster, operator: Operator, api: client.ApiClient
) -> None:
    setup(cluster)
    operator.run_once()
    make_ready(cluster, deployment(cluster, "web-blue"), 2)
    make_ready(cluster, deployment(cluster, "web-green"), 1)
    operator.run_once()

    table = RoutingTable()
    routes = ClusterRoutes(CustomResources(api, operator.namespace), table)
    routes.refresh()
    route = table.get("web")
    assert route is not None and route.ready
    assert {v.name: round(v.weight, 3) for v in route.variants} == {"Blue": 0.75, "green": 0.25}

    # A request held for a variant: the API pod writes demand on the Endpoint (off the
    # event loop, at most once a second per variant), which the operator reads.
    routes.start()
    try:
        table.hold("web", "Blue")
        table.hold("web", "Blue")  # the second within a second writes nothing more
        demand = eventually(lambda: _demand(operator, "web"), what="demand on the Endpoint")
        assert set(demand) == {"Blue"}
    finally:
        routes.stop()
        table.release("web", "Blue")
        table.release("web", "Blue")

    # An endpoint that goes away is withdrawn on the next refresh.
    cluster.delete("Endpoint", "web")
    operator.run_once()
    operator.run_once()
    routes.refresh()
    assert table.get("web") is None


def _demand(operator: Operator, endpoint: str) -> dict[str, Any]:
    operator.source.list_active("Endpoint")  # a fresh listing, as each pass makes
    return operator.source.demand_of(endpoint)


def test_a_route_carries_its_endpoint_resources_account() -> None:
    spec = CreateEndpointRequest(EndpointName="web", EndpointConfigName="v1")
    desired = DesiredEndpoint(
        name="web", spec=spec, status=EndpointState(), config=V1, models=MODELS
    )
    plan = plan_endpoint(desired, [ready("v1", "main", 1)], NOW)
    doc = as_resource("web", spec, plan.status)
    own = route_of(doc)
    assert own is not None and own.account == ""  # no label: the server's own account
    doc["metadata"] = {**doc["metadata"], "labels": {ACCOUNT_LABEL: "111111111111"}}
    tenant = route_of(doc)
    assert tenant is not None and tenant.account == "111111111111"
