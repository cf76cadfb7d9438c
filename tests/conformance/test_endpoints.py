"""Endpoint scenarios, written once, run on every backend (``declarations.scenario``).

Everything up to the route is checked on every backend through DescribeEndpoint: the planner
writes its routes (weights with the fleets' shares folded in, shadow copy fractions, the
trial fleet of an update, variants held at zero) into the endpoint's status, and the data
plane routes by exactly those. The HTTP round trip is ``h.checks("round_trip")``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from orchestrator.resources.endpoints import DescribeEndpointResponse, VariantRouteState
from tests.conformance.declarations import scenario
from tests.conformance.harness import Harness, ServingModel

ROUND_TRIP = ("round_trip",)


def variant(name: str, model: str, **fields: Any) -> dict[str, Any]:
    return {"VariantName": name, "ModelName": model, **fields}


def routes(ep: DescribeEndpointResponse) -> dict[tuple[str, str], VariantRouteState]:
    """The endpoint's routes by (config, variant)."""
    return {(r.EndpointConfigName, r.VariantName): r for r in ep.Routes}


def counts(ep: DescribeEndpointResponse) -> dict[str, int]:
    return {v.VariantName: v.CurrentInstanceCount for v in ep.ProductionVariants}


@scenario(
    "Deploy and invoke",
    "Model, EndpointConfig, Endpoint: InService with its replica, a route to it, and an "
    "invocation answered by the model, naming its variant",
    uses=ROUND_TRIP,
)
def test_deploy_and_invoke(h: Harness) -> None:
    name = "deploy-and-invoke"
    h.create_model(name, ServingModel(answer=7))
    h.create_endpoint(name, name, ProductionVariants=[variant("main", name)])
    ep = h.in_service(name)
    assert counts(ep) == {"main": 1}, f"{h.backend}: {ep.ProductionVariants}"
    assert h.replicas(name) == 1, h.backend
    (route,) = ep.Routes
    assert (route.EndpointConfigName, route.VariantName, route.Weight) == (name, "main", 1.0)
    assert len(route.Urls) == 1 and not route.Shadow and not route.ScaledToZero, route
    if h.checks("round_trip"):
        answer = h.invoke(name)
        assert (answer.variant, answer.predictions) == ("main", [7]), h.backend


@scenario(
    "Weights",
    "two variants weighted 1:3: routes with shares 0.25 and 0.75; the answers split so and "
    "name their variant; a targeted variant always serves",
    uses=ROUND_TRIP,
)
def test_weights(h: Harness) -> None:
    name = "weights"
    h.create_model("weights-one", ServingModel(answer=1))
    h.create_model("weights-three", ServingModel(answer=3))
    h.create_endpoint(
        name,
        name,
        ProductionVariants=[
            variant("a", "weights-one", InitialVariantWeight=1),
            variant("b", "weights-three", InitialVariantWeight=3),
        ],
    )
    ep = h.in_service(name)
    assert {v.VariantName: v.CurrentWeight for v in ep.ProductionVariants} == {"a": 1, "b": 3}
    shares = {v: r.Weight for (_, v), r in routes(ep).items()}
    assert shares == {"a": 0.25, "b": 0.75}, f"{h.backend}: routes {ep.Routes}"
    if h.checks("round_trip"):
        n, seen = 200, Counter[str]()
        for _ in range(n):
            answer = h.invoke(name)
            assert answer.predictions == [1 if answer.variant == "a" else 3], answer
            seen[answer.variant] += 1
        # Binomial(200, 0.25): 5 standard deviations either way fails about once in 3 million.
        assert abs(seen["a"] - n * 0.25) < 5 * math.sqrt(n * 0.25 * 0.75), seen
        for _ in range(10):
            assert h.invoke(name, target_variant="a").variant == "a"


