"""JobMetrics: series read incrementally from the fake backend's job log and its time marks."""

from __future__ import annotations

from datetime import UTC, datetime

from core_builders import training_spec

from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.jobmetrics import CHUNK, JobMetrics
from orchestrator.testing import FakeClock

SPEC = training_spec(
    AlgorithmSpecification={
        "TrainingImage": "example/train:1",
        "MetricDefinitions": [
            {"Name": "loss", "Regex": r"loss=(\S+)"},
            {"Name": "acc", "Regex": r"acc=(\S+)"},
        ],
    }
)
BUILTIN = training_spec(AlgorithmSpecification={"AlgorithmName": "mlp"})


class CountingBackend(FakeBackend):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.reads: list[int] = []
        self.mark_opens = 0

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        self.reads.append(offset)
        return super().read_job_logs(name, offset, limit)

    def job_log_marks(self, name: str):  # type: ignore[no-untyped-def]
        self.mark_opens += 1
        return super().job_log_marks(name)


def make() -> tuple[FakeClock, CountingBackend, JobMetrics]:
    clock = FakeClock()
    backend = CountingBackend(clock)
    return clock, backend, JobMetrics(backend, clock=clock)


def test_points_carry_the_time_each_line_was_written() -> None:
    clock, backend, jm = make()
    backend.write_log("job-1", "epoch=1 loss=0.9 acc=0.5\n")
    t1 = clock.now()
    clock.advance(30)
    backend.write_log("job-1", "epoch=2 loss=0.6\n")
    t2 = clock.now()
    clock.advance(30)  # read later: the times are still those of the writes
    series = jm.series("job-1", SPEC)
    assert [(p.value, p.step, p.epoch, p.timestamp) for p in series["loss"]] == [
        (0.9, 0, 1, t1),
        (0.6, 1, 2, t2),
    ]
    assert [p.value for p in series["acc"]] == [0.5]


def test_reads_go_on_from_where_they_stopped_and_cost_one_read_when_nothing_is_new() -> None:
    clock, backend, jm = make()
    backend.write_log("job-1", "loss=1\nlo")
    assert [p.value for p in jm.series("job-1", SPEC)["loss"]] == [1.0]
    size = len(backend.logs["job-1"])
    backend.reads.clear()
    opens = backend.mark_opens
    for _ in range(3):
        jm.series("job-1", SPEC)
    assert backend.reads == [size] * 3  # one empty read a call, from the end
    assert backend.mark_opens == opens  # and no marks opened
    clock.advance(5)
    backend.write_log("job-1", "ss=2\nloss=3\n")
    backend.reads.clear()
    assert [p.value for p in jm.series("job-1", SPEC)["loss"]] == [1.0, 2.0, 3.0]
    assert backend.reads[0] == size  # never from 0 again
    # The line split across writes is timed by where it started.
    assert jm.series("job-1", SPEC)["loss"][1].timestamp == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_log_larger_than_a_chunk_is_read_to_its_end() -> None:
    _, backend, jm = make()
    line = "loss=0.5\n"
    n = CHUNK // len(line) + 100
    backend.write_log("job-1", line * n)
    points = jm.series("job-1", SPEC)["loss"]
    assert points[-1].step == n - 1  # every line was read (the points are capped)


def test_forget_and_a_new_reader_read_the_log_again_from_the_start() -> None:
    _, backend, jm = make()
    backend.write_log("job-1", "loss=1\nloss=2\n")
    first = jm.series("job-1", SPEC)
    jm.forget("job-1")
    backend.reads.clear()
    assert jm.series("job-1", SPEC) == first
    assert backend.reads[0] == 0
    assert JobMetrics(backend).series("job-1", SPEC) == first  # a restarted control plane


def test_jobs_are_kept_apart_and_an_unknown_job_has_no_series() -> None:
    _, backend, jm = make()
    backend.write_log("a", "loss=1\n")
    backend.write_log("b", "loss=2\nacc=0.1\n")
    assert [p.value for p in jm.series("a", SPEC)["loss"]] == [1.0]
    assert set(jm.series("b", SPEC)) == {"loss", "acc"}
    assert jm.series("nope", SPEC) == {}


