"""``orch server``: run the control plane (the one CLI module that imports the server side)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import tls
from orchestrator.cli.common import err_console
from orchestrator.cli.tls import say_certificate
from orchestrator.errors import ValidationError
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
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this PEM certificate (ORCH_SERVER__TLS_CERT_FILE)."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Its unencrypted PEM key (ORCH_SERVER__TLS_KEY_FILE).")
    ] = None,
    self_signed: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="Serve HTTPS with a self-signed certificate for HOST, made (or reused) under "
            "<config dir>/tls.",
        ),
    ] = None,
    insecure_http_on_network: Annotated[
        bool,
        typer.Option(
            help="Allow plain HTTP on a non-loopback address, e.g. behind a proxy or Ingress "
            "that terminates TLS (ORCH_SERVER__ALLOW_INSECURE_HTTP)."
        ),
    ] = False,
) -> None:
    """Run the control plane: REST API, controller and invocation router."""
    from orchestrator.api.server import serve

    overrides: dict[str, Any] = {}
    if self_signed is not None and (tls_cert is not None or tls_key is not None):
        raise ValidationError(
            "--self-signed makes its own certificate: pass it or --tls-cert/--tls-key, not both",
            field="--self-signed",
        )
    options = {"host": host, "port": port, "tls_cert_file": tls_cert, "tls_key_file": tls_key}
    if insecure_http_on_network:
        options["allow_insecure_http"] = True
    group = {k: v for k, v in options.items() if v is not None}
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
    if self_signed is not None:
        made = tls.self_signed(self_signed, settings.config_dir / "tls")
        say_certificate(made)
        tls_files = {"tls_cert_file": made.cert, "tls_key_file": made.key}
        server_group = settings.server.model_copy(update=tls_files)
        settings = settings.model_copy(update={"server": server_group})
    serve(
        settings,
        ready_file=ready_file,
        announce=lambda msg: err_console.print(msg, markup=False, emoji=False, soft_wrap=True),
    )
