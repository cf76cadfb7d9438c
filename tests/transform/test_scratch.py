"""The transform job's scratch records and ``observe_scratch``'s progress from them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.objects import FileObjectStore
from orchestrator.resources.failures import client_error
from orchestrator.resources.transform import FILES_SHOWN
from orchestrator.transform.workplan import make_plan
from orchestrator.transformer.scratch import (
    BUCKET,
    SCRATCH_NAME,
    InstanceProgress,
    InstanceResult,
    RangeProgress,
    TransformScratch,
    observe_scratch,
)
from tests.transform._runner import file_store

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return file_store(tmp_path)


def _plan(sizes: list[int], instances: int = 2, range_bytes: int = 100):  # type: ignore[no-untyped-def]
    objects = [(f"s3://data/in/f{i:03d}.csv", size) for i, size in enumerate(sizes)]
    return make_plan(objects, "s3://data/in/", instances, range_bytes, splittable=True)


def _progress(instance: int, *ranges: RangeProgress, **fields: object) -> InstanceProgress:
    return InstanceProgress.model_validate(
        {
            "Instance": instance,
            "Attempt": 1,
            "UpdatedAt": NOW,
            "StartedAt": NOW,
            "InProgress": list(ranges),
            **fields,
        }
    )


def test_records_round_trip_in_the_jobs_bucket_of_the_scratch_space(
    store: FileObjectStore,
) -> None:
    scratch = TransformScratch(store, "job-1")
    assert scratch.read_plan() is None
    assert scratch.done_ranges() == set()
    assert scratch.read_progress() == {} and scratch.read_results() == {}
    plan = _plan([250, 40])
    scratch.write_plan(plan)
    assert scratch.read_plan() == plan
    assert store.scratch(SCRATCH_NAME).bucket_exists(BUCKET)
    assert not store.list_buckets()  # the user's buckets do not see it
    assert scratch.part_uri(1, 0) == "s3://jobs/job-1/parts/000001/000000"

    scratch.write_part(0, 2, b"c\n", records=1, size=83)
    scratch.write_part(1, 0, b"x\ny\n", records=2, size=40)
    assert scratch.done_ranges() == {(0, 2), (1, 0)}
    counts = scratch.done_parts(1)
    assert list(counts) == [(1, 0)]
    assert (counts[1, 0].records, counts[1, 0].bytes) == (2, 40)
    assert scratch.read_part(1, 0) == b"x\ny\n"

    progress = _progress(1, RangeProgress(File=0, Range=1, BytesProcessed=5), Requests=3)
    scratch.write_progress(progress)
    result = InstanceResult(
        Instance=1, Attempt=2, Outcome="failed", Failure=client_error("a.csv: bad"), File=0
    )
    scratch.write_result(result)
    assert scratch.read_progress() == {1: progress}
    assert scratch.read_results() == {1: result}
    assert scratch.read_result(1) == result and scratch.read_result(0) is None

    other = TransformScratch(store, "job-10")  # a name that extends this one's
    other.write_part(0, 0, b"", records=0, size=0)
    scratch.remove()
    assert scratch.read_plan() is None and scratch.done_ranges() == set()
    assert store.scratch(SCRATCH_NAME).list("s3://jobs/job-1/") == []
    assert other.done_ranges() == {(0, 0)}


def test_a_part_streams_from_a_file(store: FileObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "answers"
    path.write_bytes(b"1\n0\n")
    scratch = TransformScratch(store, "job")
    scratch.write_part(0, 0, path, records=2, size=10)
    with open(path, "rb") as f:
        scratch.write_part(0, 1, f, records=2, size=10)
    assert list(scratch.iter_parts(0, 2)) == [b"1\n0\n", b"1\n0\n"]


def test_no_progress_before_a_plan_but_results_already(store: FileObjectStore) -> None:
    assert observe_scratch(store, "job") == (None, {})
    scratch = TransformScratch(store, "job")
    failed = InstanceResult(Instance=1, Attempt=1, Outcome="failed", Failure=client_error("no"))
    scratch.write_result(failed)
    assert observe_scratch(store, "job") == (None, {1: failed})


def test_progress_sums_done_parts_and_work_in_progress_once(store: FileObjectStore) -> None:
    scratch = TransformScratch(store, "job")
    plan = _plan([250, 40, 30])  # f000: ranges of 83, 83, 84 bytes; f001, f002: one each
    scratch.write_plan(plan)
    scratch.write_part(0, 0, b"a\n", records=7, size=83)
    scratch.write_part(1, 0, b"b\n", records=3, size=40)
    scratch.mark_assembled(1)
    scratch.write_progress(
        _progress(
            0,
            RangeProgress(File=0, Range=1, BytesProcessed=50, RecordsProcessed=4),
            # Its part is written already (the record is older): not counted twice.
            RangeProgress(File=0, Range=0, BytesProcessed=83, RecordsProcessed=7),
            Requests=4,
            ModelSeconds=0.002,
            RecordsPerSecond=100.0,
        )
    )
    scratch.write_progress(_progress(1, Requests=1, ModelSeconds=0.003, RecordsPerSecond=50.0))

    progress, results = observe_scratch(store, "job")
    assert results == {}
    assert progress is not None
    assert (progress.FilesTotal, progress.FilesCompleted) == (3, 1)
    assert (progress.BytesTotal, progress.BytesProcessed) == (320, 83 + 50 + 40)
    assert progress.RecordsProcessed == 7 + 4 + 3
    assert progress.RecordsPerSecond == 150.0
    assert progress.ModelLatencyMicroseconds == pytest.approx(1000.0)
    assert [(f.Key, f.Status, f.BytesProcessed, f.RecordsProcessed) for f in progress.Files] == [
        ("f000.csv", "InProgress", 133, 11),
        ("f001.csv", "Completed", 40, 3),
        ("f002.csv", "Pending", 0, 0),
    ]

    # Instance 1 has ended: only instance 0's rate is current; a failed file is named.
    scratch.write_result(
        InstanceResult(Instance=1, Attempt=1, Outcome="failed", Failure=client_error("x"), File=2)
    )
    progress, results = observe_scratch(store, "job")
    assert progress is not None and progress.RecordsPerSecond == 100.0
    assert [f.Status for f in progress.Files] == ["InProgress", "Completed", "Failed"]
    assert results[1].File == 2


def test_files_in_progress_come_first_and_the_list_is_capped(store: FileObjectStore) -> None:
    scratch = TransformScratch(store, "job")
    scratch.write_plan(_plan([10] * (FILES_SHOWN + 20), instances=1))
    last = FILES_SHOWN + 19
    scratch.write_part(last, 0, b"", records=1, size=10)
    progress, _ = observe_scratch(store, "job")
    assert progress is not None
    assert len(progress.Files) == FILES_SHOWN
    assert progress.Files[0].Key == f"f{last:03d}.csv"
    assert progress.Files[0].Status == "InProgress"
    assert [f.Key for f in progress.Files[1:3]] == ["f000.csv", "f001.csv"]
    assert progress.FilesTotal == FILES_SHOWN + 20
    assert progress.RecordsPerSecond is None and progress.ModelLatencyMicroseconds is None


def test_a_record_that_does_not_parse_reads_as_absent(store: FileObjectStore) -> None:
    scratch = TransformScratch(store, "job")
    scratch.store.put_bytes(scratch.uri("result/0.json"), b"{not json")
    assert scratch.read_results() == {}
