"""Run one replica: load the model, bind, announce the port, serve until SIGTERM.

The model loads before the socket is bound, so ``GET /ping`` answering means the model is
ready. The port is written to ``port_file`` (temp file, then rename) once uvicorn listens,
which lets a supervisor start replicas on ``port=0``. SIGTERM (or SIGINT) stops accepting,
lets in-flight requests finish for up to ``grace_seconds``, and returns normally.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from orchestrator.serving.app import build_app
from orchestrator.serving.handler import ModelHandler
from orchestrator.settings import ServingSettings


def serve(
    model_dir: Path,
    *,
    code_dir: Path | None,
    program: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    port_file: Path | None = None,
    settings: ServingSettings,
    endpoint: str = "",
    variant: str = "",
    grace_seconds: float = 30.0,
) -> None:
    """Serve the model in ``model_dir`` until a shutdown signal; raises if it fails to load."""
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program=program)
    app = build_app(handler, settings=settings, endpoint=endpoint, variant=variant)
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # uvicorn counts the grace in whole seconds.
        timeout_graceful_shutdown=math.ceil(grace_seconds),
    )
    server = _Server(config, port_file=port_file)
    with sock, _signals_end_quietly():
        server.run(sockets=[sock])


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
    def __init__(self, config: uvicorn.Config, *, port_file: Path | None) -> None:
        super().__init__(config)
        self._port_file = port_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._port_file is not None and self.started and sockets:
            write_port_file(self._port_file, sockets[0].getsockname()[1])


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
