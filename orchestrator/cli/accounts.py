"""``orch accounts``: accounts (tenants). An administrator of the server's own account creates
them (``--admin USER``: with a first administrator and its API key, printed once, so that the
tenant can start alone); everything a tenant's keys make belongs to its account, and no other
account's identities see it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit

app = typer.Typer(help="Accounts (tenants): each one's resources, identities and keys apart.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The account's name (unique).")],
    admin: Annotated[
        str | None,
        typer.Option(help="Also make this identity the account's administrator, with a key."),
    ] = None,
) -> None:
    """Create an account; with --admin, its first administrator and API key (shown once)."""
    made = client(ctx).create_account(name, admin=admin)

    def render() -> None:
        console.print(f"account {made['AccountId']} ({made['AccountName']})", markup=False)
        if made.get("DefaultBucket"):
            console.print(f"default bucket s3://{made['DefaultBucket']}", markup=False)
        if made.get("ApiKey"):
            console.print(
                f"administrator {made['AdminUserName']}'s API key (shown only now):", markup=False
            )
            console.print(made["ApiKey"], markup=False)

    emit(ctx, made, render)


@app.command("list")
def list_accounts(ctx: typer.Context) -> None:
    """List accounts (a tenant sees its own)."""
    found = client(ctx).list_accounts()

    def render() -> None:
        table = Table("Id", "Name", "Created")
        for a in found:
            table.add_row(a["AccountId"], a["AccountName"], a["CreatedAt"])
        console.print(table)

    emit(ctx, {"Accounts": found}, render)


@app.command("whoami")
def whoami(ctx: typer.Context) -> None:
    """Who this key is: its identity, its account and that account's default bucket."""
    me = client(ctx).caller_identity()

    def render() -> None:
        console.print(
            f"{me['UserName']} of account {me['AccountId']} ({me['Arn']}); "
            f"default bucket s3://{me['DefaultBucket']}",
            markup=False,
        )

    emit(ctx, me, render)
