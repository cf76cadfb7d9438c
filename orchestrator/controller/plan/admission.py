"""Admission: which training jobs may launch an attempt now, which wait, and why. Pure.

Capacity is counted per resource: job slots (``ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS``),
GPUs (device indexes, from the inventory), vCPUs and memory of the host (the instance type's
size times ``InstanceCount``; ``local`` needs none). A resource the host does not account
(``None`` in ``HostCapacity``: Kubernetes, whose scheduler places GPUs, CPU and memory) is not
checked. A job larger than the host in vCPUs or memory is clamped to the whole host: it runs
alone rather than never (its Pending message says so); a job needing more GPUs than the host
has can never run and fails with ``CapacityError``.

The queue is ordered by ``Priority`` (higher first), then round robin between tenants at equal
priority (there are no tenants yet: every job has the tenant ``""``, the seam for per-tenant
fairness once identities exist), then creation time, then name. ``queue_order`` is the one
ordering: the reconciler admits by it and the API computes ``QueuePosition`` from it.

Strict order: the first waiting job that does not fit blocks every job behind it, even smaller
ones that would fit (no backfill). A large job is then never starved by a stream of small
ones, and the order users see is the order jobs start; the price is capacity left idle while
the head waits. The jobs behind the head say only that they are queued (a constant reason, so
a queue of 10,000 jobs costs no status write per pass; their position is computed on read).

Preemption: when the head does not fit and running spot jobs (``EnableManagedSpotTraining``)
of lower priority would free enough, those (lowest priority first, the most recently created
first among equals) get ``Admission.preempt`` naming the job that needs their capacity; a
preempt request on a record (``orch jobs preempt``) does the same for that job.

Everything here is O(n log n) in the number of active jobs: one sort, one walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.controller.plan.types import Admission
from orchestrator.resources.failures import capacity_error
from orchestrator.resources.instances import INSTANCE_TYPES

# The reason of every waiting job behind the head of the queue (constant: see the docstring).
QUEUED = "Queued behind jobs ahead of it (see QueuePosition)"
PREEMPT_REQUESTED = "Preempted by request (orch jobs preempt)"
SLOTS_SETTING = "ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS"


@dataclass(frozen=True)
class Demand:
    """What one attempt of a job takes while it runs."""

    gpus: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    slots: int = 1


def demand_of(instance_type: str, count: int) -> Demand:
    """An instance type's size times the instance count (unknown types: nothing but a slot;
    the spec's validation refuses them anyway)."""
    t = INSTANCE_TYPES.get(instance_type)
    if t is None:
        return Demand()
    n = max(1, count)
    return Demand(gpus=t.gpus * n, vcpus=(t.vcpus or 0) * n, memory_mib=(t.memory_mib or 0) * n)


@dataclass(frozen=True)
class Candidate:
    """One active training job as admission sees it."""

    name: str
    created_at: datetime
    demand: Demand = Demand()
    priority: int = 0
    # It holds capacity now (an attempt launched and not requeued); False: it waits (never
    # launched, or waiting to relaunch after a retry or a preemption).
    holds: bool = False
    held_gpus: tuple[int, ...] = ()
    spot: bool = False
    preempt_requested: bool = False
    tenant: str = ""  # fairness seam: round robin between tenants at equal priority
    label: str = ""  # what it runs on, for messages ("ml.m5.xlarge x 2")


@dataclass(frozen=True)
class HostCapacity:
    """What the controller hands out; None: not accounted (unlimited, or someone else's)."""

    slots: int | None = None
    gpus: tuple[int, ...] | None = None
    vcpus: int | None = None
    memory_mib: int | None = None


