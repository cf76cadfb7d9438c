"""Limits of one replica: payload size (413), deadlines that drop abandoned work (504), the
bounded queue (429 with Retry-After), and per-replica overrides of the settings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from orchestrator.serving import ModelHandler, ServingApp, build_app
from orchestrator.settings import ServingSettings

pytestmark = pytest.mark.anyio

WriteScript = Callable[..., Path]

# A negative first feature makes the model slow; every stage leaves a mark, so a test can tell
# which stages of which request ran.
MARKING_SCRIPT = """
import json, pathlib, time

HERE = pathlib.Path(__file__).parent

def predict_fn(data, model):
    first = int(data[0][0])
    (HERE / f"predict-started-{first}").touch()
    if first < 0:
        time.sleep(0.6)
    (HERE / f"predict-done-{first}").touch()
    return [first]

def output_fn(prediction, accept):
    (HERE / f"encoded-{prediction[0]}").touch()
    return json.dumps({"predictions": prediction}), "application/json"
"""


@asynccontextmanager
async def served(
    handler: ModelHandler, settings: ServingSettings
) -> AsyncIterator[tuple[ServingApp, httpx.AsyncClient]]:
    app = build_app(handler, settings=settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://replica", timeout=30
        ) as client:
            yield app, client
    finally:
        app.dispatcher.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


class CountingBody:
    def __init__(self, chunks: int, size: int) -> None:
        self.chunks, self.size, self.sent = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.sent += 1
            yield b"1" * self.size


async def test_v2_infer_over_the_limit_is_413_declared_and_chunked(
    model_dir: Path, app_client
) -> None:
    settings = ServingSettings(max_payload_bytes=2500)
    declared, chunked = CountingBody(4, 1000), CountingBody(100, 1000)
    async with app_client(ModelHandler.load(model_dir), settings) as client:
        first = await client.post(
            "/v2/models/model/infer", content=declared, headers={"Content-Length": "4000"}
        )
        second = await client.post("/v2/models/model/infer", content=chunked)
    assert first.status_code == 413
    assert declared.sent == 0
    assert second.status_code == 413
    assert chunked.sent <= 3
    assert "2500 byte limit" in second.json()["error"]
    assert first.headers["connection"] == "close"


async def test_bad_content_length_is_400_naming_it(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post(
            "/invocations", content=b"[[1,2,3,4]]", headers={"Content-Length": "eleven"}
        )
    assert response.status_code == 400
    assert response.json()["field"] == "Content-Length"


async def test_504_drops_queued_work_and_stops_running_work_before_the_next_stage(
    model_dir: Path, write_script: WriteScript
) -> None:
    code_dir = write_script(MARKING_SCRIPT)
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    settings = ServingSettings(invocation_timeout_seconds=0.2, max_concurrency=1)
    results: dict[str, httpx.Response] = {}
    async with served(handler, settings) as (_, client):

        async def call(key: str, first: int) -> None:
            results[key] = await client.post("/invocations", json=[[first, 0, 0, 0]])

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "slow", -1)
            await wait_until((code_dir / "predict-started--1").exists, 10, "the slow predict")
            tg.start_soon(call, "queued", 7)
        assert time.monotonic() - started < 0.6  # both answered before the slow call returned
        assert results["slow"].status_code == 504
        assert results["slow"].json()["code"] == "DeadlineExceeded"
        assert results["slow"].headers["retry-after"] == "1"
        assert results["queued"].status_code == 504
        # Let the slow call end; the next request runs after anything still queued would.
        await wait_until((code_dir / "predict-done--1").exists, 10, "the slow predict to end")
        after = await client.post("/invocations", json=[[3, 0, 0, 0]])
        assert after.status_code == 200
    assert not (code_dir / "predict-started-7").exists()  # the queued request never ran
    assert not (code_dir / "encoded--1").exists()  # the abandoned one stopped after predict
    assert (code_dir / "encoded-3").exists()


async def test_a_full_queue_answers_429_at_once_with_retry_after(
    model_dir: Path, write_script: WriteScript
) -> None:
    code_dir = write_script(MARKING_SCRIPT)
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    settings = ServingSettings(max_concurrency=1, max_queue=1, retry_after_seconds=2)
    results: dict[str, httpx.Response] = {}
    async with served(handler, settings) as (app, client):

        async def call(key: str, first: int) -> None:
            results[key] = await client.post("/invocations", json=[[first, 0, 0, 0]])

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "running", -1)
            await wait_until((code_dir / "predict-started--1").exists, 10, "the slow predict")
            tg.start_soon(call, "queued", 1)
            await wait_until(lambda: app.dispatcher.waiting == 1, 10, "a queued request")
            started = time.monotonic()
            await call("refused", 2)
            assert time.monotonic() - started < 0.3
            assert results["refused"].status_code == 429
    assert results["refused"].headers["retry-after"] == "2"
    assert results["refused"].json()["code"] == "ResourceLimitExceeded"
    assert "1 requests are already waiting" in results["refused"].json()["message"]
    assert results["running"].status_code == 200
    assert results["queued"].status_code == 200
    assert not (code_dir / "predict-started-2").exists()


def test_settings_overridden_by_a_containers_environment() -> None:
    base = ServingSettings()
    env = {"ORCH_SERVING__MAX_CONCURRENCY": "3", "ORCH_SERVING__MAX_QUEUE": "7", "OTHER": "x"}
    overridden = base.overridden(env)
    assert (overridden.max_concurrency, overridden.max_queue) == (3, 7)
    assert base.overridden({}) is base
    with pytest.raises(ValueError, match="ORCH_SERVING__MAX_CONCURRENCY"):
        base.overridden({"ORCH_SERVING__MAX_CONCURRENCY": "0"})
