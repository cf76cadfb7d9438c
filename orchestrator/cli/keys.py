"""``orch keys``: create, list, rotate and revoke API keys and SigV4 access keys.

With ``--user NAME`` a key belongs to that identity (``orch users``): issued as a role it may
assume (``--role``) or with the identity's own policies, optionally ending (``--expires``).
Without it, the first keys' routes: a key of its own name with the role admin or invoke."""

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
def create(  # noqa: PLR0917 - one parameter per option
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
    user: Annotated[
        str | None, typer.Option(help="The identity the key belongs to (orch users list).")
    ] = None,
    as_role: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="With --user: issue the key as this role (admin, invoke, data-scientist, "
            "read-only), which the identity must be allowed to assume; the key then has the "
            "role's policies only. Without it: the identity's own policies.",
        ),
    ] = None,
    expires: Annotated[
        int | None, typer.Option(help="With --user: the key ends after this many seconds.")
    ] = None,
) -> None:
    """Create a key; its secret is printed once and never again."""
    if user is not None:
        _create_user_key(ctx, user, name, aws=aws, role=as_role or "", expires=expires)
        return
    if aws:
        _create_access_key(ctx, name, role)
        return
    resp = client(ctx).create_api_key(name, role=role.value)

    def render() -> None:
        console.print(f"created {resp.Role} key {resp.KeyId} ({resp.Name}); its secret:")
        console.print(resp.ApiKey, markup=False)

    emit(ctx, resp, render)


def _create_user_key(
    ctx: typer.Context, user: str, name: str, *, aws: bool, role: str, expires: int | None
) -> None:
    made = client(ctx).create_user_key(user, name, aws=aws, role=role, expires_in=expires)

    def render() -> None:
        as_what = f"as {made['Role']}" if made["Role"] else "with its own policies"
        until = f", until {made['Expires']}" if made["Expires"] else ""
        console.print(
            f"created {made['Kind']} key {made['KeyId']} ({made['Name']}) of {user}, {as_what}"
            f"{until}; its secret, shown once:",
            markup=False,
        )
        console.print(made.get("ApiKey") or made.get("SecretAccessKey"), markup=False)

    emit(ctx, made, render)


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
def list_keys(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only the keys of this identity.")] = None,
) -> None:
    """List API keys and access keys (never their secrets)."""
    c = client(ctx)
    if user is not None:
        keys = c.list_user_keys(user)

        def render_user() -> None:
            table = Table("Key id", "Kind", "Name", "Role", "Created", "Expires", "Last used",
                          "Revoked")  # fmt: skip
            for k in keys:
                table.add_row(
                    k["KeyId"], k["Kind"], k["Name"], k["Role"] or "-", k["CreationTime"],
                    k["Expires"] or "-", k["LastUsed"] or "-", "yes" if k["Revoked"] else "",
                )  # fmt: skip
            console.print(table)

        emit(ctx, {"Keys": keys}, render_user)
        return
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
    user: Annotated[str | None, typer.Option(help="The identity the key belongs to.")] = None,
) -> None:
    """Revoke a key: it stops working at once, on every router worker."""
    if user is not None:
        done = client(ctx).revoke_user_key(user, key_id)
        emit(ctx, done, lambda: console.print(f"revoked key {key_id} of {user}", markup=False))
        return
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


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key to replace (orch keys list --user).")],
    user: Annotated[str, typer.Option(help="The identity the key belongs to.")],
) -> None:
    """Replace a key: a new id and secret (same name, role and expiry), printed once; the old
    key is revoked at once (no grace period: switch callers to the new secret)."""
    made = client(ctx).rotate_user_key(user, key_id)

    def render() -> None:
        console.print(
            f"revoked {key_id}; its replacement {made['KeyId']}'s secret, shown once:",
            markup=False,
        )
        console.print(made.get("ApiKey") or made.get("SecretAccessKey"), markup=False)

    emit(ctx, made, render)
