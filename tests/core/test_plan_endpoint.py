"""plan_endpoint as a table: (status, replicas, now) -> (actions, new status, routes). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from core_builders import (
    ENDPOINT,
    NOW,
    at,
    config_spec,
    desired_endpoint,
    model_spec,
    replica,
)

from orchestrator.controller.plan.endpoint import DesiredEndpoint, EndpointPolicy, plan_endpoint
from orchestrator.controller.plan.types import (
    Action,
    DeleteRecord,
    LaunchReplica,
    ObservedReplica,
    Plan,
    RemoveReplica,
    ScaleFleets,
    VariantRoute,
)
from orchestrator.resources.endpoints import EndpointState

POLICY = EndpointPolicy(startup_timeout_seconds=120.0, max_start_failures=3)
TWO = config_spec(("v1", "model-1", 2))
IN_SERVICE = EndpointState(EndpointStatus="InService", ReplicaGeneration=2)


def briefs(plan: Plan[EndpointState]) -> list[tuple[Any, ...]]:
    """The per-replica actions, briefly (the closing ScaleFleets is checked on its own)."""
    return [brief(a) for a in plan.actions if not isinstance(a, ScaleFleets)]


def brief(action: Action) -> tuple[Any, ...]:
    if isinstance(action, LaunchReplica):
        return ("launch", action.launch.replica_id)
    if isinstance(action, RemoveReplica):
        return ("remove", action.replica_id)
    if isinstance(action, DeleteRecord):
        return ("delete", action.kind, action.name)
    raise AssertionError(action)


def step(
    desired: DesiredEndpoint, observed: list[ObservedReplica], now: datetime = NOW
) -> tuple[Plan[EndpointState], EndpointState]:
    plan = plan_endpoint(desired, observed, now, POLICY)
    return plan, EndpointState.model_validate(plan.status)


@dataclass(frozen=True)
class Case:
    id: str
    desired: DesiredEndpoint
    observed: list[ObservedReplica]
    now: datetime
    actions: list[tuple[Any, ...]]
    phase: str
    generation: int


CASES = [
    Case("new endpoint launches each slot", desired_endpoint(config=TWO), [], NOW,
         [("launch", "v1-0-1"), ("launch", "v1-1-2")], "Creating", 2),
    Case("all ready: in service", desired_endpoint(config=TWO),
         [replica(0, 1), replica(1, 2)], NOW, [], "InService", 0),
    Case("dead replica is replaced", desired_endpoint(status=IN_SERVICE),
         [replica(0, 2, "dead", message="exit code 1")], NOW,
         [("remove", "v1-0-2"), ("launch", "v1-0-3")], "InService", 3),
    Case("starting within the timeout is left alone", desired_endpoint(status=IN_SERVICE),
         [replica(0, 2, "starting")], at(120), [], "InService", 2),
    Case("starting past the timeout is replaced", desired_endpoint(status=IN_SERVICE),
         [replica(0, 2, "starting")], at(121), [("remove", "v1-0-2"), ("launch", "v1-0-3")],
         "InService", 3),
    Case("slot beyond the count is removed", desired_endpoint(status=IN_SERVICE),
         [replica(0, 1), replica(1, 2)], NOW, [("remove", "v1-1-2")], "InService", 2),
    Case("unknown variant is removed", desired_endpoint(status=IN_SERVICE),
         [replica(0, 1), replica(0, 2, variant="old")], NOW, [("remove", "old-0-2")], "InService", 2),
    Case("older generation of a slot is removed", desired_endpoint(status=IN_SERVICE),
         [replica(0, 2), replica(0, 1)], NOW, [("remove", "v1-0-1")], "InService", 2),
    Case("delete removes every replica first", desired_endpoint(delete=True),
         [replica(0, 1), replica(1, 2)], NOW, [("remove", "v1-0-1"), ("remove", "v1-1-2")],
         "Deleting", 0),
    Case("delete with none left deletes the record", desired_endpoint(delete=True), [], NOW,
         [("delete", "Endpoint", ENDPOINT)], "Deleting", 0),
    Case("a failed endpoint removes leftovers", desired_endpoint(
         status=EndpointState(EndpointStatus="Failed", FailureReason="x")),
         [replica(0, 1)], NOW, [("remove", "v1-0-1")], "Failed", 0),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_table(case: Case) -> None:
    plan, st = step(case.desired, case.observed, case.now)
    assert briefs(plan) == case.actions
    assert plan.phase == case.phase == st.EndpointStatus
    assert st.ReplicaGeneration == case.generation


def test_new_launches_carry_model_and_unique_ids() -> None:
    plan, st = step(desired_endpoint(config=TWO), [])
    launches = [a.launch for a in plan.actions if isinstance(a, LaunchReplica)]
    assert [(x.variant, x.slot, x.generation) for x in launches] == [("v1", 0, 1), ("v1", 1, 2)]
    assert len({x.replica_id for x in launches}) == 2
    assert all(x.model == model_spec() and x.model_name == "model-1" for x in launches)
    assert plan.active is True
    assert plan.requeue_after is not None
    ready = {c.Type: (c.Status, c.Message) for c in st.Conditions}
    assert ready == {"Ready": ("False", "Replicas starting")}


def test_all_ready_publishes_routes_and_ready_condition() -> None:
    config = config_spec(("a", "model-1", 2), ("b", "model-1", 1))
    config.ProductionVariants[1].InitialVariantWeight = 3.0
    observed = [replica(0, 1, variant="a"), replica(1, 2, variant="a"), replica(0, 3, variant="b")]
    plan, st = step(
        desired_endpoint(config=config, status=EndpointState(ReplicaGeneration=3)), observed
    )
    assert plan.routes == (
        VariantRoute("a", 0.25, ("http://replica/a-0-1", "http://replica/a-1-2"), "cfg-1"),
        VariantRoute("b", 0.75, ("http://replica/b-0-3",), "cfg-1"),
    )
    assert st.EndpointStatus == "InService"
    assert [(c.Type, c.Status, c.Reason) for c in st.Conditions] == [("Ready", "True", "InService")]
    assert [(v.VariantName, v.CurrentInstanceCount, v.DesiredInstanceCount) for v in st.ProductionVariants] == [
        ("a", 2, 2),
        ("b", 1, 1),
    ]  # fmt: skip


def test_routes_leave_out_replicas_not_ready() -> None:
    plan, st = step(desired_endpoint(config=TWO), [replica(0, 1), replica(1, 2, "starting")])
    assert plan.routes == (VariantRoute("v1", 1.0, ("http://replica/v1-0-1",), "cfg-1"),)
    assert st.EndpointStatus == "Creating"
    assert st.ProductionVariants[0].CurrentInstanceCount == 1


def test_start_failures_in_a_row_fail_with_the_replicas_message() -> None:
    status = EndpointState(ReplicaGeneration=2, StartFailures=2)
    dead = replica(0, 2, "dead", message="exit code 3: ImportError: no module named foo")
    plan, st = step(desired_endpoint(status=status), [dead])
    assert briefs(plan) == [("remove", "v1-0-2")]  # no replacement
    assert st.EndpointStatus == "Failed"
    assert st.StartFailures == 3
    assert st.FailureReason == (
        "3 replicas failed in a row; last: replica v1-0-2 exited: "
        "exit code 3: ImportError: no module named foo"
    )
    assert [(c.Type, c.Status, c.Reason) for c in st.Conditions] == [("Ready", "False", "Failed")]


def test_start_failures_count_up_then_reset_when_ready() -> None:
    _, st = step(desired_endpoint(), [replica(0, 1, "dead", message="boom")])
    assert (st.StartFailures, st.EndpointStatus) == (1, "Creating")
    _, st = step(desired_endpoint(status=st), [replica(0, 2)])
    assert (st.StartFailures, st.EndpointStatus) == (0, "InService")


def test_startup_timeout_counts_as_a_start_failure_with_its_own_message() -> None:
    status = EndpointState(ReplicaGeneration=2, StartFailures=2)
    _, st = step(desired_endpoint(status=status), [replica(0, 2, "starting")], at(121))
    assert st.EndpointStatus == "Failed"
    assert st.FailureReason is not None
    assert "did not answer GET /ping within 120 s" in st.FailureReason


def test_a_startup_timeout_says_why_the_health_check_failed() -> None:
    status = EndpointState(ReplicaGeneration=2, StartFailures=2)
    why = "TLS handshake with the replica failed: certificate verify failed"
    _, st = step(desired_endpoint(status=status), [replica(0, 2, "starting", message=why)], at(121))
    assert st.FailureReason is not None
    assert st.FailureReason.endswith(f"within 120 s: {why}")


def test_failure_reason_is_truncated() -> None:
    status = EndpointState(ReplicaGeneration=2, StartFailures=2)
    _, st = step(desired_endpoint(status=status), [replica(0, 2, "dead", message="x" * 3000)])
    assert st.FailureReason is not None
    assert len(st.FailureReason) == 1024


@pytest.mark.parametrize(
    ("config", "models", "needle"),
    [
        (None, None, "EndpointConfig 'cfg-1' does not exist"),
        ("default", {}, "variant 'v1': Model 'model-1' does not exist"),
    ],
    ids=["missing config", "missing model"],
)
def test_broken_references_fail_naming_what_is_missing(
    config: Any, models: Any, needle: str
) -> None:
    plan, st = step(desired_endpoint(config=config, models=models), [replica(0, 1)])
    assert st.EndpointStatus == "Failed"
    assert st.FailureReason is not None
    assert needle in st.FailureReason
    assert briefs(plan) == [("remove", "v1-0-1")]
    assert plan.active is True  # until the leftover is gone
    plan, _ = step(desired_endpoint(config=config, models=models, status=st), [])
    assert (briefs(plan), plan.active) == ([], False)


def test_in_service_stays_ready_while_a_replica_is_replaced() -> None:
    _, st = step(desired_endpoint(config=TWO), [replica(0, 1), replica(1, 2)])
    observed = [replica(0, 1), replica(1, 2, "dead")]
    _, st = step(desired_endpoint(config=TWO, status=st), observed, at(5))
    assert st.EndpointStatus == "InService"
    ready = st.Conditions[0]
    assert (ready.Status, ready.Message, ready.LastTransitionTime) == (
        "True",
        "Replacing replicas",
        NOW,
    )


def test_a_terminating_replica_holds_no_slot_gets_no_traffic_and_delays_deletion() -> None:
    from orchestrator.controller.plan.endpoint import plan_endpoint
    from orchestrator.controller.plan.types import LaunchReplica, RemoveReplica

    leaving = replica(0, 1, "terminating")
    plan = plan_endpoint(desired_endpoint(), [leaving], NOW)
    launches = [a for a in plan.actions if isinstance(a, LaunchReplica)]
    assert len(launches) == 1 and launches[0].launch.slot == 0  # the slot is free
    assert plan.routes == (VariantRoute("v1", 1.0, (), "cfg-1"),)
    # Deleting: the record goes only once the last replica is really gone.
    plan = plan_endpoint(desired_endpoint(delete=True), [leaving], NOW)
    assert [type(a) for a in plan.actions] == [RemoveReplica, ScaleFleets]
    plan = plan_endpoint(desired_endpoint(delete=True), [], NOW)
    # Whatever is left of its fleets goes (one scaled to zero shows no replica), then the record.
    assert plan.actions == (ScaleFleets(ENDPOINT, ()), DeleteRecord("Endpoint", ENDPOINT))


# --- fleets and routes -------------------------------------------------------------------------
def _cfg(doc: dict[str, Any]) -> Any:
    from orchestrator.resources.endpoints import CreateEndpointConfigRequest

    return CreateEndpointConfigRequest.model_validate({"EndpointConfigName": "cfg-1", **doc})


def test_first_plan_records_the_serving_config_and_launches_carry_it() -> None:
    plan, st = step(desired_endpoint(), [])
    assert st.CurrentEndpointConfigName == "cfg-1"
    launches = [a.launch for a in plan.actions if isinstance(a, LaunchReplica)]
    assert [x.config for x in launches] == ["cfg-1"]


def test_replicas_of_a_config_of_neither_fleet_are_removed() -> None:
    status = EndpointState(CurrentEndpointConfigName="cfg-1", ReplicaGeneration=3)
    from dataclasses import replace

    stray = replace(replica(0, 3), config="cfg-old", replica_id="v1-0-3")
    unmarked = replica(0, 2)  # config "": the serving fleet's
    plan, st = step(desired_endpoint(status=status), [unmarked, stray])
    assert briefs(plan) == [("remove", "v1-0-3")]
    assert st.EndpointStatus == "InService"


def test_an_inference_pipeline_is_served() -> None:
    pipeline = model_spec(PrimaryContainer=None, Containers=[{"Image": "a"}, {"Image": "b"}])
    plan, st = step(desired_endpoint(models={"model-1": pipeline}), [])
    launches = [a.launch for a in plan.actions if isinstance(a, LaunchReplica)]
    assert len(launches) == 1 and len(launches[0].model.serving_containers) == 2
    assert st.EndpointStatus == "Creating"


def test_a_shadow_variant_gets_its_fraction_as_copies_and_its_own_slots() -> None:
    config = _cfg({
        "ProductionVariants": [{"VariantName": "v1", "ModelName": "model-1", "InitialVariantWeight": 4}],
        "ShadowProductionVariants": [{"VariantName": "s1", "ModelName": "model-1", "InitialVariantWeight": 1}],
    })  # fmt: skip
    plan, st = step(desired_endpoint(config=config), [replica(0, 1), replica(0, 2, variant="s1")])
    assert plan.routes == (
        VariantRoute("v1", 1.0, ("http://replica/v1-0-1",), "cfg-1"),
        VariantRoute("s1", 0.25, ("http://replica/s1-0-2",), "cfg-1", shadow=True),
    )
    assert [(v.VariantName, v.CurrentWeight, v.DesiredWeight) for v in st.ShadowProductionVariants] == [
        ("s1", 1.0, 1.0)
    ]  # fmt: skip
    assert [s.VariantName for s in st.VariantScaling] == ["v1"]  # shadows are never autoscaled
    assert st.EndpointStatus == "InService"


def test_a_variant_scaled_to_zero_has_no_slot_and_a_scaled_to_zero_route() -> None:
    from orchestrator.controller.plan.types import VariantLoad
    from orchestrator.resources.endpoints import VariantScalingState

    config = _cfg({"ProductionVariants": [{
        "VariantName": "v1", "ModelName": "model-1",
        "ManagedInstanceScaling": {"MinInstanceCount": 0, "MaxInstanceCount": 3},
    }]})  # fmt: skip
    status = EndpointState(
        EndpointStatus="InService",
        CurrentEndpointConfigName="cfg-1",
        ReplicaGeneration=1,
        VariantScaling=[
            VariantScalingState(VariantName="v1", DesiredInstanceCount=1, LastActiveTime=NOW)
        ],
    )
    desired = replace_desired(
        desired_endpoint(config=config, status=status), load={"v1": VariantLoad()}
    )
    plan, st = step(desired, [replica(0, 1)], at(300))
    assert briefs(plan) == [("remove", "v1-0-1")]
    assert plan.routes == (VariantRoute("v1", 1.0, (), "cfg-1", scaled_to_zero=True),)
    assert st.ProductionVariants[0].DesiredInstanceCount == 0
    assert (st.EndpointStatus, st.Conditions[0].Status) == ("InService", "True")
    # A request waits: one replica at once.
    desired = replace_desired(desired, status=st, load={"v1": VariantLoad(waiting=1)})
    plan, st = step(desired, [], at(301))
    assert briefs(plan) == [("launch", "v1-0-2")]
    assert plan.routes == (VariantRoute("v1", 1.0, (), "cfg-1"),)


def replace_desired(desired: DesiredEndpoint, **fields: Any) -> DesiredEndpoint:
    from dataclasses import replace

    return replace(desired, **fields)


# --- UpdateEndpointWeightsAndCapacities (the spec's VariantOverrides) --------------------------
def with_overrides(desired: DesiredEndpoint, config: str, generation: int, **variants: Any) -> Any:
    from orchestrator.resources.endpoints import VariantOverrides

    overrides = VariantOverrides.model_validate(
        {
            "EndpointConfigName": config,
            "Generation": generation,
            "Variants": [{"VariantName": v, **fields} for v, fields in variants.items()],
        }
    )
    spec = desired.spec.model_copy(update={"VariantOverrides": overrides})
    return DesiredEndpoint(**{**desired.__dict__, "spec": spec})


def test_overrides_set_the_serving_config_s_weights_and_counts_and_it_updates_until_whole() -> None:
    config = config_spec(("v1", "model-1", 1), ("v2", "model-1", 1))
    updating = EndpointState(EndpointStatus="Updating", ReplicaGeneration=2)
    desired = with_overrides(
        desired_endpoint(config=config, status=updating), "cfg-1", 1,
        v1={"DesiredWeight": 3.0, "DesiredInstanceCount": 2}, v2={"DesiredWeight": 1.0},
    )  # fmt: skip
    ready = [replica(0, 1, variant="v1"), replica(0, 2, variant="v2")]
    plan, st = step(desired, ready)
    assert briefs(plan) == [("launch", "v1-1-3")]
    assert st.EndpointStatus == "Updating"  # a slot does not serve yet
    weights = {r.name: r.weight for r in plan.routes or ()}
    assert weights == {"v1": 0.75, "v2": 0.25}
    summaries = {(v.VariantName, v.CurrentWeight, v.DesiredWeight, v.CurrentInstanceCount,
                  v.DesiredInstanceCount) for v in st.ProductionVariants}  # fmt: skip
    assert summaries == {("v1", 3.0, 3.0, 1, 2), ("v2", 1.0, 1.0, 1, 1)}
    again = DesiredEndpoint(**{**desired.__dict__, "status": st})
    plan, st = step(again, [*ready, replica(1, 3, variant="v1")])
    assert briefs(plan) == [] and st.EndpointStatus == "InService"
    assert [v.CurrentInstanceCount for v in st.ProductionVariants] == [2, 1]


def test_overrides_of_another_config_do_nothing() -> None:
    desired = with_overrides(
        desired_endpoint(config=TWO, status=IN_SERVICE),
        "cfg-old",
        1,
        v1={"DesiredInstanceCount": 5},
    )
    plan, st = step(desired, [replica(0, 1), replica(1, 2)])
    assert briefs(plan) == [] and st.ProductionVariants[0].DesiredInstanceCount == 2
    assert st.ProductionVariants[0].DesiredWeight == 1.0


def test_an_autoscaled_variant_takes_the_count_once_then_the_autoscaler_goes_on() -> None:
    from orchestrator.controller.plan.autoscaling import apply_override
    from orchestrator.resources.endpoints import ProductionVariant, VariantScalingState

    variant = ProductionVariant.model_validate(
        {"VariantName": "v1", "ModelName": "m", "InitialInstanceCount": 2,
         "ManagedInstanceScaling": {"MinInstanceCount": 1, "MaxInstanceCount": 4}}
    )  # fmt: skip
    state = VariantScalingState(VariantName="v1", DesiredInstanceCount=2)
    moved = apply_override(variant, state, 3, 1, NOW)
    assert (moved.DesiredInstanceCount, moved.LastScaleOutTime, moved.OverrideGeneration) == (
        3, NOW, 1,
    )  # fmt: skip
    # The autoscaler moved it since: the same request does not set it again; a new one does,
    # within the variant's bounds.
    later = moved.model_copy(update={"DesiredInstanceCount": 1})
    assert apply_override(variant, later, 3, 1, at(60)) == later
    bounded = apply_override(variant, later, 9, 2, at(60))
    assert (bounded.DesiredInstanceCount, bounded.LastScaleOutTime) == (4, at(60))
    assert apply_override(variant, bounded, 1, 3, at(90)).LastScaleInTime == at(90)
