"""The HTTP face of one replica: the SageMaker container contract and the Open Inference
Protocol (v2) over a :class:`~orchestrator.serving.dispatch.Dispatcher`.

SageMaker: ``GET /ping`` (200, or 503 once draining), ``POST /invocations``,
``GET /execution-parameters`` (what batch transform may send: requests at once, payload size).
Open Inference
Protocol: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/{name}``, ``GET /v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``
(errors as ``{"error": ...}``). ``GET /metrics`` exposes the Prometheus registry.

A plain ASGI callable rather than a framework router: this is the hot path, and routing six
fixed paths needs no more than a string compare. Bodies over ``max_payload_bytes`` are refused
with 413 before they are read (by Content-Length) or as soon as a chunked body passes the
limit. Each model answer carries ``X-Orch-Model-Latency-Us`` so the router can tell model time
from overhead; every request to a model is counted by ``metrics.record_invocation`` and, with
``request_log`` (``ORCH_SERVING__REQUEST_LOG``), written as one line to the replica's output.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from orchestrator import __version__, metrics
from orchestrator.errors import (
    LimitExceededError,
    ModelError,
    OrchestratorError,
    PayloadTooLargeError,
    TemporaryError,
    ValidationError,
)
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.dispatch import Dispatcher, Job
from orchestrator.serving.pipeline import Servable
from orchestrator.settings import ServingSettings

MODEL_LATENCY_HEADER = "X-Orch-Model-Latency-Us"
SERVER_NAME = "orchestrator"

Scope = dict[str, Any]
Message = dict[str, Any]
Headers = list[tuple[bytes, bytes]]

_JSON = b"application/json"
_LATENCY = MODEL_LATENCY_HEADER.lower().encode()
_MODELS_PREFIX = "/v2/models/"
MIB = 1024 * 1024


class ClientDisconnectedError(Exception):
    """The client went away while its body was being read."""


class ServingApp:
    """The ASGI app; ``drain()`` turns the readiness checks to 503 (shutdown has begun)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_payload_bytes: int,
        endpoint: str = "",
        variant: str = "",
        request_log: TextIO | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.request_log = request_log
        self.model_name = dispatcher.model_name
        self.max_payload_bytes = max_payload_bytes
        self.endpoint = endpoint
        self.variant = variant
        self.draining = False
        self._ok_ping = orjson.dumps({"status": "ok"})
        self._draining_ping = orjson.dumps({"status": "draining"})
        self._execution_parameters = orjson.dumps(
            {
                "MaxConcurrentTransforms": dispatcher.max_concurrency,
                "BatchStrategy": "MULTI_RECORD",
                # Whole MiB, at least 1: SageMaker reads 0 as "no limit".
                "MaxPayloadInMB": max(1, max_payload_bytes // MIB),
            }
        )

    def drain(self) -> None:
        self.draining = True

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/invocations":
            if method != "POST":
                await _respond(send, 405, b'{"message":"use POST"}')
                return
            await self._invoke(scope, receive, send, v2=False)
        elif path == "/ping":
            if self.draining:
                await _respond(send, 503, self._draining_ping)
            else:
                await _respond(send, 200, self._ok_ping)
        elif path.startswith("/v2"):
            await self._v2(scope, receive, send, path, method)
        elif path == "/execution-parameters" and method == "GET":
            await _respond(send, 200, self._execution_parameters)
        elif path == "/metrics" and method == "GET":
            body, content_type = metrics.exposition()
            await _respond(send, 200, body, content_type.encode())
        else:
            message = f"no route {method} {path}"
            await _respond(send, 404, orjson.dumps({"code": "NotFound", "message": message}))

    # --- Open Inference Protocol -------------------------------------------------------------

    async def _v2(self, scope: Scope, receive: Any, send: Any, path: str, method: str) -> None:
        if path.startswith(_MODELS_PREFIX):
            name, _, rest = path[len(_MODELS_PREFIX) :].partition("/")
            if name != self.model_name:
                message = f"model {name!r} not found; this server serves {self.model_name!r}"
                await _v2_error(send, 404, message)
                return
            if rest == "infer":
                if method != "POST":
                    await _v2_error(send, 405, "use POST for infer")
                    return
                await self._invoke(scope, receive, send, v2=True)
                return
            if method != "GET":
                await _v2_error(send, 405, f"use GET for {path}")
            elif rest == "":
                await _respond(send, 200, self._model_metadata())
            elif rest == "ready":
                ready = not self.draining
                body = orjson.dumps({"name": self.model_name, "ready": ready})
                await _respond(send, 200 if ready else 503, body)
            else:
                await _v2_error(send, 404, f"no route {method} {path}")
            return
        if method != "GET":
            await _v2_error(send, 405, f"use GET for {path}")
        elif path in ("/v2", "/v2/"):
            document = {"name": SERVER_NAME, "version": __version__, "extensions": []}
            await _respond(send, 200, orjson.dumps(document))
        elif path == "/v2/health/live":
            await _respond(send, 200, b'{"live":true}')
        elif path == "/v2/health/ready":
            if self.draining:
                await _respond(send, 503, b'{"ready":false}')
            else:
                await _respond(send, 200, b'{"ready":true}')
        else:
            await _v2_error(send, 404, f"no route {method} {path}")

    def _model_metadata(self) -> bytes:
        return orjson.dumps(
            {
                "name": self.model_name,
                "versions": [],
                "platform": SERVER_NAME,
                "inputs": [],
                "outputs": [],
            }
        )

    # --- model requests ----------------------------------------------------------------------

    async def _invoke(self, scope: Scope, receive: Any, send: Any, *, v2: bool) -> None:
        started = time.perf_counter()
        content_type = accept = ""
        declared: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"accept":
                accept = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        model_seconds: float | None = None
        try:
            body = await _read_body(receive, declared, self.max_payload_bytes)
            job = Job(body, content_type, accept or "application/json", v2=v2)
            result = await self.dispatcher.submit(job)
            model_seconds = result.model_seconds
            status = 200
            await _respond(
                send,
                200,
                result.body,
                result.content_type.encode("latin-1"),
                ((_LATENCY, str(round(model_seconds * 1e6)).encode()),),
            )
        except ClientDisconnectedError:
            status = 499
        except OrchestratorError as e:
            status = await self._error(send, e, v2=v2)
        except Exception as e:  # a bug here must not take the replica down
            status = await self._error(send, OrchestratorError(f"{type(e).__name__}: {e}"), v2=v2)
        overhead = None
        if model_seconds is not None:
            overhead = max(0.0, time.perf_counter() - started - model_seconds)
        if self.request_log is not None:
            self._log_request(scope["path"], status, time.perf_counter() - started)
        metrics.record_invocation(
            self.endpoint,
            self.variant,
            status=status,
            model_seconds=model_seconds,
            overhead_seconds=overhead,
        )

    def _log_request(self, path: str, status: int, seconds: float) -> None:
        assert self.request_log is not None
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{now} request {path} status={status} latency_ms={seconds * 1000:.3f}\n"
        try:
            self.request_log.write(line)
            self.request_log.flush()
        except (OSError, ValueError):  # a closed or full log must not fail the request
            pass

    async def _error(self, send: Any, error: OrchestratorError, *, v2: bool) -> int:
        status = error_status(error)
        headers: list[tuple[bytes, bytes]] = []
        if isinstance(error, LimitExceededError):
            retry = self.dispatcher.retry_after_seconds
            headers.append((b"retry-after", str(max(1, math.ceil(retry))).encode()))
        elif isinstance(error, TemporaryError):
            headers.append((b"retry-after", str(max(1, math.ceil(error.retry_after))).encode()))
        if isinstance(error, PayloadTooLargeError):
            headers.append((b"connection", b"close"))  # the rest of the body is never read
        if v2:  # the protocol's error is one string: name the field in it
            named = f"{error.field}: {error.message}" if error.field else error.message
            payload: dict[str, Any] = {"error": named}
        else:
            payload = error.to_payload()
        body = orjson.dumps(payload)
        await _respond(send, status, body, _JSON, headers)
        return status


def error_status(error: OrchestratorError) -> int:
    """The HTTP status for ``error`` (a ``ModelError``'s own status)."""
    return error.http_status if isinstance(error, ModelError) else error.status_code


def build_app(
    handler: Servable,
    *,
    settings: ServingSettings,
    endpoint: str = "",
    variant: str = "",
    model_name: str = "model",
    batching: BatchingConfig | None = None,
) -> ServingApp:
    """The app serving ``handler`` (a ``ModelHandler`` or a ``Pipeline``) under ``settings``;
    ``endpoint``/``variant`` label its metrics, ``model_name`` is its v2 name."""
    dispatcher = Dispatcher(
        handler,
        model_name=model_name,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        timeout_seconds=settings.invocation_timeout_seconds,
        retry_after_seconds=settings.retry_after_seconds,
        batching=batching,
        inline_below_seconds=settings.inline_below_ms / 1000.0,
    )
    return ServingApp(
        dispatcher,
        max_payload_bytes=settings.max_payload_bytes,
        endpoint=endpoint,
        variant=variant,
        request_log=sys.stderr if settings.request_log else None,
    )


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    headers: Headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _v2_error(send: Any, status: int, message: str) -> None:
    await _respond(send, status, orjson.dumps({"error": message}))


async def _read_body(receive: Any, declared: bytes | None, limit: int) -> bytes:
    if declared is not None:
        try:
            length = int(declared)
        except ValueError as e:
            raise ValidationError(
                f"Content-Length {declared.decode('latin-1')!r} is not a number",
                field="Content-Length",
            ) from e
        if length > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnectedError
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is over the {limit} byte limit; send smaller batches",
        field="body",
    )


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
