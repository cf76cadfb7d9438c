"""``Cli``: runs ``orch`` with CliRunner against an in-process control plane (see conftest)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner, Result

from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.cli import app
from orchestrator.cli.common import State

with warnings.catch_warnings():
    # starlette.testclient warns at import time when it finds httpx rather than httpx2.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@dataclass
class Cli:
    plane: ControlPlane
    backend: FakeBackend
    http: TestClient
    api_key: str
    runner: CliRunner

    def __call__(self, *args: str, api_key: str | None = None, stdin: str | None = None) -> Result:
        state = State(
            endpoint_url="http://testserver",
            api_key=api_key or self.api_key,
            transport=self.http._transport,
        )
        return self.runner.invoke(app, list(args), obj=state, input=stdin, env={"COLUMNS": "200"})

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("-o", "json", *args).stdout)

    def run_pass(self) -> None:
        self.plane.controller.run_pass()
