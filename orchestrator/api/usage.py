"""The usage report over the SQL store (``orchestrator.usage`` computes, this reads), and the
flusher that makes prediction counts durable and feeds the Prometheus counters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import metrics
from orchestrator.api.owners import Owners, own
from orchestrator.clock import Clock
from orchestrator.errors import ValidationError
from orchestrator.monitoring.series import SeriesStore
from orchestrator.objects import ObjectStore, buckets
from orchestrator.store.source import ListFilter, Record
from orchestrator.store.state import StateStore
from orchestrator.usage import (
    GROUP_BYS,
    CountChange,
    PriceTable,
    Usage,
    endpoint_usage,
    group_usage,
    training_usage,
    transform_usage,
)
from orchestrator.usage.models import StorageUsage, UsageGroup, UsageReport
from orchestrator.usage.report import NO_TENANT, TENANT_TAG

log = logging.getLogger(__name__)

# How often invocation counts are added to the store (and the usage counters advance), unless
# ORCH_USAGE_FLUSH_SECONDS says otherwise.
FLUSH_SECONDS = 10.0


def parse_time(value: str, field: str) -> datetime:
    """An ISO 8601 date or time; a date is its midnight UTC, a time without a zone is UTC."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise ValidationError(
            f"{field} {value!r} is not a date or time; use ISO 8601, e.g. 2026-11-01 or "
            "2026-11-01T12:00:00Z",
            field=field,
        ) from e
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def check_window(since: datetime, until: datetime, group_by: str) -> None:
    if since >= until:
        raise ValidationError(
            f"Since ({since.isoformat()}) must be before Until ({until.isoformat()})",
            field="Since",
        )
    if group_by not in GROUP_BYS:
        raise ValidationError(
            f"GroupBy {group_by!r} is not one of {', '.join(GROUP_BYS)}", field="GroupBy"
        )


def _all(store: StateStore, kind: str, changed_after: datetime | None = None) -> Iterator[Record]:
    token: str | None = None
    while True:
        page = ListFilter(limit=100, next_token=token, modified_after=changed_after)
        records, token = store.list(kind, page)
        yield from (r for r in records if own(r))
        if token is None:
            return


def _tenant(spec: dict[str, Any]) -> str:
    for tag in spec.get("Tags") or []:
        if isinstance(tag, dict) and tag.get("Key") == TENANT_TAG:
            return str(tag.get("Value") or NO_TENANT)
    return NO_TENANT


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def collect_usage(store: StateStore, since: datetime, until: datetime) -> list[Usage]:
    """Every resource's usage within [since, until): the caller's account's only (the store
    lists only its resources; an endpoint's recorded instance counts and predictions count
    when the endpoint is its own, ``api.owners``); the system's, every account's."""
    out: list[Usage] = []
    owners = Owners(store.find)
    # A job that ended in the window was last written at its end or later (a second's margin:
    # the store's filter is strict); the flusher's short windows read only those.
    for r in _all(store, "TrainingJob", since - timedelta(seconds=1)):
        rc = r.spec.get("ResourceConfig") or {}
        u = training_usage(
            name=r.name,
            tenant=_tenant(r.spec),
            instance_type=str(rc.get("InstanceType", "local")),
            instance_count=int(rc.get("InstanceCount", 1)),
            spot=bool(r.spec.get("EnableManagedSpotTraining")),
            end=_when(r.status.get("TrainingEndTime")),
            training_seconds=r.status.get("TrainingTimeInSeconds"),
            billable_seconds=r.status.get("BillableTimeInSeconds"),
            since=since,
            until=until,
        )
        if u is not None:
            out.append(u)
    for r in _all(store, "TransformJob"):
        tr = r.spec.get("TransformResources") or {}
        u = transform_usage(
            name=r.name,
            tenant=_tenant(r.spec),
            instance_type=str(tr.get("InstanceType", "local")),
            instance_count=int(tr.get("InstanceCount", 1)),
            start=_when(r.status.get("TransformStartTime")),
            end=_when(r.status.get("TransformEndTime")),
            since=since,
            until=until,
        )
        if u is not None:
            out.append(u)
    changes: dict[str, list[CountChange]] = {}
    tenants: dict[str, str] = {}  # a deleted endpoint's: its last recorded tag
    for endpoint, variant, kind, tenant, count, at in store.instance_count_changes(until):
        changes.setdefault(endpoint, []).append(CountChange(endpoint, variant, count, at, kind))
        tenants[endpoint] = tenant or NO_TENANT
    predictions: dict[str, dict[str, int]] = {}
    for endpoint, variant, _hour, n in store.predictions(since, until):
        per = predictions.setdefault(endpoint, {})
        per[variant] = per.get(variant, 0) + n
    endpoints = {r.name: r for r in _all(store, "Endpoint")}
    for name in sorted(set(changes) | set(predictions) | set(endpoints)):
        record = endpoints.get(name)
        if record is None and not owners.visible("Endpoint", name):
            continue  # another account's endpoint: not in this caller's report
        out.extend(
            endpoint_usage(
                name=name,
                tenant=_tenant(record.spec) if record else tenants.get(name, NO_TENANT),
                variants=_variant_types(store, record),
                changes=changes.get(name, []),
                predictions=predictions.get(name, {}),
                since=since,
                until=until,
            )
        )
    return out


