"""``orch keys rotate-master | master-status | retire-master``: the master key versions that
wrap every object's data key (admins only). Registered on ``orch keys`` by ``register``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit, when
from orchestrator.resources.master_keys import MasterKeyStatusResponse


def rotate_master(ctx: typer.Context) -> None:
    """Make a new master key version: new objects use it at once, and a background re-wrap
    moves every existing object's data key to it (orch keys master-status)."""
    resp = client(ctx).rotate_master_key()
    emit(
        ctx, resp,
        lambda: console.print(
            f"new master key version {resp.Version.KeyId} is active; the re-wrap has started "
            "(orch keys master-status)", markup=False,
        ),
    )  # fmt: skip


def _render(resp: MasterKeyStatusResponse) -> None:
    table = Table("Version", "State", "Created", "Retired", "Objects", "This pass")
    for v in resp.Versions:
        table.add_row(
            v.KeyId, v.State, when(v.CreationTime), when(v.RetirementTime),
            "?" if v.Objects is None else str(v.Objects),
            str(v.ObjectsThisPass) if resp.Rewrap.State == "running" else "",
        )  # fmt: skip
    console.print(table)
    r = resp.Rewrap
    if r.State == "idle":
        line = "re-wrap: never ran"
    else:
        pct = f" ({100 * r.Done / r.Total:.0f}%)" if r.Total else ""
        line = (
            f"re-wrap pass {r.PassId}: {r.State}, {r.Done}/{r.Total} objects{pct}; "
            f"{r.Rewrapped} re-wrapped, {r.Resealed} resealed, {r.AlreadyCurrent} already "
            f"current, {r.Raced} raced a writer, {r.Gone} deleted meanwhile, "
            f"{r.Unreadable} unreadable"
        )
    if r.Pending:
        line += "; another pass is pending"
    console.print(line, markup=False)
    for err in r.Errors:
        console.print(f"  {err}", markup=False, style="yellow")


def master_status(
    ctx: typer.Context,
    census: Annotated[
        bool, typer.Option("--census", help="Count every object's key version now (exact).")
    ] = False,
) -> None:
    """Master key versions, how many objects each wraps, and the re-wrap's progress."""
    resp = client(ctx).describe_master_keys(census=census)
    emit(ctx, resp, lambda: _render(resp))


def retire_master(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version's key id (orch keys master-status).")],
) -> None:
    """Destroy an old master key version; refused while any object still uses it."""
    resp = client(ctx).retire_master_key(version)
    emit(
        ctx, resp,
        lambda: console.print(
            f"retired master key version {resp.Version.KeyId}: its key is destroyed",
            markup=False,
        ),
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("rotate-master")(rotate_master)
    app.command("master-status")(master_status)
    app.command("rewrap-status", hidden=True)(master_status)
    app.command("retire-master")(retire_master)
