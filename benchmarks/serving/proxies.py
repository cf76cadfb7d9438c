"""The two proxy paths of the serving benchmark: the endpoint through our control plane, and
nginx in front of our replica (the limit of one proxy hop).

``control_plane``: ``orch server`` (process backend, a fresh home under ``.bench/``) pinned to
the server CPU like every server; the replica it starts for the endpoint inherits the pinning,
so the control plane and its replica share one core. Once it is up, ``prepare`` uploads the
model, creates Model -> EndpointConfig -> Endpoint with ``AuthMode: ApiKey`` (the default, the
path users take), waits for InService and makes an ``invoke`` key that every request sends.
``overhead`` reads the endpoint's OverheadLatency back from the control plane's own metrics
API for a run's time window.

``nginx``: Debian's nginx, one worker, ``keepalive 64`` upstream connections to our replica,
``proxy_http_version 1.1`` and ``Connection ""``. ``client_body_buffer_size`` is raised above
the 6 MB payload limit: with the default (16 KB) nginx buffers larger bodies to a temporary file
and sends them to the upstream in 8 KB writes on a socket without ``TCP_NODELAY``, and each
request then waits ~40 ms for the replica's delayed ACK (``docs/benchmarks.md``).
``--nginx-default-buffers`` measures that setting too.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tarfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from _harness import BENCH, Target, WrkRun, free_port

from orchestrator.client import Client

ENDPOINT = "bench"


def _model_tarball(model_dir: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(model_dir / "model.joblib", arcname="model.joblib")
    return buf.getvalue()


def control_plane(model_dir: Path, body: bytes, read_predictions: object) -> Target:
    port = free_port()
    root = BENCH / "control-plane"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    headers: dict[str, str] = {}

    def prepare(target: Target) -> None:
        creds = json.loads((root / "config" / "credentials.json").read_text())
        with Client(target.url(""), creds["api_key"]) as c:
            c.upload_bytes(_model_tarball(model_dir), f"s3://orchestrator/{ENDPOINT}/model.tar.gz")
            c.create_model(
                ModelName=ENDPOINT,
                PrimaryContainer={"ModelDataUrl": f"s3://orchestrator/{ENDPOINT}/model.tar.gz"},
            )
            c.create_endpoint_config(
                EndpointConfigName=ENDPOINT,
                ProductionVariants=[{"VariantName": "main", "ModelName": ENDPOINT}],
            )
            c.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
            c.wait_for_endpoint(ENDPOINT, timeout=120)
            key = c.create_api_key("bench", role="invoke")
        headers["Authorization"] = f"Bearer {key.ApiKey}"

    def cleanup() -> None:
        # Replicas run in sessions of their own (they outlive a control plane by design).
        for pid_file in (root / "home").glob("work/**/*.pid"):
            with suppress(OSError, ValueError, KeyError):
                os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)

    return Target(
        name="control plane",
        argv=[sys.executable, "-m", "orchestrator.cli", "server"],
        port=port,
        health_path="/healthz",
        path=f"/endpoints/{ENDPOINT}/invocations",
        body=body,
        content_type="application/json",
        read_predictions=read_predictions,  # type: ignore[arg-type]
        env={
            "ORCH_HOME": str(root / "home"),
            "ORCH_CONFIG_DIR": str(root / "config"),
            "ORCH_SERVER__PORT": str(port),
        },
        headers=headers,
        prepare=prepare,
        cleanup=cleanup,
    )


def overhead(target: Target, runs: list[WrkRun]) -> list[tuple[float, float]]:
    """(p50, p99) of the endpoint's OverheadLatency, in ms, in each run's time window."""
    creds = BENCH / "control-plane" / "config" / "credentials.json"
    admin = json.loads(creds.read_text())["api_key"]
    out = []
    with Client(target.url(""), admin) as c:
        for run in runs:
            stats = c.endpoint_metrics(
                ENDPOINT,
                "OverheadLatency",
                period=365 * 86400,  # one datapoint: the window's seconds only
                statistics=("p50", "p99"),
                start=datetime.fromtimestamp(run.started, UTC),
                end=datetime.fromtimestamp(run.ended, UTC),
            )
            merged = {
                k: v for p in stats.Datapoints for k, v in (p.ExtendedStatistics or {}).items()
            }
            out.append(
                (merged.get("p50", float("nan")) / 1e3, merged.get("p99", float("nan")) / 1e3)
            )
    return out


def nginx(upstream: Target, *, default_buffers: bool = False) -> Target:
    port = free_port()
    name = "nginx (default buffers)" if default_buffers else "nginx"
    prefix = BENCH / name.replace(" ", "-").replace("(", "").replace(")", "")
    shutil.rmtree(prefix, ignore_errors=True)
    for sub in ("body", "proxy", "logs"):
        (prefix / sub).mkdir(parents=True)
    buffers = "" if default_buffers else "client_body_buffer_size 8m;"
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  client_max_body_size 8m;
  {buffers}
  upstream replica {{ server 127.0.0.1:{upstream.port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://replica;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    return Target(
        name=name,
        argv=[nginx_bin, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        port=port,
        health_path="/ping",  # proxied: up when the replica behind it answers
        path=upstream.path,
        body=upstream.body,
        content_type=upstream.content_type,
        read_predictions=upstream.read_predictions,
    )


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until the 1-minute load is under ``limit``; returns it."""
    deadline = time.monotonic() + timeout
    while (load := os.getloadavg()[0]) >= limit and time.monotonic() < deadline:
        time.sleep(10)
    return load
