"""Fixtures for the CLI tests: ``orch`` run by CliRunner against an in-process control plane.

The control plane has a fake backend and no controller thread: tests move jobs and endpoints
along with ``plane.backend`` and ``plane.controller.run_pass()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_harness import Cli, TestClient
from typer.testing import CliRunner

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.backends.fake import FakeBackend
from orchestrator.settings import Settings


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    backend = FakeBackend()
    plane = build_control_plane(settings, backend=backend)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    with TestClient(create_app(plane, run_controller=False)) as http:
        try:
            yield Cli(plane=plane, backend=backend, http=http, api_key=key, runner=CliRunner())
        finally:
            plane.store.close()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    entry = src / "train.py"
    entry.write_text("print('training')\n")
    return entry
