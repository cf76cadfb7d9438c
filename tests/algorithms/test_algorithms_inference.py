"""Serving the trained models: request formats, batched predict, response formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from algorithms_harness import Job

from orchestrator.algorithms import inference
from orchestrator.errors import ValidationError
from orchestrator.serving import ModelHandler, NotAcceptableError, UnsupportedMediaTypeError


@pytest.fixture(scope="module")
def binary_model(binary_job: Job) -> inference.AlgorithmModel:
    return inference.model_fn(str(binary_job.model_dir))


def features(job: Job) -> np.ndarray:
    return np.asarray(np.load(job.model_dir / "test_features.npy"), np.float64)


@pytest.mark.parametrize(
    ("body", "content_type", "shape"),
    [
        (b"[[1, 2], [3, 4]]", "application/json", (2, 2)),
        (b"[1, 2, 3]", "application/json", (1, 3)),
        (b'{"instances": [[1, 2]]}', "application/json; charset=utf-8", (1, 2)),
        (
            b'{"instances": [{"features": [1, 2]}, {"features": [3, 4]}]}',
            "application/json",
            (2, 2),
        ),
        (b"1,2\n3,4\n", "text/csv", (2, 2)),
        (b"1,2", "text/csv", (1, 2)),
    ],
)
def test_input_fn(body: bytes, content_type: str, shape: tuple[int, int]) -> None:
    data = inference.input_fn(body, content_type)
    assert data.shape == shape
    assert data.dtype == np.float32


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"[[1, 2], [3]]", "application/json", "lists of numbers of equal length"),
        (b'[["a", 2]]', "application/json", "lists of numbers"),
        (b"[[1, NaN]]", "application/json", "row 0 holds a missing or non-finite value"),
        (b"{}", "application/json", '"instances"'),
        (b"[]", "application/json", "non-empty list"),
        (b"not json", "application/json", "not valid JSON"),
        (b"a,b\n1,2\n", "text/csv", "numeric rows without a header"),
        (b"", "text/csv", "empty"),
    ],
)
def test_input_fn_rejects(body: bytes, content_type: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        inference.input_fn(body, content_type)
    with pytest.raises(UnsupportedMediaTypeError):
        inference.input_fn(b"x", "application/x-protobuf")


def test_binary_predictions(binary_job: Job, binary_model: inference.AlgorithmModel) -> None:
    x = features(binary_job)
    body = json.dumps({"instances": x.tolist()}).encode()
    prediction = inference.predict_fn(inference.input_fn(body, "application/json"), binary_model)
    out, kind = inference.output_fn(prediction, "application/json")
    assert kind == "application/json"
    records = json.loads(out)["predictions"]
    assert len(records) == len(x)
    threshold = binary_job.evaluation()["threshold"]
    for record in records:
        assert set(record) == {"predicted_label", "score"}
        assert record["predicted_label"] == int(record["score"] >= threshold)
    text, kind = inference.output_fn(prediction, "text/csv")
    assert kind == "text/csv"
    first = text.decode().splitlines()[0].split(",")
    assert int(first[0]) == records[0]["predicted_label"]
    assert float(first[1]) == pytest.approx(records[0]["score"])
    with pytest.raises(NotAcceptableError):
        inference.output_fn(prediction, "application/x-protobuf")


def test_feature_count_is_checked(binary_model: inference.AlgorithmModel) -> None:
    with pytest.raises(ValidationError, match=r"each row needs 30 features .*; got 4"):
        inference.predict_fn(np.zeros((2, 4), np.float32), binary_model)


def test_multiclass_and_regression_responses(multiclass_job: Job, regression_job: Job) -> None:
    model = inference.model_fn(str(multiclass_job.model_dir))
    x = features(multiclass_job)
    csv = "\n".join(",".join(str(v) for v in row) for row in x).encode()
    out, _ = inference.output_fn(
        inference.predict_fn(inference.input_fn(csv, "text/csv"), model), "*/*"
    )
    records = json.loads(out)["predictions"]
    for record in records:
        assert len(record["score"]) == 3
        assert sum(record["score"]) == pytest.approx(1.0, abs=1e-5)
        assert record["predicted_label"] == int(np.argmax(record["score"]))
    model = inference.model_fn(str(regression_job.model_dir))
    prediction = inference.predict_fn(features(regression_job).astype(np.float32), model)
    out, _ = inference.output_fn(prediction, "application/json")
    records = json.loads(out)["predictions"]
    assert set(records[0]) == {"score"}
    assert 0 < np.mean([r["score"] for r in records]) < 400  # on the label's own scale
    text, _ = inference.output_fn(prediction, "text/csv")
    assert len(text.decode().splitlines()) == len(records)


def test_served_through_the_inference_server_handler(binary_job: Job) -> None:
    handler = ModelHandler.load(binary_job.model_dir, program="inference.py")
    rows = features(binary_job)[:3]
    result = handler.invoke(json.dumps(rows.tolist()).encode(), "application/json", "text/csv")
    assert result.content_type == "text/csv"
    assert len(result.body.decode().splitlines()) == 3
    with pytest.raises(ValidationError, match="each row needs 30 features"):
        handler.invoke(b"[[1, 2]]", "application/json", "application/json")
