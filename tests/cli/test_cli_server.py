from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli
from typer.testing import CliRunner

import orchestrator.api.server
from orchestrator.cli import app
from orchestrator.settings import Settings


def test_server_builds_settings_from_the_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(
        settings: Settings, *, ready_file: Path | None = None, announce: Any = None
    ) -> None:
        seen["settings"] = settings
        seen["ready_file"] = ready_file

    monkeypatch.setattr(orchestrator.api.server, "serve", fake_serve)
    monkeypatch.setenv("ORCH_SERVER__DEFAULT_PAGE_SIZE", "7")
    home = tmp_path / "home"
    ready = tmp_path / "ready"
    result = CliRunner().invoke(
        app,
        ["server", "--host", "0.0.0.0", "--port", "0", "--home", str(home), "--backend", "fake",
         "--database-url", "sqlite:///x.db", "--ready-file", str(ready)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    s: Settings = seen["settings"]
    assert (s.server.host, s.server.port, s.home, s.backend) == ("0.0.0.0", 0, home, "fake")
    assert s.database_url == "sqlite:///x.db"
    assert s.server.default_page_size == 7  # the rest still comes from the environment
    assert seen["ready_file"] == ready


def test_server_rejects_an_unknown_backend() -> None:
    result = CliRunner().invoke(app, ["server", "--backend", "nope"])
    assert result.exit_code == 2


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "endpoints" in proc.stdout


def test_deploy_creates_model_config_endpoint_and_waits(cli: Cli, tmp_path: Path) -> None:
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"x")
    cli.ok("objects", "put", str(artifact), "s3://models/d1/model.tar.gz")
    stop = threading.Event()

    def controller() -> None:
        while not stop.wait(0.05):
            cli.run_pass()

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    try:
        ep = cli.json(
            "deploy",
            "s3://models/d1/model.tar.gz",
            "--name",
            "d1",
            "--program",
            "serve.py",
            "--public",
        )
    finally:
        stop.set()
        thread.join()
    assert ep["EndpointStatus"] == "InService"
    assert cli.json("models", "describe", "d1")["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_PROGRAM": "serve.py"
    }
    assert (
        cli.json("endpoint-configs", "describe", "d1")["ProductionVariants"][0]["ModelName"] == "d1"
    )
