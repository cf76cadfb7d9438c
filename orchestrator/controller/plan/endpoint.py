"""Planning for endpoints: fleets of replicas, autoscaling, blue/green updates, routes. Pure.

A fleet is the replicas of one EndpointConfig. The serving fleet runs
``CurrentEndpointConfigName`` (the spec's config on the first pass); while an update is in
progress (``deployment.py``) a second fleet runs the target config beside it, and replicas of
any other config are removed. Each (config, variant) has slots; each slot holds at most one
replica. Dead or stuck replicas are replaced under a new name; too many start failures in a
row fail the endpoint (serving fleet) or roll the update back (target fleet). The serving
fleet's production variants are autoscaled (``autoscaling.py``) except during an update; shadow
variants keep their initial count. UpdateEndpointWeightsAndCapacities' overrides (the spec's
``VariantOverrides``) replace the serving config's weights and counts; the endpoint stays
``Updating`` (as ``Creating``) until every slot serves. The plan also yields the routes.

A caller that gives no ``current_config`` while the spec names another config (the Kubernetes
operator) gets the spec's config served in place, without an update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.controller.plan import deployment as dep
from orchestrator.controller.plan.autoscaling import apply_override, autoscale, initial_scaling
from orchestrator.controller.plan.types import (
    Action,
    DeleteRecord,
    FleetHealth,
    LaunchReplica,
    ObservedReplica,
    Plan,
    RemoveReplica,
    ReplicaLaunch,
    ScaleFleets,
    VariantFleet,
    VariantLoad,
    VariantRoute,
    route_state,
)
from orchestrator.resources.common import ConditionType, set_condition
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    DeploymentConfig,
    DeploymentOutcome,
    DeploymentState,
    EndpointState,
    EndpointStatus,
    ProductionVariant,
    ProductionVariantSummary,
    VariantScalingState,
    apply_overrides,
)
from orchestrator.resources.models import CreateModelRequest

RESYNC = 1.0
FAILURE_REASON_LIMIT = 1024
# Statuses an endpoint keeps until its serving fleet is whole (without a blue/green update).
_UNTIL_READY = frozenset({EndpointStatus.CREATING, EndpointStatus.UPDATING})


@dataclass(frozen=True)
class DesiredEndpoint:
    name: str
    spec: CreateEndpointRequest
    status: EndpointState
    config: CreateEndpointConfigRequest | None  # the config the spec names
    models: dict[str, CreateModelRequest] = field(default_factory=dict)  # of both configs
    delete_requested: bool = False
    # The serving fleet's config when it is not the spec's (an update asked for another).
    current_config: CreateEndpointConfigRequest | None = None
    load: dict[str, VariantLoad] = field(default_factory=dict)  # serving fleet, by variant
    target_health: FleetHealth | None = None  # the new fleet's traffic since its step began
    # The states of the metric alarms its update's rollback alarms name (AlarmName alone).
    alarm_states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointPolicy:
    startup_timeout_seconds: float = 120.0
    max_start_failures: int = 3


def replica_id(variant: str, slot: int, generation: int) -> str:
    return f"{variant}-{slot}-{generation}"


def _result(
    st: EndpointState,
    actions: list[Action],
    *,
    active: bool,
    routes: list[VariantRoute] | None,
    endpoint: str,
    fleets: list[VariantFleet] | None = None,
) -> Plan[EndpointState]:
    """The plan; its routes also go into the status (what an API in another process reads),
    and the fleets, whole, close the actions (for backends that manage whole variants)."""
    kept = tuple(routes or ())
    st = st.model_copy(update={"Routes": [route_state(r) for r in kept]})
    return Plan(
        actions=(*actions, ScaleFleets(endpoint, tuple(fleets or ()))),
        status=st,
        phase=st.EndpointStatus.value,
        active=active,
        requeue_after=RESYNC if active else None,
        routes=kept,
    )


def fail_endpoint(
    status: EndpointState, reason: str, now: datetime, *, endpoint: str
) -> Plan[EndpointState]:
    """The endpoint ends Failed with ``reason`` (e.g. the backend refused it for good): its
    replicas go at the next passes, as for any failed endpoint."""
    return _result(_fail(status, reason, now), [], active=True, routes=None, endpoint=endpoint)


def _fail(st: EndpointState, reason: str, now: datetime) -> EndpointState:
    return st.model_copy(
        update={
            "EndpointStatus": EndpointStatus.FAILED,
            "FailureReason": reason[:FAILURE_REASON_LIMIT],
            "Conditions": set_condition(
                st.Conditions,
                ConditionType.READY,
                "False",
                reason="Failed",
                message=reason,
                now=now,
            ),
        }
    )


def _config_problem(
    name: str, config: CreateEndpointConfigRequest | None, models: dict[str, CreateModelRequest]
) -> str | None:
    if config is None:
        return (
            f"EndpointConfig {name!r} does not exist; create it, "
            "then delete and re-create the endpoint"
        )
    for v in config.all_variants:
        if v.ModelName not in models:
            return f"variant {v.VariantName!r}: Model {v.ModelName!r} does not exist"
    return None


def _remove(replicas: list[ObservedReplica]) -> list[Action]:
    return [RemoveReplica(r.endpoint, r.replica_id) for r in replicas]


@dataclass
class _Fleet:
    """One fleet's pass: its actions, ready URLs per variant, start failures in a row."""

    config: CreateEndpointConfigRequest
    counts: dict[str, int]
    actions: list[Action] = field(default_factory=list)
    urls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ready: bool = True
    failures: int = 0
    last_failure: str = ""


