"""Durable metrics: flush, rollups, a kill and a restart from the same database, idempotent
re-flushes, queries across the restart and from the rollups, bad settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.monitoring.archive import MetricsArchive, metrics_archive
from orchestrator.monitoring.rollup import decode_stat, encode_stat, resolution_for
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.sketch import Stat
from orchestrator.settings import Settings
from orchestrator.store.metrics_sql import open_metrics_store
from orchestrator.testing import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = {1: 3 * 3600, 60: 15 * 86400, 300: 63 * 86400, 3600: 455 * 86400}


def plane(db: Path, clock: FakeClock) -> tuple[SeriesStore, MetricsArchive]:
    """A control plane's series over the database at ``db`` (as after a start)."""
    series = SeriesStore(clock=clock, memory_total_bytes=1000)
    archive = MetricsArchive(
        series, open_metrics_store(f"sqlite:///{db}"), retention=RETENTION, clock=clock
    )
    archive.reload()
    return series, archive


def invoke(series: SeriesStore, clock: FakeClock, n: int, status: int = 200) -> None:
    for i in range(n):
        series.record_invocation(
            "ep", "v1", "cfg", status=status, model_us=1000.0 + i, overhead_us=None,
            at=clock.now().timestamp(),
        )  # fmt: skip


def stats(series: SeriesStore, metric: str, start: datetime, end: datetime, period: int,
          *stat: str) -> list[dict[str, object]]:  # fmt: skip
    answer = series.query("ep", metric, start=start, end=end, period=period, statistics=stat)
    return [p.model_dump(exclude_none=True) for p in answer.Datapoints]


def total(series: SeriesStore, start: datetime, end: datetime, period: int = 60) -> float:
    return sum(float(p["Sum"]) for p in stats(series, "Invocations", start, end, period, "Sum"))  # type: ignore[arg-type]


