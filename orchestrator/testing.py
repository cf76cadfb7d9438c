"""Helpers for tests, ours and users': the fake backend, a fake clock, builders, and a control
plane served in-process.

    from orchestrator.testing import FakeBackend, FakeClock, local_control_plane

    with local_control_plane(tmp_path) as cp:           # fake backend, real API and store
        cp.client.create_training_job(training_job_spec("job-1", program="train.py"))
        cp.controller.run_pass()
        cp.backend.complete("job-1", artifact="s3://orchestrator/job-1/model.tar.gz")
        cp.controller.run_pass()
"""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.client import Client
from orchestrator.controller.runtime import Controller
from orchestrator.dataplane import http_protocol
from orchestrator.dataplane.front import ASGIApp
from orchestrator.gpus import Gpu, GpuInventory, GpuUsage
from orchestrator.settings import Settings

__all__ = [
    "FakeBackend",
    "FakeClock",
    "FakeGpus",
    "LocalControlPlane",
    "ServerThread",
    "endpoint_config_spec",
    "eventually",
    "eventually_async",
    "local_control_plane",
    "model_spec",
    "tarball",
    "training_job_spec",
    "transform_job_spec",
]


class FakeGpus:
    """A GPU inventory of ``count`` devices whose usage a test sets (``usage_of``)."""

    def __init__(self, count: int) -> None:
        self._devices = [Gpu(i, f"GPU-fake-{i}", "Fake GPU", 16 << 30) for i in range(count)]
        self.usage_of: dict[int, tuple[float, int]] = {}

    def devices(self) -> list[Gpu]:
        return list(self._devices)

    def usage(self) -> list[GpuUsage]:
        return [GpuUsage(i, u, m) for i, (u, m) in sorted(self.usage_of.items())]


T = TypeVar("T")
_NOT_YET = object()


class _Wait:
    """One wait for ``check``: its deadline and its last answer (for the failure message)."""

    def __init__(self, check: Callable[[], Any], timeout: float, what: str) -> None:
        self.check, self.timeout, self.what = check, timeout, what
        self.deadline = time.monotonic() + timeout
        self.last: object = None

    def poll(self) -> Any:
        """The first truthy answer, ``_NOT_YET``, or an ``AssertionError`` once past the
        deadline; an ``AssertionError`` from ``check`` counts as "not yet"."""
        try:
            value = self.check()
            if value:
                return value
            self.last = value
        except AssertionError as e:
            self.last = e
        if time.monotonic() >= self.deadline:
            raise AssertionError(
                f"not within {self.timeout:g} s: {self.what or repr(self.check)}; "
                f"last: {self.last!r}"
            )
        return _NOT_YET


def eventually(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """``check()``'s first truthy answer, polled until ``timeout``; an ``AssertionError`` it
    raises counts as "not yet". Past the timeout: an ``AssertionError`` naming ``what`` and the
    last answer (or error), so a failing test says what it waited for."""
    wait = _Wait(check, timeout, what)
    while (value := wait.poll()) is _NOT_YET:
        time.sleep(interval)
    result: T = value
    return result


async def eventually_async(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """``eventually`` for tests on an event loop (sleeps without blocking it)."""
    import asyncio

    wait = _Wait(check, timeout, what)
    while (value := wait.poll()) is _NOT_YET:
        await asyncio.sleep(interval)
    result: T = value
    return result


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


def training_job_spec(
    name: str,
    *,
    program: str = "train.py",
    source: str = "s3://orchestrator/code/sourcedir.tar.gz",
    channels: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A script-mode CreateTrainingJob body; ``fields`` override top-level fields."""
    spec: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": program, "sagemaker_submit_directory": source},
        "InputDataConfig": [
            {"ChannelName": c, "DataSource": {"S3DataSource": {"S3Uri": uri}}}
            for c, uri in (channels or {}).items()
        ],
    }
    spec.update(fields)
    return spec


def transform_job_spec(
    name: str,
    model: str,
    input_uri: str,
    output_path: str,
    *,
    instances: int = 1,
    split_type: str = "None",
    content_type: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A CreateTransformJob body scoring every object under ``input_uri`` with ``model`` into
    ``output_path``; ``fields`` override top-level fields."""
    spec: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "SplitType": split_type,
            **({"ContentType": content_type} if content_type else {}),
        },
        "TransformOutput": {"S3OutputPath": output_path},
        "TransformResources": {"InstanceType": "local", "InstanceCount": instances},
    }
    spec.update(fields)
    return spec


def model_spec(name: str, model_data: str, **env: str) -> dict[str, Any]:
    return {"ModelName": name, "PrimaryContainer": {"ModelDataUrl": model_data, "Environment": env}}


def endpoint_config_spec(name: str, model: str, *, instances: int = 1) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": instances}
        ],
    }


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a background thread; over
    HTTPS when given a PEM certificate and key (``tls``)."""

    def __init__(self, app: ASGIApp, *, tls: tuple[Path, Path] | None = None) -> None:
        # IPPROTO_TCP: see orchestrator.api.server (asyncio's TCP_NODELAY needs it).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app,
            http=http_protocol(app),
            log_level="warning",
            access_log=False,
            lifespan="on",
            ssl_certfile=str(tls[0]) if tls is not None else None,
            ssl_keyfile=str(tls[1]) if tls is not None else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@dataclass
class LocalControlPlane:
    plane: ControlPlane
    client: Client
    api_key: str
    url: str

    @property
    def controller(self) -> Controller:
        controller = self.plane.controller
        assert controller is not None
        return controller

    @property
    def backend(self) -> FakeBackend:
        backend = self.plane.backend
        assert isinstance(backend, FakeBackend)
        return backend


@contextmanager
def local_control_plane(
    root: Path,
    *,
    clock: FakeClock | None = None,
    gpus: GpuInventory | None = None,
    **settings: Any,
) -> Iterator[LocalControlPlane]:
    """A control plane on a fake backend, served in-process, with an admin client.

    The controller does not run by itself: call ``controller.run_pass()`` to move things on.
    """
    s = Settings(home=root / "home", config_dir=root / "config", backend="fake", **settings)
    plane = build_control_plane(s, backend=FakeBackend(clock=clock), clock=clock, gpus=gpus)
    key = new_api_key(plane.keys, name="test", role="admin", now=plane.clock.now())
    app = create_app(plane, run_controller=False)
    with ServerThread(app) as server:
        client = Client(server.url, key)
        try:
            yield LocalControlPlane(plane=plane, client=client, api_key=key, url=server.url)
        finally:
            client.close()
            plane.store.close()


def tarball(files: dict[str, str]) -> bytes:
    """A ``.tar.gz`` of text files by name: a script-mode source or a small model artifact."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
