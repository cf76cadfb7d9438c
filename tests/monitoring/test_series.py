"""SeriesStore with fake time: every statistic, percentiles against numpy, retention,
concurrency, InvocationsPerInstance, what the planners read, and bad queries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from orchestrator.errors import ValidationError
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.shapes import MetricStatistics
from orchestrator.monitoring.sketch import Stat
from orchestrator.testing import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # on a minute boundary
t0 = T0.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(clock: FakeClock) -> SeriesStore:
    return SeriesStore(clock=clock, memory_total_bytes=1000)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def q(store: SeriesStore, metric: str, *stats: str, **kw: object) -> list[dict[str, object]]:
    params: dict[str, object] = {"start": T0, "end": at(180), "period": 60}
    params.update(kw)
    answer: MetricStatistics = store.query(
        "ep",
        metric,
        statistics=list(stats),
        **params,  # type: ignore[arg-type]
    )
    return [p.model_dump(exclude_none=True) for p in answer.Datapoints]


def invoke(store: SeriesStore, second: float, status: int = 200, **kw: object) -> None:
    args: dict[str, object] = {"model_us": None, "overhead_us": None}
    args.update(kw)
    variant = str(args.pop("variant", "v1"))
    config = str(args.pop("config", "cfg"))
    store.record_invocation(
        "ep",
        variant,
        config,
        status=status,
        at=t0 + second,
        **args,  # type: ignore[arg-type]
    )


# --- statistics ----------------------------------------------------------------------------
def test_every_statistic_of_a_latency(store: SeriesStore) -> None:
    for i, v in enumerate([100.0, 200.0, 300.0, 400.0]):
        invoke(store, 1 + i, model_us=v)
    invoke(store, 61, model_us=50.0)
    points = q(store, "ModelLatency", "SampleCount", "Sum", "Average", "Minimum", "Maximum", "p50")
    assert points[0] == {
        "Timestamp": T0,
        "SampleCount": 4.0,
        "Sum": 1000.0,
        "Average": 250.0,
        "Minimum": 100.0,
        "Maximum": 400.0,
        "ExtendedStatistics": {"p50": pytest.approx(200.0, rel=0.01)},
        "Unit": "Microseconds",
    }
    assert points[1]["Timestamp"] == at(60)
    assert points[1]["SampleCount"] == 1.0 and points[1]["Maximum"] == 50.0
    assert len(points) == 2  # the empty third minute has no datapoint


def test_counts_and_error_rates(store: SeriesStore) -> None:
    for i in range(10):
        invoke(store, i, status=200 if i < 7 else (404 if i < 9 else 503))
    assert q(store, "Invocations", "Sum", "SampleCount", "Average")[0] == {
        "Timestamp": T0, "Sum": 10.0, "SampleCount": 10.0, "Average": 1.0, "Unit": "None",
    }  # fmt: skip
    four = q(store, "Invocation4XXErrors", "Sum", "Average", "Minimum", "Maximum")[0]
    assert (four["Sum"], four["Average"], four["Minimum"], four["Maximum"]) == (2, 0.2, 0, 1)
    five = q(store, "Invocation5XXErrors", "Sum", "Average")[0]
    assert (five["Sum"], five["Average"]) == (1.0, 0.1)


def test_variants_and_fleets_merge_unless_a_variant_is_asked(store: SeriesStore) -> None:
    invoke(store, 1, variant="a", config="old")
    invoke(store, 2, variant="a", config="new")
    invoke(store, 3, variant="b", config="old")
    assert q(store, "Invocations", "Sum")[0]["Sum"] == 3.0
    assert q(store, "Invocations", "Sum", variant="a")[0]["Sum"] == 2.0
    assert q(store, "Invocations", "Sum", variant="nope") == []


def test_periods_align_to_the_epoch_and_the_second_of_start_time_counts(
    store: SeriesStore,
) -> None:
    invoke(store, 10.2)
    invoke(store, 25)
    invoke(store, 40)
    points = q(store, "Invocations", "Sum", start=at(10.5), end=at(40), period=15)
    assert [(p["Timestamp"], p["Sum"]) for p in points] == [(at(0), 1.0), (at(15), 1.0)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_two_percent_of_numpy(store: SeriesStore, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.lognormal(8, 1.2, 20_000), rng.uniform(10, 50_000, 5_000)])
    for i, v in enumerate(values):
        invoke(store, (i % 3600) / 10.0, model_us=float(v))  # spread over many buckets
    stats = ["p10", "p50", "p90", "p99", "p99.9"]
    [point] = q(store, "ModelLatency", *stats, end=at(360), period=360)
    for s in stats:
        expected = float(np.percentile(values, float(s[1:])))
        assert point["ExtendedStatistics"][s] == pytest.approx(expected, rel=0.02), s  # type: ignore[index]


def test_merged_sketches_answer_like_one() -> None:
    a, b, both = Stat(), Stat(), Stat()
    for v in range(1, 1000):
        (a if v % 2 else b).add(float(v))
        both.add(float(v))
    a.merge(b)
    assert a.hist == both.hist and a.percentile(99) == both.percentile(99)
    assert Stat().percentile(50) is None
    zero = Stat()
    zero.add(0.0)
    assert zero.percentile(50) == 0.0


# --- retention and memory ------------------------------------------------------------------
def test_retention_bounds_buckets_and_drops_idle_series(clock: FakeClock) -> None:
    store = SeriesStore(clock=clock, retention_seconds=600)
    for i in range(3000):
        invoke(store, i)  # 50 minutes, one request a second
    series = store._series[("ep", "v1", "cfg")]
    assert len(series.buckets) <= 601
    assert min(series.buckets) >= int(t0) + 3000 - 1 - 600
    clock.advance(3000)
    assert q(store, "Invocations", "Sum", end=at(600), period=60) == []  # gone
    # Many requests in one second take one bucket of fixed size.
    for _ in range(10_000):
        invoke(store, 2999.5, model_us=1000.0)
    assert len(series.buckets) <= 601
    assert len(series.buckets[int(t0) + 2999].model.hist) == 1  # type: ignore[union-attr]
    # A series nobody records into any more is dropped by the next sweep.
    store.record_invocation("other", "v", "c", status=200, model_us=None, overhead_us=None,
                            at=t0 + 3000)  # fmt: skip
    store.record_invocation("other", "v", "c", status=200, model_us=None, overhead_us=None,
                            at=t0 + 5000)  # fmt: skip
    assert ("ep", "v1", "cfg") not in store._series


def test_records_older_than_the_retention_are_ignored(clock: FakeClock) -> None:
    store = SeriesStore(clock=clock, retention_seconds=60)
    invoke(store, 1000)
    invoke(store, 10)  # late by far more than the retention
    assert list(store._series[("ep", "v1", "cfg")].buckets) == [int(t0) + 1000]


def test_forget_drops_an_endpoint(store: SeriesStore) -> None:
    invoke(store, 1)
    store.record_instances("ep", "v1", 1, t0)
    store.record_model_setup_time("ep", "v1", 2.0, t0)
    store.forget("ep")
    assert q(store, "Invocations", "Sum") == []
    assert q(store, "ModelSetupTime", "Sum") == []


# --- concurrency, instances, setup, usage --------------------------------------------------
def test_concurrency_is_a_time_weighted_mean(store: SeriesStore, clock: FakeClock) -> None:
    store.request_started("ep", "v1", "cfg", t0 + 0)
    store.request_started("ep", "v1", "cfg", t0 + 10)
    store.request_finished("ep", "v1", "cfg", t0 + 20)
    store.request_finished("ep", "v1", "cfg", t0 + 30.5)
    clock.advance(120)
    [point] = q(store, "ConcurrentRequests", "Average", "Maximum", "Sum", "SampleCount", "p50",
                end=at(60))  # fmt: skip
    # 0-10: 1, 10-20: 2, 20-30.5: 1, then 0: 40.5 request-seconds over 60 s
    assert point["Sum"] == pytest.approx(40.5)
    assert point["Average"] == pytest.approx(40.5 / 60)
    assert point["SampleCount"] == 60.0
    assert point["Maximum"] == 2.0
    assert point["ExtendedStatistics"] == {"p50": 0.5}  # 29 idle seconds, then 30.5 s half busy


def test_a_request_still_in_flight_counts_up_to_now(store: SeriesStore, clock: FakeClock) -> None:
    store.request_started("ep", "v1", "cfg", t0 + 30)
    clock.advance(60)
    [point] = q(store, "ConcurrentRequests", "Average", end=at(60))
    assert point["Average"] == pytest.approx(0.5)
    load = store.variant_load("ep", "v1", "cfg", 60, clock.now())
    assert load.concurrency == pytest.approx(0.5)


def test_invocations_per_instance(store: SeriesStore, clock: FakeClock) -> None:
    store.record_instances("ep", "v1", 2, t0)
    store.record_instances("ep", "v1", 2, t0 + 5)  # unchanged: not kept twice
    store.record_instances("ep", "v1", 4, t0 + 90)
    for i in range(120):
        invoke(store, i)
    clock.advance(120)
    points = q(store, "InvocationsPerInstance", "Sum", end=at(120))
    # minute 1: 60 / 2; minute 2: 60 / (2 for 30 s, then 4 for 30 s = 3)
    assert [p["Sum"] for p in points] == [30.0, 20.0]
    assert len(store._instances[("ep", "v1")]) == 2
    with pytest.raises(ValidationError, match="supports only Sum") as e:
        q(store, "InvocationsPerInstance", "Average")
    assert e.value.field == "Statistics"


def test_invocations_per_instance_needs_an_instance_count(store: SeriesStore) -> None:
    invoke(store, 1)
    assert q(store, "InvocationsPerInstance", "Sum") == []


def test_setup_time_and_replica_usage(store: SeriesStore) -> None:
    store.record_model_setup_time("ep", "v1", 2.5, t0 + 1)
    store.record_model_setup_time("ep", "v1", 3.5, t0 + 2)
    [setup] = q(store, "ModelSetupTime", "Average", "Maximum")
    assert (setup["Average"], setup["Maximum"], setup["Unit"]) == (3e6, 3.5e6, "Microseconds")
    store.record_replica_usage("ep", "v1", "r1", cpu_percent=50.0, memory_bytes=100, at=t0 + 1)
    store.record_replica_usage("ep", "v1", "r2", cpu_percent=150.0, memory_bytes=300, at=t0 + 1)
    [cpu] = q(store, "CPUUtilization", "Average", "Maximum")
    assert (cpu["Average"], cpu["Maximum"], cpu["Unit"]) == (100.0, 150.0, "Percent")
    [memory] = q(store, "MemoryUtilization", "Average")
    assert memory["Average"] == pytest.approx(20.0)  # of 1000 bytes
    assert q(store, "CPUUtilization", "Average", variant="v2") == []


# --- what the planners read ----------------------------------------------------------------
def test_variant_load(store: SeriesStore, clock: FakeClock) -> None:
    for i in range(30):
        invoke(store, 100 + i)
    invoke(store, 120, variant="v1", config="other")
    load = store.variant_load("ep", "v1", "cfg", 60, at(150.5))
    assert load.invocations_per_minute == 30.0
    assert load.last_invocation_at == at(129)
    assert load.waiting == 0
    assert store.variant_load("ep", "v1", "cfg", 30, at(150.5)).invocations_per_minute == 18.0
    assert store.variant_load("ep", "v1", "cfg", 60, at(300)).invocations_per_minute == 0.0
    assert store.variant_load("ep", "nope", "cfg", 60, at(300)).last_invocation_at is None


def test_fleet_health(store: SeriesStore) -> None:
    for i in range(100):
        invoke(store, 10 + i / 10, status=503 if i < 3 else 200, model_us=float(i + 1),
               overhead_us=5.0, config="new", variant="a" if i % 2 else "b")  # fmt: skip
    invoke(store, 5, status=500, config="new")  # before `since`
    invoke(store, 15, status=500, config="old")  # the other fleet
    health = store.fleet_health("ep", "new", at(10), at(30))
    assert (health.invocations, health.errors_5xx) == (100, 3)
    assert health.model_latency_p99_us == pytest.approx(99.0, rel=0.02)
    assert health.overhead_latency_p99_us == 5.0
    empty = store.fleet_health("ep", "new", at(40), at(50))
    assert (empty.invocations, empty.model_latency_p99_us) == (0, None)


def test_recording_from_many_threads_loses_nothing(store: SeriesStore) -> None:
    def work(k: int) -> None:
        for i in range(2000):
            invoke(store, (i % 50) + 0.5, model_us=float(k + 1))
            store.request_started("ep", "v1", "cfg", t0 + 60 + i / 1000)
            store.request_finished("ep", "v1", "cfg", t0 + 60 + i / 1000)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert q(store, "Invocations", "Sum")[0]["Sum"] == 8000.0
    assert store._series[("ep", "v1", "cfg")].inflight == 0


# --- bad queries ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric", "stats", "kw", "field", "words"),
    [
        ("Latency", ["Sum"], {}, "MetricName", "ModelLatency"),
        ("ModelLatency", ["Median"], {}, "Statistics", "p99"),
        ("ModelLatency", ["p101"], {}, "Statistics", "p0..p100"),
        ("ModelLatency", [], {}, "Statistics", "at least one"),
        ("Invocations", ["p99"], {}, "Statistics", "not to Invocations"),
        ("Invocations", ["Sum"], {"period": 0}, "Period", "positive"),
        ("Invocations", ["Sum"], {"start": at(60), "end": at(60)}, "StartTime", "before"),
        ("Invocations", ["Sum"], {"period": 1, "end": at(3 * 3600)}, "Period", "at least 8 s"),
    ],
)
def test_bad_queries_name_the_parameter(
    store: SeriesStore,
    metric: str,
    stats: list[str],
    kw: dict[str, object],
    field: str,
    words: str,
) -> None:
    with pytest.raises(ValidationError, match=words) as e:
        q(store, metric, *stats, **kw)
    assert e.value.field == field


def test_the_datapoint_cap_is_inclusive(store: SeriesStore) -> None:
    assert q(store, "Invocations", "Sum", period=1, end=at(1439)) == []
