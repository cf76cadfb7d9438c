"""Endpoint metrics as time series: recorded per request, kept in memory, queried by period.

The invocation router (``orchestrator.dataplane``) records every request: its hot path only
appends to a list of its own, and a batch at a time lands here (``record_events``, one lock
per batch; ``record_invocation``, ``request_started`` and ``request_finished`` record one
event). Each router worker is a *source* with its own in-flight level, so several workers
add up. The controller records what it sees each pass (instances, model
setup time, replica CPU and memory). Everything lands in one-second buckets per
(endpoint, variant, config): counts, a ``Stat`` per latency (count, sum, min, max and a
mergeable log histogram, see ``sketch``) and the area under the in-flight curve. Buckets older
than the retention (3 h by default) are dropped, and a bucket's size does not depend on the
request rate, so memory is bounded by endpoints x variants x retention.

Queries answer like CloudWatch's ``GetMetricStatistics``; the planners read ``variant_load``
(autoscaling) and ``fleet_health`` (blue/green alarms). Times are epoch seconds on the hot
path (``at``) and datetimes where the planners and the API use them; both come from the same
clock as ``time.time()``. One lock guards the store, taken once per batch.

Durable (``archive``, when the control plane has a SQL store): the buckets are copied out
(``snapshot``) and flushed off the hot path, put back on start (``load``), and a query reads
the store for what is before the last flush (or older than memory keeps) at the resolution
the period allows, and memory for the rest.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.types import FleetHealth, VariantLoad
from orchestrator.monitoring.rollup import STAT_FIELDS, Point
from orchestrator.monitoring.shapes import (
    Datapoint,
    MetricInfo,
    MetricStatistics,
    check_statistics,
    metric_info,
    percentile_of,
    periods,
)
from orchestrator.monitoring.sketch import Stat, merged

DEFAULT_RETENTION_SECONDS = 3 * 3600
# Kinds of the events ``record_events`` takes (the router's batches).
STARTED, FINISHED, ANSWERED = 0, 1, 2
_SWEEP_EVERY_SECONDS = 60


class _Bucket:
    """One second of one series."""

    __slots__ = ("area", "count", "cpu", "e4", "e5", "memory", "model", "overhead", "peak", "setup")

    def __init__(self) -> None:
        self.count = 0
        self.e4 = 0
        self.e5 = 0
        self.model: Stat | None = None
        self.overhead: Stat | None = None
        self.area = 0.0  # request-seconds in flight during this second
        self.peak = 0  # most requests in flight at once during this second
        self.setup: Stat | None = None
        self.cpu: Stat | None = None
        self.memory: Stat | None = None


class _Level:
    """Requests in flight in one series as one source (a router worker) counts them."""

    __slots__ = ("count", "since")

    def __init__(self, since: float) -> None:
        self.count = 0
        self.since = since


class _Series:
    __slots__ = ("buckets", "last_invocation", "levels", "newest")

    def __init__(self) -> None:
        # Insertion order is time order but for stragglers, which ``evict`` tolerates.
        self.buckets: dict[int, _Bucket] = {}
        self.newest = -1
        # In flight, per source: each router worker's own events come in time order, the
        # workers' do not, so each keeps its own level and adds its own area.
        self.levels: dict[int, _Level] = {}
        self.last_invocation: float | None = None

    @property
    def inflight(self) -> int:
        return sum(level.count for level in self.levels.values())

    def bucket(self, second: int, retention: int) -> _Bucket | None:
        b = self.buckets.get(second)
        if b is None:
            if second <= self.newest - retention:
                return None  # older than what we keep
            b = self.buckets[second] = _Bucket()
            if second > self.newest:
                self.newest = second
                self.evict(second - retention)
        return b

    def evict(self, cutoff: int) -> None:
        old = []
        for s in self.buckets:
            if s > cutoff:
                break
            old.append(s)
        for s in old:
            del self.buckets[s]

    def level(self, source: int, at: float) -> _Level:
        level = self.levels.get(source)
        if level is None:
            level = self.levels[source] = _Level(at)
        return level

    def advance(self, at: float, retention: int) -> None:
        """Adds the area under every source's in-flight level up to ``at``."""
        for level in self.levels.values():
            self.advance_level(level, at, retention)

    def advance_level(self, level: _Level, at: float, retention: int) -> None:
        """Adds the area under one source's in-flight level from its last change up to ``at``."""
        t = level.since
        if at <= t:
            return
        n = level.count
        if n > 0:
            t = max(t, at - retention)
            while t < at:
                second = math.floor(t)
                stop = min(second + 1.0, at)
                b = self.bucket(second, retention)
                if b is not None:
                    b.area += n * (stop - t)
                    b.peak = max(b.peak, n)
                t = stop
        level.since = at