def _plan_fleet(
    desired: DesiredEndpoint,
    fleet: _Fleet,
    replicas: list[ObservedReplica],
    generation: int,
    *,
    policy: EndpointPolicy,
    now: datetime,
) -> int:
    """Keep each variant of ``fleet`` at its slot count; returns the new generation counter."""
    by_slot: dict[tuple[str, int], list[ObservedReplica]] = {}
    for r in replicas:
        by_slot.setdefault((r.variant, r.slot), []).append(r)
    wanted = {(v, k) for v, n in fleet.counts.items() for k in range(n)}
    for key, stray in by_slot.items():
        if key not in wanted:
            fleet.actions.extend(_remove(stray))
    name = fleet.config.EndpointConfigName
    for v in fleet.config.all_variants:
        urls: list[str] = []
        for k in range(fleet.counts[v.VariantName]):
            mine = sorted(by_slot.get((v.VariantName, k), []), key=lambda r: r.generation)
            # Newest wins; older leftovers of the same slot go.
            fleet.actions.extend(_remove(mine[:-1]))
            current = mine[-1] if mine else None
            failure = ""
            if current is not None and current.state == "dead":
                failure = f"replica {current.replica_id} exited: {current.message}"
            elif (
                current is not None
                and current.state == "starting"
                and current.started_at
                and (now - current.started_at).total_seconds() > startup_timeout(v, policy)
            ):
                failure = (
                    f"replica {current.replica_id} did not answer GET /ping within "
                    f"{startup_timeout(v, policy):g} s"
                )
                if current.message:  # why the health check failed (a TLS handshake, say)
                    failure += f": {current.message}"
            if current is not None and failure:
                fleet.actions.extend(_remove([current]))
                fleet.failures += 1
                fleet.last_failure = failure
            if current is not None and current.state == "ready":
                urls.append(current.url or "")
            else:
                fleet.ready = False
            if (current is None or failure) and fleet.failures < policy.max_start_failures:
                generation += 1
                launch = ReplicaLaunch(
                    endpoint=desired.name,
                    variant=v.VariantName,
                    slot=k,
                    replica_id=replica_id(v.VariantName, k, generation),
                    model_name=v.ModelName,
                    model=desired.models[v.ModelName],
                    instance_type=v.InstanceType,
                    generation=generation,
                    config=name,
                )
                fleet.actions.append(LaunchReplica(launch))
        fleet.urls[v.VariantName] = tuple(urls)
    return generation


def _failure_text(fleet: _Fleet) -> str:
    if fleet.last_failure:
        return f"{fleet.failures} replicas failed in a row; last: {fleet.last_failure}"
    return f"{fleet.failures} replicas failed in a row"


