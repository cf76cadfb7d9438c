"""From what the resources recorded to seconds per group.

* Training: a job is counted in the window its ``TrainingEndTime`` falls in, as
  ``BillableTimeInSeconds x InstanceCount`` instance-seconds; a managed-spot job also saves
  ``(TrainingTimeInSeconds - BillableTimeInSeconds) x InstanceCount`` (SageMaker's savings).
* Endpoints: each variant's instance count over time, from the durable record of its changes
  (``CountChange``), clipped to the window: a scale change or scale to zero is exact.
* Transform jobs: ``InstanceCount x (TransformEndTime - TransformStartTime)``, clipped to the
  window (a running job counts up to the window's end).
* Memory provisioned: instance-seconds x the instance type's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.usage.pricing import PriceTable

GroupBy = Literal["tenant", "resource", "instance-type"]
GROUP_BYS: tuple[str, ...] = ("tenant", "resource", "instance-type")
# The tag that names a resource's tenant (no tenancy yet: resources record no creator).
TENANT_TAG = "tenant"
NO_TENANT = "(untagged)"


@dataclass(frozen=True)
class CountChange:
    """An endpoint variant's instance count became ``count`` at ``at`` (0: none running)."""

    endpoint: str
    variant: str
    count: int
    at: datetime
    # The variant's instance type when it changed (None: not recorded).
    instance_type: str | None = None


@dataclass(frozen=True)
class Usage:
    """One resource's use of one instance type within the window."""

    kind: str
    resource: str
    tenant: str
    instance_type: str
    instance_seconds: float
    # What is billed: the instance-seconds, but for spot training only the attempts' run time.
    billable_seconds: float
    spot: bool = False
    spot_saved_seconds: float = 0.0
    predictions: int = 0

    @property
    def memory_gib_seconds(self) -> float:
        known = INSTANCE_TYPES.get(self.instance_type)
        mib = known.memory_mib if known is not None else None
        return self.instance_seconds * (mib or 0) / 1024.0


@dataclass
class UsageRow:
    """The usage of one group (a tenant, a resource or an instance type) and its cost."""

    group: str
    instance_seconds: float = 0.0
    billable_seconds: float = 0.0
    spot_saved_seconds: float = 0.0
    memory_gib_seconds: float = 0.0
    predictions: int = 0
    cost: float = 0.0
    spot_savings: float = 0.0
    # Instance types used without a price: their cost is not in ``cost``.
    no_price: list[str] = field(default_factory=list)
    # Whether anything in the group had a price (else ``cost`` means nothing: no price).
    priced: bool = False
    kinds: list[str] = field(default_factory=list)
    instance_types: list[str] = field(default_factory=list)


def _overlap(start: datetime, end: datetime, since: datetime, until: datetime) -> float:
    lo, hi = max(start, since), min(end, until)
    return max(0.0, (hi - lo).total_seconds())


def instance_seconds(changes: Sequence[CountChange], since: datetime, until: datetime) -> float:
    """Instance-seconds of one variant within [since, until): each count held from its change
    to the next (the last up to ``until``)."""
    ordered = sorted(changes, key=lambda c: c.at)
    total = 0.0
    for i, c in enumerate(ordered):
        end = ordered[i + 1].at if i + 1 < len(ordered) else until
        if c.count > 0:
            total += c.count * _overlap(c.at, end, since, until)
    return total


def training_usage(
    *,
    name: str,
    tenant: str,
    instance_type: str,
    instance_count: int,
    spot: bool,
    end: datetime | None,
    training_seconds: int | None,
    billable_seconds: int | None,
    since: datetime,
    until: datetime,
) -> Usage | None:
    """A finished job's usage, when it ended within the window (None otherwise)."""
    if end is None or not (since <= end < until):
        return None
    billed = float((billable_seconds if billable_seconds is not None else training_seconds) or 0)
    ran = float(training_seconds or 0)
    saved = max(0.0, ran - billed) * instance_count if spot else 0.0
    return Usage(
        kind="TrainingJob",
        resource=name,
        tenant=tenant,
        instance_type=instance_type,
        instance_seconds=billed * instance_count,
        billable_seconds=billed * instance_count,
        spot=spot,
        spot_saved_seconds=saved,
    )


