"""The runner against a fake model server: timeouts and retries, errors that are not retried,
a server that is gone, MaxConcurrentTransforms, a stop while a request is in flight; and the
instance entry point (exit codes, SIGTERM, the result record of a crash)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import UnavailableError, ValidationError
from orchestrator.objects import FileObjectStore
from orchestrator.testing import ServerThread
from orchestrator.transformer.instance import main_with, read_config
from orchestrator.transformer.scratch import TransformScratch
from orchestrator.transformer.server import ExternalServer
from tests.transform._runner import config_for, file_store, run, settings, transform_spec

ROWS = b"".join(b"%d,1,2,3,4\n" % i for i in range(30))


class FakeModel:
    """An ASGI model server: answers ``0`` per line; the first ``slow`` invocations wait
    ``delay`` seconds first; ``status`` other than 200 is answered as an error."""

    def __init__(
        self,
        *,
        slow: int = 0,
        delay: float = 0.0,
        status: int = 200,
        parameters: Any = None,
        each_delay: float = 0.0,
    ) -> None:
        self.slow, self.delay, self.status = slow, delay, status
        self.parameters, self.each_delay = parameters, each_delay
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.first_call = threading.Event()
        self.released = threading.Event()  # ends the slow calls' waits at once

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        if path == "/ping":
            await _answer(send, 200, b"{}")
        elif path == "/execution-parameters":
            if self.parameters is None:
                await _answer(send, 404, b"{}")
            else:
                await _answer(send, 200, json.dumps(self.parameters).encode())
        else:
            await self._invoke(send, body)

    async def _invoke(self, send: Any, body: bytes) -> None:
        self.calls += 1
        self.first_call.set()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.calls <= self.slow:
                deadline = time.monotonic() + self.delay
                while time.monotonic() < deadline and not self.released.is_set():
                    await asyncio.sleep(0.02)
            await asyncio.sleep(self.each_delay)
            if self.status != 200:
                payload = {"code": "ModelError", "message": "the row is\n  bad"}
                await _answer(send, self.status, json.dumps(payload).encode())
            else:
                await _answer(send, 200, b"0\n" * body.count(b"\n"), b"text/csv")
        finally:
            self.in_flight -= 1


async def _answer(send: Any, status: int, body: bytes, kind: bytes = b"application/json") -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    store = file_store(tmp_path)
    store.put_bytes("s3://data/in/a.csv", ROWS)
    return store


class Serving:
    """A ``ModelServer`` over a ``ServerThread``, recording what was asked of it."""

    def __init__(self, app: FakeModel, *, died: str | None = None) -> None:
        self.app = app
        self.thread = ServerThread(app)
        self.url = self.thread.url
        self.events: list[str] = []
        self._died = died

    def start(self) -> None:
        self.events.append("start")

    def wait_ready(self, timeout: float) -> None:
        self.events.append("ready")

    def died(self) -> str | None:
        return self._died

    def stop(self) -> None:
        self.events.append("stop")


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Serving] = []

    def start(app: FakeModel, **kw: Any) -> Serving:
        serving = Serving(app, **kw)
        serving.thread.__enter__()
        started.append(serving)
        return serving

    yield start
    for serving in started:
        serving.app.released.set()
        serving.thread.__exit__()


def _timeouts(retries: int) -> dict[str, Any]:
    return {"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": retries}


def test_a_call_that_times_out_is_retried(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(slow=2, delay=1.5))
    spec = transform_spec(ModelClientConfig=_timeouts(2))
    result = run(store, spec, server)
    assert result.Outcome == "completed", result.Failure
    assert server.app.calls == 3
    assert store.get_bytes("s3://data/out/a.csv.out") == b"0\n" * 30


def test_a_call_that_times_out_every_time_fails_the_job(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(slow=10, delay=1.5))
    result = run(store, transform_spec(ModelClientConfig=_timeouts(1)), server)
    assert result.Outcome == "failed" and result.Failure is not None
    assert result.Failure.kind == "ClientError"
    assert result.Failure.message.startswith(
        "a.csv: records 1-30 (lines 1-30): the model did not answer within "
        "InvocationsTimeoutInSeconds=1 s (2 tries)"
    )
    assert server.app.calls == 2


def test_an_error_answer_is_not_retried(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(status=400))
    result = run(store, transform_spec(ModelClientConfig=_timeouts(3)), server)
    assert result.Failure is not None
    assert result.Failure.message == (
        "a.csv: records 1-30 (lines 1-30): the model answered 400: the row is bad"
    )
    assert server.app.calls == 1


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed


class Gone:
    def __init__(self, died: str | None) -> None:
        self.url = _dead_url()
        self._died = died

    def start(self) -> None: ...
    def wait_ready(self, timeout: float) -> None: ...
    def died(self) -> str | None:
        return self._died

    def stop(self) -> None: ...


@pytest.mark.parametrize(
    ("died", "kind", "says"),
    [
        (None, "InternalServerError", "cannot reach the model server at "),
        ("exit code 137 (killed)", "AlgorithmError", "the model server exited: exit code 137"),
    ],
)
def test_a_server_that_is_gone(
    store: FileObjectStore, died: str | None, kind: str, says: str
) -> None:
    result = run(store, transform_spec(ModelClientConfig=_timeouts(1)), Gone(died))  # type: ignore[arg-type]
    assert result.Failure is not None
    assert result.Failure.kind == kind
    assert result.Failure.message.startswith("a.csv: records 1-30 (lines 1-30): ")
    assert says in result.Failure.message


@pytest.mark.parametrize(
    ("parameters", "spec_value", "expected"),
    [
        ({"MaxConcurrentTransforms": 3}, None, 3),
        (None, None, 1),  # no /execution-parameters: one at a time
        ({"MaxConcurrentTransforms": "many"}, None, 1),
        ({"MaxConcurrentTransforms": 64}, None, 16),  # kept under 100 MB with 6 MB payloads
        ({"MaxConcurrentTransforms": 3}, 2, 2),  # the job's own value wins
    ],
)
def test_requests_in_flight(
    store: FileObjectStore,
    serve: Any,
    parameters: Any,
    spec_value: int | None,
    expected: int,
) -> None:
    # Long enough calls that every thread has one in flight at some moment.
    server = serve(FakeModel(parameters=parameters, each_delay=0.3 if expected > 3 else 0.05))
    spec = transform_spec(
        BatchStrategy="SingleRecord", MaxPayloadInMB=6, MaxConcurrentTransforms=spec_value
    )
    assert run(store, spec, server).Outcome == "completed"
    assert server.app.calls == 30
    assert server.app.most_in_flight == min(expected, 30)


def test_a_stop_does_not_wait_for_an_answer(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(slow=1, delay=5.0))
    stop = threading.Event()
    threading.Thread(target=lambda: (server.app.first_call.wait(10), stop.set())).start()
    started = time.monotonic()
    result = run(store, transform_spec(), server, stop=stop)
    assert result.Outcome == "stopped"
    assert time.monotonic() - started < 3
    assert TransformScratch(store, "job").done_ranges() == set()


# --- the entry point -------------------------------------------------------------------------
def test_main_with_runs_records_the_result_and_stops_the_server(
    store: FileObjectStore, serve: Any
) -> None:
    server = serve(FakeModel())
    code = main_with(config_for(transform_spec()), store, server, settings())
    assert code == 0
    assert server.events == ["start", "ready", "stop"]
    result = TransformScratch(store, "job").read_result(0)
    assert result is not None and result.Outcome == "completed"


def test_main_with_exits_1_on_a_failure(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(status=500))
    assert main_with(config_for(transform_spec()), store, server, settings()) == 1
    result = TransformScratch(store, "job").read_result(0)
    assert result is not None and result.Outcome == "failed" and result.File == 0


def test_sigterm_stops_the_instance_with_143(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel(slow=1, delay=5.0))

    def terminate() -> None:
        server.app.first_call.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate).start()
    before = signal.getsignal(signal.SIGTERM)
    assert main_with(config_for(transform_spec()), store, server, settings()) == 143
    assert signal.getsignal(signal.SIGTERM) is before
    assert server.events[-1] == "stop"
    result = TransformScratch(store, "job").read_result(0)
    assert result is not None and result.Outcome == "stopped"


class _Broken:
    """A store whose listing raises what no code expects."""

    def __init__(self, inner: FileObjectStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list(self, prefix_uri: str) -> Any:
        raise RuntimeError("the disk is on fire")


def test_a_crash_in_the_runner_is_recorded(store: FileObjectStore, serve: Any) -> None:
    server = serve(FakeModel())
    code = main_with(config_for(transform_spec()), _Broken(store), server, settings())  # type: ignore[arg-type]
    assert code == 1
    result = TransformScratch(store, "job").read_result(0)
    assert result is not None and result.Failure is not None
    assert result.Failure.kind == "InternalServerError"
    assert result.Failure.message == (
        "the transform runner failed: RuntimeError: the disk is on fire"
    )


class _NeverReady(Gone):
    def wait_ready(self, timeout: float) -> None:
        raise UnavailableError("the model server exited before it was ready: exit code 1: boom")


def test_a_server_that_does_not_start_fails_the_instance(store: FileObjectStore) -> None:
    assert main_with(config_for(transform_spec()), store, _NeverReady(None), settings()) == 1  # type: ignore[arg-type]
    result = TransformScratch(store, "job").read_result(0)
    assert result is not None and result.Failure is not None
    assert result.Failure.kind == "AlgorithmError"
    assert result.Failure.message.startswith("the model server did not start: ")
    assert "boom" in result.Failure.message


def test_an_external_server_is_waited_for(serve: Any) -> None:
    server = serve(FakeModel())
    external = ExternalServer(server.url + "/")
    external.start()
    external.wait_ready(5)
    assert external.died() is None
    external.stop()
    with pytest.raises(UnavailableError, match=r"was not ready within 0.3 s .*STARTUP_TIMEOUT"):
        ExternalServer(_dead_url()).wait_ready(0.3)


def test_the_instance_config_file(tmp_path: Path) -> None:
    config = config_for(transform_spec(TransformResources={"InstanceCount": 3}), 2, 4)
    path = tmp_path / "instance.json"
    path.write_text(config.model_dump_json())
    assert read_config(path) == config
    path.write_text('{"Name": "job"}')
    with pytest.raises(ValidationError, match=r"cannot read the instance config .*Instance"):
        read_config(path)


def test_an_instance_waits_for_the_plan_and_gives_up(store: FileObjectStore) -> None:
    spec = transform_spec(TransformResources={"InstanceCount": 2})
    result = run(store, spec, Gone(None), instance=1, startup_timeout_seconds=0.5)  # type: ignore[arg-type]
    assert result.Failure is not None and result.Failure.kind == "InternalServerError"
    assert result.Failure.message == "instance 1: instance 0 wrote no work plan within 0.5 s"
