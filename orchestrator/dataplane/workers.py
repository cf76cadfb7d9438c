"""Several router processes on one port: the control plane's side (the hub).

With ``ORCH_SERVER__ROUTER_WORKERS=N`` (N > 1) the control plane listens with
``SO_REUSEPORT`` and starts N - 1 worker processes (``python -m orchestrator.dataplane.worker``)
that listen on the same address, so the kernel spreads connections over all N. A worker
serves invocations of the endpoints it has routes for with its own data plane; anything else
(the management API, ``/metrics``, an endpoint it has no route for) it passes to the control
plane over a private Unix socket, so there is one management API and one state.

The hub keeps the workers in step with the control plane over a second Unix socket
(``orchestrator.dataplane.wire``):

- routes: every change of the routing table is sent whole to every worker;
- traffic: each worker's flushed invocation log is applied here, as that worker's source, to
  the ``SeriesStore`` the controller reads (autoscaling, update alarms) and to Prometheus,
  so every request is counted once, here;
- held requests: a worker's hold/release lands on the routing table, which wakes the
  controller; a worker that goes away has its holds released and its in-flight requests
  dropped;
- keys: a worker asks the hub for a key its cache does not hold (checked through this
  process's cache and ``KeyChecker``), or for a SigV4 scope's signing key (through this
  process's ``SigningKeyCache`` and ``SigningKeySource``: the derived key crosses, never the
  secret), and every revocation is sent to every worker at once.

A worker that dies is started again; when the control plane stops, its workers get SIGTERM
(and drain) before the hub closes; a worker whose hub connection closes exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator import metrics, sigv4
from orchestrator.dataplane import wire
from orchestrator.dataplane.plane import DataPlane
from orchestrator.dataplane.recorder import LocalSink
from orchestrator.errors import AuthenticationError, OrchestratorError
from orchestrator.monitoring.series import FINISHED, STARTED, SeriesStore

log = logging.getLogger("orchestrator.dataplane")

RESTART_DELAY_SECONDS = 1.0
STOP_GRACE_SECONDS = 15.0


class _Link:
    """One connected worker."""

    def __init__(self, index: int, writer: asyncio.StreamWriter, series: SeriesStore | None):
        self.index = index
        self.writer = writer
        self.sink = LocalSink(series, worker=index)
        self.holds: Counter[tuple[str, str]] = Counter()
        self.in_flight: Counter[tuple[str, str]] = Counter()

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.encode(message))


class RouterWorkers:
    """Start, feed and supervise ``count`` worker processes of ``plane`` (see above)."""

    def __init__(
        self,
        plane: DataPlane,
        *,
        count: int,
        host: str,
        port: int,
        run_dir: Path,
        series: SeriesStore | None,
        clock: Any,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.plane = plane
        self.count = count
        self.host = host
        self.port = port
        self.hub_path = run_dir / "hub.sock"
        self.api_path = run_dir / "api.sock"
        self.series = series
        self.clock = clock
        self.tls = tls  # (certificate, key): the workers listen with TLS too
        self._links: dict[int, _Link] = {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._push_pending = False
        self._stopping = False
        self._tasks: set[asyncio.Future[None]] = set()

    # --- lifecycle (DataPlane hooks) ---------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_unix_server(
            self._serve_link, path=str(self.hub_path), limit=wire.LIMIT
        )
        self.hub_path.chmod(0o600)
        self.plane.routes.add_listener(self._routes_changed)
        self.plane.revocation_listeners.append(self._revoked)
        for index in range(1, self.count + 1):
            self._spawn(index)
        self._supervisor = asyncio.create_task(self._supervise(), name="router-workers")

    async def stop(self) -> None:
        self._stopping = True
        self.plane.routes.remove_listener(self._routes_changed)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        # Keep reading their last flushes while they drain.
        await asyncio.gather(*(self._wait(p) for p in self._procs.values()))
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.writer.close()

    async def _wait(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), STOP_GRACE_SECONDS)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    def _spawn(self, index: int) -> None:
        argv = [
            sys.executable,
            "-m",
            "orchestrator.dataplane.worker",
            *("--hub", str(self.hub_path), "--api", str(self.api_path)),
            *("--host", self.host, "--port", str(self.port), "--index", str(index)),
        ]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self._procs[index] = subprocess.Popen(argv)

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            for index, proc in list(self._procs.items()):
                if proc.poll() is not None and not self._stopping:
                    log.warning(
                        "router worker %d exited with %s; starting it again", index, proc.returncode
                    )
                    self._spawn(index)

    # --- one worker's connection -------------------------------------------------------------
    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await wire.read(reader)
        if hello is None or hello.get("t") != "hello":
            writer.close()
            return
        link = _Link(int(hello["worker"]), writer, self.series)
        self._links[link.index] = link
        link.send({"t": "welcome", "settings": wire.settings_to_wire(self.plane.settings)})
        link.send({"t": "routes", "routes": wire.routes_to_wire(self.plane.routes.all())})
        try:
            while (message := await wire.read(reader)) is not None:
                self._handle(link, message)
        finally:
            self._gone(link)

    def _handle(self, link: _Link, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "events":
            events = message["events"]
            for e in events:
                if e[0] == STARTED:
                    link.in_flight[(e[1], e[2])] += 1
                elif e[0] == FINISHED:
                    link.in_flight[(e[1], e[2])] -= 1
            link.sink.apply(events)
        elif kind == "hold":
            key = (message["endpoint"], message["variant"])
            link.holds[key] += 1
            self.plane.routes.hold(*key)
        elif kind == "release":
            key = (message["endpoint"], message["variant"])
            if link.holds[key] > 0:
                link.holds[key] -= 1
                self.plane.routes.release(*key)
        elif kind == "denied":
            on_denied = self.plane.on_denied
            if on_denied is not None:
                on_denied(
                    str(message["endpoint"]),
                    [(k.encode("latin-1"), v.encode("latin-1")) for k, v in message["headers"]],
                    int(message["status"]),
                    str(message["body"]).encode(),
                    str(message["client"]),
                    account=str(message.get("account", "")),
                )
        elif kind in {"auth", "signing_key"}:
            answer = self._auth if kind == "auth" else self._signing_key
            task = asyncio.ensure_future(answer(link, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _auth(self, link: _Link, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"t": "auth", "id": message["id"]}
        try:
            principal = await self.plane.keys.check(self.plane.key_checker, message.get("key"))
            reply["principal"] = wire.principal_to_wire(principal)
        except AuthenticationError as e:
            reply["error"] = e.message
        except OrchestratorError as e:  # the key source is unreachable: the worker says 503
            reply["error"] = e.message
            reply["temporary"] = True
        link.send(reply)

    async def _signing_key(self, link: _Link, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"t": "auth", "id": message["id"]}
        plane = self.plane
        try:
            akid, date, region, service = (str(part) for part in message["scope"])
            key, principal = await plane.signing_keys.check(
                plane.signing_key_source, (akid, date, region, service)
            )
            reply["signing_key"] = key.hex()
            reply["principal"] = wire.principal_to_wire(principal)
        except sigv4.SignatureError as e:
            reply["error"] = e.message
            reply["kind"] = e.kind
        except Exception as e:  # the key source failed: the worker says 503
            log.warning("signing key for a router worker: %s", e)
            reply["error"] = e.message if isinstance(e, OrchestratorError) else type(e).__name__
            reply["temporary"] = True
        link.send(reply)

    def _gone(self, link: _Link) -> None:
        if self._links.get(link.index) is link:
            del self._links[link.index]
        for (endpoint, variant), n in link.holds.items():
            for _ in range(n):
                self.plane.routes.release(endpoint, variant)
        for (endpoint, variant), n in link.in_flight.items():
            if n:
                metrics.record_routed(
                    endpoint, variant, answered=0, errors_4xx=0, errors_5xx=0,
                    overhead_seconds=(), in_flight_change=-n,
                )  # fmt: skip
        if self.series is not None:
            self.series.forget_source(link.index, self.clock())
        link.writer.close()

    # --- to every worker -----------------------------------------------------------------------
    def _routes_changed(self) -> None:
        # Called from whichever thread changed the table (the controller's).
        loop = self._loop
        if loop is not None and not self._push_pending:
            self._push_pending = True
            loop.call_soon_threadsafe(self._push_routes)

    def _push_routes(self) -> None:
        self._push_pending = False
        message = {"t": "routes", "routes": wire.routes_to_wire(self.plane.routes.all())}
        for link in self._links.values():
            link.send(message)

    def _revoked(self, key_id: str) -> None:
        for link in self._links.values():
            link.send({"t": "revoked", "key_id": key_id})
