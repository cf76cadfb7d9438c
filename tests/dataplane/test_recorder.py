"""The invocation log: the hot path appends; a flush lands every event once, in a batch."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator import metrics
from orchestrator.dataplane.recorder import InvocationLog, LocalSink
from orchestrator.monitoring.series import SeriesStore
from orchestrator.testing import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_lands_in_the_series_and_prometheus_once() -> None:
    clock = FakeClock(T0)
    series = SeriesStore(clock=clock)
    log = InvocationLog()
    t = T0.timestamp()
    for i in range(10):
        log.started("rec", "v", "c", t + i)
        log.answered("rec", "v", "c", t + i + 0.5, 500 if i == 0 else 200, 1000.0, 80.0)
        log.finished("rec", "v", "c", t + i + 0.5)
    log.started("rec", "v", "c", t + 10)  # still in flight at the flush
    labels = {"endpoint": "rec", "variant": "v"}
    before = sample("orch_invocations_total", **labels)
    LocalSink(series, worker=3).apply(log.drain())
    assert log.drain() == []
    assert sample("orch_invocations_total", **labels) - before == 10
    assert sample("orch_concurrent_requests", **labels) == 1
    assert sample("orch_router_worker_invocations_total", worker="3") >= 10
    clock.advance(20)
    load = series.variant_load("rec", "v", "c", 25, clock.now())
    assert load.invocations_per_minute == 10 * 60 / 25
    # 10 half-second requests and one in flight since t+10: 5 + 10 request-seconds in 25 s.
    assert abs(load.concurrency - 15 / 25) < 1e-9
    # The worker is gone: what it had in flight no longer is.
    series.forget_source(3, t + 20)
    clock.advance(20)
    assert series.variant_load("rec", "v", "c", 10, clock.now()).concurrency == 0


def test_two_workers_in_flight_add_up() -> None:
    clock = FakeClock(T0)
    series = SeriesStore(clock=clock)
    t = T0.timestamp()
    a, b = InvocationLog(), InvocationLog()
    a.started("two", "v", "c", t)
    b.started("two", "v", "c", t + 1)  # arrives later, out of order with a's finish below
    a.finished("two", "v", "c", t + 4)
    b.finished("two", "v", "c", t + 3)
    LocalSink(series, worker=1).apply(a.drain())
    LocalSink(series, worker=2).apply(b.drain())
    clock.advance(10)
    # 4 request-seconds from one worker and 2 from the other, over a 12 s window.
    assert abs(series.variant_load("two", "v", "c", 12, clock.now()).concurrency - 6 / 12) < 1e-9
