"""Checks of the serving benchmark's harness: a server answering errors fast cannot win.

    .venv/bin/pytest benchmarks/serving/test_harness.py

A fake model server (stdlib HTTP, in a thread) answers with a chosen status and body.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import HERE, Target, running, verify, wrk


def fake_server(status: int, body: bytes) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def serve() -> Iterator[object]:
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(status: int, body: bytes) -> Target:
        server, thread = fake_server(status, body)
        started.append((server, thread))
        return Target(
            name="fake",
            argv=[],
            port=server.server_address[1],
            health_path="/ping",
            path="/invocations",
            body=b"[[1.0]]",
            content_type="application/json",
            read_predictions=lambda d: list(d["predictions"]),  # type: ignore[call-overload]
        )

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_verify_accepts_the_right_prediction(serve) -> None:  # type: ignore[no-untyped-def]
    verify(serve(200, b'{"predictions": [0]}'), [0], count=3)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b'{"code": "ModelError"}', "answered 500"),
        (200, b'{"predictions": [1]}', "predicted [1], expected [0]"),
        (200, b'{"outputs": []}', "cannot read predictions"),
        (200, b"not json", "cannot read predictions"),
    ],
)
def test_verify_rejects_errors_and_wrong_answers(serve, status, body, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit, match=re.escape(message)) as e:
        verify(serve(status, body), [0], count=3)
    assert "fake" in str(e.value)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (setup.sh)")
def test_wrk_counts_error_answers(serve) -> None:  # type: ignore[no-untyped-def]
    good = wrk(serve(200, b'{"predictions": [0]}'), 2, 1)
    bad = wrk(serve(503, b'{"code": "Busy"}'), 2, 1)
    assert good.rps > 0 and good.errors == 0
    assert bad.errors > 0


def test_a_server_that_dies_on_start_is_named_with_its_log(tmp_path: Path) -> None:
    target = Target(
        name="dies",
        argv=[sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"],
        port=1,
        health_path="/ping",
        path="/invocations",
        body=b"",
        content_type="application/json",
        read_predictions=lambda d: [],
    )
    with (
        pytest.raises(SystemExit, match=r"dies exited with 3(.|\n)*no model here"),
        running(target, start_timeout=60),
    ):
        pass


@pytest.mark.parametrize("script", ["vs_peers.py", "batching.py"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "0"], "--runs must be positive"),
        (["--seconds", "-1"], "--seconds must be positive"),
        (["--concurrency", "0"], "--concurrency values must be >= 1"),
    ],
)
def test_bad_options_are_named(script: str, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def test_post_lua_prints_one_json_line() -> None:
    lua = (HERE / "post.lua").read_text()
    assert "WRKJSON" in lua
    sample = (
        '{"requests": 1, "duration_us": 2, "p50_us": 3, "p99_us": 4, "mean_us": 5.0, '
        '"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}'
    )
    assert json.loads(sample)["requests"] == 1
