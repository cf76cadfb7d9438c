"""`orch server` refuses bad settings with one clear line, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import server_env

pytestmark = pytest.mark.slow


def run_server(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "server", *args],
        env=server_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_server(tmp_path, "--port", str(port))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "ORCH_SERVER__PORT" in out.stderr


def test_unreachable_database(tmp_path: Path) -> None:
    out = run_server(tmp_path, "--database-url", "postgresql://postgres@127.0.0.1:1/x")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "state store at 127.0.0.1:1/x is unreachable" in out.stderr


def test_unsupported_database_url(tmp_path: Path) -> None:
    out = run_server(tmp_path, "--database-url", "nosuchdb://x")
    assert out.returncode == 1
    assert "ORCH_DATABASE_URL" in out.stderr and "Traceback" not in out.stderr


def test_bad_object_store_url(tmp_path: Path) -> None:
    out = run_server(tmp_path, ORCH_OBJECTS__URL="ftp://example/bucket")
    assert out.returncode == 1
    assert "ORCH_OBJECTS__URL" in out.stderr and "Traceback" not in out.stderr
