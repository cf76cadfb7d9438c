"""Blue/green updates through plan_endpoint, pass by pass with a fake ``now``; the state
machine's step sizes and alarms as tables. No I/O: a tiny in-memory world plays the backend."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest
from core_builders import ENDPOINT, NOW, at, config_spec, model_spec

from orchestrator.controller.plan import deployment as dep
from orchestrator.controller.plan.endpoint import DesiredEndpoint, EndpointPolicy, plan_endpoint
from orchestrator.controller.plan.types import (
    FleetHealth,
    LaunchReplica,
    ObservedReplica,
    Plan,
    RemoveReplica,
    ScaleFleets,
)
from orchestrator.resources.endpoints import (
    CapacitySize,
    CreateEndpointRequest,
    DeploymentConfig,
    EndpointState,
    RollbackAlarm,
    TrafficRoutingConfig,
)

OLD = config_spec(("a", "model-1", 1), ("b", "model-1", 1), name="cfg-1")
OLD.ProductionVariants[1].InitialVariantWeight = 3.0
NEW = config_spec(("a", "model-2", 2), ("b", "model-2", 2), name="cfg-2")
CONFIGS = {"cfg-1": OLD, "cfg-2": NEW}
MODELS = {"model-1": model_spec("model-1"), "model-2": model_spec("model-2")}
POLICY = EndpointPolicy(startup_timeout_seconds=120.0, max_start_failures=3)


POLICY_FIELDS = {"TerminationWaitInSeconds", "MaximumExecutionTimeoutInSeconds"}


def deployment(kind: str = "ALL_AT_ONCE", **fields: Any) -> DeploymentConfig:
    """A DeploymentConfig: routing fields and the blue/green policy's own, by name."""
    policy = {k: v for k, v in fields.items() if k in POLICY_FIELDS}
    routing = {k: v for k, v in fields.items() if k not in POLICY_FIELDS}
    return DeploymentConfig.model_validate(
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": kind, **routing},
                **policy,
            }
        }
    )


def slot_actions(plan: Plan[EndpointState]) -> list[Any]:
    """The per-replica actions (the closing ScaleFleets restates them as fleet sizes)."""
    return [a for a in plan.actions if not isinstance(a, ScaleFleets)]


@dataclass
class World:
    """The backend: launched replicas are ready at the next pass (or die, for ``failing``)."""

    spec_config: str = "cfg-2"
    deployment: DeploymentConfig | None = None
    status: EndpointState = field(
        default_factory=lambda: EndpointState(
            EndpointStatus="InService", CurrentEndpointConfigName="cfg-1", ReplicaGeneration=2
        )
    )
    replicas: dict[str, ObservedReplica] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # configs whose replicas die
    stuck: set[str] = field(default_factory=set)  # configs whose replicas never answer
    health: FleetHealth | None = None
    delete: bool = False
    policy: EndpointPolicy = POLICY

    def __post_init__(self) -> None:
        for slot, v in enumerate(("a", "b")):
            rid = f"{v}-0-{slot + 1}"
            self.replicas[rid] = ObservedReplica(
                ENDPOINT, v, 0, rid, "ready", f"http://{rid}", NOW, generation=slot + 1,
                config="cfg-1",
            )  # fmt: skip

    def desired(self) -> DesiredEndpoint:
        current = self.status.CurrentEndpointConfigName
        return DesiredEndpoint(
            name=ENDPOINT,
            spec=CreateEndpointRequest(
                EndpointName=ENDPOINT,
                EndpointConfigName=self.spec_config,
                DeploymentConfig=self.deployment,
            ),
            status=self.status,
            config=CONFIGS.get(self.spec_config),
            models=MODELS,
            delete_requested=self.delete,
            current_config=CONFIGS.get(current or "") if current != self.spec_config else None,
            target_health=self.health,
        )

    def step(self, now: datetime) -> Plan[EndpointState]:
        for r in list(self.replicas.values()):  # what was launched last pass is up now
            if r.state == "starting" and r.config not in self.stuck:
                state = "dead" if r.config in self.failing else "ready"
                self.replicas[r.replica_id] = replace(r, state=state)  # type: ignore[arg-type]
        plan = plan_endpoint(self.desired(), list(self.replicas.values()), now, self.policy)
        self.status = EndpointState.model_validate(plan.status)
        for a in plan.actions:
            if isinstance(a, RemoveReplica):
                self.replicas.pop(a.replica_id, None)
            elif isinstance(a, LaunchReplica):
                x = a.launch
                self.replicas[x.replica_id] = ObservedReplica(
                    ENDPOINT, x.variant, x.slot, x.replica_id, "starting",
                    f"http://{x.replica_id}", now, generation=x.generation, config=x.config,
                )  # fmt: skip
        return plan

    def configs(self) -> set[str]:
        return {r.config for r in self.replicas.values()}

    def percent(self) -> float | None:
        d = self.status.Deployment
        return None if d is None else d.TrafficPercent


