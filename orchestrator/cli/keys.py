"""``orch keys``: create, list and revoke API keys (admins only)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit, when

app = typer.Typer(help="API keys: who may call the control plane and its endpoints.")


class Role(StrEnum):
    invoke = "invoke"
    admin = "admin"


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for (a label).")],
    role: Annotated[
        Role, typer.Option(help="invoke: only InvokeEndpoint; admin: every operation.")
    ] = Role.invoke,
) -> None:
    """Create a key; its secret is printed once and never again."""
    resp = client(ctx).create_api_key(name, role=role.value)

    def render() -> None:
        console.print(f"created {resp.Role} key {resp.KeyId} ({resp.Name}); its secret:")
        console.print(resp.ApiKey, markup=False)

    emit(ctx, resp, render)


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List keys (never their secrets)."""
    resp = client(ctx).list_api_keys()

    def render() -> None:
        table = Table("Key id", "Name", "Role", "Created", "Revoked")
        for k in resp.ApiKeys:
            table.add_row(k.KeyId, k.Name, k.Role, when(k.CreationTime), "yes" if k.Revoked else "")
        console.print(table)

    emit(ctx, resp, render)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (orch keys list).")],
) -> None:
    """Revoke a key: it stops working at once, on every router worker."""
    resp = client(ctx).revoke_api_key(key_id)
    emit(ctx, resp, lambda: console.print(f"revoked key {resp.KeyId} ({resp.Name})", markup=False))
