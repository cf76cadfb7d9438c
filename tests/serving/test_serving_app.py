"""The replica's HTTP app: /ping, /invocations (limits, timeouts, errors) and /metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.serving import MODEL_LATENCY_HEADER, ModelHandler
from orchestrator.settings import ServingSettings

pytestmark = pytest.mark.anyio

WriteScript = Callable[..., Path]

FAILING_PREDICT = """
def predict_fn(data, model):
    if data[0][0] < 0:
        raise RuntimeError("negative sepal length, the model refuses")
    return model.predict(data)
"""


async def test_ping(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.get("/ping")
    assert response.status_code == 200


async def test_invocations_json_and_csv(
    model_dir: Path, iris, trained: LogisticRegression, app_client
) -> None:
    x, _ = iris
    expected = trained.predict(x[:5]).tolist()
    csv = "\n".join(",".join(map(str, row)) for row in x[:5])
    async with app_client(ModelHandler.load(model_dir)) as client:
        as_json = await client.post("/invocations", json=x[:5].tolist())
        as_csv = await client.post(
            "/invocations",
            content=csv,
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
    for response in (as_json, as_csv):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"predictions": expected}
        assert int(response.headers[MODEL_LATENCY_HEADER]) > 0


async def test_predict_error_is_500_and_the_next_request_works(
    model_dir: Path, write_script: WriteScript, app_client
) -> None:
    code_dir = write_script(FAILING_PREDICT)
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    async with app_client(handler) as client:
        failed = await client.post("/invocations", json=[[-1, 1, 1, 1]])
        ok = await client.post("/invocations", json=[[5.1, 3.5, 1.4, 0.2]])
    assert failed.status_code == 500
    assert failed.json()["code"] == "ModelError"
    assert "negative sepal length, the model refuses" in failed.json()["message"]
    assert ok.status_code == 200
    assert ok.json() == {"predictions": [0]}


async def test_input_fn_error_is_400(
    model_dir: Path, write_script: WriteScript, app_client
) -> None:
    code_dir = write_script(
        "def input_fn(body, content_type):\n    raise ValueError('expected a protobuf')\n"
    )
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    async with app_client(handler) as client:
        response = await client.post("/invocations", json=[[1, 2, 3, 4]])
    assert response.status_code == 400
    assert response.json()["code"] == "ModelError"
    assert "expected a protobuf" in response.json()["message"]


async def test_wrong_feature_count_is_400(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post("/invocations", json=[[1, 2]])
    assert response.status_code == 400
    assert "features" in response.json()["message"]


async def test_unsupported_content_type_is_415(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post(
            "/invocations", content=b"\x89PNG", headers={"Content-Type": "image/png"}
        )
    assert response.status_code == 415
    message = response.json()["message"]
    assert all(t in message for t in ("application/json", "text/csv", "application/x-npy"))


async def test_unacceptable_accept_is_406(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post(
            "/invocations", json=[[1, 2, 3, 4]], headers={"Accept": "image/png"}
        )
    assert response.status_code == 406
    message = response.json()["message"]
    assert all(t in message for t in ("application/json", "text/csv", "application/x-npy"))


class CountingBody:
    """A streamed request body that records how much of it the server pulled."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks, self.size, self.sent = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.sent += 1
            yield b"1" * self.size


async def test_content_length_over_limit_is_413_before_reading(model_dir: Path, app_client) -> None:
    body = CountingBody(chunks=4, size=1000)
    settings = ServingSettings(max_payload_bytes=2500)
    async with app_client(ModelHandler.load(model_dir), settings) as client:
        response = await client.post(
            "/invocations",
            content=body,
            headers={"Content-Type": "text/csv", "Content-Length": "4000"},
        )
    assert response.status_code == 413
    assert response.json()["code"] == "PayloadTooLarge"
    assert body.sent == 0


async def test_chunked_body_over_limit_is_413_and_reading_stops(
    model_dir: Path, app_client
) -> None:
    body = CountingBody(chunks=100, size=1000)
    settings = ServingSettings(max_payload_bytes=2500)
    async with app_client(ModelHandler.load(model_dir), settings) as client:
        response = await client.post(
            "/invocations", content=body, headers={"Content-Type": "text/csv"}
        )
    assert response.status_code == 413
    assert body.sent <= 3


async def test_slow_model_is_504_without_waiting_for_it(
    model_dir: Path, write_script: WriteScript, app_client
) -> None:
    code_dir = write_script(
        "import time\n\ndef predict_fn(data, model):\n    time.sleep(1.0)\n    return [0]\n"
    )
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    settings = ServingSettings(invocation_timeout_seconds=0.1)
    async with app_client(handler, settings) as client:
        started = time.monotonic()
        response = await client.post("/invocations", json=[[1, 2, 3, 4]])
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["code"] == "DeadlineExceeded"
    assert elapsed < 0.8


async def test_metrics_count_invocations(model_dir: Path, app_client) -> None:
    async with app_client(
        ModelHandler.load(model_dir), endpoint="iris-ep", variant="AllTraffic"
    ) as client:
        await client.post("/invocations", json=[[5.1, 3.5, 1.4, 0.2]])
        await client.post("/invocations", json=[[1, 2]])
        response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    labels = 'endpoint="iris-ep",variant="AllTraffic"'
    assert f"orch_invocations_total{{{labels}}}" in text
    assert (
        'orch_invocation_errors_total{endpoint="iris-ep",error_class="4XX",variant="AllTraffic"}'
        in text
    )
    assert f"orch_model_latency_seconds_count{{{labels}}}" in text


async def test_execution_parameters_answer_what_batch_transform_may_send(
    model_dir: Path, app_client
) -> None:
    settings = ServingSettings(max_concurrency=4, max_payload_bytes=10 * 1024 * 1024 + 5)
    async with app_client(ModelHandler.load(model_dir), settings) as client:
        response = await client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.json() == {
        "MaxConcurrentTransforms": 4,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 10,
    }
    small = ServingSettings(max_payload_bytes=1000)  # under 1 MiB: 1, never "no limit"
    async with app_client(ModelHandler.load(model_dir), small) as client:
        assert (await client.get("/execution-parameters")).json()["MaxPayloadInMB"] == 1