def routes(plan: Plan) -> list[tuple[str, str, float, bool]]:
    return [(r.config, r.name, round(r.weight, 4), r.trial) for r in plan.routes or ()]


def test_all_at_once_provisions_shifts_terminates_and_swaps_the_serving_config() -> None:
    w = World()
    plan = w.step(at(0))
    d = w.status.Deployment
    assert d is not None and (d.Phase, d.TargetEndpointConfigName, d.StartTime) == (
        "Provisioning", "cfg-2", at(0),
    )  # fmt: skip
    assert w.status.EndpointStatus == "Updating"
    launches = [a.launch for a in plan.actions if isinstance(a, LaunchReplica)]
    assert sorted((x.config, x.variant, x.slot) for x in launches) == [
        ("cfg-2", "a", 0), ("cfg-2", "a", 1), ("cfg-2", "b", 0), ("cfg-2", "b", 1),
    ]  # fmt: skip
    assert all(x.model_name == "model-2" for x in launches)
    assert routes(plan) == [("cfg-1", "a", 0.25, False), ("cfg-1", "b", 0.75, False)]
    assert (plan.active, plan.requeue_after) == (True, 1.0)

    plan = w.step(at(1))  # the new fleet is ready: all traffic at once
    assert (w.status.Deployment and w.status.Deployment.Phase, w.percent()) == ("Shifting", 100.0)
    assert routes(plan) == [("cfg-2", "a", 0.5, True), ("cfg-2", "b", 0.5, True)]
    assert [v.CurrentWeight for v in w.status.ProductionVariants] == [0.0, 0.0]

    plan = w.step(at(2))
    assert w.status.Deployment is not None and w.status.Deployment.Phase == "Terminating"
    assert w.configs() == {"cfg-1", "cfg-2"}  # the old fleet waits, with no traffic
    assert routes(plan) == [("cfg-2", "a", 0.5, False), ("cfg-2", "b", 0.5, False)]

    plan = w.step(at(3))
    st = w.status
    assert (st.EndpointStatus, st.CurrentEndpointConfigName, st.Deployment) == (
        "InService", "cfg-2", None,
    )  # fmt: skip
    assert st.LastDeployment is not None and st.LastDeployment.Result == "Succeeded"
    assert w.configs() == {"cfg-2"}
    assert [(s.VariantName, s.DesiredInstanceCount) for s in st.VariantScaling] == [
        ("a", 2),
        ("b", 2),
    ]
    assert [(v.VariantName, v.DesiredInstanceCount, v.CurrentWeight) for v in st.ProductionVariants] == [
        ("a", 2, 1.0), ("b", 2, 1.0),
    ]  # fmt: skip
    assert {c.Type: (c.Status, c.Reason) for c in st.Conditions}["Updated"] == ("True", "Succeeded")
    # Settled: nothing more to do, and the next pass starts nothing new.
    plan = w.step(at(4))
    assert slot_actions(plan) == [] and w.status.Deployment is None


def _timeline(w: World, until: int) -> list[tuple[int, str | None, float | None]]:
    out = []
    for t in range(until + 1):
        w.step(at(t))
        d = w.status.Deployment
        out.append((t, d.Phase if d else None, d.TrafficPercent if d else None))
    return out


def _changes(timeline: list[tuple[int, str | None, float | None]]) -> list[tuple[Any, ...]]:
    return [x for i, x in enumerate(timeline) if i == 0 or x[1:] != timeline[i - 1][1:]]