SeriesKey = tuple[str, str, str]  # endpoint, variant, config
INVOCATIONS, VARIANTS = "inv", "var"  # the two tables, as the durable store names them


class Archive(Protocol):
    """Older points than memory keeps (``monitoring.archive``: the SQL store's rollups);
    ``shared``: several processes write, so every query reads it."""

    shared: bool
    flushed_before: float  # every second before it is in the store (-inf: not known)

    def older(
        self,
        kind: str,
        endpoint: str,
        variant: str | None,
        *,
        period: int,
        lo: int,
        hi: int,
        age: float,
        columns: Sequence[str],
        resolution: int | None = None,
    ) -> tuple[int, list[tuple[int, Point]]]:
        """(resolution, [(at, point)]) of every series of ``endpoint`` (one variant or all)
        with lo <= at < hi, at ``resolution`` or the coarsest dividing ``period`` that
        reaches ``age`` seconds back."""
        ...

    def instances(self, endpoint: str, since: float) -> dict[str, list[tuple[float, int]]]: ...


class SeriesStore:
    """Thread-safe, bounded, in-memory endpoint metrics. See the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        memory_total_bytes: int | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.retention = int(retention_seconds)
        self.memory_total_bytes = memory_total_bytes or _host_memory_bytes()
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, _Series] = {}
        # Per variant (config ""): setup time, CPU, memory; and instance counts over time.
        self._variants: dict[SeriesKey, _Series] = {}
        self._instances: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self._next_sweep = 0
        # Usage: invocations per hour start, per series key, since the last drain; None until a
        # usage flusher drains them (``count_predictions``): nothing piles up unread.
        self._usage_counts: dict[int, dict[SeriesKey, int]] | None = None
        # Set by ``monitoring.archive`` when the series are durable: queries read it for
        # what is older than memory keeps.
        self.archive: Archive | None = None

    # --- recording (hot path) ------------------------------------------------------------------
    def _get(self, table: dict[SeriesKey, _Series], key: SeriesKey, second: int) -> _Series:
        if second >= self._next_sweep:
            self._sweep(second)
        s = table.get(key)
        if s is None:
            s = table[key] = _Series()
        return s

    def record_invocation(
        self,
        endpoint: str,
        variant: str,
        config: str,
        *,
        status: int,
        model_us: float | None,
        overhead_us: float | None,
        at: float,
    ) -> None:
        """One request answered (or failed) with HTTP ``status``; latencies in microseconds."""
        with self._lock:
            self._invocation(endpoint, variant, config, status, model_us, overhead_us, at)

    def request_started(
        self, endpoint: str, variant: str, config: str, at: float, *, source: int = 0
    ) -> None:
        with self._lock:
            self._in_flight(endpoint, variant, config, at, source, +1)

    def request_finished(
        self, endpoint: str, variant: str, config: str, at: float, *, source: int = 0
    ) -> None:
        with self._lock:
            self._in_flight(endpoint, variant, config, at, source, -1)

    def record_events(self, events: Iterable[Sequence[Any]], *, source: int = 0) -> None:
        """A batch from a router (see ``orchestrator.dataplane.recorder``), in the order it
        happened, under one lock: ``(STARTED | FINISHED, endpoint, variant, config, at)`` and
        ``(ANSWERED, endpoint, variant, config, at, status, model_us, overhead_us)``.
        ``source`` names the router worker (each keeps its own in-flight level)."""
        with self._lock:
            for e in events:
                kind = e[0]
                if kind == ANSWERED:
                    self._invocation(e[1], e[2], e[3], e[5], e[6], e[7], e[4])
                elif kind == STARTED:
                    self._in_flight(e[1], e[2], e[3], e[4], source, +1)
                elif kind == FINISHED:
                    self._in_flight(e[1], e[2], e[3], e[4], source, -1)

    def forget_source(self, source: int, at: float) -> None:
        """A router worker is gone: what it had in flight is no longer in flight."""
        with self._lock:
            for s in self._series.values():
                level = s.levels.get(source)
                if level is not None:
                    s.advance_level(level, at, self.retention)
                    del s.levels[source]

    def _invocation(  # noqa: PLR0917 - once per event: positional
        self,
        endpoint: str,
        variant: str,
        config: str,
        status: int,
        model_us: float | None,
        overhead_us: float | None,
        at: float,
    ) -> None:
        second = int(at)
        key = (endpoint, variant, config)
        if self._usage_counts is not None:
            hour = second - second % 3600
            per = self._usage_counts.get(hour)
            if per is None:
                per = self._usage_counts[hour] = {}
            per[key] = per.get(key, 0) + 1
        s = self._series.get(key)
        if s is None or second >= self._next_sweep:
            s = self._get(self._series, key, second)
        b = s.buckets.get(second)
        if b is None:
            b = s.bucket(second, self.retention)
            if b is None:
                return
        b.count += 1
        if status >= 500:
            b.e5 += 1
        elif status >= 400:
            b.e4 += 1
        if model_us is not None:
            if b.model is None:
                b.model = Stat()
            b.model.add(model_us)
        if overhead_us is not None:
            if b.overhead is None:
                b.overhead = Stat()
            b.overhead.add(overhead_us)
        if s.last_invocation is None or at > s.last_invocation:
            s.last_invocation = at

    def _in_flight(  # noqa: PLR0917 - once per event: positional
        self, endpoint: str, variant: str, config: str, at: float, source: int, delta: int
    ) -> None:
        s = self._get(self._series, (endpoint, variant, config), int(at))
        level = s.level(source, at)
        s.advance_level(level, at, self.retention)
        level.count = max(0, level.count + delta)
        if delta > 0:
            b = s.bucket(int(at), self.retention)
            total = s.inflight  # every source's, as last heard
            if b is not None and total > b.peak:
                b.peak = total

    # --- recording (controller, once per pass) ---------------------------------------------------
    def count_predictions(self) -> None:
        """Count invocations per endpoint variant per hour from now on (for the usage
        flusher, which drains them)."""
        with self._lock:
            if self._usage_counts is None:
                self._usage_counts = {}

    def drain_prediction_counts(self) -> dict[tuple[str, str, float], int]:
        """The invocations counted since the last drain, per (endpoint, variant, hour start),
        and start counting afresh (the usage flusher adds them to the store)."""
        with self._lock:
            drained, self._usage_counts = self._usage_counts or {}, {}
        counts: dict[tuple[str, str, float], int] = {}
        for hour, per in drained.items():
            for (endpoint, variant, _config), n in per.items():
                k = (endpoint, variant, float(hour))
                counts[k] = counts.get(k, 0) + n
        return counts

    def record_instances(self, endpoint: str, variant: str, count: int, at: float) -> None:
        """The variant's ready instances (all fleets); only changes are kept."""
        with self._lock:
            points = self._instances.setdefault((endpoint, variant), [])
            if not points or points[-1][1] != count:
                points.append((at, count))

    def record_model_setup_time(
        self, endpoint: str, variant: str, seconds: float, at: float
    ) -> None:
        """A replica became ready ``seconds`` after it was started (kept in microseconds)."""
        self._variant_sample(endpoint, variant, at, "setup", seconds * 1e6)

    def record_replica_usage(
        self,
        endpoint: str,
        variant: str,
        replica_id: str,
        *,
        cpu_percent: float,
        memory_bytes: int,
        at: float,
    ) -> None:
        """One replica's CPU (100 = one core busy) and resident memory; samples of every
        replica of a variant go into the same statistics, so Average is over replicas."""
        del replica_id  # per-replica values are in Prometheus; the series are per variant
        memory_percent = 100.0 * memory_bytes / self.memory_total_bytes
        self._variant_sample(endpoint, variant, at, "cpu", cpu_percent)
        self._variant_sample(endpoint, variant, at, "memory", memory_percent)

    def _variant_sample(
        self, endpoint: str, variant: str, at: float, which: str, value: float
    ) -> None:
        second = int(at)
        with self._lock:
            b = self._get(self._variants, (endpoint, variant, ""), second).bucket(
                second, self.retention
            )
            if b is None:
                return
            stat: Stat | None = getattr(b, which)
            if stat is None:
                stat = Stat()
                setattr(b, which, stat)
            stat.add(value)

    def forget(self, endpoint: str) -> None:
        """Drop everything about a deleted endpoint."""
        with self._lock:
            for table in (self._series, self._variants):
                for key in [k for k in table if k[0] == endpoint]:
                    del table[key]
            for ikey in [k for k in self._instances if k[0] == endpoint]:
                del self._instances[ikey]

    def _sweep(self, second: int) -> None:
        """Every minute: evict old buckets of every series, drop empty idle series."""
        self._next_sweep = second + _SWEEP_EVERY_SECONDS
        cutoff = second - self.retention
        for table in (self._series, self._variants):
            for key, s in list(table.items()):
                s.evict(cutoff)
                if not s.buckets and s.inflight == 0 and s.newest < second:
                    del table[key]
        for points in self._instances.values():
            # Keep the last change before the cutoff: it is the count at the cutoff.
            keep = next((i for i, (t, _) in enumerate(points) if t > cutoff), len(points))
            del points[: max(0, keep - 1)]

    # --- durability (``monitoring.archive``, off the hot path) ------------------------------------
    def snapshot(self, since: int) -> dict[tuple[str, SeriesKey], dict[int, Point]]:
        """Copies of every bucket at or after second ``since``, per (kind, series): the full
        values a flush writes. The in-flight area is advanced to now first."""
        now = self._now()
        out: dict[tuple[str, SeriesKey], dict[int, Point]] = {}
        with self._lock:
            for kind, table in ((INVOCATIONS, self._series), (VARIANTS, self._variants)):
                for key, s in table.items():
                    if kind == INVOCATIONS:
                        s.advance(now, self.retention)
                    points = {sec: _point(b) for sec, b in s.buckets.items() if sec >= since}
                    if points:
                        out[kind, key] = points
        return out

    def instance_changes(self) -> dict[tuple[str, str], list[tuple[float, int]]]:
        with self._lock:
            return {k: list(v) for k, v in self._instances.items()}

    def load(
        self,
        points: Iterable[tuple[str, SeriesKey, int, Point]],
        instances: dict[tuple[str, str], list[tuple[float, int]]] | None = None,
    ) -> int:
        """Puts stored one-second points back (a restart): a bucket already recorded is left
        as it is. Returns how many were loaded."""
        n = 0
        with self._lock:
            for kind, key, second, p in points:
                table = self._series if kind == INVOCATIONS else self._variants
                s = self._get(table, key, second)
                if second in s.buckets:
                    continue
                b = s.bucket(second, self.retention)
                if b is None:
                    continue
                _fill(b, p)
                n += 1
            for series in (*self._series.values(), *self._variants.values()):
                series.buckets = dict(sorted(series.buckets.items()))
            for ikey, changes in (instances or {}).items():
                mine = self._instances.setdefault(ikey, [])
                mine[:0] = [c for c in changes if not mine or c[0] < mine[0][0]]
        return n

    # --- what the planners read ------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now().timestamp()

    def variant_load(
        self, endpoint: str, variant: str, config: str, window_seconds: float, now: datetime
    ) -> VariantLoad:
        """Traffic of one variant of one fleet over the last ``window_seconds`` (the router
        fills ``waiting``)."""
        t = now.timestamp()
        lo, hi = math.floor(t - window_seconds) + 1, math.floor(t)
        with self._lock:
            s = self._series.get((endpoint, variant, config))
            if s is None:
                return VariantLoad()
            s.advance(t, self.retention)
            count = 0
            area = 0.0
            for second, b in s.buckets.items():
                if lo <= second <= hi:
                    count += b.count
                    area += b.area
            last = s.last_invocation
        return VariantLoad(
            invocations_per_minute=count * 60.0 / window_seconds,
            concurrency=area / window_seconds,
            last_invocation_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
        )

    def fleet_health(
        self, endpoint: str, config: str, since: datetime, now: datetime
    ) -> FleetHealth:
        """What every variant of the fleet of ``config`` served from ``since`` to ``now``
        (whole seconds: the second holding ``since`` counts)."""
        lo, hi = math.floor(since.timestamp()), math.floor(now.timestamp())
        invocations = errors = 0
        model: list[Stat | None] = []
        overhead: list[Stat | None] = []
        with self._lock:
            for (ep, _variant, cfg), s in self._series.items():
                if ep != endpoint or cfg != config:
                    continue
                for second, b in s.buckets.items():
                    if lo <= second <= hi:
                        invocations += b.count
                        errors += b.e5
                        model.append(b.model)
                        overhead.append(b.overhead)
            m, o = merged(model), merged(overhead)
        return FleetHealth(
            invocations=invocations,
            errors_5xx=errors,
            model_latency_p99_us=m.percentile(99),
            overhead_latency_p99_us=o.percentile(99),
        )

    # --- queries ---------------------------------------------------------------------------------
    def recorded(self) -> list[tuple[str, str, str]]:
        """(endpoint, variant, metric name) of every metric with samples kept now, sorted
        (CloudWatch's ListMetrics). One pass over the buckets."""
        out: set[tuple[str, str, str]] = set()
        with self._lock:
            for (ep, v, _cfg), s in self._series.items():
                for b in s.buckets.values():
                    if b.count:
                        out.update((ep, v, m) for m in _COUNTED)
                        if (ep, v) in self._instances:
                            out.add((ep, v, "InvocationsPerInstance"))
                    if b.model is not None:
                        out.add((ep, v, "ModelLatency"))
                    if b.overhead is not None:
                        out.add((ep, v, "OverheadLatency"))
                    if b.area or b.peak:
                        out.add((ep, v, "ConcurrentRequests"))
            for (ep, v, _cfg), s in self._variants.items():
                for b in s.buckets.values():
                    out.update(
                        (ep, v, name)
                        for name, field in _STAT_FIELD.items()
                        if name in _PER_VARIANT and getattr(b, field) is not None
                    )
        return sorted(out)

    def query(
        self,
        endpoint: str,
        metric: str,
        *,
        variant: str | None = None,
        start: datetime,
        end: datetime,
        period: int,
        statistics: Sequence[str],
    ) -> MetricStatistics:
        """CloudWatch's GetMetricStatistics over this endpoint's series (every variant and
        fleet, or one variant). Errors name the parameter (MetricName, Statistics, Period,
        StartTime) and say the fix."""
        info = metric_info(metric)
        stats = check_statistics(info, list(statistics))
        first, count = periods(period, start, end)
        lo, hi = start.timestamp(), end.timestamp()
        floor_lo = math.floor(lo)
        now = self._now()
        per_variant = info.name in _PER_VARIANT
        # What memory no longer holds comes from the archive, at a resolution dividing the
        # period; memory answers from the first whole archived window on, so none is counted
        # twice.
        horizon = math.floor(now) - self.retention + 1  # memory holds from here on
        flushed = -math.inf  # the store holds everything before this
        if self.archive is not None:
            flushed = self.archive.flushed_before
            if self.archive.shared:  # several writers: every point is read from the store
                horizon = math.ceil(hi)
        from_memory = -math.inf
        archived: list[tuple[int, int, Point]] = []  # (at, resolution, point)
        if self.archive is not None and first < max(horizon, flushed):
            kind = VARIANTS if per_variant else INVOCATIONS
            columns = (_STAT_FIELD[info.name],) if info.kind == "samples" else _COLUMNS[info.kind]
            resolution, older = self.archive.older(
                kind, endpoint, variant, period=period, lo=first,
                hi=int(min(math.ceil(hi), max(horizon, flushed) + period)), age=now - first,
                columns=columns,
            )  # fmt: skip
            # Whole windows from the store, the rest from memory: up to the last flush when
            # memory still holds that far back (fewer buckets to merge), else from the first
            # whole window memory holds.
            from_memory = math.ceil(horizon / resolution) * resolution
            if flushed > -math.inf:
                from_memory = max(from_memory, math.floor(flushed / resolution) * resolution)
            archived = [(at, resolution, p) for at, p in older if at < from_memory]
            tail = math.floor(flushed / 60) * 60 if flushed > -math.inf else -math.inf
            if resolution > 60 and period % 60 == 0 and tail > from_memory:
                # the part of the last coarse window that is flushed, by the minute
                _, minutes = self.archive.older(
                    kind, endpoint, variant, period=60, lo=int(from_memory), hi=int(tail),
                    age=now - from_memory, columns=columns, resolution=60,
                )  # fmt: skip
                archived += [(at, 60, p) for at, p in minutes if at < tail]
                from_memory = tail

        def index(second: int) -> int | None:
            if second < floor_lo or second >= hi or second < from_memory:
                return None  # the second holding StartTime counts
            i = (second - first) // period
            return i if 0 <= i < count else None

        with self._lock:
            table = self._variants if per_variant else self._series
            chosen = [
                s
                for (ep, v, _cfg), s in table.items()
                if ep == endpoint and (variant is None or v == variant)
            ]
            if info.kind == "level":
                for s in chosen:
                    s.advance(now, self.retention)
            buckets: list[list[_Bucket]] = [[] for _ in range(count)]
            # level metrics: per second, [area, peak, seconds covered] summed over the series
            seconds: list[dict[int, list[float]]] = [{} for _ in range(count)]
            for at, width, p in archived:
                j = (at - first) // period
                if at + width <= floor_lo or at >= hi or not 0 <= j < count:
                    continue
                buckets[j].append(_bucket_of(p))
                if info.kind == "level":
                    acc = seconds[j].setdefault(at, [0.0, 0.0, float(width)])
                    acc[0] += p.area
                    acc[1] += p.peak
            for s in chosen:
                for second, b in s.buckets.items():
                    i = index(second)
                    if i is not None:
                        buckets[i].append(b)
                        if info.kind == "level":
                            acc = seconds[i].setdefault(second, [0.0, 0.0, 1.0])
                            acc[0] += b.area
                            acc[1] += b.peak
            instances = (
                self._mean_instances(endpoint, variant, first, period, count=count, now=now)
                if info.kind == "ratio"
                else []
            )
            points = []
            for i in range(count):
                at = first + i * period
                if info.kind == "level":
                    span = min(at + period, math.ceil(now), math.ceil(hi)) - max(at, floor_lo)
                    values = _level_values(seconds[i], max(1, span))
                else:
                    values = _values(info, buckets[i], instances[i] if instances else None)
                if values is not None:
                    points.append(_datapoint(info, at, values, stats))
        return MetricStatistics(Label=info.name, Datapoints=points)

    def _mean_instances(
        self, endpoint: str, variant: str | None, first: int, period: int, *, count: int, now: float
    ) -> list[float | None]:
        """Time-weighted mean instance count of each period (summed over variants)."""
        out: list[float | None] = [None] * count
        known = dict(self._instances)
        if self.archive is not None and first < now - self.retention:
            for v, stored in self.archive.instances(endpoint, first).items():
                mine = known.get((endpoint, v), [])
                older = [c for c in stored if not mine or c[0] < mine[0][0]]
                known[endpoint, v] = older + mine
        for (ep, v), points in known.items():
            if ep != endpoint or (variant is not None and v != variant):
                continue
            for i in range(count):
                a = first + i * period
                b = min(a + period, now)
                mean = _step_mean(points, a, b)
                if mean is not None:
                    out[i] = (out[i] or 0.0) + mean
        return out


