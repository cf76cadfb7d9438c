"""The request log: one line per model request (time, path, status, latency), off by default."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from orchestrator.serving import build_app
from orchestrator.serving.handler import ModelHandler
from orchestrator.settings import ServingSettings

pytestmark = pytest.mark.anyio
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z request /invocations status=(\d+) "
    r"latency_ms=\d+\.\d{3}$"
)


def test_off_by_default_and_on_by_the_models_environment() -> None:
    assert ServingSettings().request_log is False
    on = ServingSettings().overridden({"ORCH_SERVING__REQUEST_LOG": "true"})
    assert on.request_log is True


async def test_one_line_per_request_with_its_status(model_dir: Path, iris, app_client) -> None:
    x, _ = iris
    async with app_client(ModelHandler.load(model_dir)) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        app.request_log = out = io.StringIO()
        ok = await client.post("/invocations", content=json.dumps(x[:2].tolist()))
        bad = await client.post("/invocations", content=b"not json")
        await client.get("/ping")  # not a model request: not logged
    assert (ok.status_code, bad.status_code) == (200, 400)
    lines = out.getvalue().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["200", "400"]  # type: ignore[union-attr]


def test_built_app_logs_to_stderr_only_when_enabled(model_dir: Path) -> None:
    handler = ModelHandler.load(model_dir)
    off = build_app(handler, settings=ServingSettings())
    on = build_app(handler, settings=ServingSettings(request_log=True))
    try:
        assert off.request_log is None
        assert on.request_log is not None
    finally:
        off.dispatcher.close()
        on.dispatcher.close()
