"""The blue/green update of an endpoint as a state machine. Pure: the clock is an argument.

    (none) --start--> Provisioning --target fleet ready--> Shifting --100% baked--> Terminating
                           |                                  |                        |
                           +-- start failures, timeout -------+-- alarm, timeout       |
                           v                                  v                        v
                       RollingBack --target fleet gone--> RolledBack      Succeeded (after
                                                                           TerminationWait)

The old fleet (``CurrentEndpointConfigName``) serves until Terminating; the new one (the
target) gets ``TrafficPercent`` of production traffic while Shifting, all of it from
Terminating. A rollback puts all traffic back on the old fleet first and removes the new one.
``advance`` returns the next state, or the outcome once the update is over; the endpoint
planner supplies what it saw of the target fleet as a ``TargetFleet``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.controller.plan.types import FleetHealth
from orchestrator.resources.endpoints import (
    CapacitySize,
    DeploymentConfig,
    DeploymentOutcome,
    DeploymentState,
    RollbackAlarm,
    TrafficRoutingConfig,
)


@dataclass(frozen=True)
class TargetFleet:
    """The new fleet as the endpoint planner saw it this pass."""

    ready: bool = False  # every slot has a ready replica
    failure: str | None = None  # set once its start failures reached the limit
    present: int = 0  # replicas of it still running or on their way out
    production_instances: int = 1  # its production instance count (INSTANCE_COUNT steps)
    health: FleetHealth | None = None  # its traffic since the current step began
    # The states of the metric alarms named by AlarmName alone (``orch alarms``).
    alarm_states: Mapping[str, str] = field(default_factory=dict)


def should_start(
    target: str, current: str, deployment: DeploymentState | None, last: DeploymentOutcome | None
) -> bool:
    """Whether to start moving to ``target`` (a config rolled back once is not retried until
    another UpdateEndpoint clears ``LastDeployment``)."""
    if target == current or deployment is not None:
        return False
    return not (
        last is not None and last.Result == "RolledBack" and last.TargetEndpointConfigName == target
    )


def start(target: str, now: datetime) -> DeploymentState:
    return DeploymentState(
        TargetEndpointConfigName=target,
        Phase="Provisioning",
        StartTime=now,
        Message=f"starting the fleet of EndpointConfig {target!r}",
    )


def roll_back(d: DeploymentState, why: str, now: datetime) -> DeploymentState:
    """All traffic back on the old fleet; the new one goes. ``why`` becomes the outcome's
    message."""
    if d.Phase == "RollingBack":
        return d
    return d.model_copy(
        update={"Phase": "RollingBack", "TrafficPercent": 0.0, "StepStartTime": now, "Message": why}
    )


def _percent(size: CapacitySize, instances: int) -> float:
    if size.Type == "CAPACITY_PERCENT":
        return float(size.Value)
    return min(100.0, 100.0 * size.Value / max(1, instances))


def first_step(routing: TrafficRoutingConfig, instances: int) -> float:
    """The share of production traffic (percent) the new fleet gets first."""
    if routing.Type == "CANARY" and routing.CanarySize is not None:
        return min(100.0, _percent(routing.CanarySize, instances))
    if routing.Type == "LINEAR" and routing.LinearStepSize is not None:
        return min(100.0, _percent(routing.LinearStepSize, instances))
    return 100.0


def next_step(routing: TrafficRoutingConfig, percent: float, instances: int) -> float:
    if routing.Type == "LINEAR" and routing.LinearStepSize is not None:
        return min(100.0, percent + _percent(routing.LinearStepSize, instances))
    return 100.0


def alarm_value(alarm: RollbackAlarm, health: FleetHealth) -> float | None:
    if alarm.MetricName == "Invocation5XXErrorRate":
        return health.errors_5xx / health.invocations if health.invocations else None
    if alarm.MetricName == "ModelLatency":
        return health.model_latency_p99_us
    return health.overhead_latency_p99_us


def fired_alarm(
    alarms: tuple[RollbackAlarm, ...],
    health: FleetHealth | None,
    states: Mapping[str, str] | None = None,
) -> str | None:
    """A message for the first alarm that fired, or None: a metric alarm (AlarmName alone) in
    ALARM, or one on the new fleet's traffic over its threshold."""
    for alarm in alarms:
        if alarm.MetricName is None or alarm.Threshold is None:
            if (states or {}).get(alarm.AlarmName) == "ALARM":
                return f"metric alarm {alarm.AlarmName!r} is in ALARM"
            continue
        if health is None:
            continue
        value = alarm_value(alarm, health)
        enough = health.invocations >= alarm.MinInvocations
        if enough and value is not None and value > alarm.Threshold:
            return (
                f"alarm {alarm.AlarmName!r} fired: {alarm.MetricName} {value:g} > "
                f"{alarm.Threshold:g} over {health.invocations} invocations of the new fleet"
            )
    return None


