"""Batch transform scenarios, written once, run on every backend: a transform job's instances
are the backend's (runner processes beside a model server process or container, or a
Kubernetes Job per instance attempt with the model server as its sidecar), scoring a
scikit-learn model.

The data stay small (hundreds of rows). A scenario that must catch a job half way scores
with a model that sleeps per request, one record per request (SingleRecord)."""

from __future__ import annotations

from orchestrator.resources.transform import DescribeTransformJobResponse
from tests.conformance.declarations import scenario
from tests.conformance.harness import (
    BatchModel,
    Harness,
    batch_csv,
    batch_rows,
    predicted,
)


def lines(text: str) -> list[str]:
    return text.splitlines()


def statuses(job: DescribeTransformJobResponse) -> list[tuple[int, int, str]]:
    return [(i.Instance, i.Attempt, i.Status) for i in job.Instances]


@scenario(
    "Transform and complete",
    "a scikit-learn Model scores two CSV objects under a prefix (one in a sub-folder) on 2 "
    "instances (Line, MultiRecord, AssembleWith Line): Completed; `<out>/<key>.out` mirrors "
    "the layout, one prediction per line equal to the model's; Progress counts every file "
    "and record; both instances Completed",
    processes=True,
)
def test_transform_and_complete(h: Harness) -> None:
    name = "transform-and-complete"
    a, b = batch_rows(150, seed=1), batch_rows(90, seed=2)
    h.create_model(name, BatchModel())
    h.create_transform_job(
        name, name, {"a.csv": batch_csv(a), "more/b.csv": batch_csv(b)}, instances=2
    )
    job = h.wait_transform(name)
    assert job.TransformJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    outs = h.transform_outputs(name)
    assert sorted(outs) == ["a.csv.out", "more/b.csv.out"], f"{h.backend}: {sorted(outs)}"
    assert lines(outs["a.csv.out"]) == predicted(a), h.backend
    assert lines(outs["more/b.csv.out"]) == predicted(b), h.backend
    p = job.Progress
    assert (p.FilesTotal, p.FilesCompleted) == (2, 2), f"{h.backend}: {p}"
    assert p.RecordsProcessed == len(a) + len(b), f"{h.backend}: {p}"
    assert p.BytesProcessed == p.BytesTotal == len(batch_csv(a)) + len(batch_csv(b)), p
    assert statuses(job) == [(0, 1, "Completed"), (1, 1, "Completed")], h.backend
    assert job.TransformStartTime is not None and job.TransformEndTime is not None


