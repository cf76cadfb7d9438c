"""Run the control plane: first-run admin key, the controller, and uvicorn."""

from __future__ import annotations

import gc
import logging
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvicorn

from orchestrator import tls
from orchestrator.api import serverlog
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import ensure_admin_key
from orchestrator.api.https import ListenerTls, listener_tls, local_url, record_endpoint
from orchestrator.api.jobcreds import JobCredentials
from orchestrator.api.service import ControlPlane
from orchestrator.dataplane import DataPlaneFront, http_protocol
from orchestrator.errors import ValidationError
from orchestrator.settings import Settings


def serve(
    settings: Settings,
    *,
    ready_file: Path | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Writes the bound URL to ``ready_file`` once listening."""
    say = announce or (lambda msg: print(msg, file=sys.stderr))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serverlog.install(settings.logs_dir)  # the /orchestrator/control-plane log group
    host, port = settings.server.host, settings.server.port
    listener = listener_tls(settings)  # before anything listens: plain HTTP may be refused
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP; with proto 0 every response with a body waited ~40 ms for
    # the peer's delayed ACK (measured: 44 ms -> 0.7 ms per request).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    workers = settings.server.router_workers
    if workers > 1:  # router workers listen on the same address (orchestrator.dataplane.workers)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValidationError(
            f"cannot listen on {host}:{port}: {e.strerror}; pick another with --port or "
            "ORCH_SERVER__PORT (0 = any free port)",
            field="ORCH_SERVER__PORT",
        ) from e
    bound_port = sock.getsockname()[1]
    plane = build_control_plane(settings)
    url = local_url(host, bound_port, listener)
    issuer = plane.controller.reconciler.executor.credentials if plane.controller else None
    if isinstance(issuer, JobCredentials):  # jobs' code reaches the server where it listens
        issuer.endpoint_url = url
        if listener is not None and listener.self_signed:
            issuer.ca_bundle = str(listener.cert)
    key = ensure_admin_key(
        plane.keys, settings.credentials_path, endpoint_url=url, now=plane.clock.now()
    )
    if key is not None:
        say(f"created an admin API key; saved to {settings.credentials_path} (mode 0600)")
    ca_bundle = listener.cert if listener is not None and listener.self_signed else None
    if record_endpoint(settings.credentials_path, url, ca_bundle) and key is None:
        say(f"{settings.credentials_path} now points at {url}")
    if listener is not None:
        say(f"TLS certificate {listener.cert}, SHA-256 fingerprint {listener.fingerprint}")
    elif not tls.is_loopback(host):
        say(
            f"plain HTTP on {host or 'every address'}, reachable from the network (allowed by "
            "ORCH_SERVER__ALLOW_INSECURE_HTTP): TLS must be terminated in front of it"
        )
    app = create_app(plane)
    sockets = [sock]
    if workers > 1:
        sockets.append(
            _start_router_workers(app, plane, host, bound_port, workers, listener=listener)
        )
    config = uvicorn.Config(
        app,
        # Invocations straight from the protocol (orchestrator.dataplane.fastpath).
        http=http_protocol(app) if app.plane.settings.fast_path else "auto",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        # Nothing reads the client address from X-Forwarded-For, and the middleware runs on
        # every request, invocations included.
        proxy_headers=False,
        # Every socket is served with it, the workers' private one to the API included
        # (they speak TLS over it: orchestrator.dataplane.worker).
        ssl_certfile=str(listener.cert) if listener is not None else None,
        ssl_keyfile=str(listener.key) if listener is not None else None,
    )
    server = uvicorn.Server(config)
    if ready_file is not None:
        _write_when_started(server, ready_file, url)
    state = (
        f"custom resources in namespace {settings.kube.namespace}"
        if settings.desired_state == "kubernetes"
        else settings.resolved_database_url.split("@")[-1]
    )
    say(f"orchestrator control plane on {url} (backend: {plane.backend_name}, state: {state})")
    # Everything built so far (the app, the models, the libraries) lives as long as the process:
    # keep it out of the collector's full passes, which otherwise walk it every few thousand
    # requests on the invocation path.
    gc.freeze()
    try:
        server.run(sockets=sockets)
    finally:
        plane.close()


def _start_router_workers(
    app: DataPlaneFront,
    plane: ControlPlane,
    host: str,
    port: int,
    workers: int,
    *,
    listener: ListenerTls | None,
) -> socket.socket:
    """Arrange for ``workers - 1`` router workers to start with the data plane; returns the
    private Unix socket they pass the management API's requests to."""
    from orchestrator.dataplane.workers import RouterWorkers

    run_dir = Path(tempfile.mkdtemp(prefix="orch-run-"))  # 0700, short enough for AF_UNIX
    hub = RouterWorkers(
        app.plane,
        count=workers - 1,
        host=host,
        port=port,
        run_dir=run_dir,
        series=plane.series,
        clock=lambda: plane.clock.now().timestamp(),
        tls=(listener.cert, listener.key) if listener is not None else None,
    )
    api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    api.bind(str(hub.api_path))
    hub.api_path.chmod(0o600)
    app.plane.started_hooks.append(hub.start)
    app.plane.stopping_hooks.append(hub.stop)
    app.plane.stopping_hooks.append(lambda: shutil.rmtree(run_dir, ignore_errors=True))
    return api


def _write_when_started(server: uvicorn.Server, ready_file: Path, url: str) -> None:
    import threading
    import time

    def wait() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(url)
            tmp.replace(ready_file)

    threading.Thread(target=wait, daemon=True).start()
