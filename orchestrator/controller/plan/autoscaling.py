"""Target-tracking autoscaling of one endpoint variant. Pure: the clock is an argument.

The rule is the Kubernetes HPA's: ``desired = ceil(total_metric / TargetValue)``, left alone
while the per-instance metric is within 10% of the target, clamped to the variant's bounds.
Because the formula depends on the load only (not on the current count), a steady load gives
the same answer every pass: the count settles after one move and never flaps.

Cooldowns: a scale-out waits ``ScaleOutCooldown`` after the last scale-out; a scale-in waits
``ScaleInCooldown`` after the last scale-out and the last scale-in, and never happens with
``DisableScaleIn``. A variant with ``MinInstanceCount: 0`` goes to zero replicas after
``ScaleToZeroAfterIdleSeconds`` without an invocation, and wakes (at least one replica, no
cooldown) as soon as a request waits for it or a new invocation is seen.

Without a load observation for the variant nothing moves (the HPA also holds when its metrics
are missing): a caller that measures no traffic, such as the Kubernetes operator whose HPA does
this job, must not see its variants scaled in to their minimum.
"""

from __future__ import annotations

import math
from datetime import datetime

from orchestrator.controller.plan.types import VariantLoad
from orchestrator.resources.endpoints import (
    CONCURRENT_REQUESTS,
    ManagedInstanceScaling,
    ProductionVariant,
    TargetTrackingScalingPolicyConfiguration,
    VariantScalingState,
)

TOLERANCE = 0.1


def initial_scaling(variant: ProductionVariant, now: datetime) -> VariantScalingState:
    """A variant's state when its fleet starts serving: its initial count, active from now."""
    return VariantScalingState(
        VariantName=variant.VariantName,
        DesiredInstanceCount=variant.InitialInstanceCount,
        LastActiveTime=now,
    )


def apply_override(
    variant: ProductionVariant,
    state: VariantScalingState | None,
    count: int,
    generation: int,
    now: datetime,
) -> VariantScalingState:
    """An autoscaled variant after UpdateEndpointWeightsAndCapacities asked for ``count``
    instances (request ``generation``): the count is set once, within the variant's bounds,
    as a scaling decision made now (the cooldowns count from it); the autoscaler goes on from
    there. A generation already applied changes nothing."""
    if state is None:
        state = initial_scaling(variant, now)
    if state.OverrideGeneration == generation:
        return state
    update: dict[str, object] = {"OverrideGeneration": generation, "LastActiveTime": now}
    scaling = variant.scaling
    if scaling is not None:
        low, high = _bounds(scaling)
        wanted = min(max(count, low), high)
        current = state.DesiredInstanceCount
        update["DesiredInstanceCount"] = wanted
        if wanted > current:
            update["LastScaleOutTime"] = now
        elif wanted < current:
            update["LastScaleInTime"] = now
    return state.model_copy(update=update)


def metric_total(policy: TargetTrackingScalingPolicyConfiguration, load: VariantLoad) -> float:
    """The policy's metric summed over the variant's replicas."""
    if policy.PredefinedMetricType == CONCURRENT_REQUESTS:
        return load.concurrency
    return load.invocations_per_minute


def _elapsed(since: datetime | None, now: datetime) -> float:
    return math.inf if since is None else (now - since).total_seconds()


def target_count(
    policy: TargetTrackingScalingPolicyConfiguration, total: float, current: int
) -> int:
    """The HPA formula, unclamped; ``current`` when the metric is within the tolerance band."""
    if current > 0:
        ratio = total / current / policy.TargetValue
        if abs(ratio - 1.0) <= TOLERANCE + 1e-9:  # 44 / 4 / 10 is 1.1, not 1.1000000000000001
            return current
    # A float error must not add a replica: 30.000000001 / 10 is 3, not 4.
    return math.ceil(round(total / policy.TargetValue, 9))


def _bounds(scaling: ManagedInstanceScaling) -> tuple[int, int]:
    return max(1, scaling.MinInstanceCount), scaling.MaxInstanceCount


def autoscale(
    variant: ProductionVariant,
    state: VariantScalingState | None,
    load: VariantLoad | None,
    now: datetime,
    *,
    frozen: bool = False,
) -> VariantScalingState:
    """The variant's scaling state after this pass (``DesiredInstanceCount`` is the answer).

    ``frozen`` (a blue/green update in progress) holds the count, except that a variant scaled
    to zero still wakes for a waiting request: holding it would leave that request hanging
    for the whole update.
    """
    if state is None:
        return initial_scaling(variant, now)
    scaling = variant.scaling
    if scaling is None:
        return state.model_copy(update={"DesiredInstanceCount": variant.InitialInstanceCount})
    if load is None:
        return state
    current = state.DesiredInstanceCount
    active = state.LastActiveTime
    invoked = load.last_invocation_at is not None and (
        active is None or load.last_invocation_at > active
    )
    if invoked:
        active = load.last_invocation_at
    busy = load.concurrency > 0 or load.waiting > 0
    if busy:
        active = now
    state = state.model_copy(update={"LastActiveTime": active})
    low, high = _bounds(scaling)
    policy = scaling.TargetTracking

    if current == 0:
        if not (busy or invoked):
            return state
        wanted = variant.InitialInstanceCount
        if policy is not None:
            wanted = target_count(policy, metric_total(policy, load), 0)
        return state.model_copy(
            update={"DesiredInstanceCount": min(max(wanted, low), high), "LastScaleOutTime": now}
        )
    if frozen:
        return state
    if (
        scaling.MinInstanceCount == 0
        and not busy
        and _elapsed(active, now) >= scaling.ScaleToZeroAfterIdleSeconds
    ):
        return state.model_copy(update={"DesiredInstanceCount": 0, "LastScaleInTime": now})
    if not low <= current <= high:  # the bounds changed: back inside at once
        return state.model_copy(update={"DesiredInstanceCount": min(max(current, low), high)})
    if policy is None:
        return state.model_copy(
            update={"DesiredInstanceCount": min(max(variant.InitialInstanceCount, low), high)}
        )
    wanted = min(max(target_count(policy, metric_total(policy, load), current), low), high)
    if wanted > current and _elapsed(state.LastScaleOutTime, now) >= policy.ScaleOutCooldown:
        return state.model_copy(update={"DesiredInstanceCount": wanted, "LastScaleOutTime": now})
    if (
        wanted < current
        and not policy.DisableScaleIn
        and _elapsed(state.LastScaleOutTime, now) >= policy.ScaleInCooldown
        and _elapsed(state.LastScaleInTime, now) >= policy.ScaleInCooldown
    ):
        return state.model_copy(update={"DesiredInstanceCount": wanted, "LastScaleInTime": now})
    return state