def test_canary_bakes_then_shifts_the_rest() -> None:
    w = World(deployment=deployment(
        "CANARY", WaitIntervalInSeconds=60, CanarySize={"Type": "CAPACITY_PERCENT", "Value": 10},
        TerminationWaitInSeconds=30,
    ))  # fmt: skip
    assert _changes(_timeline(w, 200)) == [
        (0, "Provisioning", 0.0),
        (1, "Shifting", 10.0),
        (61, "Shifting", 100.0),
        (121, "Terminating", 100.0),
        (151, None, None),
    ]
    assert w.status.CurrentEndpointConfigName == "cfg-2"


def test_canary_shares_are_folded_into_the_variant_weights() -> None:
    w = World(deployment=deployment(
        "CANARY", WaitIntervalInSeconds=60, CanarySize={"Type": "CAPACITY_PERCENT", "Value": 10},
    ))  # fmt: skip
    w.step(at(0))
    plan = w.step(at(1))
    assert routes(plan) == [
        ("cfg-1", "a", 0.225, False),
        ("cfg-1", "b", 0.675, False),
        ("cfg-2", "a", 0.05, True),
        ("cfg-2", "b", 0.05, True),
    ]
    # SageMaker's CurrentWeight: the variant's weight times its fleet's share (90% here).
    assert [v.CurrentWeight for v in w.status.ProductionVariants] == [0.9, 2.7]
    assert [v.DesiredWeight for v in w.status.ProductionVariants] == [1.0, 3.0]


def test_linear_steps_until_all_traffic_moved() -> None:
    w = World(deployment=deployment(
        "LINEAR", WaitIntervalInSeconds=10, LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 30},
    ))  # fmt: skip
    assert _changes(_timeline(w, 60)) == [
        (0, "Provisioning", 0.0),
        (1, "Shifting", 30.0),
        (11, "Shifting", 60.0),
        (21, "Shifting", 90.0),
        (31, "Shifting", 100.0),
        (41, "Terminating", 100.0),
        (42, None, None),
    ]


@pytest.mark.parametrize(
    ("routing", "instances", "first", "second"),
    [
        (TrafficRoutingConfig(), 4, 100.0, 100.0),
        (TrafficRoutingConfig(Type="CANARY", CanarySize=CapacitySize(Type="INSTANCE_COUNT", Value=1)), 4, 25.0, 100.0),
        (TrafficRoutingConfig(Type="CANARY", CanarySize=CapacitySize(Type="INSTANCE_COUNT", Value=9)), 4, 100.0, 100.0),
        (TrafficRoutingConfig(Type="LINEAR", LinearStepSize=CapacitySize(Type="INSTANCE_COUNT", Value=3)), 4, 75.0, 100.0),
        (TrafficRoutingConfig(Type="LINEAR", LinearStepSize=CapacitySize(Type="CAPACITY_PERCENT", Value=40)), 4, 40.0, 80.0),
    ],
    ids=["all at once", "canary of 1 instance", "canary capped", "linear instances", "linear percent"],
)  # fmt: skip
def test_step_sizes(
    routing: TrafficRoutingConfig, instances: int, first: float, second: float
) -> None:
    assert dep.first_step(routing, instances) == first
    assert dep.next_step(routing, first, instances) == second


@pytest.mark.parametrize(
    ("alarm", "health", "fires"),
    [
        (RollbackAlarm(AlarmName="5xx", MetricName="Invocation5XXErrorRate", Threshold=0.05),
         FleetHealth(invocations=100, errors_5xx=5), None),
        (RollbackAlarm(AlarmName="5xx", MetricName="Invocation5XXErrorRate", Threshold=0.05),
         FleetHealth(invocations=100, errors_5xx=6), "alarm '5xx' fired: Invocation5XXErrorRate 0.06 > 0.05 over 100"),
        (RollbackAlarm(AlarmName="5xx", MetricName="Invocation5XXErrorRate", Threshold=0.05, MinInvocations=20),
         FleetHealth(invocations=19, errors_5xx=19), None),
        (RollbackAlarm(AlarmName="slow", MetricName="ModelLatency", Threshold=50_000),
         FleetHealth(invocations=3, model_latency_p99_us=80_000), "alarm 'slow' fired: ModelLatency 80000 > 50000"),
        (RollbackAlarm(AlarmName="ovh", MetricName="OverheadLatency", Threshold=1000),
         FleetHealth(invocations=3), None),
        (RollbackAlarm(AlarmName="5xx", MetricName="Invocation5XXErrorRate", Threshold=0.0),
         FleetHealth(), None),
    ],
    ids=["at the threshold", "over", "too few invocations", "latency", "no latency measured", "no traffic"],
)  # fmt: skip
def test_alarms(alarm: RollbackAlarm, health: FleetHealth, fires: str | None) -> None:
    message = dep.fired_alarm((alarm,), health)
    if fires is None:
        assert message is None
    else:
        assert message is not None and message.startswith(fires)


