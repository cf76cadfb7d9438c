"""The instance runner on CSV input against the real model server (a scikit-learn model)."""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.objects import FileObjectStore
from orchestrator.transformer.scratch import InstanceResult, TransformScratch, observe_scratch
from tests.transform._runner import (
    FEATURES,
    ServingProcess,
    csv_rows,
    file_store,
    model_dir,
    run,
    trained_model,
    transform_spec,
)

pytestmark = pytest.mark.slow

# The default predict, except that a row whose first feature is over 1000 makes it raise.
REFUSING = """
def predict_fn(data, model):
    if (data[:, 0] > 1000).any():
        raise RuntimeError(f"feature 0 is {data[:, 0].max():g}, over 1000")
    return model.predict(data)
"""


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return trained_model()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: LogisticRegression
) -> Iterator[ServingProcess]:
    root = tmp_path_factory.mktemp("server")
    process = ServingProcess(model_dir(root, model, REFUSING), root / "server.log", concurrency=2)
    process.start()
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.stop()


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return file_store(tmp_path)


def _rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES))


def _predicted(model: LogisticRegression, rows: np.ndarray) -> list[str]:
    """What an in-process loop writes: the CSV as the store holds it, parsed, predicted."""
    parsed = np.loadtxt(io.BytesIO(csv_rows(rows)), delimiter=",", ndmin=2)
    return [str(p) for p in model.predict(parsed).tolist()]


def _lines(store: FileObjectStore, uri: str) -> list[str]:
    return store.get_bytes(uri).decode().splitlines()


def _completed(result: InstanceResult) -> None:
    assert result.Outcome == "completed", result.Failure