def candidate_of(
    name: str,
    created_at: datetime,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    preempt_requested: bool = False,
    tenant: str = "",
) -> Candidate:
    """A job from its stored documents (read as they are, without parsing the whole spec: the
    API and the reconciler build the queue from every active job)."""
    rc = spec.get("ResourceConfig") or {}
    itype = str(rc.get("InstanceType") or "local")
    count = rc.get("InstanceCount")
    count = count if isinstance(count, int) else 1
    priority = spec.get("Priority")
    return Candidate(
        name=name,
        created_at=created_at,
        demand=demand_of(itype, count),
        priority=priority if isinstance(priority, int) else 0,
        holds=holds_capacity(int(status.get("Attempt") or 0), status.get("SecondaryStatus")),
        held_gpus=tuple(int(i) for i in status.get("AllocatedGpus") or ()),
        spot=spec.get("EnableManagedSpotTraining") is True,
        preempt_requested=preempt_requested,
        tenant=tenant,
        label=itype if count == 1 else f"{itype} x {count}",
    )


def holds_capacity(attempt: int, secondary: object) -> bool:
    """An attempt was launched and the job is not back in the queue (Pending)."""
    return attempt > 0 and secondary != "Pending"


def queue_order(jobs: Iterable[Candidate]) -> list[Candidate]:
    """The waiting jobs (not holding capacity) in the order they are admitted."""
    waiting = sorted(
        (j for j in jobs if not j.holds),
        key=lambda j: (-j.priority, j.tenant, j.created_at, j.name),
    )
    # The k-th job of a tenant at a priority goes in round k: tenants take turns.
    turn: list[tuple[int, int, datetime, str, Candidate]] = []
    group: tuple[int, str] | None = None
    k = 0
    for j in waiting:
        if (j.priority, j.tenant) != group:
            group, k = (j.priority, j.tenant), 0
        turn.append((-j.priority, k, j.created_at, j.name, j))
        k += 1
    turn.sort(key=lambda t: t[:4])
    return [t[4] for t in turn]


def queue_positions(jobs: Iterable[Candidate]) -> dict[str, int]:
    """1-based place of each waiting job in the queue."""
    return {j.name: i for i, j in enumerate(queue_order(jobs), start=1)}


@dataclass
class _Free:
    slots: int | None
    gpus: list[int] | None
    vcpus: int | None
    memory_mib: int | None


def _clamped(d: Demand, host: HostCapacity) -> tuple[Demand, list[str]]:
    """``d`` no larger than the whole host in vCPUs and memory; what was clamped."""
    notes: list[str] = []
    vcpus, memory = d.vcpus, d.memory_mib
    if (host.vcpus is None or vcpus <= host.vcpus) and (
        host.memory_mib is None or memory <= host.memory_mib
    ):
        return d, notes
    if host.vcpus is not None and vcpus > host.vcpus:
        notes.append(f"{vcpus} vCPUs (the host has {host.vcpus})")
        vcpus = host.vcpus
    if host.memory_mib is not None and memory > host.memory_mib:
        notes.append(f"{memory} MiB of memory (the host has {host.memory_mib} MiB)")
        memory = host.memory_mib
    return replace(d, vcpus=vcpus, memory_mib=memory), notes


def _short(d: Demand, free: _Free, host: HostCapacity) -> str:
    """What ``d`` waits for ("" when it fits now)."""
    if free.slots is not None and d.slots > free.slots:
        total = host.slots or 0
        return f"Waiting for a job slot: {total - free.slots} of {total} in use ({SLOTS_SETTING})"
    if free.gpus is not None and d.gpus > len(free.gpus):
        total = len(host.gpus or ())
        return f"Waiting for {d.gpus} GPU(s): {len(free.gpus)} of {total} free"
    if free.vcpus is not None and d.vcpus > free.vcpus:
        return f"Waiting for {d.vcpus} vCPU(s): {free.vcpus} of {host.vcpus} free"
    if free.memory_mib is not None and d.memory_mib > free.memory_mib:
        return (
            f"Waiting for {d.memory_mib} MiB of memory: {free.memory_mib} of "
            f"{host.memory_mib} MiB free"
        )
    return ""


