"""``orch users``: identities (users and service identities), their policies and roles.

Keys of an identity are made with ``orch keys create NAME --user USER``. Policies: managed ones
by name (``orch users policies``) and inline ones from JSON files in IAM's shape; every action
a policy may name is listed by ``orch users actions``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit
from orchestrator.errors import ValidationError
from orchestrator.iam import ACTIONS

app = typer.Typer(help="Identities (users, services), their policies and the roles they assume.")

Policies = Annotated[
    list[str] | None,
    typer.Option("--policy", help="A managed policy to attach (repeat): orch users policies."),
]
Inline = Annotated[
    list[Path] | None,
    typer.Option(
        "--inline",
        help="An inline policy document, a JSON file in IAM's shape (repeat); named after the "
        "file's stem.",
    ),
]
Roles = Annotated[
    list[str] | None,
    typer.Option("--role", help="A role the identity may assume for a key (repeat)."),
]


def _inline(paths: list[Path] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths or []:
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValidationError(
                f"--inline {path}: cannot read a JSON policy document there: {e}", field="--inline"
            ) from e
    return out


def _render(user: dict[str, Any]) -> None:
    console.print(f"{user['UserName']} ({user['Kind']}), created {user['CreationTime']}")
    console.print(f"  managed policies: {', '.join(user['ManagedPolicies']) or '-'}")
    console.print(f"  inline policies: {', '.join(user['InlinePolicies']) or '-'}")
    console.print(f"  may assume: {', '.join(user['Roles']) or '-'}")
    for k in user.get("Keys", []):
        state = "revoked" if k["Revoked"] else f"last used {k['LastUsed'] or 'never'}"
        console.print(f"  key {k['KeyId']} ({k['Kind']}, {k['Name']}): {state}", markup=False)


@app.command("create")
def create(  # noqa: PLR0917 - one parameter per option
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The identity's name.")],
    service: Annotated[bool, typer.Option(help="A service identity, not a person.")] = False,
    policy: Policies = None,
    inline: Inline = None,
    role: Roles = None,
    account: Annotated[
        str | None,
        typer.Option(
            help="The account (12 digits) it belongs to: the caller's by default; another "
            "only for an administrator of the server's own account."
        ),
    ] = None,
) -> None:
    """Create an identity; then give it a key: orch keys create KEYNAME --user NAME."""
    made = client(ctx).create_user(
        name, kind="service" if service else "user", managed_policies=policy or [],
        inline_policies=_inline(inline), roles=role or [], account=account,
    )  # fmt: skip
    emit(ctx, made, lambda: _render(made))


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """List identities."""
    users = client(ctx).list_users()

    def render() -> None:
        table = Table("Name", "Kind", "Managed policies", "Inline", "Roles", "Created")
        for u in users:
            table.add_row(
                u["UserName"], u["Kind"], ", ".join(u["ManagedPolicies"]),
                ", ".join(u["InlinePolicies"]), ", ".join(u["Roles"]), u["CreationTime"],
            )  # fmt: skip
        console.print(table)

    emit(ctx, {"Users": users}, render)


@app.command("describe")
def describe(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """An identity, its policies, roles and keys (never their secrets)."""
    user = client(ctx).describe_user(name)
    emit(ctx, user, lambda: _render(user))


@app.command("update")
def update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    policy: Policies = None,
    inline: Inline = None,
    role: Roles = None,
) -> None:
    """Replace an identity's policies and roles with those given (its keys follow at once)."""
    user = client(ctx).update_user(
        name, managed_policies=policy or [], inline_policies=_inline(inline), roles=role or []
    )
    emit(ctx, user, lambda: _render(user))


@app.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Delete an identity; every key of it is revoked."""
    done = client(ctx).delete_user(name)
    emit(ctx, done, lambda: console.print(f"deleted {name}; its keys are revoked", markup=False))


@app.command("policies")
def policies(ctx: typer.Context) -> None:
    """The managed policies and the roles."""
    found = client(ctx).list_policies()

    def render() -> None:
        for p in found["Policies"]:
            console.print(f"[bold]{p['PolicyName']}[/bold]")
            console.print(json.dumps(p["PolicyDocument"], indent=2), markup=False)
        for r in found["Roles"]:
            console.print(f"role {r['RoleName']}: {', '.join(r['ManagedPolicies'])}")

    emit(ctx, found, render)


@app.command("actions")
def actions(ctx: typer.Context) -> None:
    """Every action a policy may name."""
    emit(ctx, {"Actions": list(ACTIONS)}, lambda: console.print("\n".join(ACTIONS)))