def test_default_alarm_rolls_back_a_canary_and_never_goes_above_its_share() -> None:
    w = World(deployment=deployment(
        "CANARY", WaitIntervalInSeconds=60, CanarySize={"Type": "CAPACITY_PERCENT", "Value": 10},
    ))  # fmt: skip
    seen: list[float] = []
    for t in range(4):
        if t == 3:  # the canary's answers turn bad
            w.health = FleetHealth(invocations=40, errors_5xx=10)
        plan = w.step(at(t))
        seen.append(sum(r.weight for r in plan.routes or () if r.config == "cfg-2"))
    assert max(seen) == pytest.approx(0.1)
    d = w.status.Deployment
    assert d is not None and d.Phase == "RollingBack"
    assert w.status.EndpointStatus == "RollingBack"
    assert "alarm 'default-5xx' fired: Invocation5XXErrorRate 0.25 > 0.05" in d.Message
    assert "at 10% of traffic" in d.Message
    assert w.configs() == {"cfg-1"}
    plan = w.step(at(5))  # the new fleet is gone: rolled back
    st = w.status
    assert (st.EndpointStatus, st.Deployment, st.FailureReason, st.CurrentEndpointConfigName) == (
        "InService", None, None, "cfg-1",
    )  # fmt: skip
    assert st.LastDeployment is not None and st.LastDeployment.Result == "RolledBack"
    assert "default-5xx" in st.LastDeployment.Message
    updated = {c.Type: c for c in st.Conditions}["Updated"]
    assert (updated.Status, updated.Reason) == ("False", "RolledBack")
    assert "default-5xx" in updated.Message
    assert routes(plan) == [("cfg-1", "a", 0.25, False), ("cfg-1", "b", 0.75, False)]
    # The spec still names cfg-2, but a rolled-back config is not tried again by itself.
    for t in range(6, 20):
        plan = w.step(at(t))
        assert w.status.Deployment is None
        assert not [a for a in plan.actions if isinstance(a, LaunchReplica)]


def test_new_fleet_that_fails_to_start_rolls_back_without_failing_the_endpoint() -> None:
    w = World(failing={"cfg-2"})
    for t in range(4):
        w.step(at(t))
        if w.status.Deployment is not None and w.status.Deployment.Phase == "RollingBack":
            break
    d = w.status.Deployment
    assert d is not None and d.Phase == "RollingBack"
    assert "the new fleet failed to start: 4 replicas failed in a row" in d.Message
    w.step(at(10))
    st = w.status
    assert (st.EndpointStatus, st.FailureReason, st.StartFailures) == ("InService", None, 0)
    assert st.LastDeployment is not None and "failed to start" in st.LastDeployment.Message
    assert w.configs() == {"cfg-1"}


def test_startup_timeout_of_the_new_fleet_counts_as_start_failures() -> None:
    w = World(
        stuck={"cfg-2"}, policy=EndpointPolicy(startup_timeout_seconds=5, max_start_failures=1)
    )
    w.step(at(0))
    w.step(at(3))
    assert w.status.Deployment is not None and w.status.Deployment.Phase == "Provisioning"
    w.step(at(6))
    d = w.status.Deployment
    assert d is not None and d.Phase == "RollingBack"
    assert "did not answer GET /ping within 5 s" in d.Message


def test_maximum_execution_timeout_rolls_back() -> None:
    w = World(
        stuck={"cfg-2"},
        policy=EndpointPolicy(startup_timeout_seconds=10_000),
        deployment=deployment(MaximumExecutionTimeoutInSeconds=600),
    )
    w.step(at(0))
    w.step(at(600))
    assert w.status.Deployment is not None and w.status.Deployment.Phase == "Provisioning"
    w.step(at(601))
    d = w.status.Deployment
    assert d is not None and d.Phase == "RollingBack"
    assert d.Message == "the update exceeded MaximumExecutionTimeoutInSeconds (600 s)"
    assert w.configs() == {"cfg-1"}


