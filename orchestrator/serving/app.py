"""The HTTP face of one replica: the SageMaker container contract over a :class:`ModelHandler`.

``GET /ping`` answers 200 (the handler is loaded before the app exists), ``POST /invocations``
runs the model in a worker thread under ``invocation_timeout_seconds`` and ``GET /metrics``
exposes the product's Prometheus registry. Bodies over ``max_payload_bytes`` are refused with
413 before they are read (by Content-Length) or as soon as a chunked body passes the limit.
Each answer to ``/invocations`` carries ``X-Orch-Model-Latency-Us`` when the model ran, so the
router can tell model time from overhead.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from orchestrator import metrics
from orchestrator.errors import (
    DeadlineExceededError,
    ModelError,
    OrchestratorError,
    PayloadTooLargeError,
    ValidationError,
)
from orchestrator.serving.handler import InvokeResult, ModelHandler
from orchestrator.settings import ServingSettings

MODEL_LATENCY_HEADER = "X-Orch-Model-Latency-Us"

T = TypeVar("T")


class WorkerPool:
    """Daemon worker threads for model calls.

    A call that overruns its deadline keeps its thread (Python cannot stop it); daemon threads
    mean such a call never holds the process up at exit, which ``ThreadPoolExecutor`` would.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, fn))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if len(self._threads) < self._max_workers:
                    thread = threading.Thread(
                        target=self._work, name=f"model-{len(self._threads)}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            future, fn = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:
                    future.set_exception(e)
                del future, fn  # drop the result before waiting for the next job
            self._idle.release()


def build_app(
    handler: ModelHandler, *, settings: ServingSettings, endpoint: str = "", variant: str = ""
) -> ASGIApp:
    """The Starlette app serving ``handler``; ``endpoint``/``variant`` label its metrics."""
    pool = WorkerPool()

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, headers={"Content-Type": content_type})

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        result: InvokeResult | None = None
        try:
            body = await _read_body(request, settings.max_payload_bytes)
            content_type = request.headers.get("content-type", "")
            accept = request.headers.get("accept", "") or "application/json"
            future = pool.submit(lambda: handler.invoke(body, content_type, accept))
            try:
                result = await asyncio.wait_for(
                    asyncio.wrap_future(future), settings.invocation_timeout_seconds
                )
            except TimeoutError as e:
                raise DeadlineExceededError(
                    f"the model did not answer within {settings.invocation_timeout_seconds:g} s"
                ) from e
            response = Response(result.body, headers={"Content-Type": result.content_type})
            response.headers[MODEL_LATENCY_HEADER] = str(round(result.model_seconds * 1e6))
        except OrchestratorError as e:
            response = error_response(e)
        except Exception as e:  # a bug here must not take the replica down
            response = error_response(OrchestratorError(f"{type(e).__name__}: {e}"))
        model_seconds = overhead_seconds = None
        if result is not None:
            model_seconds = result.model_seconds
            overhead_seconds = max(0.0, time.perf_counter() - started - model_seconds)
        metrics.record_invocation(
            endpoint,
            variant,
            status=response.status_code,
            model_seconds=model_seconds,
            overhead_seconds=overhead_seconds,
        )
        return response

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def error_response(error: OrchestratorError) -> JSONResponse:
    """``{"code", "message"}`` with the error's status (a ``ModelError``'s own status)."""
    status = error.http_status if isinstance(error, ModelError) else error.status_code
    return JSONResponse(error.to_payload(), status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError as e:
            raise ValidationError(
                f"Content-Length {declared!r} is not a number", field="Content-Length"
            ) from e
        if length > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is over the {limit} byte limit", field="body")