def _routes(
    fleet: _Fleet, share: float, *, trial: bool, shadow: bool
) -> tuple[list[VariantRoute], list[ProductionVariantSummary], list[ProductionVariantSummary]]:
    """Routes and status summaries of one fleet getting ``share`` of production traffic."""
    cfg = fleet.config
    total = sum(v.InitialVariantWeight for v in cfg.ProductionVariants)
    routes: list[VariantRoute] = []
    prod: list[ProductionVariantSummary] = []
    shadows: list[ProductionVariantSummary] = []
    for v in cfg.all_variants:
        is_shadow = v in cfg.ShadowProductionVariants
        weight = cfg.shadow_fraction if is_shadow else v.InitialVariantWeight / total * share
        count = fleet.counts[v.VariantName]
        urls = fleet.urls.get(v.VariantName, ())
        if (not is_shadow and share > 0) or (is_shadow and shadow):
            routes.append(
                VariantRoute(
                    name=v.VariantName,
                    weight=weight,
                    urls=urls,
                    config=cfg.EndpointConfigName,
                    shadow=is_shadow,
                    scaled_to_zero=count == 0,
                    trial=trial and not is_shadow,
                )
            )
        summary = ProductionVariantSummary(
            VariantName=v.VariantName,
            # SageMaker's meaning: the variant's own weight, times its fleet's share of
            # traffic while an update moves it (the routes use normalised shares).
            CurrentWeight=(
                v.InitialVariantWeight * (1.0 if is_shadow else share)
                if (share > 0 or is_shadow)
                else 0.0
            ),
            DesiredWeight=v.InitialVariantWeight,
            CurrentInstanceCount=len(urls),
            DesiredInstanceCount=count,
        )
        (shadows if is_shadow else prod).append(summary)
    return routes, prod, shadows


def _scaling(
    desired: DesiredEndpoint,
    cfg: CreateEndpointConfigRequest,
    st: EndpointState,
    now: datetime,
    *,
    frozen: bool,
) -> list[VariantScalingState]:
    overrides = desired.spec.VariantOverrides
    if overrides is not None and overrides.EndpointConfigName != cfg.EndpointConfigName:
        overrides = None
    out: list[VariantScalingState] = []
    for v in cfg.ProductionVariants:
        state = st.scaling_of(v.VariantName)
        asked = overrides.of(v.VariantName) if overrides is not None else None
        if asked is not None and asked.DesiredInstanceCount is not None and v.scaling:
            assert overrides is not None
            state = apply_override(v, state, asked.DesiredInstanceCount, overrides.Generation, now)
        out.append(autoscale(v, state, desired.load.get(v.VariantName), now, frozen=frozen))
    return out


def plan_endpoint(
    desired: DesiredEndpoint,
    observed: list[ObservedReplica],
    now: datetime,
    policy: EndpointPolicy | None = None,
) -> Plan[EndpointState]:
    policy = policy or EndpointPolicy()
    st = desired.status
    # Replicas on their way out still count as present until they are gone, so an endpoint
    # is deleted only once nothing of it runs; they take no slot and get no traffic.
    leaving = [r for r in observed if r.state == "terminating"]
    observed = [r for r in observed if r.state != "terminating"]
    remove_all = _remove(observed + leaving)

    name = desired.name
    if desired.delete_requested:  # both fleets go
        st = st.model_copy(update={"EndpointStatus": EndpointStatus.DELETING})
        if not observed and not leaving:
            return _deleted(st, name)
        return _result(st, remove_all, active=True, routes=None, endpoint=name)
    if st.EndpointStatus == EndpointStatus.FAILED:
        return _result(st, remove_all, active=bool(remove_all), routes=None, endpoint=name)

    wanted_name = desired.spec.EndpointConfigName
    current_name = st.CurrentEndpointConfigName or wanted_name
    serving_cfg = desired.current_config
    if current_name == wanted_name or serving_cfg is None:
        current_name, serving_cfg = wanted_name, desired.config
    problem = _config_problem(current_name, serving_cfg, desired.models)
    if problem is not None:
        st = _fail(st, problem, now)
        return _result(st, remove_all, active=bool(remove_all), routes=None, endpoint=name)
    assert serving_cfg is not None
    st = st.model_copy(update={"CurrentEndpointConfigName": current_name})
    # UpdateEndpointWeightsAndCapacities: the serving config's weights and counts, as asked.
    serving_cfg = apply_overrides(serving_cfg, desired.spec.VariantOverrides)
    return _plan_fleets(desired, st, serving_cfg, (observed, leaving), now=now, policy=policy)


def _deleted(st: EndpointState, name: str) -> Plan[EndpointState]:
    """Nothing of the endpoint runs any more: whatever is left of its fleets goes (a fleet
    scaled to zero has no replica to observe), then the record."""
    return Plan(
        actions=(ScaleFleets(name, ()), DeleteRecord("Endpoint", name)),
        status=st.model_copy(update={"Routes": []}),
        phase=st.EndpointStatus.value,
        active=True,
        routes=None,
    )