def _variant_types(store: StateStore, record: Record | None) -> dict[str, str]:
    """Variant -> instance type, from the configs the endpoint serves and asks for (a deleted
    endpoint's are unknown: ``unknown``, which has no price)."""
    if record is None:
        return {}
    names = [record.status.get("CurrentEndpointConfigName"), record.spec.get("EndpointConfigName")]
    out: dict[str, str] = {}
    for config_name in names:
        config = store.find("EndpointConfig", config_name) if config_name else None
        for v in (config.spec.get("ProductionVariants") or []) if config else []:
            out.setdefault(str(v.get("VariantName")), str(v.get("InstanceType") or "local"))
    return out


def storage_usage(objects: ObjectStore, prices: PriceTable) -> list[StorageUsage]:
    """Each bucket's objects and plaintext bytes, listed now: the caller's account's."""
    out = []
    for bucket in buckets.listed(objects):
        listed = objects.list(f"s3://{bucket.name}/")
        size = sum(o.size for o in listed)
        out.append(
            StorageUsage(
                Bucket=bucket.name,
                Objects=len(listed),
                Bytes=size,
                MonthlyCost=size / 1e9 * prices.storage_gb_month,
            )
        )
    return out


def usage_report(
    store: StateStore,
    prices: PriceTable,
    since: datetime,
    until: datetime,
    group_by: str,
    *,
    objects: ObjectStore | None = None,
) -> UsageReport:
    check_window(since, until, group_by)
    rows = group_usage(collect_usage(store, since, until), group_by, prices)
    groups = [
        UsageGroup(
            Group=row.group,
            Kinds=row.kinds,
            InstanceTypes=row.instance_types,
            InstanceSeconds=row.instance_seconds,
            BillableSeconds=row.billable_seconds,
            SpotSavedSeconds=row.spot_saved_seconds,
            MemoryGiBSeconds=row.memory_gib_seconds,
            Predictions=row.predictions,
            Cost=row.cost if row.priced or not row.no_price else None,
            SpotSavings=row.spot_savings,
            NoPrice=row.no_price,
        )
        for row in rows
    ]
    return UsageReport(
        Since=since,
        Until=until,
        GroupBy=group_by,
        PriceSource=prices.source,
        Groups=groups,
        Storage=storage_usage(objects, prices) if objects is not None else [],
    )


class UsageFlusher:
    """Every ``interval`` seconds: adds the invocations counted since the last flush to the
    store (per endpoint variant per hour) and advances the usage counters by the window just
    closed. A crash loses at most the last ``interval`` of prediction counts."""

    def __init__(
        self, store: StateStore, series: SeriesStore, clock: Clock, interval: float = FLUSH_SECONDS
    ) -> None:
        self.store, self.series, self.clock, self.interval = store, series, clock, interval
        series.count_predictions()
        self._last = clock.now()
        self._pending: dict[tuple[str, str, float], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flush(self) -> None:
        for key, n in self.series.drain_prediction_counts().items():
            self._pending[key] = self._pending.get(key, 0) + n
        if self._pending:
            self.store.add_predictions(self._pending)  # raises: kept for the next flush
            counts, self._pending = self._pending, {}
            for (endpoint, _variant, _hour), n in counts.items():
                metrics.USAGE_PREDICTIONS.labels(endpoint=endpoint).inc(n)
        now = self.clock.now()
        if now > self._last:
            for u in collect_usage(self.store, self._last, now):
                if u.billable_seconds > 0:
                    metrics.USAGE_INSTANCE_SECONDS.labels(
                        kind=u.kind, instance_type=u.instance_type
                    ).inc(u.billable_seconds)
            self._last = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # a store hiccup: the counts wait for the next flush
                log.exception("usage flush failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()