def _take(free: _Free, d: Demand, *, sign: int = 1) -> None:
    if free.slots is not None:
        free.slots -= sign * d.slots
    if free.vcpus is not None:
        free.vcpus -= sign * d.vcpus
    if free.memory_mib is not None:
        free.memory_mib -= sign * d.memory_mib


def plan_admissions(
    jobs: Sequence[Candidate],
    host: HostCapacity,
    order: Sequence[Candidate] | None = None,
) -> dict[str, Admission]:
    """Every job's admission this pass (see the module docstring for the rules); ``order``:
    ``queue_order(jobs)`` where the caller has it already (one sort per pass)."""
    out: dict[str, Admission] = {}
    all_gpus = host.gpus
    held: set[int] = set()
    free = _Free(host.slots, None, host.vcpus, host.memory_mib)
    holders = [j for j in jobs if j.holds]
    for j in holders:
        d, _ = _clamped(j.demand, host)
        _take(free, d)
        held.update(j.held_gpus)
        out[j.name] = Admission(
            gpus=j.held_gpus if all_gpus is not None else None,
            preempt=PREEMPT_REQUESTED if j.preempt_requested else "",
        )
    if all_gpus is not None:
        free.gpus = [i for i in all_gpus if i not in held]
    position = 0
    blocked = False
    for j in queue_order(jobs) if order is None else order:
        if all_gpus is not None and j.demand.gpus > len(all_gpus):
            out[j.name] = Admission(
                admitted=False,
                fail=capacity_error(
                    f"{j.label} needs {j.demand.gpus} GPU(s) and this host has "
                    f"{len(all_gpus)}; pick an instance type with fewer GPUs, or a bigger host"
                ),
            )
            continue
        if blocked:  # behind the head: its place, nothing to size (one step per queued job)
            position += 1
            out[j.name] = Admission(admitted=False, reason=QUEUED, position=position)
            continue
        d, notes = _clamped(j.demand, host)
        short = _short(d, free, host)
        if not short:
            gpus: tuple[int, ...] | None = None
            if free.gpus is not None:
                gpus, free.gpus = tuple(free.gpus[: d.gpus]), free.gpus[d.gpus :]
            _take(free, d)
            out[j.name] = Admission(gpus=gpus)
            continue
        position += 1
        blocked = True
        if notes:
            short += (
                f"; {j.label} asks for more than this host has ({', '.join(notes)}): it is "
                "given the whole host and runs alone"
            )
        victims = _victims(j, d, holders, free, host)
        if victims:
            why = f"Preempted: job {j.name!r} (Priority {j.priority}) needs its capacity"
            for v in victims:
                out[v.name] = replace(out[v.name], preempt=why)
            names = ", ".join(v.name for v in victims)
            short += f"; preempting lower-priority spot job(s): {names}"
        out[j.name] = Admission(admitted=False, reason=short, position=position)
    return out


def _victims(
    head: Candidate,
    need: Demand,
    holders: Sequence[Candidate],
    free: _Free,
    host: HostCapacity,
) -> list[Candidate]:
    """Running spot jobs of lower priority whose capacity lets ``head`` fit, fewest first in
    the order lowest priority, newest; none when even all of them would not be enough."""
    pool = sorted(
        (h for h in holders if h.spot and h.priority < head.priority),
        key=lambda h: (h.priority, -h.created_at.timestamp(), h.name),
    )
    trial = _Free(
        free.slots, list(free.gpus) if free.gpus is not None else None, free.vcpus, free.memory_mib
    )
    chosen: list[Candidate] = []
    for h in pool:
        if not _short(need, trial, host):
            break
        d, _ = _clamped(h.demand, host)
        _take(trial, d, sign=-1)
        if trial.gpus is not None:
            trial.gpus.extend(h.held_gpus)
        chosen.append(h)
    return chosen if chosen and not _short(need, trial, host) else []
