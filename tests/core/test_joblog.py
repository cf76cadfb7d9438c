"""The job log's time marks (``training.joblog``): written before each new millisecond's first
line, never going backwards, read back by binary search, shared safely between threads."""

from __future__ import annotations

import threading
from pathlib import Path

from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.settings import Settings
from orchestrator.training.joblog import (
    MARK,
    FileMarks,
    JobLog,
    ListMarks,
    first_offset_at,
    mark_at,
    times_path,
)


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _marks(log: Path) -> list[tuple[int, int]]:
    marks = FileMarks(times_path(log))
    try:
        return [marks[i] for i in range(len(marks))]
    finally:
        marks.close()


def test_a_mark_per_millisecond_written_before_its_line(tmp_path: Path) -> None:
    clock = Clock()
    log = JobLog(tmp_path / "j.log", clock=clock)
    log.write("one\n")
    log.write("two\n")  # same millisecond: no mark
    clock.t += 0.0015
    log.write("three")  # a newline is added
    clock.t -= 10  # the wall clock stepped back: times do not
    log.write("four\n")
    log.close()
    assert (tmp_path / "j.log").read_bytes() == b"one\ntwo\nthree\nfour\n"
    assert _marks(tmp_path / "j.log") == [(0, 1_000_000), (8, 1_000_001)]


def test_a_new_writer_carries_on_and_drops_a_torn_record(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    first = JobLog(path, clock=Clock(2.0))
    first.write("attempt 1\n")
    first.close()
    with open(times_path(path), "ab") as f:
        f.write(b"\x01\x02\x03")  # a writer killed mid-record
    second = JobLog(path, clock=Clock(1.0))  # and a clock behind the last mark
    second.write("attempt 2\n")
    second.close()
    assert _marks(path) == [(0, 2000)]  # same millisecond as the last mark: none added
    third = JobLog(path, clock=Clock(3.0))
    third.write("attempt 3\n")
    third.close()
    assert _marks(path) == [(0, 2000), (20, 3000)]
    assert times_path(path).stat().st_size == 2 * MARK.size


def test_lookups_are_binary_searches_over_offsets_and_times() -> None:
    marks = ListMarks([(0, 100), (10, 200), (10, 250), (30, 300)])
    assert mark_at(marks, 0) == 0
    assert mark_at(marks, 9) == 0
    assert mark_at(marks, 10) == 2  # two marks at one offset: the later one times the line
    assert mark_at(marks, 99) == 3
    assert mark_at(ListMarks([(5, 1)]), 0) == -1
    assert first_offset_at(marks, 100) == 0
    assert first_offset_at(marks, 101) == 10
    assert first_offset_at(marks, 260) == 30
    assert first_offset_at(marks, 301) is None


def test_threads_writing_one_log_keep_marks_on_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    log = JobLog(path)

    def host(k: int) -> None:
        for i in range(500):
            log.write(f"[algo-{k}] line {i}\n")

    threads = [threading.Thread(target=host, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    data = path.read_bytes()
    starts = {0} | {i + 1 for i, b in enumerate(data) if b == ord("\n")}
    marks = _marks(path)
    assert marks and all(offset in starts for offset, _ in marks)
    assert [ms for _, ms in marks] == sorted(ms for _, ms in marks)
    assert data.count(b"\n") == 1500


def test_the_process_backend_reads_the_marks_beside_the_job_log(tmp_path: Path) -> None:
    jobs = ProcessJobs(Settings(home=tmp_path / "home", config_dir=tmp_path / "config"))
    assert len(jobs.job_log_marks("none")) == 0
    log = JobLog(jobs.job_log_path("j"), clock=Clock(5.0))
    log.write("hello\n")
    log.close()
    marks = jobs.job_log_marks("j")
    try:
        assert (len(marks), marks[0]) == (1, (0, 5000))
    finally:
        marks.close()
    assert jobs.read_job_logs("j", 0, 100) == (b"hello\n", 6)


def test_file_marks_read_in_blocks_answer_any_index(tmp_path: Path) -> None:
    clock = Clock(10.0)
    log = JobLog(tmp_path / "j.log", clock=clock)
    for i in range(FileMarks.BLOCK * 3 + 7):
        clock.t = (10_001 + i + 0.5) / 1000  # the middle of millisecond 10_001 + i
        log.write(f"{i:04d}\n")
    log.close()
    marks = FileMarks(times_path(tmp_path / "j.log"))
    try:
        n = len(marks)
        assert n == FileMarks.BLOCK * 3 + 7
        for i in [n - 1, 0, FileMarks.BLOCK, FileMarks.BLOCK - 1, 2 * FileMarks.BLOCK + 3, -1]:
            j = i % n
            assert marks[i] == (j * 5, 10_001 + j)
        assert first_offset_at(marks, 10_001 + 1000) == 1000 * 5
    finally:
        marks.close()
