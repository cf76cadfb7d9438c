"""Run one replica: load the model(s), bind, announce the port, serve until SIGTERM.

The model loads before the socket is bound, so ``GET /ping`` answering means the model is
ready. The port is written to ``port_file`` (temp file, then rename) once uvicorn listens,
which lets a supervisor start replicas on ``port=0``. SIGTERM (or SIGINT) turns ``/ping`` and
``/v2/health/ready`` to 503, stops accepting, lets in-flight requests finish for up to
``grace_seconds``, and returns normally. uvicorn runs on uvloop with the httptools parser
(the project depends on both; uvicorn's ``auto`` picks them). With ``tls_cert``/``tls_key``
the same socket serves HTTPS only (a certificate from the control plane's replica CA).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from orchestrator.serving.app import ServingApp, build_app
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.pipeline import ModelSource, load_servable
from orchestrator.settings import ServingSettings

# uvicorn notices a shutdown request on a 0.1 s tick and pauses 0.1 s before draining; keep
# that out of the grace so the process is gone within it.
_SHUTDOWN_SLACK_SECONDS = 0.3


def serve(
    model_dir: Path | None = None,
    *,
    code_dir: Path | None = None,
    program: str | None = None,
    pipeline: Sequence[ModelSource] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    port_file: Path | None = None,
    settings: ServingSettings,
    endpoint: str = "",
    variant: str = "",
    model_name: str = "model",
    batching: BatchingConfig | None = None,
    grace_seconds: float = 30.0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve the model in ``model_dir`` (or the ``pipeline`` of several) until a shutdown
    signal; raises if a model fails to load."""
    if pipeline and model_dir is not None:
        raise ValueError("pass model_dir or pipeline, not both")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("pass both tls_cert and tls_key, or neither")
    if tls_cert is not None and tls_key is not None:
        from orchestrator.tls import server_context

        server_context(tls_cert, tls_key)  # a bad pair fails here, before the model loads
    sources = list(pipeline) or [ModelSource(model_dir or Path("."), code_dir, program)]
    servable = load_servable(sources)
    app = build_app(
        servable,
        settings=settings,
        endpoint=endpoint,
        variant=variant,
        model_name=model_name,
        batching=batching,
    )
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        loop="auto",  # uvloop
        http="auto",  # httptools
        log_level="warning",
        access_log=False,
        server_header=False,
        # Replicas sit behind the control plane's router; no proxy headers to trust.
        proxy_headers=False,
        lifespan="off",
        ssl_certfile=str(tls_cert) if tls_cert is not None else None,
        ssl_keyfile=str(tls_key) if tls_key is not None else None,
        timeout_graceful_shutdown=max(0.0, grace_seconds - _SHUTDOWN_SLACK_SECONDS),  # type: ignore[arg-type]
    )
    server = _Server(config, app=app, port_file=port_file)
    with sock, _signals_end_quietly():
        server.run(sockets=[sock])
    app.dispatcher.close()


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (``port=0``: any free port); uvicorn listens on it."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def write_port_file(path: Path, port: int) -> None:
    """Write ``port`` so that a reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, app: ServingApp, port_file: Path | None) -> None:
        super().__init__(config)
        self._app = app
        self._port_file = port_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._port_file is not None and self.started and sockets:
            write_port_file(self._port_file, sockets[0].getsockname()[1])

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.drain()  # health checks answer 503 from now on
        super().handle_exit(sig, frame)


@contextlib.contextmanager
def _signals_end_quietly() -> Iterator[None]:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # handlers that would kill the process (SIGTERM) or raise KeyboardInterrupt (SIGINT)
    # after a clean, graceful shutdown. A no-op handler makes serve() simply return.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, _ignore) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: object) -> None:
    return None
