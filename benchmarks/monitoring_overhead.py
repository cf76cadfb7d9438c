"""What recording endpoint metrics costs the invocation router, per call.

Times ``SeriesStore.record_invocation`` (with both latencies), ``request_started`` +
``request_finished``, and, for scale, the Prometheus ``metrics.record_invocation`` the router
already calls; then a query over three hours of one-second buckets. Latencies are drawn from a
log-normal distribution so the histograms hold a realistic spread of buckets.

    python benchmarks/monitoring_overhead.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from orchestrator import metrics
from orchestrator.monitoring.series import SeriesStore


def per_call_us(fn: Callable[[int], None], calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of ``calls`` calls (the machine may be shared)."""
    fn(0)  # warm up dictionaries and caches
    runs = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(r * calls, (r + 1) * calls):
            fn(i)
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    latencies = [rng.lognormvariate(8, 1) for _ in range(4096)]  # ~3 ms median, in us
    t0 = 1_800_000_000.0
    store = SeriesStore()
    rate = 2000.0  # requests per second of simulated time: 2000 calls share one bucket

    def record(i: int) -> None:
        store.record_invocation(
            "ep",
            "v1",
            "cfg",
            status=200 if i % 50 else 500,
            model_us=latencies[i & 4095],
            overhead_us=latencies[(i * 7) & 4095] / 20,
            at=t0 + i / rate,
        )

    def in_flight(i: int) -> None:
        at = t0 + i / rate
        store.request_started("ep", "v1", "cfg", at)
        store.request_finished("ep", "v1", "cfg", at + 0.0004)

    def prometheus(i: int) -> None:
        metrics.record_invocation(
            "ep", "v1", status=200, model_seconds=None, overhead_seconds=latencies[i & 4095] / 1e6
        )

    rows = [
        ("SeriesStore.record_invocation", per_call_us(record, args.calls)),
        ("request_started + request_finished", per_call_us(in_flight, args.calls)),
        ("metrics.record_invocation (Prometheus)", per_call_us(prometheus, args.calls)),
    ]

    # Three hours of one request every 50 ms, then the heaviest query: p99 over 3 h by minute.
    full = SeriesStore(retention_seconds=3 * 3600)
    for i in range(3 * 3600 * 20):
        full.record_invocation(
            "ep", "v1", "cfg", status=200, model_us=latencies[i & 4095], overhead_us=None,
            at=t0 + i / 20,
        )  # fmt: skip
    end = datetime.fromtimestamp(t0 + 3 * 3600, UTC)
    start = datetime.fromtimestamp(t0, UTC)
    began = time.perf_counter()
    answer = full.query(
        "ep", "ModelLatency", start=start, end=end, period=60, statistics=["Average", "p99"]
    )
    query_ms = (time.perf_counter() - began) * 1e3

    print(f"{'operation':<42} {'us/call':>8}")
    for name, us in rows:
        print(f"{name:<42} {us:>8.2f}")
    print(f"{'query 3 h by minute, Average + p99':<42} {query_ms * 1e3:>8.0f}")
    print(f"({len(answer.Datapoints)} datapoints; median of 5 runs of {args.calls} calls)")


if __name__ == "__main__":
    main()