def startup_timeout(variant: ProductionVariant, policy: EndpointPolicy) -> float:
    """How long a replica of ``variant`` may take to answer its first GET /ping."""
    own = variant.ContainerStartupHealthCheckTimeoutInSeconds
    return float(own) if own is not None else policy.startup_timeout_seconds


def _fleets(fleet: _Fleet, desired: DesiredEndpoint, policy: EndpointPolicy) -> list[VariantFleet]:
    return [
        VariantFleet(
            config=fleet.config.EndpointConfigName,
            variant=v,
            model=desired.models[v.ModelName],
            replicas=fleet.counts[v.VariantName],
            startup_timeout_seconds=startup_timeout(v, policy),
        )
        for v in fleet.config.all_variants
    ]


def _begin_or_supersede(
    desired: DesiredEndpoint, st: EndpointState, current: str, now: datetime
) -> EndpointState:
    """Start an update when the spec names another config; abandon one it no longer names."""
    wanted = desired.spec.EndpointConfigName
    d, last = st.Deployment, st.LastDeployment
    if d is not None and d.Phase != "RollingBack":
        problem = None
        if d.TargetEndpointConfigName != wanted:
            problem = f"the endpoint now asks for EndpointConfig {wanted!r}"
        else:
            problem = _config_problem(wanted, desired.config, desired.models)
        if problem is not None:
            d = dep.roll_back(
                d, f"update to {d.TargetEndpointConfigName!r} abandoned: {problem}", now
            )
    if d is None and dep.should_start(wanted, current, None, last):
        problem = _config_problem(wanted, desired.config, desired.models)
        if problem is None:
            return st.model_copy(update={"Deployment": dep.start(wanted, now), "StartFailures": 0})
        last = DeploymentOutcome(
            TargetEndpointConfigName=wanted,
            Result="RolledBack",
            EndTime=now,
            Message=f"update refused: {problem}",
        )
        return _ended(st, last, now)
    return st.model_copy(update={"Deployment": d})


def _ended(st: EndpointState, outcome: DeploymentOutcome, now: datetime) -> EndpointState:
    ok = outcome.Result == "Succeeded"
    conditions = set_condition(
        st.Conditions,
        ConditionType.UPDATED,
        "True" if ok else "False",
        reason=outcome.Result,
        message=outcome.Message,
        now=now,
    )
    return st.model_copy(
        update={
            "Deployment": None,
            "LastDeployment": outcome,
            "Conditions": conditions,
            "StartFailures": 0,
        }
    )


