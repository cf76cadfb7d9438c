"""Adaptive batching: the pure helpers, and batches formed by concurrent requests."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from pydantic import ValidationError as PydanticValidationError
from sklearn.linear_model import LogisticRegression

from orchestrator.resources.models import CreateModelRequest
from orchestrator.serving import BatchingConfig, ModelHandler, ServingApp, build_app
from orchestrator.serving.batching import group, split
from orchestrator.settings import ServingSettings

WriteScript = Callable[..., Path]

# The model records the row count of every predict call; a first feature of 100 or more is a
# gate that holds the worker until the test opens it, so that requests pile up behind it.
RECORDING_SCRIPT = """
import threading
import joblib

def model_fn(model_dir):
    return {
        "clf": joblib.load(f"{model_dir}/model.joblib"),
        "sizes": [],
        "gate_started": threading.Event(),
        "gate": threading.Event(),
    }

def predict_fn(data, model):
    model["sizes"].append(len(data))
    if data[0][0] >= 100:
        model["gate_started"].set()
        model["gate"].wait(20)
        return [-1] * len(data)
    if (data[:, 0] < 0).any():
        raise RuntimeError("a negative sepal length")
    return model["clf"].predict(data)
"""


# --- pure helpers -----------------------------------------------------------------------------


def test_group_joins_arrays_with_the_same_row_shape_and_dtype() -> None:
    a, b = np.ones((2, 4)), np.zeros((1, 4))
    narrow, ints = np.ones((1, 3)), np.ones((1, 4), dtype=np.int64)
    together, alone = group([a, narrow, b, ints, [1, 2, 3, 4], np.float64(1.0)])
    assert together == [[0, 2]]
    assert alone == [1, 3, 4, 5]


def test_split_by_rows_or_none() -> None:
    pieces = split(np.arange(5), [2, 3])
    assert pieces is not None
    assert [p.tolist() for p in pieces] == [[0, 1], [2, 3, 4]]
    assert split([1, 2, 3], [1, 2]) == [[1], [2, 3]]
    assert split(np.arange(4), [2, 3]) is None
    assert split({"a": 1}, [1]) is None
    assert split(np.float64(1.0), [1]) is None


def test_batching_config_bounds() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingConfig(0)
    with pytest.raises(ValueError, match="max_delay_seconds"):
        BatchingConfig(8, 2.0)


@pytest.mark.parametrize(
    ("batching", "where"),
    [
        ({"MaxBatchSize": 1}, "MaxBatchSize"),
        ({"MaxBatchSize": 2000}, "MaxBatchSize"),
        ({"MaxBatchSize": 8, "MaxBatchDelayMilliseconds": 5000}, "MaxBatchDelayMilliseconds"),
        ({"MaxBatchSize": 8, "Delay": 1}, "Delay"),
    ],
)
def test_adaptive_batching_field_is_validated_naming_the_field(
    batching: dict[str, Any], where: str
) -> None:
    with pytest.raises(PydanticValidationError) as caught:
        CreateModelRequest.model_validate(
            {"ModelName": "m", "PrimaryContainer": {"AdaptiveBatching": batching}}
        )
    assert any(where in ".".join(map(str, e["loc"])) for e in caught.value.errors())


def test_adaptive_batching_in_a_pipeline_only_on_the_first_container() -> None:
    ok = CreateModelRequest.model_validate(
        {"ModelName": "m", "Containers": [{"AdaptiveBatching": {"MaxBatchSize": 4}}, {}]}
    )
    assert ok.serving_containers[0].AdaptiveBatching is not None
    with pytest.raises(PydanticValidationError, match=r"Containers\[1\]\.AdaptiveBatching"):
        CreateModelRequest.model_validate(
            {"ModelName": "m", "Containers": [{}, {"AdaptiveBatching": {"MaxBatchSize": 4}}]}
        )


# --- batches under concurrency ----------------------------------------------------------------


@asynccontextmanager
async def served(
    handler: ModelHandler, batching: BatchingConfig, max_concurrency: int = 1
) -> AsyncIterator[tuple[ServingApp, httpx.AsyncClient]]:
    settings = ServingSettings(max_concurrency=max_concurrency)
    app = build_app(handler, settings=settings, batching=batching)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://replica", timeout=30
        ) as client:
            yield app, client
    finally:
        handler.model["gate"].set()
        app.dispatcher.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


@pytest.fixture
def recording(model_dir: Path, write_script: WriteScript) -> ModelHandler:
    code_dir = write_script(RECORDING_SCRIPT)
    return ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")


async def send_behind_the_gate(
    app: ServingApp, client: httpx.AsyncClient, handler: ModelHandler, rows: list[list[float]]
) -> list[httpx.Response]:
    """Hold the worker with a gate request, queue one request per row, open the gate."""
    results: dict[int, httpx.Response] = {}

    async def call(index: int, row: list[float]) -> None:
        results[index] = await client.post("/invocations", json=[row])

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, -1, [100.0, 0, 0, 0])
        gate_started: threading.Event = handler.model["gate_started"]
        await wait_until(gate_started.is_set, 10, "the gate request")
        for index, row in enumerate(rows):
            tg.start_soon(call, index, row)
        await wait_until(lambda: app.dispatcher.waiting == len(rows), 10, "queued requests")
        handler.model["gate"].set()
    assert results[-1].status_code == 200
    return [results[i] for i in range(len(rows))]


@pytest.mark.anyio
async def test_concurrent_requests_form_one_batch_with_unbatched_results(
    recording: ModelHandler, iris, trained: LogisticRegression
) -> None:
    x, _ = iris
    rows = x[::20].tolist()  # 8 rows, one request each
    async with served(recording, BatchingConfig(max_batch_size=16)) as (app, client):
        responses = await send_behind_the_gate(app, client, recording, rows)
    assert recording.model["sizes"] == [1, len(rows)]
    for response, row in zip(responses, rows, strict=True):
        assert response.status_code == 200
        assert response.json() == {"predictions": trained.predict([row]).tolist()}


@pytest.mark.anyio
async def test_batches_are_cut_at_max_batch_size(recording: ModelHandler, iris) -> None:
    x, _ = iris
    async with served(recording, BatchingConfig(max_batch_size=3)) as (app, client):
        responses = await send_behind_the_gate(app, client, recording, x[:7].tolist())
    assert recording.model["sizes"] == [1, 3, 3, 1]
    assert all(r.status_code == 200 for r in responses)


@pytest.mark.anyio
async def test_a_mismatched_request_runs_alone(
    recording: ModelHandler, iris, trained: LogisticRegression
) -> None:
    x, _ = iris
    rows = [*x[:5].tolist(), [5.0, 3.0, 1.0]]  # the last has three features
    async with served(recording, BatchingConfig(max_batch_size=16)) as (app, client):
        responses = await send_behind_the_gate(app, client, recording, rows)
    assert recording.model["sizes"] == [1, 5, 1]
    assert [r.status_code for r in responses[:5]] == [200] * 5
    assert [r.json()["predictions"][0] for r in responses[:5]] == trained.predict(x[:5]).tolist()
    assert responses[5].status_code == 500
    assert "features" in responses[5].json()["message"]


@pytest.mark.anyio
async def test_a_failing_request_in_a_batch_fails_only_itself(
    recording: ModelHandler, iris, trained: LogisticRegression
) -> None:
    x, _ = iris
    rows = x[:5].tolist()
    rows[2] = [-1.0, 1.0, 1.0, 1.0]
    async with served(recording, BatchingConfig(max_batch_size=16)) as (app, client):
        responses = await send_behind_the_gate(app, client, recording, rows)
    assert recording.model["sizes"] == [1, 5, 1, 1, 1, 1, 1]
    assert responses[2].status_code == 500
    assert "a negative sepal length" in responses[2].json()["message"]
    for index in (0, 1, 3, 4):
        assert responses[index].status_code == 200
        assert responses[index].json() == {"predictions": trained.predict([rows[index]]).tolist()}


@pytest.mark.anyio
async def test_a_lone_request_does_not_wait_for_the_delay(recording: ModelHandler) -> None:
    async with served(recording, BatchingConfig(16, max_delay_seconds=1.0)) as (_, client):
        started = time.monotonic()
        response = await client.post("/invocations", json=[[5.1, 3.5, 1.4, 0.2]])
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 0.5
    assert recording.model["sizes"] == [1]


@pytest.mark.anyio
async def test_a_partial_batch_leaves_after_the_delay_when_a_worker_is_free(
    recording: ModelHandler, iris
) -> None:
    x, _ = iris
    results: list[httpx.Response] = []
    config = BatchingConfig(16, max_delay_seconds=0.2)
    async with served(recording, config, max_concurrency=2) as (_, client):

        async def call(row: list[float]) -> None:
            results.append(await client.post("/invocations", json=[row]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, [100.0, 0, 0, 0])  # holds one worker until the gate opens
            await wait_until(recording.model["gate_started"].is_set, 10, "the gate request")
            for row in x[:3].tolist():
                tg.start_soon(call, row)
            # the second worker takes the three together once the delay has passed
            await wait_until(lambda: len(results) == 3, 10, "the partial batch")
            recording.model["gate"].set()
    assert recording.model["sizes"] == [1, 3]
    assert all(r.status_code == 200 for r in results)


@pytest.mark.anyio
async def test_v2_requests_batch_too(
    recording: ModelHandler, iris, trained: LogisticRegression
) -> None:
    x, _ = iris
    async with served(recording, BatchingConfig(max_batch_size=16)) as (app, client):
        results: dict[int, httpx.Response] = {}

        async def call(index: int, row: list[float]) -> None:
            body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}]}
            results[index] = await client.post("/v2/models/model/infer", json=body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, -1, [100.0, 0, 0, 0])
            await wait_until(recording.model["gate_started"].is_set, 10, "the gate request")
            for index, row in enumerate(x[:4].tolist()):
                tg.start_soon(call, index, row)
            await wait_until(lambda: app.dispatcher.waiting == 4, 10, "queued requests")
            recording.model["gate"].set()
    assert recording.model["sizes"] == [1, 4]
    got = [results[i].json()["outputs"][0]["data"][0] for i in range(4)]
    assert got == trained.predict(x[:4]).tolist()