def _since(t: datetime | None, now: datetime) -> float:
    return 0.0 if t is None else (now - t).total_seconds()


def advance(
    d: DeploymentState, config: DeploymentConfig, fleet: TargetFleet, now: datetime
) -> DeploymentState | DeploymentOutcome:
    """One pass of the state machine."""
    policy = config.BlueGreenUpdatePolicy
    routing = policy.TrafficRoutingConfiguration
    if d.Phase == "RollingBack":
        if fleet.present:
            return d
        return DeploymentOutcome(
            TargetEndpointConfigName=d.TargetEndpointConfigName,
            Result="RolledBack",
            EndTime=now,
            Message=d.Message,
        )
    limit = policy.MaximumExecutionTimeoutInSeconds
    if d.Phase != "Terminating" and limit is not None and _since(d.StartTime, now) > limit:
        return roll_back(
            d, f"the update exceeded MaximumExecutionTimeoutInSeconds ({limit} s)", now
        )
    if fleet.failure is not None:
        return roll_back(d, f"the new fleet failed to start: {fleet.failure}", now)
    if d.Phase == "Provisioning":
        if not fleet.ready:
            return d
        percent = first_step(routing, fleet.production_instances)
        return d.model_copy(
            update={
                "Phase": "Shifting",
                "TrafficPercent": percent,
                "StepStartTime": now,
                "Message": f"{percent:g}% of traffic on the new fleet",
            }
        )
    if d.Phase == "Shifting":
        alarm = fired_alarm(config.alarms, fleet.health, fleet.alarm_states)
        if alarm is not None:
            return roll_back(d, f"{alarm} at {d.TrafficPercent:g}% of traffic", now)
        if _since(d.StepStartTime, now) < routing.WaitIntervalInSeconds:
            return d
        if d.TrafficPercent >= 100.0:
            return d.model_copy(
                update={
                    "Phase": "Terminating",
                    "StepStartTime": now,
                    "Message": "all traffic on the new fleet; the old fleet waits, then goes",
                }
            )
        percent = next_step(routing, d.TrafficPercent, fleet.production_instances)
        return d.model_copy(
            update={
                "TrafficPercent": percent,
                "StepStartTime": now,
                "Message": f"{percent:g}% of traffic on the new fleet",
            }
        )
    # Terminating
    if _since(d.StepStartTime, now) < policy.TerminationWaitInSeconds:
        return d
    return DeploymentOutcome(
        TargetEndpointConfigName=d.TargetEndpointConfigName,
        Result="Succeeded",
        EndTime=now,
        Message=f"now serving EndpointConfig {d.TargetEndpointConfigName!r}",
    )


def traffic_shares(d: DeploymentState | None) -> tuple[float, float]:
    """(old fleet, new fleet) shares of production traffic."""
    if d is None or d.Phase in ("Provisioning", "RollingBack"):
        return 1.0, 0.0
    if d.Phase == "Terminating":
        return 0.0, 1.0
    p = min(100.0, max(0.0, d.TrafficPercent)) / 100.0
    return 1.0 - p, p