def _plan_fleets(
    desired: DesiredEndpoint,
    st: EndpointState,
    serving_cfg: CreateEndpointConfigRequest,
    replicas: tuple[list[ObservedReplica], list[ObservedReplica]],
    *,
    now: datetime,
    policy: EndpointPolicy,
) -> Plan[EndpointState]:
    observed, leaving = replicas
    current = serving_cfg.EndpointConfigName
    st = _begin_or_supersede(desired, st, current, now)
    d = st.Deployment
    target = d.TargetEndpointConfigName if d is not None else None
    mine = {r.replica_id: r.config or current for r in observed + leaving}
    serving = [r for r in observed if mine[r.replica_id] == current]
    trial = [r for r in observed if mine[r.replica_id] == target]
    actions = _remove([r for r in observed if mine[r.replica_id] not in (current, target)])
    generation = st.ReplicaGeneration

    tf: _Fleet | None = None
    if d is not None:
        report = dep.TargetFleet(
            present=len(trial) + sum(mine[r.replica_id] == target for r in leaving),
            health=desired.target_health,
            alarm_states=desired.alarm_states,
        )
        if d.Phase != "RollingBack" and desired.config is not None:
            cfg = desired.config
            tf = _Fleet(cfg, {v.VariantName: v.InitialInstanceCount for v in cfg.all_variants})
            tf.failures = st.StartFailures
            generation = _plan_fleet(desired, tf, trial, generation, policy=policy, now=now)
            report = dep.TargetFleet(
                ready=tf.ready,
                failure=_failure_text(tf) if tf.failures >= policy.max_start_failures else None,
                present=report.present,
                production_instances=sum(v.InitialInstanceCount for v in cfg.ProductionVariants),
                health=desired.target_health,
                alarm_states=desired.alarm_states,
            )
        deployment_config = desired.spec.DeploymentConfig or DeploymentConfig()
        moved = dep.advance(d, deployment_config, report, now)
        if isinstance(moved, DeploymentState):
            if moved.Phase == "RollingBack":
                tf = None  # its launches are dropped and all of it goes
                actions.extend(_remove(trial))
            st = st.model_copy(
                update={"Deployment": moved, "StartFailures": tf.failures if tf else 0}
            )
        elif moved.Result == "Succeeded" and tf is not None:
            # The new fleet is now the serving one; the old one goes.
            actions.extend(_remove(serving))
            scaling = [initial_scaling(v, now) for v in tf.config.ProductionVariants]
            st = _ended(st, moved, now).model_copy(
                update={
                    "CurrentEndpointConfigName": tf.config.EndpointConfigName,
                    "VariantScaling": scaling,
                    "StartFailures": tf.failures,
                }
            )
            serving_cfg, serving, tf = tf.config, trial, None
        else:
            st = _ended(st, moved, now)
            tf = None
        d = st.Deployment

    # Autoscaling is frozen during an update: the step sizes were worked out from the fleets'
    # sizes, and a rollback must find the old fleet as it left it.
    scaling = _scaling(desired, serving_cfg, st, now, frozen=d is not None)
    counts = {v.VariantName: v.InitialInstanceCount for v in serving_cfg.ShadowProductionVariants}
    counts.update({s.VariantName: s.DesiredInstanceCount for s in scaling})
    sf = _Fleet(serving_cfg, counts)
    # During an update the old fleet has proven it starts; its replacements are not counted.
    sf.failures = st.StartFailures if d is None else 0
    generation = _plan_fleet(desired, sf, serving, generation, policy=policy, now=now)
    actions = sf.actions + (tf.actions if tf else []) + actions

    old_share, new_share = dep.traffic_shares(d)
    routes, prod, shadows = _routes(sf, old_share, trial=False, shadow=True)
    if tf is not None and new_share > 0:
        routes += _routes(
            tf, new_share, trial=d is not None and d.Phase == "Shifting", shadow=False
        )[0]
    st = st.model_copy(
        update={
            "ReplicaGeneration": generation,
            "VariantScaling": scaling,
            "ProductionVariants": prod,
            "ShadowProductionVariants": shadows,
        }
    )
    if d is None and sf.failures >= policy.max_start_failures:
        st = _fail(st.model_copy(update={"StartFailures": sf.failures}), _failure_text(sf), now)
        return _result(
            st,
            actions + _remove([r for r in observed if r.state != "dead"]),
            active=True,
            routes=None,
            endpoint=desired.name,
        )
    fleets = _fleets(sf, desired, policy)
    if tf is not None:
        fleets += _fleets(tf, desired, policy)
    return _result(
        _with_status(st, sf, now),
        actions,
        active=True,
        routes=routes,
        endpoint=desired.name,
        fleets=fleets,
    )


def _with_status(st: EndpointState, sf: _Fleet, now: datetime) -> EndpointState:
    d = st.Deployment
    if d is not None:
        status = (
            EndpointStatus.ROLLING_BACK if d.Phase == "RollingBack" else EndpointStatus.UPDATING
        )
        conditions = set_condition(
            st.Conditions,
            ConditionType.UPDATED,
            "False",
            reason=d.Phase,
            message=d.Message,
            now=now,
        )
        st = st.model_copy(update={"Conditions": conditions})
    elif sf.ready or st.EndpointStatus not in _UNTIL_READY:
        status = EndpointStatus.IN_SERVICE
    else:  # Creating, or Updating its weights and capacities: until every slot serves
        status = st.EndpointStatus
    # Without an update the counter is the serving fleet's; during one, the new fleet's.
    failures = st.StartFailures if d is not None else (0 if sf.ready else sf.failures)
    if sf.ready:
        ready = set_condition(
            st.Conditions,
            ConditionType.READY,
            "True",
            reason="InService",
            message="All replicas ready",
            now=now,
        )
    else:
        starting = (
            st.EndpointStatus == EndpointStatus.CREATING and status == EndpointStatus.CREATING
        )
        ready = set_condition(
            st.Conditions,
            ConditionType.READY,
            "False" if starting else "True",
            reason=status.value,
            message="Replicas starting" if starting else "Replacing replicas",
            now=now,
        )
    return st.model_copy(
        update={"EndpointStatus": status, "StartFailures": failures, "Conditions": ready}
    )
