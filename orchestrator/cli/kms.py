"""``orch kms``: the local keyring's named keys, what a resource's ``KmsKeyId`` names."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit, when

app = typer.Typer(
    help="Keys objects are encrypted under: a training job's OutputDataConfig.KmsKeyId or a "
    "transform job's TransformOutput.KmsKeyId names one (its KeyId, alias/ALIAS or ARN)."
)


@app.command("create-key")
def create_key(
    ctx: typer.Context,
    alias: Annotated[
        str | None, typer.Option(help="A name for the key: KmsKeyId can say alias/NAME.")
    ] = None,
) -> None:
    """Make a named key in the local keyring."""
    resp = client(ctx).create_kms_key(alias)

    def render() -> None:
        named = f" ({resp.Alias})" if resp.Alias else ""
        console.print(f"created key {resp.KeyId}{named}", markup=False)
        console.print(f"KmsKeyId: {resp.Alias or resp.KeyId}  ARN: {resp.Arn}", markup=False)

    emit(ctx, resp, render)


@app.command("list-keys")
def list_keys(ctx: typer.Context) -> None:
    """List the local keyring's keys (the default one first)."""
    resp = client(ctx).list_kms_keys()

    def render() -> None:
        table = Table("KeyId", "Alias", "Created", "Default")
        for k in resp.Keys:
            table.add_row(k.KeyId, k.Alias or "-", when(k.CreationDate), "yes" if k.Default else "")
        console.print(table)

    emit(ctx, resp, render)
