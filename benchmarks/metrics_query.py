"""GetMetricStatistics over 24 hours of one endpoint's durable metrics, and what they weigh.

24 hours of one-second points at ``--rate`` requests a second (86,400 points, each with its
ModelLatency histogram; written straight into the SQL store with their 1-minute, 5-minute
and 1-hour rollups, as the flush writes them), then a control plane restarted over that
database (the last 3 hours reloaded into memory) answers GetMetricStatistics over the 24
hours at periods 60, 300 and 3600 (Invocations Sum, ModelLatency p99): the median time of
``--repeat`` queries. Storage: the database's size with every point, and after the prune
that keeps one-second points 3 hours (VACUUMed), per endpoint-day.

    python benchmarks/metrics_query.py [--rate 1000] [--repeat 7] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.monitoring.archive import MetricsArchive, to_row
from orchestrator.monitoring.rollup import Point, merge_points, window_of
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.sketch import Stat
from orchestrator.store.metrics_sql import Row, open_metrics_store
from orchestrator.testing import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400
RETENTION = {1: 3 * 3600, 60: 15 * DAY, 300: 63 * DAY, 3600: 455 * DAY}
KEY = ("ep", "AllTraffic", "cfg")


def templates(rate: int, n: int = 16) -> list[Point]:
    """``n`` seconds of ``rate`` requests with log-normal model latencies (about 2 ms)."""
    rng = random.Random(7)
    out = []
    for _ in range(n):
        s = Stat()
        for _ in range(rate):
            s.add(rng.lognormvariate(7.6, 0.4))
        out.append(Point(count=rate, e4=rate // 100, e5=rate // 1000, area=rate * 0.002,
                         peak=8, stats={"model": s}))  # fmt: skip
    return out


def write_day(archive: MetricsArchive, rate: int) -> float:
    base = templates(rate)
    t0 = int(T0.timestamp())
    started = time.perf_counter()
    for hour in range(24):
        rows: list[Row] = []
        h = t0 + hour * 3600
        seconds = {h + i: base[(hour * 3600 + i) % len(base)] for i in range(3600)}
        rows += [to_row("inv", KEY, 1, at, p) for at, p in seconds.items()]
        fives = []
        for f in range(h, h + 3600, 300):
            minutes = []
            for m in range(f, f + 300, 60):
                minute = merge_points(seconds[s] for s in range(m, m + 60))
                minutes.append(minute)
                rows.append(to_row("inv", KEY, 60, m, minute))
            five = merge_points(minutes)
            fives.append(five)
            rows.append(to_row("inv", KEY, 300, f, five))
        rows.append(to_row("inv", KEY, 3600, window_of(h, 3600), merge_points(fives)))
        archive.store.upsert(rows)
    return time.perf_counter() - started


def size(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "state.db"
    end = T0 + timedelta(days=1)
    clock = FakeClock(end)
    series = SeriesStore(clock=clock)
    archive = MetricsArchive(series, open_metrics_store(f"sqlite:///{db}"),
                             retention=RETENTION, clock=clock)  # fmt: skip
    empty = size(db)
    took = write_day(archive, args.rate)
    full = size(db)
    print(f"wrote 86,400 one-second points + rollups in {took:.1f} s")

    # a restarted control plane over that database
    series = SeriesStore(clock=clock)
    archive = MetricsArchive(series, archive.store, retention=RETENTION, clock=clock)
    started = time.perf_counter()
    loaded = archive.reload()
    print(f"restart: {loaded:,} one-second points reloaded in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
    started = time.perf_counter()
    archive.flush()  # a running control plane has flushed within the last 10 s
    print(f"first flush after the restart: {(time.perf_counter() - started) * 1000:.0f} ms")
    print()
    print(f"{'query (24 h)':<32} {'period':>7} {'points':>7} {'median ms':>10} {'max ms':>8}")
    for metric, stat in (("Invocations", "Sum"), ("ModelLatency", "p99")):
        for period in (60, 300, 3600):
            times = []
            n = 0
            total = 0.0
            for _ in range(args.repeat):
                started = time.perf_counter()
                answer = series.query("ep", metric, start=T0, end=end, period=period,
                                      statistics=[stat])  # fmt: skip
                times.append((time.perf_counter() - started) * 1000)
                n = len(answer.Datapoints)
                if stat == "Sum":
                    total = sum(p.Sum or 0.0 for p in answer.Datapoints)
            if stat == "Sum" and total != args.rate * DAY:
                print(f"wrong answer: {total} invocations, not {args.rate * DAY}")
                return 1
            print(f"{metric + ' ' + stat:<32} {period:>7} {n:>7} "
                  f"{statistics.median(times):>10.1f} {max(times):>8.1f}")  # fmt: skip
    # a steady flush: 10 s of traffic at the rate, then the flush (the lock is held only for
    # the copy of the buckets since a little before the last flush)
    t = clock.now().timestamp()
    rng = random.Random(3)
    for i in range(10 * args.rate):
        series.record_invocation("ep", KEY[1], KEY[2], status=200,
                                 model_us=rng.lognormvariate(7.6, 0.4), overhead_us=50.0,
                                 at=t + i / args.rate)  # fmt: skip
    clock.advance(10)
    started = time.perf_counter()
    archive.series.snapshot(int(t) - 60)
    copy_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    rows = archive.flush()
    print()
    print(f"steady flush (10 s at {args.rate:,} req/s): {rows} rows in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms; the copy under the lock "
          f"{copy_ms:.1f} ms")  # fmt: skip
    archive.store.prune(RETENTION, end.timestamp())
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    kept = size(db)
    archive.store.prune({1: 0}, end.timestamp() + 1)  # the rollups alone: what a day adds
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    rollups = size(db)
    print()
    print(f"storage at {args.rate:,} req/s, one endpoint (SQLite):")
    print(f"  every point of the day (1 s, 1 min, 5 min, 1 h):  {(full - empty) / 1e6:7.1f} MB")
    print(f"  after the prune (1 s points kept 3 h, rollups):   {(kept - empty) / 1e6:7.1f} MB")
    print(f"  per endpoint-day kept past 3 h (the rollups):     {(rollups - empty) / 1e6:7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