@scenario(
    "Transform with data processing",
    "InputFilter `$[1:]` drops an id column before the model, JoinSource Input joins each "
    "answer to its record, OutputFilter `$[0,-1]` keeps the id and the prediction: each "
    "output line is `id,prediction`",
    processes=True,
)
def test_transform_with_data_processing(h: Harness) -> None:
    name = "transform-with-data-processing"
    rows = batch_rows(120, seed=3)
    ids = [str(1000 + i) for i in range(len(rows))]
    h.create_model(name, BatchModel())
    h.create_transform_job(
        name,
        name,
        {"scores.csv": batch_csv([[i, *row] for i, row in zip(ids, rows, strict=True)])},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    job = h.wait_transform(name)
    assert job.TransformJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    out = lines(h.transform_outputs(name)["scores.csv.out"])
    expected = [f"{i},{p}" for i, p in zip(ids, predicted(rows), strict=True)]
    assert out == expected, f"{h.backend}: {out[:3]}"
    assert job.Progress.RecordsProcessed == len(rows), job.Progress


@scenario(
    "Transform fails with reason",
    "a CSV row with the wrong number of features: Failed, the FailureReason names the file "
    "and the record's line and carries the model's own message; no `.out` for that file",
    processes=True,
)
def test_transform_fails_with_reason(h: Harness) -> None:
    name = "transform-fails-with-reason"
    rows = batch_rows(40, seed=4)
    rows[16] = rows[16][:3]  # line 17 has 3 features, the model wants 4
    h.create_model(name, BatchModel())
    h.create_transform_job(name, name, {"bad.csv": batch_csv(rows)}, BatchStrategy="SingleRecord")
    job = h.wait_transform(name)
    assert job.TransformJobStatus == "Failed", f"{h.backend}: {job.TransformJobStatus}"
    reason = job.FailureReason or ""
    assert "bad.csv: record 17 (line 17)" in reason, f"{h.backend}: {reason}"
    assert "X has 3 features, but LogisticRegression is expecting 4" in reason, reason
    assert "bad.csv.out" not in h.transform_outputs(name), h.backend
    assert [s for _, _, s in statuses(job)] == ["Failed"], h.backend


# 2 files x 150 records at 0.04 s a request, one at a time: 12 s, stopped in the first.
SLOW = BatchModel(sleep=0.04)


@scenario(
    "Stop a transform job",
    "a running transform job stopped through the API: Stopping, then Stopped, its instances "
    "Stopped and nothing of it left running; no `.out` is written partially (each one there "
    "is whole), and not every file has one",
    processes=True,
)
def test_stop_a_transform_job(h: Harness) -> None:
    name = "stop-a-transform-job"
    a, b = batch_rows(150, seed=5), batch_rows(150, seed=6)
    h.create_model(name, SLOW)
    h.create_transform_job(
        name,
        name,
        {"a.csv": batch_csv(a), "b.csv": batch_csv(b)},
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1,
    )
    h.wait_transform(
        name, lambda j: j.Progress.RecordsProcessed > 0, "score its first records", 60.0
    )
    h.client.stop_transform_job(name)
    assert h.transform_job(name).TransformJobStatus in ("Stopping", "Stopped"), h.backend
    job = h.wait_transform(name)
    assert job.TransformJobStatus == "Stopped", f"{h.backend}: {job.FailureReason}"
    assert [s for _, _, s in statuses(job)] == ["Stopped"], f"{h.backend}: {job.Instances}"
    outs = h.transform_outputs(name)
    whole = {"a.csv.out": predicted(a), "b.csv.out": predicted(b)}
    for key, text in outs.items():
        assert lines(text) == whole[key], f"{h.backend}: {key} is partial"
    assert len(outs) < 2, f"{h.backend}: every file was scored before the stop"
    h.wait(lambda: not h.still_running(name), f"nothing of {name} running")


@scenario(
    "Transform resumes after an instance dies",
    "the running instance killed half way (its runner and model server at once): the job "
    "launches it again (attempt 2), which resumes from the ranges already written and "
    "completes with every record in the output exactly once; nothing of either attempt is "
    "left running",
    processes=True,
)
def test_transform_resumes_after_an_instance_dies(h: Harness) -> None:
    name = "transform-resumes-after-an-instance-dies"
    files = {f"part-{n}.csv": batch_rows(60, seed=10 + n) for n in range(3)}
    h.create_model(name, BatchModel(sleep=0.04))
    h.create_transform_job(
        name,
        name,
        {key: batch_csv(rows) for key, rows in files.items()},
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1,
    )
    h.wait_transform(
        name, lambda j: j.Progress.FilesCompleted >= 1, "complete its first file", 60.0
    )
    assert h.still_running(name), f"{h.backend}: {name} runs, yet nothing shows it running"
    h.kill_instance(name, 0)
    job = h.wait_transform(name, timeout=120.0)
    assert job.TransformJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    assert statuses(job) == [(0, 2, "Completed")], f"{h.backend}: {job.Instances}"
    outs = h.transform_outputs(name)
    assert sorted(outs) == [f"{key}.out" for key in sorted(files)], sorted(outs)
    for key, rows in files.items():
        assert lines(outs[f"{key}.out"]) == predicted(rows), f"{h.backend}: {key}.out"
    assert job.Progress.RecordsProcessed == 180, f"{h.backend}: {job.Progress}"
    log = h.client.transform_job_logs(name).text
    assert "instance 0 (attempt 2): 3 ranges of 3 files, " in log, log[-2000:]
    assert "instance 0 (attempt 2): 3 ranges of 3 files, 0 done" not in log, log[-2000:]
    h.wait(lambda: not h.still_running(name), f"nothing of {name} running")