def test_two_instances_share_one_large_file_and_score_every_line_once_in_order(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    big, small = _rows(30_000), _rows(700, seed=2)
    store.put_bytes("s3://data/in/big.csv", csv_rows(big))
    store.put_bytes("s3://data/in/more/small.csv", csv_rows(small))
    spec = transform_spec(TransformResources={"InstanceCount": 2})
    results: dict[int, InstanceResult] = {}

    def instance(number: int) -> None:
        results[number] = run(store, spec, server, instance=number)

    threads = [threading.Thread(target=instance, args=(n,)) for n in (1, 0)]  # 1 waits for 0
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    _completed(results[0])
    _completed(results[1])

    assert _lines(store, "s3://data/out/big.csv.out") == _predicted(model, big)
    assert _lines(store, "s3://data/out/more/small.csv.out") == _predicted(model, small)
    scratch = TransformScratch(store, "job")
    plan = scratch.read_plan()
    assert plan is not None and len(plan.ranges_of_file(0)) > 10
    assert {r.Instance for r in plan.ranges_of_file(0)} == {0, 1}  # the file was shared
    assert scratch.done_ranges() == {(r.File, r.Index) for r in plan.Ranges}

    for result in results.values():  # as the instance's entry point does
        scratch.write_result(result)
    progress, observed = observe_scratch(store, "job")
    assert observed == results
    assert progress is not None
    assert (progress.FilesTotal, progress.FilesCompleted) == (2, 2)
    assert progress.RecordsProcessed == 30_700
    assert progress.BytesProcessed == progress.BytesTotal == plan.total_bytes
    assert progress.RecordsPerSecond and progress.RecordsPerSecond > 0
    assert progress.ModelLatencyMicroseconds and progress.ModelLatencyMicroseconds > 0
    assert {f.Status for f in progress.Files} == {"Completed"}


def test_single_record_sends_one_request_per_line(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(60)
    store.put_bytes("s3://data/in/a.csv", csv_rows(rows))
    _completed(run(store, transform_spec(BatchStrategy="SingleRecord"), server))
    assert _lines(store, "s3://data/out/a.csv.out") == _predicted(model, rows)
    progress = TransformScratch(store, "job").read_progress()[0]
    assert progress.Requests == 60
    assert progress.InProgress == []


def test_csv_input_filter_join_and_output_filter(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(300)
    with_ids = "".join(
        f"id-{i}," + ",".join(f"{v:.6g}" for v in row) + "\n" for i, row in enumerate(rows)
    )
    store.put_bytes("s3://data/in/ids.csv", with_ids.encode())
    spec = transform_spec(
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    )
    _completed(run(store, spec, server))
    expected = [f"id-{i},{p}" for i, p in enumerate(_predicted(model, rows))]
    assert _lines(store, "s3://data/out/ids.csv.out") == expected


def test_gzip_input_is_one_range_decompressed(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(30_000)  # over a MB of CSV: two mini-batches of the one range
    store.put_bytes("s3://data/in/a.csv.gz", gzip.compress(csv_rows(rows)))
    _completed(run(store, transform_spec(TransformInput={"CompressionType": "Gzip"}), server))
    assert _lines(store, "s3://data/out/a.csv.gz.out") == _predicted(model, rows)
    plan = TransformScratch(store, "job").read_plan()
    assert plan is not None and len(plan.Ranges) == 1
    assert TransformScratch(store, "job").read_progress()[0].Requests == 2


def test_split_type_none_sends_each_object_whole(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    first, second = _rows(5), _rows(7, seed=3)
    store.put_bytes("s3://data/in/x/1.csv", csv_rows(first))
    store.put_bytes("s3://data/in/x/2.csv", csv_rows(second))
    spec = transform_spec(
        TransformInput={"SplitType": "None"}, TransformOutput={"AssembleWith": "None"}
    )
    _completed(run(store, spec, server))
    assert _lines(store, "s3://data/out/x/1.csv.out") == _predicted(model, first)
    assert _lines(store, "s3://data/out/x/2.csv.out") == _predicted(model, second)
    assert TransformScratch(store, "job").read_progress()[0].Requests == 2


class _StopAfterParts:
    """The store, with ``stop`` set once ``parts`` range parts have been written."""

    def __init__(self, inner: Any, stop: threading.Event, parts: int, counter: list[int]) -> None:
        self._inner, self._stop, self._parts, self._counter = inner, stop, parts, counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def scratch(self, name: str) -> _StopAfterParts:
        return _StopAfterParts(self._inner.scratch(name), self._stop, self._parts, self._counter)

    def put_stream(self, uri: str, stream: Any, **kw: Any) -> Any:
        info = self._inner.put_stream(uri, stream, **kw)
        if "/parts/" in uri:
            self._counter[0] += 1
            if self._counter[0] >= self._parts:
                self._stop.set()
        return info


def test_a_stopped_instance_resumes_from_its_parts(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(20_000)
    store.put_bytes("s3://data/in/a.csv", csv_rows(rows))
    spec = transform_spec(MaxConcurrentTransforms=1)
    stop = threading.Event()
    stopping = _StopAfterParts(store, stop, parts=4, counter=[0])
    assert run(stopping, spec, server, stop=stop).Outcome == "stopped"  # type: ignore[arg-type]

    scratch = TransformScratch(store, "job")
    plan = scratch.read_plan()
    assert plan is not None and len(plan.Ranges) > 8
    assert scratch.done_ranges() == {(0, 0), (0, 1), (0, 2), (0, 3)}
    assert not store.exists("s3://data/out/a.csv.out")
    parts = scratch.store.list(scratch.uri("parts/"))
    versions = {info.uri: info.version for info in parts}
    progress, _ = observe_scratch(store, "job")
    assert progress is not None and progress.FilesCompleted == 0
    done = sum(counts.records for counts in scratch.done_parts().values())
    assert 0 < done < 20_000
    assert progress.RecordsProcessed == done  # what the stopped attempt kept, no more
    assert 0 < progress.BytesProcessed < progress.BytesTotal
    assert progress.Files[0].Status == "InProgress"

    again = run(store, spec, server, attempt=2)
    _completed(again)
    assert again.Attempt == 2
    assert _lines(store, "s3://data/out/a.csv.out") == _predicted(model, rows)
    after = {info.uri: info.version for info in scratch.store.list(scratch.uri("parts/"))}
    assert {uri: after[uri] for uri in versions} == versions  # done ranges were not redone
    assert len(after) == len(plan.Ranges)
    # A third run finds everything done and changes nothing.
    before = store.head("s3://data/out/a.csv.out").version
    _completed(run(store, spec, server, attempt=3))
    assert store.head("s3://data/out/a.csv.out").version == before


def _failed(result: InstanceResult) -> str:
    assert result.Outcome == "failed"
    assert result.Failure is not None and result.Failure.kind == "ClientError"
    return result.Failure.message


def test_a_model_error_names_the_file_and_the_line_in_the_file(
    store: FileObjectStore, server: ServingProcess
) -> None:
    rows = _rows(3000)
    rows[1499, 0] = 5000.0  # line 1500, in the file's second range
    store.put_bytes("s3://data/in/a.csv", csv_rows(rows))
    spec = transform_spec(BatchStrategy="SingleRecord")
    result = run(store, spec, server)
    message = _failed(result)
    assert message.startswith("a.csv: record 1500 (line 1500): the model answered 500: ")
    assert "feature 0 is 5000, over 1000" in message
    assert result.File == 0
    assert not store.exists("s3://data/out/a.csv.out")


def test_a_wrong_feature_count_fails_with_the_models_message(
    store: FileObjectStore, server: ServingProcess
) -> None:
    store.put_bytes("s3://data/in/narrow.csv", csv_rows(_rows(20)[:, :3]))
    message = _failed(run(store, transform_spec(), server))
    assert message.startswith("narrow.csv: records 1-20 (lines 1-20): the model answered 500: ")
    assert "3 features" in message and f"expecting {FEATURES} features" in message


def test_a_corrupt_gzip_file_is_named(store: FileObjectStore, server: ServingProcess) -> None:
    store.put_bytes("s3://data/in/good.csv.gz", gzip.compress(csv_rows(_rows(5))))
    store.put_bytes("s3://data/in/sub/bad.csv.gz", b"\x1f\x8b\x08\x00 not really gzip")
    result = run(store, transform_spec(TransformInput={"CompressionType": "Gzip"}), server)
    message = _failed(result)
    assert message.startswith("sub/bad.csv.gz is not valid gzip")
    assert result.File == 1
    assert not store.exists("s3://data/out/sub/bad.csv.gz.out")


def test_a_line_over_max_payload_is_named(store: FileObjectStore, server: ServingProcess) -> None:
    store.put_bytes("s3://data/in/a.csv", b"1,2,3,4,5\n" + b"9" * (1 << 20) + b"\n1,2,3,4,5\n")
    message = _failed(run(store, transform_spec(), server, range_bytes=4 << 20))
    assert message.startswith("a.csv: record 2 (line 2): the record needs 1048577 bytes")
    assert "MaxPayloadInMB (1 MB)" in message


def test_an_output_filter_that_selects_nothing_is_named(
    store: FileObjectStore, server: ServingProcess
) -> None:
    store.put_bytes("s3://data/in/a.csv", csv_rows(_rows(4)))
    spec = transform_spec(DataProcessing={"JoinSource": "Input", "OutputFilter": "$[9]"})
    message = _failed(run(store, spec, server))
    assert message.startswith("a.csv: record 1 (line 1): DataProcessing.OutputFilter '$[9]'")
    assert "selects nothing" in message


def test_no_input_objects_fails_naming_the_uri(
    store: FileObjectStore, server: ServingProcess
) -> None:
    message = _failed(run(store, transform_spec(), server))
    assert "TransformInput.DataSource.S3DataSource.S3Uri" in message
    assert "s3://data/in/" in message


def test_a_manifest_names_the_inputs_and_their_layout(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    first, second = _rows(10), _rows(12, seed=5)
    store.put_bytes("s3://data/raw/a/1.csv", csv_rows(first))
    store.put_bytes("s3://data/raw/b/2.csv", csv_rows(second))
    store.put_bytes("s3://data/raw/c/skipped.csv", csv_rows(second))
    manifest = '[{"prefix": "s3://data/raw/"}, "a/1.csv", "b/2.csv"]'
    store.put_bytes("s3://data/manifest.json", manifest.encode())
    source = {"S3DataType": "ManifestFile", "S3Uri": "s3://data/manifest.json"}
    spec = transform_spec(
        TransformInput={
            "DataSource": {"S3DataSource": source},
            "ContentType": "text/csv",
            "SplitType": "Line",
        }
    )
    _completed(run(store, spec, server))
    assert _lines(store, "s3://data/out/a/1.csv.out") == _predicted(model, first)
    assert _lines(store, "s3://data/out/b/2.csv.out") == _predicted(model, second)
    assert not store.exists("s3://data/out/c/skipped.csv.out")

    store.put_bytes("s3://data/manifest.json", b'[{"prefix": "s3://data/raw/"}, "gone.csv"]')
    message = _failed(
        run(store, transform_spec("job-2", TransformInput=spec.TransformInput.model_dump()), server)
    )
    assert "lists 'gone.csv', but s3://data/raw/gone.csv does not exist" in message
    store.put_bytes("s3://data/manifest.json", b'["a/1.csv"]')
    message = _failed(
        run(store, transform_spec("job-3", TransformInput=spec.TransformInput.model_dump()), server)
    )
    assert message.startswith("the ManifestFile entry 0 must be")


def test_an_empty_object_gets_an_empty_output(
    store: FileObjectStore, server: ServingProcess
) -> None:
    store.put_bytes("s3://data/in/empty.csv", b"")
    _completed(run(store, transform_spec(), server))
    assert store.get_bytes("s3://data/out/empty.csv.out") == b""
