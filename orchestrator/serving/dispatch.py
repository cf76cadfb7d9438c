"""The data plane of one replica: admission, a bounded queue, deadlines and adaptive batching.

Requests enter :meth:`Dispatcher.submit` on the event loop. At most ``max_concurrency`` model
calls run at once, each on one of as many worker threads; up to ``max_queue`` requests wait
for one, and the next is refused at once (``LimitExceededError``, 429 with Retry-After).
Every request has a deadline (``invocation_timeout_seconds``, queue time included): past it
the caller gets ``DeadlineExceededError`` (504) and the request is marked abandoned, so a
queued request never runs and a running one stops at the next stage boundary (decode ->
predict -> encode, or the next pipeline step). Python cannot stop a thread inside a call, so
a running ``predict_fn`` finishes; nothing after it does.

Batching (``BatchingConfig``): when a worker is free, the waiting requests leave together, up
to ``max_batch_size`` of them. With no model call in flight a request leaves at once (nothing
to wait for, so a lone client loses nothing); while one is in flight, a partial batch waits
at most ``max_delay_seconds`` after its first request for more to join. In the worker, each
request is decoded alone, compatible inputs are joined and predicted in one call (see
:mod:`orchestrator.serving.batching`), and the prediction is split back and encoded per
request. If the joined call raises, or its prediction does not split, every request of it is
predicted alone, so one bad request fails only itself.

Fast models run inline: with one worker and no batching, once the model's last
``INLINE_STREAK`` calls each took less than ``inline_below_seconds`` (a couple of
milliseconds), requests run on the event loop itself, which saves two thread switches per
request (about +20% requests/s on a small scikit-learn model, measured with
benchmarks/serving/vs_peers.py). The first call slower than that sends the model back to the
worker thread until it earns the streak again. The cost: while a call runs inline nothing
else on this replica runs, so a model that suddenly hangs cannot be answered 504 by the
replica (the router's own deadline answers it) and stops answering /ping (so it leaves the
routing table within a controller pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from orchestrator.errors import (
    DeadlineExceededError,
    LimitExceededError,
    ModelError,
    OrchestratorError,
)
from orchestrator.serving import batching, oip
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.handler import InvokeResult
from orchestrator.serving.pipeline import Servable

QUEUED, RUNNING, ABANDONED = 0, 1, 2
INLINE_STREAK = 100  # fast calls in a row before a model runs on the event loop


class Job:
    """One request on its way through the dispatcher."""

    __slots__ = (
        "accept",
        "arrived",
        "body",
        "content_type",
        "future",
        "model_seconds",
        "request",
        "state",
        "v2",
    )

    def __init__(self, body: bytes, content_type: str, accept: str, *, v2: bool = False) -> None:
        self.body = body
        self.content_type = content_type
        self.accept = accept
        self.v2 = v2  # an Open Inference Protocol request (JSON tensors in and out)
        self.request: oip.InferRequest | None = None
        self.state = QUEUED
        self.arrived = 0.0
        self.model_seconds = 0.0
        self.future: asyncio.Future[InvokeResult]

    def abandoned(self) -> bool:
        return self.state == ABANDONED


class Dispatcher:
    """Runs requests against ``servable`` under the limits; see the module docstring."""

    def __init__(
        self,
        servable: Servable,
        *,
        model_name: str = "model",
        max_concurrency: int = 1,
        max_queue: int = 100,
        timeout_seconds: float = 60.0,
        retry_after_seconds: float = 1.0,
        batching: BatchingConfig | None = None,
        inline_below_seconds: float = 0.0,
    ) -> None:
        self.servable = servable
        self.model_name = model_name
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.timeout_seconds = timeout_seconds
        self.retry_after_seconds = retry_after_seconds
        self.batching = batching
        self._max_batch = batching.max_batch_size if batching else 1
        self._delay = batching.max_delay_seconds if batching else 0.0
        self._pending: deque[Job] = deque()
        self._free = max_concurrency
        self._timer: asyncio.TimerHandle | None = None
        self._work: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each worker thread's answers for the batch in hand, settled on the loop at once.
        self._outcomes = threading.local()
        # Inline execution (see the module docstring): only with one worker and no batching.
        self._inline_below = (
            inline_below_seconds if max_concurrency == 1 and batching is None else 0.0
        )
        self._fast_streak = 0
        self.inline = False  # running on the event loop right now

    @property
    def waiting(self) -> int:
        """Requests admitted and not yet handed to a worker."""
        return len(self._pending)

    async def submit(self, job: Job) -> InvokeResult:
        """Run ``job``; raises ``LimitExceededError``, ``DeadlineExceededError`` or the
        model's own error."""
        loop = self._loop
        if loop is None:
            loop = self._start()
        job.future = loop.create_future()
        job.arrived = loop.time()
        self._pending.append(job)
        self._pump()
        if job.state == QUEUED and len(self._pending) > self.max_queue:
            self._pending.pop()  # it went in last and nothing took it: refuse it at once
            raise LimitExceededError(
                f"{self.max_queue} requests are already waiting for the model; retry later",
                field="max_queue",
            )
        if job.future.done():  # it ran inline (a fast model): no deadline to watch
            return job.future.result()
        deadline = loop.call_later(self.timeout_seconds, self._expire, job)
        try:
            return await job.future
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        finally:
            deadline.cancel()

    def _start(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        for index in range(self.max_concurrency):
            thread = threading.Thread(target=self._work_loop, name=f"model-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self._loop

    def close(self) -> None:
        """Let the worker threads end once their current call returns."""
        for _ in self._threads:
            self._work.put(None)
        self._threads.clear()

    def _expire(self, job: Job) -> None:
        if job.future.done():
            return
        self._abandon(job)
        job.future.set_exception(
            DeadlineExceededError(f"the model did not answer within {self.timeout_seconds:g} s")
        )

    def _abandon(self, job: Job) -> None:
        if job.state == QUEUED:
            with contextlib.suppress(ValueError):
                self._pending.remove(job)
        job.state = ABANDONED

    def _pump(self) -> None:
        assert self._loop is not None
        pending = self._pending
        while self._free > 0 and pending:
            if len(pending) < self._max_batch and self._free < self.max_concurrency:
                # A model call is in flight, so more requests are likely on their way: let
                # the batch fill for up to the delay after its first request.
                wait = pending[0].arrived + self._delay - self._loop.time()
                if wait > 0:
                    if self._timer is None:
                        self._timer = self._loop.call_later(wait, self._on_timer)
                    return
            batch = [pending.popleft() for _ in range(min(self._max_batch, len(pending)))]
            for job in batch:
                job.state = RUNNING
            self._free -= 1
            if self.inline:
                self._run_inline(batch[0])
                return
            self._work.put(batch)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _settle(self, outcomes: list[tuple[asyncio.Future[InvokeResult], Any]]) -> None:
        for future, outcome in outcomes:
            if not future.done():
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        if self._inline_below and len(outcomes) <= 1:
            # A single call (an abandoned one has no outcome: it was too slow).
            self._note_call(outcomes[0][1] if outcomes else None)
        self._free += 1
        self._pump()

    def _note_call(self, outcome: Any) -> None:
        """Count fast model calls in a row; switch inline after a streak, back on a slow one."""
        fast = isinstance(outcome, InvokeResult) and outcome.model_seconds < self._inline_below
        if not fast:
            self._fast_streak = 0
            self.inline = False
            return
        self._fast_streak += 1
        if self._fast_streak >= INLINE_STREAK:
            self.inline = True

    def _run_inline(self, job: Job) -> None:
        """Run one request on the event loop (a fast model); then let I/O in before the next."""
        assert self._loop is not None
        outcomes: list[tuple[asyncio.Future[InvokeResult], Any]] = []
        self._outcomes.outcomes = outcomes
        try:
            self._run_alone(job, _UNDECODED)
        finally:
            self._outcomes.outcomes = None
        for future, outcome in outcomes:
            if not future.done():
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            self._note_call(outcome)
        self._free += 1
        if self._pending:
            self._loop.call_soon(self._pump)

    # --- worker threads ----------------------------------------------------------------------

    def _work_loop(self) -> None:
        assert self._loop is not None
        loop = self._loop
        while True:
            batch = self._work.get()
            if batch is None:
                return
            outcomes: list[tuple[asyncio.Future[InvokeResult], Any]] = []
            self._outcomes.outcomes = outcomes
            try:
                if len(batch) == 1:
                    self._run_alone(batch[0], _UNDECODED)
                else:
                    self._run_batch(batch)
            finally:
                del batch
                # One wake-up of the event loop per batch (answers and the free worker together):
                # each call_soon_threadsafe writes the loop's self-pipe.
                _call_soon(loop, self._settle, outcomes)

    def _run_batch(self, batch: list[Job]) -> None:
        jobs: list[Job] = []
        inputs: list[Any] = []
        for job in batch:
            data = self._decode(job)
            if data is not _FAILED:
                jobs.append(job)
                inputs.append(data)
        together, alone = batching.group(inputs)
        for indexes in together:
            group = [jobs[i] for i in indexes]
            arrays = [inputs[i] for i in indexes]
            pieces = None
            started = time.perf_counter()
            try:
                prediction = self.servable.predict(batching.join(arrays))
                pieces = batching.split(prediction, [len(a) for a in arrays])
            except Exception:  # retried per request below, where it gets its own answer
                pieces = None
            if pieces is None:
                alone.extend(indexes)
                continue
            seconds = time.perf_counter() - started
            for job, piece in zip(group, pieces, strict=True):
                job.model_seconds += seconds
                self._encode(job, piece)
        for index in alone:
            self._run_alone(jobs[index], inputs[index])

    def _run_alone(self, job: Job, data: Any) -> None:
        if data is _UNDECODED:
            data = self._decode(job)
            if data is _FAILED:
                return
        if job.state == ABANDONED:
            return
        started = time.perf_counter()
        try:
            prediction = self.servable.predict(data, job.abandoned)
        except BaseException as e:
            self._fail(job, e)
            return
        job.model_seconds += time.perf_counter() - started
        self._encode(job, prediction)

    def _decode(self, job: Job) -> Any:
        if job.state == ABANDONED:
            return _FAILED
        started = time.perf_counter()
        try:
            if job.v2:
                job.request = oip.decode_request(job.body)
                data = job.request.data
            else:
                data = self.servable.decode(job.body, job.content_type)
        except BaseException as e:
            self._fail(job, e)
            return _FAILED
        job.model_seconds += time.perf_counter() - started
        return data

    def _encode(self, job: Job, prediction: Any) -> None:
        if job.state == ABANDONED:
            return
        started = time.perf_counter()
        try:
            if job.request is not None:
                body = oip.encode_response(self.model_name, job.request, prediction)
                content_type = "application/json"
            else:
                body, content_type = self.servable.encode(prediction, job.accept)
        except TypeError as e:
            self._fail(job, ModelError(f"the prediction cannot be encoded: {e}"))
            return
        except BaseException as e:
            self._fail(job, e)
            return
        job.model_seconds += time.perf_counter() - started
        result = InvokeResult(body, content_type, job.model_seconds)
        self._outcomes.outcomes.append((job.future, result))

    def _fail(self, job: Job, error: BaseException) -> None:
        if not isinstance(error, OrchestratorError):
            error = OrchestratorError(f"{type(error).__name__}: {error}")
        self._outcomes.outcomes.append((job.future, error))


_FAILED: Any = object()
_UNDECODED: Any = object()


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    # A closed loop (the server stopped) raises RuntimeError: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
