"""JSON Lines with DataProcessing, RecordIO and TFRecord framing, against the real model server
with an inference script that reads those formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.objects import FileObjectStore
from orchestrator.transform.records import frame_record
from tests.transform._runner import (
    FEATURES,
    ServingProcess,
    file_store,
    model_dir,
    run,
    trained_model,
    transform_spec,
)

pytestmark = pytest.mark.slow

SCRIPT = """
import json

import numpy as np

from orchestrator.transform.records import RECORDIO_MAGIC, split_records

FRAMED = {"application/x-recordio": "RecordIO", "application/x-tfrecord": "TFRecord"}


def _row(data):
    return [float(v) for v in data.decode().split(",")]


def input_fn(body, content_type):
    if content_type == "application/jsonlines":
        return np.asarray([json.loads(line) for line in body.decode().splitlines()])
    split = FRAMED[content_type]
    framed = split == "RecordIO" and body[:4] == RECORDIO_MAGIC.to_bytes(4, "little")
    framed = framed or (split == "TFRecord" and body[:1] != b"-" and not body[:1].isdigit())
    records = split_records(body, split) if framed else [body]  # SingleRecord: no framing
    return np.asarray([_row(r) for r in records])


def output_fn(prediction, accept):
    if accept == "application/jsonlines":
        lines = "".join(json.dumps({"label": int(p)}) + "\\n" for p in prediction)
        return lines, "application/jsonlines"
    return "".join(f"{int(p)}\\n" for p in prediction), "text/csv"
"""


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return trained_model()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: LogisticRegression
) -> Iterator[ServingProcess]:
    root = tmp_path_factory.mktemp("server")
    process = ServingProcess(model_dir(root, model, SCRIPT), root / "server.log")
    process.start()
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.stop()


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return file_store(tmp_path)


def _rows(n: int, seed: int = 4) -> np.ndarray:
    return np.round(np.random.default_rng(seed).normal(size=(n, FEATURES)), 4)


def _labels(model: LogisticRegression, rows: np.ndarray) -> list[int]:
    return [int(p) for p in model.predict(rows)]


def test_json_lines_with_input_filter_join_and_output_filter(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(500)
    lines = [json.dumps({"id": f"r{i}", "features": row.tolist()}) for i, row in enumerate(rows)]
    store.put_bytes("s3://data/in/a.jsonl", ("\n".join(lines) + "\n").encode())
    spec = transform_spec(
        TransformInput={"ContentType": "application/jsonlines"},
        TransformOutput={"Accept": "application/jsonlines"},
        DataProcessing={
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    )
    result = run(store, spec, server)
    assert result.Outcome == "completed", result.Failure
    out = store.get_bytes("s3://data/out/a.jsonl.out").decode().splitlines()
    assert [json.loads(line) for line in out] == [
        {"id": f"r{i}", "SageMakerOutput": {"label": label}}
        for i, label in enumerate(_labels(model, rows))
    ]


def test_json_lines_without_data_processing_are_sent_as_they_are(
    store: FileObjectStore, server: ServingProcess, model: LogisticRegression
) -> None:
    rows = _rows(200)
    body = "".join(json.dumps(row.tolist()) + "\r\n" for row in rows)  # CRLF lines too
    store.put_bytes("s3://data/in/a.jsonl", body.encode())
    spec = transform_spec(
        TransformInput={"ContentType": "application/jsonlines"},
        TransformOutput={"Accept": "application/jsonlines"},
    )
    assert run(store, spec, server).Outcome == "completed"
    out = store.get_bytes("s3://data/out/a.jsonl.out").decode().splitlines()
    assert [json.loads(line)["label"] for line in out] == _labels(model, rows)


@pytest.mark.parametrize(
    ("split", "content_type", "strategy"),
    [
        ("RecordIO", "application/x-recordio", "MultiRecord"),
        ("RecordIO", "application/x-recordio", "SingleRecord"),
        ("TFRecord", "application/x-tfrecord", "MultiRecord"),
        ("TFRecord", "application/x-tfrecord", "SingleRecord"),
    ],
)
def test_framed_records(
    store: FileObjectStore,
    server: ServingProcess,
    model: LogisticRegression,
    split: str,
    content_type: str,
    strategy: str,
) -> None:
    rows = _rows(120)
    records = [",".join(f"{v:g}" for v in row).encode() for row in rows]
    framed = b"".join(frame_record(r, split) for r in records)  # type: ignore[arg-type]
    store.put_bytes("s3://data/in/a.rec", framed)
    spec = transform_spec(
        BatchStrategy=strategy,
        TransformInput={"ContentType": content_type, "SplitType": split},
    )
    result = run(store, spec, server)
    assert result.Outcome == "completed", result.Failure
    out = store.get_bytes("s3://data/out/a.rec.out").decode().splitlines()
    assert [int(v) for v in out] == _labels(model, rows)


def test_corrupt_framing_names_the_file_and_the_record(
    store: FileObjectStore, server: ServingProcess
) -> None:
    good = frame_record(b"1,2,3,4,5", "RecordIO")
    store.put_bytes("s3://data/in/bad.rec", good + good + b"\x00" * 12)
    spec = transform_spec(
        TransformInput={"ContentType": "application/x-recordio", "SplitType": "RecordIO"}
    )
    result = run(store, spec, server)
    assert result.Outcome == "failed" and result.Failure is not None
    assert result.Failure.kind == "ClientError"
    where = f"bad.rec: RecordIO: record 3 at byte {2 * len(good)}: bad magic"
    assert result.Failure.message.startswith(where)
