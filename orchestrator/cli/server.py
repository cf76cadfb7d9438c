"""``orch server``: run the control plane (the one CLI module that imports the server side)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import err_console
from orchestrator.settings import Settings


class BackendChoice(StrEnum):
    process = "process"
    docker = "docker"
    fake = "fake"


def server(
    *,
    host: Annotated[str | None, typer.Option(help="Address to bind (ORCH_SERVER__HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port; 0 picks a free one (ORCH_SERVER__PORT).")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="State, objects and logs (ORCH_HOME).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="State store URL (ORCH_DATABASE_URL).")
    ] = None,
    backend: Annotated[
        BackendChoice | None, typer.Option(help="Where jobs and replicas run (ORCH_BACKEND).")
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write the bound URL here once listening.")
    ] = None,
) -> None:
    """Run the control plane: REST API, controller and invocation router."""
    from orchestrator.api.server import serve

    overrides: dict[str, Any] = {}
    group = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if group:
        overrides["server"] = group
    for key, value in {
        "home": home,
        "database_url": database_url,
        "backend": backend and backend.value,
    }.items():
        if value is not None:
            overrides[key] = value
    settings = Settings(**overrides)
    serve(
        settings, ready_file=ready_file, announce=lambda msg: err_console.print(msg, markup=False)
    )
