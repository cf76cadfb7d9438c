"""Planning for endpoints: keep every production variant at its replica count. Pure.

Each variant has ``InitialInstanceCount`` slots; each slot holds at most one replica. Dead or
stuck replicas are removed and replaced under a new name; too many start failures in a row fail
the endpoint with the last replica's own message. The plan also yields the routing table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.controller.plan.types import (
    Action,
    DeleteRecord,
    LaunchReplica,
    ObservedReplica,
    Plan,
    RemoveReplica,
    ReplicaLaunch,
    VariantRoute,
)
from orchestrator.resources.common import set_condition
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
    EndpointStatus,
    ProductionVariantSummary,
)
from orchestrator.resources.models import CreateModelRequest

RESYNC = 1.0
FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class DesiredEndpoint:
    name: str
    spec: CreateEndpointRequest
    status: EndpointState
    config: CreateEndpointConfigRequest | None
    models: dict[str, CreateModelRequest] = field(default_factory=dict)
    delete_requested: bool = False


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
    routes: list[VariantRoute] | None = None,
) -> Plan:
    return Plan(
        actions=tuple(actions),
        status=st.model_dump(mode="json"),
        phase=st.EndpointStatus.value,
        active=active,
        requeue_after=RESYNC if active else None,
        routes=tuple(routes or ()),
    )


def _fail(st: EndpointState, reason: str, now: datetime) -> EndpointState:
    return st.model_copy(
        update={
            "EndpointStatus": EndpointStatus.FAILED,
            "FailureReason": reason[:FAILURE_REASON_LIMIT],
            "Conditions": set_condition(
                st.Conditions, "Ready", "False", reason="Failed", message=reason, now=now
            ),
        }
    )


def _config_problem(desired: DesiredEndpoint) -> str | None:
    if desired.config is None:
        return (
            f"EndpointConfig {desired.spec.EndpointConfigName!r} does not exist; create it, "
            "then delete and re-create the endpoint"
        )
    for v in desired.config.ProductionVariants:
        model = desired.models.get(v.ModelName)
        if model is None:
            return f"variant {v.VariantName!r}: Model {v.ModelName!r} does not exist"
        if len(model.serving_containers) > 1:
            return (
                f"variant {v.VariantName!r}: Model {v.ModelName!r} is an inference pipeline "
                f"({len(model.serving_containers)} containers); this version serves one container"
            )
    return None


def plan_endpoint(
    desired: DesiredEndpoint,
    observed: list[ObservedReplica],
    now: datetime,
    policy: EndpointPolicy | None = None,
) -> Plan:
    policy = policy or EndpointPolicy()
    st = desired.status
    # Replicas on their way out still count as present until they are gone, so an endpoint
    # is deleted only once nothing of it runs; they take no slot and get no traffic.
    leaving = [r for r in observed if r.state == "terminating"]
    observed = [r for r in observed if r.state != "terminating"]
    remove_all: list[Action] = [RemoveReplica(r.endpoint, r.replica_id) for r in observed + leaving]

    if desired.delete_requested:
        st = st.model_copy(update={"EndpointStatus": EndpointStatus.DELETING})
        if not observed and not leaving:
            return _result(st, [DeleteRecord("Endpoint", desired.name)], active=True)
        return _result(st, remove_all, active=True)

    if st.EndpointStatus == EndpointStatus.FAILED:
        return _result(st, remove_all, active=bool(remove_all))

    problem = _config_problem(desired)
    if problem is not None:
        st = _fail(st, problem, now)
        return _result(st, remove_all, active=bool(remove_all))
    assert desired.config is not None

    actions: list[Action] = []
    by_slot: dict[tuple[str, int], list[ObservedReplica]] = {}
    for r in observed:
        by_slot.setdefault((r.variant, r.slot), []).append(r)
    wanted = {
        (v.VariantName, k)
        for v in desired.config.ProductionVariants
        for k in range(v.InitialInstanceCount)
    }
    for key, replicas in by_slot.items():
        if key not in wanted:
            actions.extend(RemoveReplica(r.endpoint, r.replica_id) for r in replicas)

    generation = st.ReplicaGeneration
    failures = st.StartFailures
    last_failure = ""
    summaries: list[ProductionVariantSummary] = []
    routes: list[VariantRoute] = []
    all_ready = True
    for v in desired.config.ProductionVariants:
        urls: list[str] = []
        for k in range(v.InitialInstanceCount):
            replicas = sorted(by_slot.get((v.VariantName, k), []), key=lambda r: r.generation)
            # Newest wins; older leftovers of the same slot go.
            actions.extend(RemoveReplica(r.endpoint, r.replica_id) for r in replicas[:-1])
            current = replicas[-1] if replicas else None
            replace = current is None
            if current is not None and current.state == "dead":
                actions.append(RemoveReplica(current.endpoint, current.replica_id))
                failures += 1
                last_failure = f"replica {current.replica_id} exited: {current.message}"
                replace = True
            elif (
                current is not None
                and current.state == "starting"
                and current.started_at
                and (now - current.started_at).total_seconds() > policy.startup_timeout_seconds
            ):
                actions.append(RemoveReplica(current.endpoint, current.replica_id))
                failures += 1
                last_failure = (
                    f"replica {current.replica_id} did not answer GET /ping within "
                    f"{policy.startup_timeout_seconds:g} s"
                )
                replace = True
            if current is not None and current.state == "ready":
                urls.append(current.url or "")
            else:
                all_ready = False
            if replace and failures < policy.max_start_failures:
                generation += 1
                actions.append(
                    LaunchReplica(
                        ReplicaLaunch(
                            endpoint=desired.name,
                            variant=v.VariantName,
                            slot=k,
                            replica_id=replica_id(v.VariantName, k, generation),
                            model_name=v.ModelName,
                            model=desired.models[v.ModelName],
                            instance_type=v.InstanceType,
                            generation=generation,
                        )
                    )
                )
        routes.append(VariantRoute(v.VariantName, v.InitialVariantWeight, tuple(urls)))
        summaries.append(
            ProductionVariantSummary(
                VariantName=v.VariantName,
                CurrentWeight=v.InitialVariantWeight,
                DesiredWeight=v.InitialVariantWeight,
                CurrentInstanceCount=len(urls),
                DesiredInstanceCount=v.InitialInstanceCount,
            )
        )

    st = st.model_copy(update={"ReplicaGeneration": generation, "ProductionVariants": summaries})
    if failures >= policy.max_start_failures:
        reason = (
            f"{failures} replicas failed in a row; last: {last_failure}"
            if last_failure
            else f"{failures} replicas failed in a row"
        )
        st = _fail(st.model_copy(update={"StartFailures": failures}), reason, now)
        return _result(
            st,
            actions
            + [RemoveReplica(r.endpoint, r.replica_id) for r in observed if r.state != "dead"],
            active=True,
        )
    if all_ready:
        failures = 0
        if st.EndpointStatus != EndpointStatus.IN_SERVICE:
            st = st.model_copy(update={"EndpointStatus": EndpointStatus.IN_SERVICE})
        conditions = set_condition(
            st.Conditions,
            "Ready",
            "True",
            reason="InService",
            message="All replicas ready",
            now=now,
        )
    else:
        waiting = (
            "Replicas starting"
            if st.EndpointStatus == EndpointStatus.CREATING
            else ("Replacing replicas")
        )
        conditions = set_condition(
            st.Conditions,
            "Ready",
            "True" if st.EndpointStatus == EndpointStatus.IN_SERVICE else "False",
            reason=st.EndpointStatus.value,
            message=waiting,
            now=now,
        )
    st = st.model_copy(update={"StartFailures": failures, "Conditions": conditions})
    return _result(st, actions, active=True, routes=routes)
