"""``orch keys``: create, list and revoke API keys and SigV4 access keys (admins only)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit, when

app = typer.Typer(
    help="API keys (bearer, for orch and the Python client) and access keys (SigV4, for boto3 "
    "and the SageMaker SDK): who may call the control plane and its endpoints."
)


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
    aws: Annotated[
        bool,
        typer.Option(
            "--aws", help="An access key id and secret for SigV4 (boto3, the SageMaker SDK)."
        ),
    ] = False,
) -> None:
    """Create a key; its secret is printed once and never again."""
    if aws:
        _create_access_key(ctx, name, role)
        return
    resp = client(ctx).create_api_key(name, role=role.value)

    def render() -> None:
        console.print(f"created {resp.Role} key {resp.KeyId} ({resp.Name}); its secret:")
        console.print(resp.ApiKey, markup=False)

    emit(ctx, resp, render)


def _create_access_key(ctx: typer.Context, name: str, role: Role) -> None:
    c = client(ctx)
    resp = c.create_access_key(name, role=role.value)
    region = c.server_info().get("region", "us-east-1")

    def render() -> None:
        console.print(
            f"created {resp.Role} access key {resp.AccessKeyId} ({resp.Name}); its secret is "
            "shown once. For boto3 and the SageMaker SDK:"
        )
        console.print(
            f"export AWS_ACCESS_KEY_ID={resp.AccessKeyId}\n"
            f"export AWS_SECRET_ACCESS_KEY={resp.SecretAccessKey}\n"
            f"export AWS_ENDPOINT_URL={c.endpoint_url}\n"
            f"export AWS_DEFAULT_REGION={region}",
            markup=False,
            soft_wrap=True,
        )

    emit(ctx, resp, render)


@app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List API keys and access keys (never their secrets)."""
    c = client(ctx)
    resp = c.list_api_keys()
    access = c.list_access_keys()

    def render() -> None:
        table = Table("Key id", "Kind", "Name", "Role", "Created", "Revoked")
        for k in resp.ApiKeys:
            table.add_row(
                k.KeyId, "api", k.Name, k.Role, when(k.CreationTime), "yes" if k.Revoked else ""
            )
        for a in access.AccessKeys:
            table.add_row(
                a.AccessKeyId, "aws", a.Name, a.Role, when(a.CreationTime),
                "yes" if a.Revoked else "",
            )  # fmt: skip
        console.print(table)

    emit(ctx, {**resp.model_dump(mode="json"), **access.model_dump(mode="json")}, render)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id or access key id (orch keys list).")],
) -> None:
    """Revoke a key: it stops working at once, on every router worker."""
    if key_id.startswith("AKIA"):
        access = client(ctx).revoke_access_key(key_id)
        emit(
            ctx, access,
            lambda: console.print(
                f"revoked access key {access.AccessKeyId} ({access.Name})", markup=False
            ),
        )  # fmt: skip
        return
    resp = client(ctx).revoke_api_key(key_id)
    emit(ctx, resp, lambda: console.print(f"revoked key {resp.KeyId} ({resp.Name})", markup=False))
