"""The admission queue, planned purely: ordering, priorities, GPUs, vCPUs and memory, the
clamp of a job larger than the host, the choice of whom to preempt, tenants taking turns; and
the training planner's side: Pending with the reason, MaxPendingTimeInSeconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from core_builders import NOW, at, desired_job, training_spec

from orchestrator.controller.plan.admission import (
    PREEMPT_REQUESTED,
    QUEUED,
    Candidate,
    Demand,
    HostCapacity,
    candidate_of,
    plan_admissions,
    queue_order,
    queue_positions,
)
from orchestrator.controller.plan.training import plan_training_job
from orchestrator.controller.plan.types import Admission, LaunchJob
from orchestrator.resources.training import TrainingJobState


def job(name: str, t: float = 0, **kw: object) -> Candidate:
    return Candidate(name, NOW + timedelta(seconds=t), **kw)  # type: ignore[arg-type]


def admitted(out: dict[str, Admission]) -> list[str]:
    return sorted(n for n, a in out.items() if a.admitted)


def test_order_is_priority_then_creation_then_name() -> None:
    jobs = [
        job("c", 3),
        job("a", 1),
        job("hi", 9, priority=5),
        job("b", 1),
        job("lo", 0, priority=-1),
    ]
    assert [j.name for j in queue_order(jobs)] == ["hi", "a", "b", "c", "lo"]
    running = job("r", 0, holds=True)
    assert queue_positions([*jobs, running]) == {"hi": 1, "a": 2, "b": 3, "c": 4, "lo": 5}


def test_tenants_take_turns_at_equal_priority() -> None:
    # Tenant x submitted three jobs before y's first: at equal priority they alternate.
    jobs = [
        job("x1", 1, tenant="x"),
        job("x2", 2, tenant="x"),
        job("x3", 3, tenant="x"),
        job("y1", 4, tenant="y"),
        job("y2", 5, tenant="y"),
        job("z", 6, tenant="x", priority=1),
    ]
    assert [j.name for j in queue_order(jobs)] == ["z", "x1", "y1", "x2", "y2", "x3"]


# (host, holders, waiting in creation order, admitted, the head's reason)
SLOT = "Waiting for a job slot: 2 of 2 in use (ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS)"
CASES = [
    # slots: two running, two slots: everybody waits, in order
    (HostCapacity(slots=2), ["r1", "r2"], ["a", "b"], ["r1", "r2"], SLOT),
    # one slot free: the first admitted, the second waits
    (
        HostCapacity(slots=3),
        ["r1", "r2"],
        ["a", "b"],
        ["a", "r1", "r2"],
        "Waiting for a job slot: 3 of 3 in use (ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS)",
    ),
    # nothing accounted: every job runs
    (HostCapacity(), ["r1"], ["a", "b"], ["a", "b", "r1"], None),
]


@pytest.mark.parametrize(("host", "holding", "waiting", "expect", "reason"), CASES)
def test_slots(
    host: HostCapacity,
    holding: list[str],
    waiting: list[str],
    expect: list[str],
    reason: str | None,
) -> None:
    jobs = [job(n, holds=True) for n in holding] + [job(n, i + 1) for i, n in enumerate(waiting)]
    out = plan_admissions(jobs, host)
    assert admitted(out) == expect
    heads = [a for a in out.values() if a.position == 1]
    assert [a.reason for a in heads] == ([reason] if reason else [])
    behind = [a for a in out.values() if a.position and a.position > 1]
    assert all(a.reason == QUEUED for a in behind)


def test_strict_order_a_big_head_blocks_smaller_jobs_behind_it() -> None:
    host = HostCapacity(gpus=(0, 1, 2, 3))
    jobs = [
        job("r", holds=True, demand=Demand(gpus=2), held_gpus=(0, 1)),
        job("big", 1, demand=Demand(gpus=4)),
        job("small", 2, demand=Demand(gpus=1)),
    ]
    out = plan_admissions(jobs, host)
    assert admitted(out) == ["r"]
    assert out["big"] == Admission(
        admitted=False, reason="Waiting for 4 GPU(s): 2 of 4 free", position=1
    )
    assert (out["small"].position, out["small"].reason) == (2, QUEUED)


def test_gpus_are_handed_out_lowest_free_first_and_never_shared() -> None:
    host = HostCapacity(gpus=(0, 1, 2, 3))
    jobs = [
        job("r", holds=True, demand=Demand(gpus=1), held_gpus=(1,)),
        job("a", 1, demand=Demand(gpus=2)),
        job("b", 2, demand=Demand(gpus=1)),
        job("c", 3, demand=Demand(gpus=1)),
    ]
    out = plan_admissions(jobs, host)
    assert (out["r"].gpus, out["a"].gpus, out["b"].gpus) == ((1,), (0, 2), (3,))
    assert not out["c"].admitted and out["c"].reason == "Waiting for 1 GPU(s): 0 of 4 free"


def test_more_gpus_than_the_host_has_fail_and_take_no_place() -> None:
    out = plan_admissions(
        [job("huge", demand=Demand(gpus=8), label="ml.p4d.24xlarge"), job("next", 1)],
        HostCapacity(gpus=(0, 1)),
    )
    fail = out["huge"].fail
    assert fail is not None and fail.kind == "CapacityError"
    assert fail.message.startswith("ml.p4d.24xlarge needs 8 GPU(s) and this host has 2")
    assert out["next"].admitted


def test_cpu_and_memory_of_the_host() -> None:
    host = HostCapacity(vcpus=8, memory_mib=32768)
    cpu = candidate_of("a", NOW, {"ResourceConfig": {"InstanceType": "ml.m5.xlarge"}}, {})
    assert cpu.demand == Demand(vcpus=4, memory_mib=16384)
    two = candidate_of(
        "b", at(1), {"ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2}}, {}
    )
    local = candidate_of("c", at(2), {}, {})
    assert local.demand == Demand()  # "local" needs nothing but a slot
    out = plan_admissions([cpu, two, local], host)
    assert admitted(out) == ["a"]
    assert out["b"].reason == "Waiting for 8 vCPU(s): 4 of 8 free"
    mem = plan_admissions(
        [job("m", demand=Demand(memory_mib=40000))], HostCapacity(memory_mib=65536, vcpus=4)
    )
    assert admitted(mem) == ["m"]
    short = plan_admissions(
        [
            job("r", holds=True, demand=Demand(memory_mib=40000)),
            job("m", 1, demand=Demand(memory_mib=30000)),
        ],
        HostCapacity(memory_mib=65536),
    )
    assert short["m"].reason == "Waiting for 30000 MiB of memory: 25536 of 65536 MiB free"


def test_a_job_larger_than_the_host_is_clamped_and_runs_alone() -> None:
    host = HostCapacity(vcpus=2, memory_mib=4096)
    big = job("big", 1, demand=Demand(vcpus=16, memory_mib=65536), label="ml.m5.4xlarge")
    alone = plan_admissions([big], host)
    assert alone["big"].admitted  # the whole host: it runs rather than never
    busy = plan_admissions([job("r", holds=True, demand=Demand(vcpus=1)), big], host)
    assert busy["big"].reason == (
        "Waiting for 2 vCPU(s): 1 of 2 free; ml.m5.4xlarge asks for more than this host has "
        "(16 vCPUs (the host has 2), 65536 MiB of memory (the host has 4096 MiB)): it is "
        "given the whole host and runs alone"
    )


def test_lower_priority_spot_jobs_are_preempted_for_the_head() -> None:
    host = HostCapacity(slots=3)
    jobs = [
        job("spot-old", 0, holds=True, spot=True, priority=0),
        job("spot-new", 5, holds=True, spot=True, priority=0),
        job("firm", 1, holds=True, priority=-5),  # not a spot job: never preempted
        job("urgent", 9, priority=10),
        job("later", 10, priority=10),
    ]
    out = plan_admissions(jobs, host)
    assert out["spot-new"].preempt == "Preempted: job 'urgent' (Priority 10) needs its capacity"
    assert out["spot-old"].preempt == "" and out["firm"].preempt == ""
    assert out["urgent"].reason.endswith("; preempting lower-priority spot job(s): spot-new")
    assert out["later"].reason == QUEUED


def test_no_preemption_when_it_would_not_be_enough_or_not_lower() -> None:
    host = HostCapacity(gpus=(0, 1))
    jobs = [
        job("spot", holds=True, spot=True, demand=Demand(gpus=1), held_gpus=(0,)),
        job("firm", holds=True, demand=Demand(gpus=1), held_gpus=(1,)),
        job("head", 1, priority=5, demand=Demand(gpus=2)),
    ]
    out = plan_admissions(jobs, host)
    assert out["spot"].preempt == ""  # freeing it leaves one GPU: not enough
    same = plan_admissions(
        [job("spot", holds=True, spot=True), job("head", 1)], HostCapacity(slots=1)
    )
    assert same["spot"].preempt == ""  # equal priority: it waits its turn


def test_a_preempt_request_marks_the_running_job() -> None:
    out = plan_admissions([job("s", holds=True, spot=True, preempt_requested=True)], HostCapacity())
    assert out["s"] == Admission(preempt=PREEMPT_REQUESTED)


def test_candidate_reads_priority_spot_and_whether_it_holds() -> None:
    spec = {
        "Priority": 7,
        "EnableManagedSpotTraining": True,
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge"},
    }
    c = candidate_of(
        "j", NOW, spec, {"Attempt": 1, "SecondaryStatus": "Training", "AllocatedGpus": [2]}
    )
    assert (c.priority, c.spot, c.holds, c.held_gpus, c.demand.gpus) == (7, True, True, (2,), 1)
    requeued = candidate_of("j", NOW, spec, {"Attempt": 1, "SecondaryStatus": "Pending"})
    assert not requeued.holds


# --- the training planner's side -----------------------------------------------------------
WAIT = Admission(admitted=False, reason="Waiting for a job slot: 5 of 5 in use", position=3)


def test_waiting_is_pending_with_the_reason_and_writes_nothing_new_next_pass() -> None:
    plan = plan_training_job(desired_job(), None, NOW, admission=WAIT)
    st = plan.status
    assert plan.actions == () and plan.active
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("InProgress", "Pending")
    assert st.SecondaryStatusTransitions[-1].StatusMessage == WAIT.reason
    again = plan_training_job(desired_job(status=st), None, at(30), admission=WAIT)
    assert again.status == st  # unchanged: the reconciler writes nothing
    other = Admission(admitted=False, reason=QUEUED, position=9)
    moved = plan_training_job(desired_job(status=st), None, at(31), admission=other).status
    assert len(moved.SecondaryStatusTransitions) == 1
    assert moved.SecondaryStatusTransitions[-1].StatusMessage == QUEUED
    launched = plan_training_job(desired_job(status=moved), None, at(40), admission=Admission())
    assert [type(a) for a in launched.actions] == [LaunchJob]
    assert [t.Status for t in launched.status.SecondaryStatusTransitions] == ["Pending", "Starting"]


def test_max_pending_time_stops_a_job_that_waited_too_long() -> None:
    spec = training_spec(
        StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxPendingTimeInSeconds": 7200}
    )
    early = plan_training_job(desired_job(spec=spec), None, at(7199), admission=WAIT)
    assert early.active and early.requeue_after is not None and early.requeue_after <= 1.0
    late = plan_training_job(
        desired_job(spec=spec, status=early.status), None, at(7200), admission=WAIT
    )
    st = TrainingJobState.model_validate(late.status)
    assert (st.TrainingJobStatus, st.SecondaryStatus, late.active) == ("Stopped", "Stopped", False)
    assert st.StopReason is not None and st.StopReason.startswith(
        "MaxPendingTimeExceeded: the job waited 7200 s for capacity, longer than "
        "StoppingCondition.MaxPendingTimeInSeconds=7200"
    )
    assert late.actions == ()
    # Admitted in time: the limit no longer applies.
    ran = plan_training_job(
        desired_job(spec=spec, status=early.status), None, at(9000), admission=Admission()
    )
    assert [type(a) for a in ran.actions] == [LaunchJob]