def test_kill_after_flush_loses_nothing_flushed_and_counts_nothing_twice(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "state.db"
    series, archive = plane(db, clock)
    invoke(series, clock, 10)
    clock.advance(5)
    invoke(series, clock, 7, status=500)
    archive.flush()
    archive.flush()  # twice: the same full values again
    clock.advance(3)
    invoke(series, clock, 4)  # after the last flush: lost by the kill
    del series, archive  # killed: no stop, no final flush

    clock.advance(30)
    series, archive = plane(db, clock)
    end = clock.now() + timedelta(seconds=1)
    assert total(series, T0, end) == 17
    errors = stats(series, "Invocation5XXErrors", T0, end, 60, "Sum")
    assert errors[0]["Sum"] == 7
    p = stats(series, "ModelLatency", T0, end, 60, "p50", "Maximum")
    assert p[0]["Maximum"] == 1009.0
    # recorded after the restart adds up with what was reloaded
    invoke(series, clock, 3)
    archive.flush()
    assert total(series, T0, end + timedelta(seconds=1)) == 20


def test_flush_crash_between_two_flushes_then_reflush(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "state.db"
    series, archive = plane(db, clock)
    invoke(series, clock, 5)
    archive.flush()
    clock.advance(2)
    invoke(series, clock, 5)  # same minute, after the first flush
    archive.flush()
    del series, archive
    _series, archive = plane(db, clock)  # the reload, then the same seconds flushed again
    archive.flush()
    archive.flush()
    store = archive.store
    minute = store.read("inv", "ep", 60, 0, 2**40)
    hour = store.read("inv", "ep", 3600, 0, 2**40)
    assert [r.count for r in minute] == [10]
    assert [r.count for r in hour] == [10]
    assert sum(r.count for r in store.read("inv", "ep", 1, 0, 2**40)) == 10


def test_old_points_come_from_the_rollups_after_memory_dropped_them(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "state.db"
    series, archive = plane(db, clock)
    for _ in range(12):  # one request a second... every 10 minutes, for 2 hours
        invoke(series, clock, 2)
        clock.advance(600)
        archive.flush()
    archive.flush()
    clock.advance(5 * 3600)  # memory keeps 3 hours: all of it is older now
    del series, archive
    series, _archive = plane(db, clock)
    end = T0 + timedelta(hours=3)
    for period in (60, 300, 3600):
        assert total(series, T0, end, period) == 24, period
    lat = stats(series, "ModelLatency", T0, end, 3600, "p99", "SampleCount")
    assert [p["SampleCount"] for p in lat] == [12.0, 12.0]
    assert lat[0]["ExtendedStatistics"]["p99"] == pytest.approx(1001.0, rel=0.02)  # type: ignore[index]


def test_concurrency_from_rollups_is_time_weighted(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    series, archive = plane(tmp_path / "state.db", clock)
    t = T0.timestamp()
    series.request_started("ep", "v1", "cfg", t)
    series.request_finished("ep", "v1", "cfg", t + 30)
    clock.advance(60)
    archive.flush()
    clock.advance(4 * 3600)
    series2, _ = plane(tmp_path / "state.db", clock)
    p = stats(series2, "ConcurrentRequests", T0, T0 + timedelta(minutes=1), 60, "Average",
              "Maximum", "p90")  # fmt: skip
    assert p[0]["Average"] == pytest.approx(0.5)
    assert p[0]["Maximum"] == 1.0


def test_stat_encoding_round_trips_and_refuses_garbage() -> None:
    s = Stat()
    for v in (0.0, 1.5, 2.0, 1e6):
        s.add(v)
    d = decode_stat(encode_stat(s))
    assert (d.count, d.total, d.minimum, d.maximum, d.hist) == (
        s.count, s.total, s.minimum, s.maximum, s.hist
    )  # fmt: skip
    with pytest.raises(ValueError, match="not one this version writes"):
        decode_stat(b"abc")


def test_resolution_by_period_and_reach() -> None:
    assert resolution_for(60, RETENTION, 3600) == 60
    assert resolution_for(300, RETENTION, 3600) == 300
    assert resolution_for(3600, RETENTION, 86400) == 3600
    assert resolution_for(120, RETENTION, 86400) == 60
    assert resolution_for(600, RETENTION, 20 * 86400) == 300  # 1-minute points are gone
    assert resolution_for(5, RETENTION, 100) == 1


def test_settings_and_bad_input(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, metrics={"retention_1m_days": 2, "flush_seconds": 3})  # type: ignore[arg-type]
    series = SeriesStore(clock=FakeClock(T0))
    archive = metrics_archive(settings, series, open_metrics_store(f"sqlite:///{tmp_path}/m.db"))
    assert archive is not None
    assert archive.retention[60] == 2 * 86400
    assert archive.flush_seconds == 3
    off = Settings(home=tmp_path, metrics={"durable": False})  # type: ignore[arg-type]
    assert metrics_archive(off, series, archive.store) is None
    with pytest.raises(ValidationError, match="at least an hour"):
        MetricsArchive(SeriesStore(retention_seconds=600), archive.store, retention=RETENTION)
    with pytest.raises(ValidationError, match="ORCH_DATABASE_URL"):
        open_metrics_store("nosuchdialect://x")
    with pytest.raises(ValueError, match="retention_1s_hours"):
        Settings(home=tmp_path, metrics={"retention_1s_hours": 0})  # type: ignore[arg-type]


def test_a_control_plane_restart_keeps_its_endpoint_metrics(tmp_path: Path) -> None:
    """build_control_plane over one home: the archive is a service; killed after a flush
    (no stop), rebuilt, and CloudWatch's GetMetricStatistics sees the old points."""
    from orchestrator.access import Principal
    from orchestrator.api.app import build_control_plane
    from orchestrator.api.aws.cloudwatch import Metrics
    from orchestrator.backends.fake import FakeBackend

    clock = FakeClock(T0)
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "cfg", backend="fake")

    def build() -> tuple[SeriesStore, MetricsArchive, Metrics]:
        cp = build_control_plane(settings, backend=FakeBackend(clock=clock), clock=clock)
        [archive] = [s for s in cp.services if isinstance(s, MetricsArchive)]
        archive.reload()  # what start() does first
        assert cp.series is not None
        return cp.series, archive, Metrics(cp)

    series, archive, _ = build()
    invoke(series, clock, 6)
    archive.flush()
    del series, archive
    clock.advance(120)
    series, _, metrics = build()
    invoke(series, clock, 2)
    params = {
        "Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Period": 60,
        "StartTime": T0.isoformat(), "EndTime": (clock.now() + timedelta(minutes=1)).isoformat(),
        "Statistics": ["Sum"],
        "Dimensions": [{"Name": "EndpointName", "Value": "ep"},
                       {"Name": "VariantName", "Value": "v1"}],
    }  # fmt: skip
    answer = metrics.get_metric_statistics(params, Principal(key_id="k", name="t", role="admin"))
    assert [p["Sum"] for p in answer["Datapoints"]] == [6.0, 2.0]


def test_replicas_sharing_one_database_each_see_every_replicas_points(tmp_path: Path) -> None:
    """Two API replicas (writers a and b) over one database: each answers the sum of both
    from its last flush on, and one replica's rows never overwrite the other's."""
    clock = FakeClock(T0)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    replicas = []
    for writer in ("a", "b"):
        series = SeriesStore(clock=clock, memory_total_bytes=1000)
        archive = MetricsArchive(series, open_metrics_store(url), retention=RETENTION,
                                 clock=clock, writer=writer, shared=True)  # fmt: skip
        replicas.append((series, archive))
    invoke(replicas[0][0], clock, 3)
    invoke(replicas[1][0], clock, 4)  # the same second, the same series key
    for _, archive in replicas:
        archive.flush()
    end = clock.now() + timedelta(minutes=1)
    for series, _ in replicas:
        assert total(series, T0, end) == 7
        assert total(series, T0, end, 1) == 7


@pytest.mark.parametrize("seed", range(6))
def test_a_stored_summary_answers_every_percentile_as_the_one_it_was_made_from(
    seed: int,
) -> None:
    rng = random.Random(seed)
    s = Stat()
    for _ in range(rng.choice([1, 2, 7, 500, 20_000])):
        s.add(rng.choice([0.0, rng.lognormvariate(-4, 1.5), rng.uniform(0, 3)]))
    stored = decode_stat(encode_stat(s))
    for q in (0.0, 0.1, 1, 10, 25, 49.9, 50, 50.1, 75, 90, 99, 99.9, 99.99, 100):
        assert stored.percentile(q) == s.percentile(q), q
    # Once changed (a merge), the dict is the truth, and the arrays are gone.
    stored.merge(s)
    both = Stat()
    both.merge(s)
    both.merge(s)
    assert stored.hist == both.hist
    assert stored.percentile(99) == both.percentile(99)


def test_an_empty_stored_summary_has_no_percentile() -> None:
    assert decode_stat(encode_stat(Stat())).percentile(99) is None