_PER_VARIANT = {"ModelSetupTime", "CPUUtilization", "MemoryUtilization"}
_COLUMNS = {
    "count": ("count", "e4", "e5"),
    "ratio": ("count",),
    "level": ("area", "peak"),
}
_COUNTED = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
_STAT_FIELD = {
    "ModelLatency": "model",
    "OverheadLatency": "overhead",
    "ModelSetupTime": "setup",
    "CPUUtilization": "cpu",
    "MemoryUtilization": "memory",
}


class _Values:
    """One period's basics, plus a way to read percentiles."""

    def __init__(
        self,
        samples: float,
        total: float,
        *,
        minimum: float,
        maximum: float,
        stat: Stat | None = None,
        levels: list[tuple[float, float]] | None = None,
    ) -> None:
        self.samples, self.total, self.minimum, self.maximum = samples, total, minimum, maximum
        self.stat = stat
        self.levels = levels

    def percentile(self, q: float) -> float | None:
        if self.stat is not None:
            return self.stat.percentile(q)
        if self.levels:  # (value, seconds at it)
            ordered = sorted(self.levels)
            rank = max(1.0, math.ceil(q / 100.0 * self.samples))
            seen = 0.0
            for value, weight in ordered:
                seen += weight
                if seen >= rank:
                    return value
            return ordered[-1][0]
        return None


