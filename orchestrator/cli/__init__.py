"""``orch``: the command line over the client library (parses, calls ``Client``, prints).

Global options live in a ``State`` on the click context; nothing is read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import accounts as accounts_commands
from orchestrator.cli import alarms as alarms_commands
from orchestrator.cli import audit as audit_commands
from orchestrator.cli import (
    datasources,
    endpoints,
    jobs,
    keys,
    kms,
    master_keys,
    models,
    objects,
    operator,
    tags,
    tls,
    transform,
    tune,
    users,
)
from orchestrator.cli import logs as logs_commands
from orchestrator.cli.common import ErrorHandlingGroup, OutputFormat, State
from orchestrator.cli.endpoints import deploy
from orchestrator.cli.invoke import invoke
from orchestrator.cli.search import search
from orchestrator.cli.server import server
from orchestrator.cli.train import train
from orchestrator.cli.usage import usage

app = typer.Typer(
    name="orch",
    cls=ErrorHandlingGroup,
    help="Orchestrator: train and serve ML models on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="Control plane URL (else ORCH_ENDPOINT_URL or the credentials file)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key (else ORCH_API_KEY or the credentials file).")
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table, or json (the API's response).")
    ] = OutputFormat.table,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            help="CA certificates (PEM) to verify an https:// control plane with "
            "(else ORCH_CA_BUNDLE or the credentials file)."
        ),
    ] = None,
) -> None:
    state = ctx.obj if isinstance(ctx.obj, State) else State()
    if endpoint_url:
        state.endpoint_url = endpoint_url
    if api_key:
        state.api_key = api_key
    state.output = output
    if ca_bundle:
        state.ca_bundle = ca_bundle
    ctx.obj = state
    ctx.call_on_close(state.close)


app.command(rich_help_panel="Control plane")(server)
app.command(rich_help_panel="Control plane")(operator.operator)
app.command(rich_help_panel="Training")(train)
app.add_typer(datasources.app, name="datasources", rich_help_panel="Training")
app.add_typer(jobs.app, name="jobs", rich_help_panel="Training")
app.add_typer(tune.app, name="tune", rich_help_panel="Training")
app.add_typer(models.models, name="models", rich_help_panel="Hosting")
app.add_typer(models.configs, name="endpoint-configs", rich_help_panel="Hosting")
app.add_typer(endpoints.app, name="endpoints", rich_help_panel="Hosting")
app.command(rich_help_panel="Hosting")(deploy)
app.command(rich_help_panel="Hosting")(invoke)
app.add_typer(transform.app, name="transform", rich_help_panel="Hosting")
app.add_typer(objects.app, name="objects", rich_help_panel="Objects")
master_keys.register(keys.app)
app.add_typer(keys.app, name="keys", rich_help_panel="Control plane")
app.add_typer(users.app, name="users", rich_help_panel="Control plane")
app.add_typer(accounts_commands.app, name="accounts", rich_help_panel="Control plane")
app.add_typer(tags.app, name="tags", rich_help_panel="Control plane")
app.add_typer(tls.app, name="tls", rich_help_panel="Control plane")
app.add_typer(kms.app, name="kms", rich_help_panel="Control plane")
app.add_typer(audit_commands.app, name="audit", rich_help_panel="Control plane")
app.add_typer(logs_commands.app, name="logs", rich_help_panel="Control plane")
app.add_typer(alarms_commands.app, name="alarms", rich_help_panel="Control plane")
app.command(rich_help_panel="Training")(search)
app.command(rich_help_panel="Control plane")(usage)


def main() -> None:
    app(prog_name="orch")


__all__ = ["app", "main"]
