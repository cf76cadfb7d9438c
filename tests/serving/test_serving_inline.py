"""Fast models run on the event loop after a streak of fast calls; a slow call sends them back
to the worker thread, where deadlines hold; batching or several workers never run inline."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from orchestrator.serving import ModelHandler
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.dispatch import INLINE_STREAK, Dispatcher, Job

pytestmark = pytest.mark.anyio

ROW = b"[[1.0, 2.0]]"


class Model:
    """Predicts the row sums; sleeps ``delay`` seconds per call when told to."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.threads: list[str] = []

    def predict(self, data: Any) -> Any:
        import threading

        self.threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return np.asarray(data).sum(axis=1)


def dispatcher(model: Model, **options: Any) -> Dispatcher:
    defaults: dict[str, Any] = {"timeout_seconds": 5.0, "inline_below_seconds": 0.05}
    return Dispatcher(ModelHandler(model), **{**defaults, **options})


async def call(d: Dispatcher) -> bytes:
    result = await d.submit(Job(ROW, "application/json", "application/json"))
    return result.body


async def test_a_fast_model_goes_inline_after_its_streak_and_back_on_a_slow_call() -> None:
    model = Model()
    d = dispatcher(model)
    try:
        for _ in range(INLINE_STREAK):
            assert await call(d) == b'{"predictions":[3.0]}'
        assert d.inline
        assert all(name.startswith("model-") for name in model.threads)  # so far: the worker
        await call(d)
        assert model.threads[-1] == "MainThread"  # on the event loop now
        model.delay = 0.1  # slower than the 50 ms bar: back to the worker thread
        await call(d)
        assert not d.inline
        model.delay = 0.0
        await call(d)
        assert model.threads[-1].startswith("model-")
    finally:
        d.close()


async def test_a_model_that_was_never_fast_keeps_its_deadline() -> None:
    from orchestrator.errors import DeadlineExceededError

    model = Model()
    model.delay = 0.3
    d = dispatcher(model, timeout_seconds=0.1)
    try:
        with pytest.raises(DeadlineExceededError):
            await call(d)
        assert not d.inline
    finally:
        d.close()


@pytest.mark.parametrize(
    "options",
    [
        {"inline_below_seconds": 0.0},
        {"max_concurrency": 2},
        {"batching": BatchingConfig(max_batch_size=4, max_delay_seconds=0.001)},
    ],
    ids=["turned-off", "several-workers", "batching"],
)
async def test_never_inline_when_off_with_several_workers_or_batching(
    options: dict[str, Any],
) -> None:
    model = Model()
    d = dispatcher(model, **options)
    try:
        for _ in range(INLINE_STREAK + 5):
            await call(d)
        assert not d.inline
        assert "MainThread" not in model.threads
    finally:
        d.close()