@scenario(
    "Shadow",
    "a shadow variant: its route copies half the requests; live answers never come from it; "
    "the shadow's own invocations are measured",
    uses=ROUND_TRIP,
)
def test_shadow(h: Harness) -> None:
    name = "shadow"
    h.create_model("shadow-live", ServingModel(answer=0))
    h.create_model("shadow-new", ServingModel(answer=7))
    h.create_endpoint(
        name,
        name,
        ProductionVariants=[variant("live", "shadow-live")],
        ShadowProductionVariants=[variant("copy", "shadow-new", InitialVariantWeight=0.5)],
    )
    ep = h.wait_endpoint(
        name,
        lambda ep: (
            ep.EndpointStatus == "InService"
            and [v.CurrentInstanceCount for v in ep.ShadowProductionVariants] == [1]
        ),
        "InService with its shadow's replica",
    )
    by = routes(ep)
    live, copy = by[(name, "live")], by[(name, "copy")]
    assert (live.Weight, live.Shadow) == (1.0, False), live
    assert (copy.Weight, copy.Shadow) == (0.5, True) and copy.Urls, copy
    if h.checks("round_trip"):
        for _ in range(40):
            answer = h.invoke(name)
            assert (answer.variant, answer.predictions) == ("live", [0]), answer

        def copies() -> float:
            points = h.client.endpoint_metrics(name, "Invocations", variant="copy").Datapoints
            return sum(p.Sum or 0 for p in points)

        h.wait(copies, "the shadow's invocations in the metrics")


@scenario(
    "Scale to zero and wake",
    "MinInstanceCount 0: idle past ScaleToZeroAfterIdleSeconds, no replica runs and the route "
    "is held at zero; a request is held, not refused, wakes a replica and is answered",
    uses=ROUND_TRIP,
    waits=True,
)
def test_scale_to_zero_and_wake(h: Harness) -> None:
    name = "scale-to-zero"
    h.create_model(name, ServingModel(answer=5))
    scaling = {"MinInstanceCount": 0, "MaxInstanceCount": 2, "ScaleToZeroAfterIdleSeconds": 10}
    h.create_endpoint(
        name, name, ProductionVariants=[variant("main", name, ManagedInstanceScaling=scaling)]
    )
    h.in_service(name)
    ep = h.wait_endpoint(
        name,
        lambda ep: counts(ep) == {"main": 0} and h.replicas(name) == 0,
        "scaled to zero, no replica left",
        timeout=60,
    )
    assert ep.EndpointStatus == "InService", h.backend
    (route,) = ep.Routes
    assert route.ScaledToZero and route.Urls == [], route
    held = h.invoke_later(name)
    ep = h.wait_endpoint(
        name,
        lambda ep: counts(ep) == {"main": 1} and not ep.Routes[0].ScaledToZero,
        "woken from zero by the held request",
        timeout=60,
    )
    assert ep.Routes[0].Urls, ep.Routes
    h.check_held(name, "main")
    answer = held.answer()
    if h.checks("round_trip"):
        assert answer.predictions == [5], f"{h.backend}: the held request got {answer}"


def canary(percent: int, wait: int) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": percent},
                "WaitIntervalInSeconds": wait,
            }
        }
    }