def _values(info: MetricInfo, buckets: list[_Bucket], instances: float | None) -> _Values | None:
    if info.kind == "samples":
        field = _STAT_FIELD[info.name]
        kept = [st for b in buckets if (st := getattr(b, field)) is not None and st.count]
        stat = kept[0] if len(kept) == 1 else merged(kept)  # read only: no copy of one
        if stat.count == 0:
            return None
        return _Values(
            stat.count, stat.total, minimum=stat.minimum, maximum=stat.maximum, stat=stat
        )
    n = sum(b.count for b in buckets)
    if n == 0:
        return None
    if info.kind == "ratio":
        if not instances:
            return None  # no instance count known for the period, or none ran
        return _Values(1, n / instances, minimum=n / instances, maximum=n / instances)
    if info.name == "Invocations":
        return _Values(n, n, minimum=1.0, maximum=1.0)
    errors = sum(b.e4 if info.name == "Invocation4XXErrors" else b.e5 for b in buckets)
    return _Values(n, errors, minimum=0.0 if errors < n else 1.0, maximum=1.0 if errors else 0.0)


def _level_values(seconds: dict[int, list[float]], span: int) -> _Values | None:
    """Requests in flight over a period: the samples are the per-second means (seconds without
    a bucket are 0; a stored rollup of N seconds counts as N seconds at its mean); Maximum is
    the most requests in flight at once in any second (summed over the series, so over
    variants it is an upper bound)."""
    if not any(area or peak for area, peak, _ in seconds.values()):
        return None
    weighted = [(area / width, width) for area, _, width in seconds.values()]
    covered = sum(w for _, w in weighted)
    if span > covered:
        weighted.append((0.0, span - covered))
    samples = sum(w for _, w in weighted)
    total = sum(area for area, _, _ in seconds.values())
    peak = max(peak for _, peak, _ in seconds.values())
    levels = [v for v, _ in weighted]
    return _Values(samples, total, minimum=min(levels), maximum=max(peak, *levels), levels=weighted)