def transform_usage(
    *,
    name: str,
    tenant: str,
    instance_type: str,
    instance_count: int,
    start: datetime | None,
    end: datetime | None,
    since: datetime,
    until: datetime,
) -> Usage | None:
    if start is None:
        return None
    seconds = instance_count * _overlap(start, end or until, since, until)
    if seconds <= 0:
        return None
    return Usage(
        kind="TransformJob",
        resource=name,
        tenant=tenant,
        instance_type=instance_type,
        instance_seconds=seconds,
        billable_seconds=seconds,
    )


def endpoint_usage(
    *,
    name: str,
    tenant: str,
    variants: Mapping[str, str],
    changes: Iterable[CountChange],
    predictions: Mapping[str, int],
    since: datetime,
    until: datetime,
) -> list[Usage]:
    """One Usage per variant and instance type that ran or was invoked in the window: the type
    each change recorded, else ``variants`` (name -> type from the endpoint's configs), else
    ``unknown`` (no price); ``predictions``: invocations per variant within the window."""
    by_variant: dict[str, list[CountChange]] = {}
    for c in changes:
        by_variant.setdefault(c.variant, []).append(c)
    out = []
    for variant in sorted(set(by_variant) | set(predictions)):
        ordered = sorted(by_variant.get(variant, []), key=lambda c: c.at)
        fallback = variants.get(variant, "unknown")
        # Each change's count holds until the next change; split the time by instance type.
        per_type: dict[str, float] = {}
        for i, c in enumerate(ordered):
            kind = c.instance_type or fallback
            end = ordered[i + 1].at if i + 1 < len(ordered) else until
            seconds = max(c.count, 0) * _overlap(c.at, end, since, until)
            per_type[kind] = per_type.get(kind, 0.0) + seconds
        count = predictions.get(variant, 0)
        last = (ordered[-1].instance_type or fallback) if ordered else fallback
        per_type.setdefault(last, 0.0)
        for kind in sorted(per_type):
            seconds = per_type[kind]
            n = count if kind == last else 0
            if seconds <= 0 and n == 0:
                continue
            out.append(
                Usage(
                    kind="Endpoint",
                    resource=f"{name}/{variant}",
                    tenant=tenant,
                    instance_type=kind,
                    instance_seconds=seconds,
                    billable_seconds=seconds,
                    predictions=n,
                )
            )
    return out


def _key(u: Usage, by: str) -> str:
    if by == "tenant":
        return u.tenant
    if by == "instance-type":
        return u.instance_type
    return f"{u.kind}/{u.resource}"


def group_usage(usages: Iterable[Usage], by: str, prices: PriceTable) -> list[UsageRow]:
    """The usages summed per group, priced; rows sorted by group."""
    rows: dict[str, UsageRow] = {}
    for u in usages:
        row = rows.setdefault(_key(u, by), UsageRow(group=_key(u, by)))
        row.instance_seconds += u.instance_seconds
        row.billable_seconds += u.billable_seconds
        row.spot_saved_seconds += u.spot_saved_seconds
        row.memory_gib_seconds += u.memory_gib_seconds
        row.predictions += u.predictions
        if u.kind not in row.kinds:
            row.kinds.append(u.kind)
        if u.instance_type not in row.instance_types:
            row.instance_types.append(u.instance_type)
        cost = prices.cost(u.instance_type, u.billable_seconds, spot=u.spot)
        if cost is None:
            if u.billable_seconds > 0 and u.instance_type not in row.no_price:
                row.no_price.append(u.instance_type)
            continue
        row.cost += cost
        row.priced = True
        if u.spot:
            saved = prices.cost(u.instance_type, u.billable_seconds) or 0.0
            saved += prices.cost(u.instance_type, u.spot_saved_seconds) or 0.0
            row.spot_savings += saved - cost
    return [rows[k] for k in sorted(rows)]