def test_a_builtin_algorithm_s_lines_are_read_without_metric_definitions() -> None:
    _, backend, jm = make()
    backend.write_log("job-1", "train:loss=0.8\ntrain:loss=0.5\ntest:accuracy=0.9\n")
    series = jm.series("job-1", BUILTIN)
    assert [(p.value, p.epoch) for p in series["train:loss"]] == [(0.8, 1), (0.5, 2)]
    assert series["test:accuracy"][0].epoch is None


class NoMarks:
    """A backend whose log keeps no marks (Kubernetes pod logs)."""

    def __init__(self, fake: FakeBackend) -> None:
        self.fake = fake

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        return self.fake.read_job_logs(name, offset, limit)


def test_without_marks_a_line_gets_the_time_it_was_first_read() -> None:
    clock = FakeClock()
    fake = FakeBackend(clock=clock)
    jm = JobMetrics(NoMarks(fake), clock=clock)  # type: ignore[arg-type]
    fake.write_log("job-1", "loss=1\n")
    clock.advance(10)
    seen = clock.now()
    assert jm.series("job-1", SPEC)["loss"][0].timestamp == seen
    clock.advance(10)
    assert jm.series("job-1", SPEC)["loss"][0].timestamp == seen  # it does not move


def test_usage_is_read_incrementally_and_bounded_per_host() -> None:
    clock, backend, jm = make()
    assert jm.usage("job-1") == {}
    backend.write_usage("job-1", "algo-1", {"CPUUtilization": 50.0, "MemoryUtilization": 5.0})
    t1 = clock.now()
    clock.advance(5)
    backend.write_usage("job-1", "algo-1", {"CPUUtilization": 75.0, "MemoryUtilization": 6.0})
    usage = jm.usage("job-1")
    assert [(p.value, p.step, p.timestamp) for p in usage[("CPUUtilization", "algo-1")]] == [
        (50.0, 0, t1),
        (75.0, 1, clock.now()),
    ]
    backend.write_usage("job-1", "algo-1", {"CPUUtilization": 80.0})
    latest = jm.latest_usage("job-1")
    assert latest[("CPUUtilization", "algo-1")].value == 80.0
    assert latest[("MemoryUtilization", "algo-1")].value == 6.0
    jm.forget("job-1")
    assert len(jm.usage("job-1")[("CPUUtilization", "algo-1")]) == 3  # read again from 0


def test_a_backend_without_usage_has_none() -> None:
    class NoUsage:
        def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
            return b"", offset

    jm = JobMetrics(NoUsage())  # type: ignore[arg-type]
    assert jm.usage("job-1") == {} and jm.latest_usage("job-1") == {}


def test_the_mark_cursor_answers_as_a_search_per_line_would() -> None:
    """Offsets in order (a feed), far jumps, ones behind the cursor and before the first
    mark: the cursor's time is the binary search's every time."""
    import random
    from datetime import UTC, datetime

    from orchestrator.controller.jobmetrics import _MarkCursor
    from orchestrator.training.joblog import ListMarks, mark_at

    rng = random.Random(7)
    offsets = sorted(rng.sample(range(100, 1_000_000), 3000))
    marks = ListMarks([(o, 1_700_000_000_000 + i * 10) for i, o in enumerate(offsets)])
    fallback = datetime(2026, 1, 1, tzinfo=UTC)
    cursor = _MarkCursor(marks, fallback)
    asked = sorted(rng.sample(range(0, 1_000_100), 20_000))
    asked += [rng.randrange(0, 1_000_100) for _ in range(2000)]  # out of order too
    asked += [0, 50, 999_999, 5]
    for offset in asked:
        k = mark_at(marks, offset)
        want = fallback if k < 0 else datetime.fromtimestamp(marks[k][1] / 1000, tz=UTC)
        assert cursor.time_at(offset) == want, offset
    assert _MarkCursor(ListMarks(), fallback).time_at(10) == fallback