def _datapoint(info: MetricInfo, at: int, v: _Values, stats: Iterable[str]) -> Datapoint:
    point = Datapoint(Timestamp=datetime.fromtimestamp(at, UTC), Unit=info.unit)
    extended: dict[str, float] = {}
    for s in stats:
        if s == "SampleCount":
            point.SampleCount = float(v.samples)
        elif s == "Sum":
            point.Sum = float(v.total)
        elif s == "Average":
            point.Average = v.total / v.samples if v.samples else 0.0
        elif s == "Minimum":
            point.Minimum = float(v.minimum)
        elif s == "Maximum":
            point.Maximum = float(v.maximum)
        else:
            q = percentile_of(s)
            value = v.percentile(q) if q is not None else None
            if value is not None:
                extended[s] = float(value)
    if extended:
        point.ExtendedStatistics = extended
    return point


def _step_mean(points: list[tuple[float, int]], a: float, b: float) -> float | None:
    """Time-weighted mean over [a, b) of a step function given by its changes (t, value);
    None when nothing is known by ``b``."""
    if b <= a or not points or points[0][0] >= b:
        return None
    area = 0.0
    known_from = max(a, points[0][0])
    for i, (t, value) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else b
        lo, hi = max(t, a), min(nxt, b)
        if hi > lo:
            area += value * (hi - lo)
    return area / (b - known_from) if b > known_from else float(points[-1][1])


def _host_memory_bytes() -> int:
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: percentages of 16 GiB
        return 16 << 30


def _point(b: _Bucket) -> Point:
    stats: dict[str, Stat] = {}
    for name in STAT_FIELDS:
        stat: Stat | None = getattr(b, name)
        if stat is not None and stat.count:
            stats[name] = merged([stat])  # a copy: the bucket may still change
    return Point(count=b.count, e4=b.e4, e5=b.e5, area=b.area, peak=b.peak, stats=stats)


def _fill(b: _Bucket, p: Point) -> None:
    b.count, b.e4, b.e5, b.area, b.peak = p.count, p.e4, p.e5, p.area, p.peak
    for name, stat in p.stats.items():
        setattr(b, name, stat)


def _bucket_of(p: Point) -> _Bucket:
    b = _Bucket()
    _fill(b, p)
    return b