@scenario(
    "Canary update with rollback",
    "UpdateEndpoint with a 25% canary: the new fleet's route is a trial with a quarter of the "
    "traffic while it bakes, then takes it all and the old fleet goes; an update to a model "
    "that cannot start rolls back by itself to the config that serves",
    uses=ROUND_TRIP,
    waits=True,
)
def test_canary_update_with_rollback(h: Harness) -> None:
    name = "canary"
    for model, answer in (("canary-v1", 1), ("canary-v2", 2)):
        h.create_model(model, ServingModel(answer=answer))
    h.create_model("canary-v3", ServingModel(broken="this model version cannot load"))
    h.create_endpoint(name, "canary-1", ProductionVariants=[variant("main", "canary-v1")])
    h.in_service(name)
    for config in ("canary-2", "canary-3"):
        model = config.replace("canary-", "canary-v")
        h.client.create_endpoint_config(
            EndpointConfigName=config, ProductionVariants=[variant("main", model)]
        )

    h.client.update_endpoint(name, "canary-2", deployment_config=canary(25, 2))
    ep = h.wait_endpoint(
        name,
        lambda ep: ep.Deployment is not None and ep.Deployment.Phase == "Shifting",
        "the canary share shifted",
    )
    by = routes(ep)
    trial, old = by[("canary-2", "main")], by[("canary-1", "main")]
    assert trial.Trial and round(trial.Weight, 6) == 0.25, f"{h.backend}: {ep.Routes}"
    assert not old.Trial and round(old.Weight, 6) == 0.75, f"{h.backend}: {ep.Routes}"
    if h.checks("round_trip"):
        seen = {h.invoke(name).predictions[0] for _ in range(40)}
        assert seen <= {1, 2} and 1 in seen, seen
    ep = h.wait_endpoint(name, lambda ep: ep.Deployment is None, "the update ended")
    assert ep.LastDeployment is not None and ep.LastDeployment.Result == "Succeeded", (
        f"{h.backend}: {ep.LastDeployment}"
    )
    assert ep.CurrentEndpointConfigName == "canary-2" and list(routes(ep)) == [
        ("canary-2", "main")
    ], f"{h.backend}: {ep.Routes}"
    h.wait(lambda: h.replicas(name) == 1, "the old fleet gone")
    if h.checks("round_trip"):
        assert h.invoke(name).predictions == [2]

    h.client.update_endpoint(name, "canary-3", deployment_config=canary(25, 2))
    ep = h.wait_endpoint(
        name,
        lambda ep: (
            ep.LastDeployment is not None
            and ep.LastDeployment.TargetEndpointConfigName == "canary-3"
        ),
        "the broken update ended",
        timeout=120,
    )
    assert ep.LastDeployment is not None and ep.LastDeployment.Result == "RolledBack", (
        f"{h.backend}: {ep.LastDeployment}"
    )
    assert "failed to start" in ep.LastDeployment.Message, ep.LastDeployment.Message
    assert "this model version cannot load" in ep.LastDeployment.Message
    assert (ep.EndpointStatus, ep.CurrentEndpointConfigName) == ("InService", "canary-2")
    assert list(routes(ep)) == [("canary-2", "main")], f"{h.backend}: {ep.Routes}"
    h.wait(lambda: h.replicas(name) == 1, "the broken fleet gone")
    if h.checks("round_trip"):
        assert h.invoke(name).predictions == [2]


@scenario(
    "Delete",
    "deleting an endpoint, its config and model, and a finished training job: each is gone "
    "from describe and list, and nothing of it is left running on the backend",
)
def test_delete(h: Harness) -> None:
    from orchestrator.errors import NotFoundError
    from tests.conformance.harness import Script

    name = "delete"
    h.create_script_job(name, Script(model_files=(("m.txt", "m"),)))
    h.create_model(name, ServingModel(answer=1))
    h.create_endpoint(name, name, ProductionVariants=[variant("main", name)])
    h.in_service(name)
    assert h.wait_job(name).TrainingJobStatus == "Completed"
    assert h.leftovers(name), f"{h.backend}: nothing of {name} seen before the delete"

    h.delete_endpoint(name)
    h.wait_endpoint_gone(name)
    assert name not in [e.EndpointName for e in h.client.list_endpoints().Endpoints]
    h.client.delete_endpoint_config(name)
    h.client.delete_model(name)
    h.client.delete_training_job(name)

    def gone() -> bool:
        try:
            h.job(name)
        except NotFoundError:
            return True
        return False

    h.wait(gone, f"training job {name} deleted")
    for describe in (h.client.describe_endpoint_config, h.client.describe_model):
        try:
            describe(name)
            raise AssertionError(f"{h.backend}: {describe.__name__}({name}) still answers")
        except NotFoundError:
            pass
    jobs = [j.TrainingJobName for j in h.client.list_training_jobs().TrainingJobSummaries]
    assert name not in jobs, h.backend
    h.wait(lambda: not h.leftovers(name), f"nothing of {name} left on the backend")
