"""Endpoint metrics made durable: the in-memory series flushed to the SQL store, rolled up.

A thread (``start``/``stop``: a control-plane service) flushes every ``flush_seconds`` (10 s
by default), never on the invocation path: ``SeriesStore.snapshot`` copies the buckets from
a little before the last flush on (``GRACE_SECONDS``: a router's batch that lands late is
still written) under the store's lock, and the rest is done outside it. Each flush writes,
by upsert keyed (kind, endpoint, resolution, time, variant, config), the *full* value of:

- every one-second bucket copied,
- every 1-minute window those buckets touch (merged from memory's seconds),
- the 5-minute and 1-hour windows holding those minutes (merged from the minutes, kept here
  for the current and previous hour; after a restart they are merged again from memory,
  which the restart reloaded).

So writing a window again (a flush repeated after a crash, two flushes of the same second)
replaces the row with the same value: nothing is counted twice, and what was flushed before
a kill is in the store. What was recorded after the last flush is lost (at most
``flush_seconds``). On start the last ``SeriesStore.retention`` seconds of one-second points
are loaded back into memory, so a query across a restart sees the old points; older queries
read the rollups (``older``), at the coarsest resolution dividing the period that reaches
back far enough. Points past their resolution's retention are pruned once a minute.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Sequence

from orchestrator.clock import Clock
from orchestrator.errors import OrchestratorError, ValidationError
from orchestrator.monitoring.rollup import (
    STAT_FIELDS,
    Point,
    decode_stat,
    encode_stat,
    merge_points,
    resolution_for,
    retention_seconds,
    window_of,
)
from orchestrator.monitoring.series import SeriesKey, SeriesStore
from orchestrator.settings import Settings
from orchestrator.store.metrics_sql import MetricsStore, Row

log = logging.getLogger(__name__)
GRACE_SECONDS = 30
_PRUNE_EVERY_SECONDS = 60


def to_row(  # noqa: PLR0917 - a row key, positional
    kind: str, key: SeriesKey, resolution: int, at: int, p: Point, writer: str = "main"
) -> Row:
    return Row(
        kind, key[0], key[1], key[2], resolution, at, writer, count=p.count, e4=p.e4, e5=p.e5,
        area=p.area, peak=p.peak,
        stats=tuple((n, encode_stat(s)) for n, s in p.stats.items() if s.count),
    )  # fmt: skip


def to_point(row: Row) -> Point:
    return Point(
        count=row.count, e4=row.e4, e5=row.e5, area=row.area, peak=row.peak,
        stats={n: decode_stat(b) for n, b in row.stats},
    )  # fmt: skip


class MetricsArchive:
    """Flushes ``series`` to ``store`` and answers the series' older queries from it."""

    def __init__(
        self,
        series: SeriesStore,
        store: MetricsStore,
        *,
        retention: dict[int, int],
        flush_seconds: float = 10.0,
        clock: Clock | None = None,
        writer: str = "main",
        shared: bool = False,
    ) -> None:
        if series.retention < 3600 + GRACE_SECONDS:
            raise ValidationError(
                "the in-memory series must keep at least an hour (and a flush's grace) for "
                f"the hourly rollups; it keeps {series.retention} s",
                field="retention_seconds",
            )
        self.series = series
        self.store = store
        self.retention = retention
        self.flush_seconds = flush_seconds
        # Several replicas write (a cluster): each its own rows, and queries read only the
        # store, which holds every replica's points up to its last flush.
        self.writer = writer
        self.shared = shared
        # Every second before this is in the store (a straggler of a router's batch aside):
        # queries read memory only from here on.
        self.flushed_before = -math.inf
        self.clock = clock or series.clock
        self._watermark: int | None = None  # the second the last flush ran at
        self._minutes: dict[tuple[str, SeriesKey], dict[int, Point]] = {}
        self._fives: dict[tuple[str, SeriesKey], dict[int, Point]] = {}
        self._next_prune = 0.0
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        series.archive = self

    # --- lifecycle ---------------------------------------------------------------------------
    def reload(self) -> int:
        """Loads the last ``series.retention`` seconds of one-second points into memory."""
        now = int(self.clock.now().timestamp())
        since = now - self.series.retention + 1
        rows = [
            (r.kind, (r.endpoint, r.variant, r.config), r.at, to_point(r))
            for kind in ("inv", "var")
            for r in self.store.read(kind, None, 1, since, now + 1, writer=self.writer)
        ]
        return self.series.load(rows, self._stored_instances(since))

    def _stored_instances(self, since: int) -> dict[tuple[str, str], list[tuple[float, int]]]:
        out: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for endpoint, variant, _ in self.store.series("inv", since - 3600):
            if (endpoint, variant) in out:
                continue
            for v, changes in self.store.read_instances(endpoint, since).items():
                out[endpoint, v] = changes
        return out

    def start(self) -> None:
        self.reload()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except OrchestratorError as e:  # the store is away: the next flush rewrites
                log.warning("metrics flush failed (retried next time): %s", e)

    # --- the flush ---------------------------------------------------------------------------
    def flush(self) -> int:
        """Writes what changed since the last flush (see the module docstring); returns the
        number of rows written."""
        with self._flush_lock:
            now = int(self.clock.now().timestamp())
            if self._watermark is None:  # first flush: the whole current hour, from memory
                since = window_of(now - GRACE_SECONDS, 3600)
            else:
                since = window_of(self._watermark - GRACE_SECONDS, 60)
            snap = self.series.snapshot(since)
            rows: list[Row] = []
            for (kind, key), seconds in snap.items():
                rows += [to_row(kind, key, 1, sec, p, self.writer) for sec, p in seconds.items()]
                rows += self._rollups(kind, key, seconds)
            for (endpoint, variant), changes in self.series.instance_changes().items():
                for at, count in changes:
                    if self._watermark is None or at >= self._watermark - GRACE_SECONDS:
                        self.store.record_instances(endpoint, variant, at, count)
            written = self.store.upsert(rows)
            self._watermark = now
            self.flushed_before = float(now - GRACE_SECONDS)
            self._forget_before(window_of(now, 3600) - 3600)
            if now >= self._next_prune:
                self._next_prune = now + _PRUNE_EVERY_SECONDS
                self.store.prune(self.retention, now)
            return written

    def _rollups(self, kind: str, key: SeriesKey, seconds: dict[int, Point]) -> list[Row]:
        minutes = self._minutes.setdefault((kind, key), {})
        fives = self._fives.setdefault((kind, key), {})
        by_minute: dict[int, list[Point]] = {}
        for sec, p in seconds.items():
            by_minute.setdefault(window_of(sec, 60), []).append(p)
        rows = []
        for m, ps in by_minute.items():
            minutes[m] = merge_points(ps)
            rows.append(to_row(kind, key, 60, m, minutes[m], self.writer))
        for f in {window_of(m, 300) for m in by_minute}:
            fives[f] = self._window(kind, key, minutes, f, 300, 60)
            rows.append(to_row(kind, key, 300, f, fives[f], self.writer))
        for h in {window_of(m, 3600) for m in by_minute}:
            hour = self._window(kind, key, fives, h, 3600, 300)
            rows.append(to_row(kind, key, 3600, h, hour, self.writer))
        return rows

    def _window(  # noqa: PLR0917 - one window, positional
        self,
        kind: str,
        key: SeriesKey,
        parts: dict[int, Point],
        start: int,
        size: int,
        part: int,
    ) -> Point:
        """A window merged from its parts; a part not seen since the start is merged from
        memory (a restart reloaded it there)."""
        missing = [t for t in range(start, start + size, part) if t not in parts]
        if missing:
            snap = self.series.snapshot(min(missing)).get((kind, key), {})
            for t in missing:
                # kept even when empty: asked once, not at every flush
                parts[t] = merge_points(p for sec, p in snap.items() if t <= sec < t + part)
        return merge_points(parts[t] for t in range(start, start + size, part))

    def _forget_before(self, cutoff: int) -> None:
        for cache in (self._minutes, self._fives):
            for k, m in list(cache.items()):
                for t in [t for t in m if t < cutoff]:
                    del m[t]
                if not m:
                    del cache[k]

    # --- reads (``series.Archive``) ------------------------------------------------------------
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
        resolution = resolution or resolution_for(period, self.retention, age)
        rows = self.store.read(
            kind, endpoint, resolution, lo, math.ceil(hi), variant=variant, columns=columns
        )
        return resolution, [(r.at, to_point(r)) for r in rows]

    def instances(self, endpoint: str, since: float) -> dict[str, list[tuple[float, int]]]:
        return self.store.read_instances(endpoint, since)


def metrics_archive(
    settings: Settings, series: SeriesStore, store: MetricsStore | None, *, shared: bool = False
) -> MetricsArchive | None:
    """The archive ``settings.metrics`` asks for over ``store`` (None: memory only)."""
    m = settings.metrics
    if not m.durable or store is None:
        return None
    retention = retention_seconds(
        one_second_hours=m.retention_1s_hours, one_minute_days=m.retention_1m_days,
        five_minute_days=m.retention_5m_days, hour_days=m.retention_1h_days,
    )  # fmt: skip
    return MetricsArchive(
        series, store, retention=retention, flush_seconds=m.flush_seconds,
        writer=m.writer or socket.gethostname(), shared=shared,
    )  # fmt: skip


__all__ = ["STAT_FIELDS", "MetricsArchive", "metrics_archive", "to_point", "to_row"]
