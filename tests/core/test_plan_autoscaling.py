"""autoscale as a table: (variant, state, load, now) -> next scaling state. No I/O."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from core_builders import NOW, at

from orchestrator.controller.plan.autoscaling import autoscale, target_count
from orchestrator.controller.plan.types import VariantLoad
from orchestrator.resources.endpoints import (
    ProductionVariant,
    TargetTrackingScalingPolicyConfiguration,
    VariantScalingState,
)


def variant(
    initial: int = 2, low: int = 1, high: int = 10, tracking: dict[str, Any] | None = None,
    **scaling: Any,
) -> ProductionVariant:  # fmt: skip
    doc: dict[str, Any] = {"MinInstanceCount": low, "MaxInstanceCount": high, **scaling}
    if tracking is not None:
        doc["TargetTracking"] = {"TargetValue": 10.0, **tracking}
    return ProductionVariant.model_validate(
        {
            "VariantName": "v1",
            "ModelName": "model-1",
            "InitialInstanceCount": initial,
            "ManagedInstanceScaling": doc,
        }
    )


TT = variant(tracking={})  # target 10 invocations/min per instance, cooldowns 30 s out, 300 s in


def state(count: int, **fields: Any) -> VariantScalingState:
    return VariantScalingState(
        VariantName="v1", DesiredInstanceCount=count, LastActiveTime=fields.pop("active", NOW),
        **fields,
    )  # fmt: skip


def ipm(per_minute: float, **fields: Any) -> VariantLoad:
    return VariantLoad(invocations_per_minute=per_minute, last_invocation_at=at(0), **fields)


@dataclass(frozen=True)
class Case:
    id: str
    variant: ProductionVariant
    state: VariantScalingState
    load: VariantLoad | None
    now: datetime
    count: int


CASES = [
    Case("scale out by the formula", TT, state(2), ipm(55), at(10), 6),
    Case("scale out waits the out cooldown", TT, state(2, LastScaleOutTime=at(-20)), ipm(55), at(0), 2),
    Case("scale out after the out cooldown", TT, state(2, LastScaleOutTime=at(-30)), ipm(55), at(0), 6),
    Case("scale in by the formula, not one at a time", TT, state(8), ipm(25), at(0), 3),
    Case("scale in waits the in cooldown after a scale-out", TT,
         state(8, LastScaleOutTime=at(-299)), ipm(25), at(0), 8),
    Case("scale in waits the in cooldown after a scale-in", TT,
         state(8, LastScaleInTime=at(-299)), ipm(25), at(0), 8),
    Case("scale in after both cooldowns", TT,
         state(8, LastScaleOutTime=at(-300), LastScaleInTime=at(-300)), ipm(25), at(0), 3),
    Case("DisableScaleIn never scales in", variant(tracking={"DisableScaleIn": True}),
         state(8), ipm(25), at(0), 8),
    Case("within the 10% band: no change (above)", TT, state(4), ipm(44), at(0), 4),
    Case("within the 10% band: no change (below)", TT, state(4), ipm(36), at(0), 4),
    Case("just outside the band moves", TT, state(4), ipm(45), at(0), 5),
    Case("clamped to MaxInstanceCount", TT, state(2), ipm(1000), at(0), 10),
    Case("clamped to MinInstanceCount", variant(low=3, initial=4, tracking={}),
         state(4), ipm(0), at(0), 3),
    Case("no load observed: held", TT, state(8), None, at(0), 8),
    Case("concurrency metric", variant(tracking={
         "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"}),
         state(2), VariantLoad(concurrency=41.0, invocations_per_minute=1.0), at(0), 5),
    Case("no TargetTracking: the initial count", variant(initial=3), state(3), ipm(1000), at(0), 3),
    Case("no ManagedInstanceScaling: the initial count", ProductionVariant(
         VariantName="v1", ModelName="model-1", InitialInstanceCount=2), state(2), ipm(999), at(0), 2),
    Case("idle before ScaleToZeroAfterIdleSeconds: kept", variant(low=0, tracking={}),
         state(2), VariantLoad(last_invocation_at=NOW), at(299), 1),
    Case("idle past ScaleToZeroAfterIdleSeconds: zero", variant(low=0, tracking={}),
         state(2), VariantLoad(last_invocation_at=NOW), at(300), 0),
    Case("scale to zero without TargetTracking", variant(low=0, initial=1),
         state(1), VariantLoad(), at(300), 0),
    Case("no scale to zero with MinInstanceCount 1", variant(tracking={}),
         state(2), VariantLoad(), at(3000), 1),
    Case("no scale to zero while a request waits", variant(low=0, tracking={}),
         state(1), VariantLoad(waiting=1), at(3000), 1),
    Case("no scale to zero with requests in flight", variant(low=0, tracking={}),
         state(1), VariantLoad(concurrency=0.5), at(3000), 1),
    Case("zero stays zero while idle", variant(low=0, tracking={}),
         state(0, active=NOW), VariantLoad(last_invocation_at=NOW), at(9000), 0),
    Case("a waiting request wakes at once, cooldown or not", variant(low=0, tracking={}),
         state(0, LastScaleOutTime=at(-1)), VariantLoad(waiting=3), at(0), 1),
    Case("a new invocation wakes", variant(low=0, initial=2),
         state(0, active=at(-600)), VariantLoad(last_invocation_at=at(-1)), at(0), 2),
    Case("waking sizes by the load", variant(low=0, tracking={}),
         state(0), VariantLoad(waiting=1, invocations_per_minute=35), at(0), 4),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_autoscale_table(case: Case) -> None:
    out = autoscale(case.variant, case.state, case.load, case.now)
    assert out.DesiredInstanceCount == case.count
    assert out.VariantName == "v1"


def test_first_pass_starts_at_the_initial_count_active_from_now() -> None:
    out = autoscale(TT, None, ipm(1000), NOW)
    assert (out.DesiredInstanceCount, out.LastActiveTime, out.LastScaleOutTime) == (2, NOW, None)


def test_moves_record_their_time_and_holds_record_nothing() -> None:
    out = autoscale(TT, state(2), ipm(55), at(5))
    assert (out.LastScaleOutTime, out.LastScaleInTime) == (at(5), None)
    out = autoscale(TT, state(8), ipm(25), at(5))
    assert (out.LastScaleOutTime, out.LastScaleInTime) == (None, at(5))
    held = autoscale(TT, state(4), ipm(40), at(5))
    assert (held.LastScaleOutTime, held.LastScaleInTime) == (None, None)


def test_last_active_time_follows_invocations() -> None:
    v = variant(low=0, tracking={})
    st = state(1, active=NOW)
    st = autoscale(v, st, VariantLoad(last_invocation_at=at(200)), at(250))
    assert st.LastActiveTime == at(200)
    # 300 s after the last invocation, not after creation.
    assert (
        autoscale(v, st, VariantLoad(last_invocation_at=at(200)), at(499)).DesiredInstanceCount == 1
    )
    assert (
        autoscale(v, st, VariantLoad(last_invocation_at=at(200)), at(500)).DesiredInstanceCount == 0
    )


def test_frozen_holds_the_count_but_still_wakes_from_zero() -> None:
    assert autoscale(TT, state(2), ipm(1000), at(0), frozen=True).DesiredInstanceCount == 2
    assert autoscale(TT, state(8), ipm(0), at(0), frozen=True).DesiredInstanceCount == 8
    v = variant(low=0, tracking={})
    assert autoscale(v, state(2), VariantLoad(), at(9000), frozen=True).DesiredInstanceCount == 2
    woken = autoscale(v, state(0), VariantLoad(waiting=1), at(0), frozen=True)
    assert woken.DesiredInstanceCount == 1


@pytest.mark.parametrize("per_minute", [9.0, 10.0, 10.5, 19.9, 33.3, 47.0, 95.0, 99.99])
def test_steady_load_settles_and_never_flaps(per_minute: float) -> None:
    """Whatever the count starts at, a steady load moves it at most once, then never again."""
    for start in (1, 5, 10):
        st = state(start)
        counts = []
        for k in range(200):  # 200 passes, one a minute: every cooldown expires many times
            st = autoscale(TT, st, ipm(per_minute), at(60 * k))
            counts.append(st.DesiredInstanceCount)
        changes = sum(a != b for a, b in itertools.pairwise(counts))
        assert changes <= 1, (per_minute, start, counts[:10])
        per_instance = per_minute / counts[-1]
        assert per_instance <= 10.0 * 1.1 or counts[-1] == 10


def test_noisy_load_near_the_target_does_not_flap() -> None:
    st = state(5)
    for k in range(300):
        noise = (-1) ** k * 4.0  # 46 and 54 invocations/min: within 10% of 5 x 10
        st = autoscale(TT, st, ipm(50 + noise), at(60 * k))
        assert st.DesiredInstanceCount == 5


def test_target_count_is_not_fooled_by_float_error() -> None:
    policy = TargetTrackingScalingPolicyConfiguration(TargetValue=0.1)
    assert target_count(policy, 0.3, 1) == 3


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"MinInstanceCount": 5, "MaxInstanceCount": 2}, "must not exceed MaxInstanceCount"),
        ({"MaxInstanceCount": 2, "TargetTracking": {"TargetValue": 0}}, "TargetValue"),
        ({"MaxInstanceCount": 2, "ScaleToZeroAfterIdleSeconds": 1}, "ScaleToZeroAfterIdleSeconds"),
    ],
)
def test_bad_scaling_settings_are_refused_naming_the_field(
    doc: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        ProductionVariant.model_validate(
            {"VariantName": "v1", "ModelName": "m", "ManagedInstanceScaling": doc}
        )