def test_termination_wait_keeps_the_old_fleet_idle_until_it_ends() -> None:
    w = World(deployment=deployment(TerminationWaitInSeconds=30))
    for t in range(3):
        w.step(at(t))
    assert w.status.Deployment is not None and w.status.Deployment.Phase == "Terminating"
    plan = w.step(at(31))
    assert w.configs() == {"cfg-1", "cfg-2"}
    assert {r.config for r in plan.routes or ()} == {"cfg-2"}
    w.step(at(32))
    assert w.status.Deployment is None and w.configs() == {"cfg-2"}


def test_delete_during_an_update_removes_both_fleets() -> None:
    w = World()
    w.step(at(0))
    w.step(at(1))
    assert w.configs() == {"cfg-1", "cfg-2"}
    w.delete = True
    plan = w.step(at(2))
    assert w.status.EndpointStatus == "Deleting"
    assert len([a for a in plan.actions if isinstance(a, RemoveReplica)]) == 6
    plan = w.step(at(3))
    assert [type(a).__name__ for a in plan.actions] == ["ScaleFleets", "DeleteRecord"]


def test_a_spec_naming_yet_another_config_abandons_the_update() -> None:
    w = World()
    w.step(at(0))
    w.spec_config = "cfg-1"  # asked back for the serving config
    w.step(at(1))
    d = w.status.Deployment
    assert d is not None and d.Phase == "RollingBack"
    assert "abandoned: the endpoint now asks for EndpointConfig 'cfg-1'" in d.Message
    w.step(at(2))
    assert (w.status.Deployment, w.configs()) == (None, {"cfg-1"})


def test_an_update_to_a_missing_config_is_refused_and_the_endpoint_keeps_serving() -> None:
    w = World(spec_config="cfg-9")
    plan = w.step(at(0))
    st = w.status
    assert (st.EndpointStatus, st.Deployment, st.FailureReason) == ("InService", None, None)
    assert st.LastDeployment is not None and st.LastDeployment.Result == "RolledBack"
    assert "EndpointConfig 'cfg-9' does not exist" in st.LastDeployment.Message
    assert not [a for a in plan.actions if isinstance(a, LaunchReplica)]


def test_autoscaling_is_frozen_during_an_update() -> None:
    cfg = config_spec(("a", "model-1", 1), name="cfg-1")
    cfg.ProductionVariants[0].ManagedInstanceScaling = None
    scaled = cfg.model_copy(deep=True)
    scaled.ProductionVariants[0] = scaled.ProductionVariants[0].model_validate(
        {"VariantName": "a", "ModelName": "model-1", "ManagedInstanceScaling": {
            "MaxInstanceCount": 5, "TargetTracking": {"TargetValue": 10, "ScaleOutCooldown": 0}}}
    )  # fmt: skip
    from orchestrator.controller.plan.types import VariantLoad

    status = EndpointState(EndpointStatus="InService", CurrentEndpointConfigName="cfg-1")
    d = dep.start("cfg-2", NOW)
    for deploying, expected in ((True, 1), (False, 5)):
        desired = DesiredEndpoint(
            name=ENDPOINT,
            spec=CreateEndpointRequest(
                EndpointName=ENDPOINT, EndpointConfigName="cfg-2" if deploying else "cfg-1"
            ),
            status=status.model_copy(update={"Deployment": d if deploying else None}),
            config=NEW if deploying else scaled,
            current_config=scaled if deploying else None,
            models=MODELS,
            load={"a": VariantLoad(invocations_per_minute=1000.0)},
        )
        first = plan_endpoint(desired, [], NOW)  # sets up VariantScaling
        desired = replace(desired, status=EndpointState.model_validate(first.status))
        st = EndpointState.model_validate(plan_endpoint(desired, [], at(1)).status)
        assert st.scaling_of("a") is not None
        assert st.scaling_of("a").DesiredInstanceCount == expected  # type: ignore[union-attr]
