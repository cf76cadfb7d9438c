"""``orch tags``: add, list and remove the tags of any resource, named by its ARN."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, done, emit, parse_pairs

app = typer.Typer(help="Tags of training jobs, models, endpoint configs and endpoints, by ARN.")

Arn = Annotated[str, typer.Argument(help="The resource's ARN (orch ... describe shows it).")]


@app.command("add")
def add(
    ctx: typer.Context,
    arn: Arn,
    tags: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs.", metavar="KEY=VALUE...")],
) -> None:
    """Add tags (a key the resource has already gets the new value)."""
    pairs = parse_pairs(tags, "KEY=VALUE")
    added = client(ctx).add_tags(arn, pairs)
    done(
        ctx,
        {"Tags": [t.model_dump() for t in added]},
        f"tagged {arn}: {', '.join(f'{t.Key}={t.Value}' for t in added)}",
    )


@app.command("list")
def list_tags(ctx: typer.Context, arn: Arn) -> None:
    """List a resource's tags."""
    found = client(ctx).list_tags(arn)

    def render() -> None:
        if not found:
            console.print(f"{arn} has no tags", markup=False)
            return
        table = Table("Key", "Value")
        for t in found:
            table.add_row(Text(t.Key), Text(t.Value))
        console.print(table)

    emit(ctx, {"Tags": [t.model_dump() for t in found]}, render)


@app.command("remove")
def remove(
    ctx: typer.Context,
    arn: Arn,
    keys: Annotated[list[str], typer.Argument(help="Tag keys to remove.", metavar="KEY...")],
) -> None:
    """Remove tags by key (a key the resource does not have is ignored)."""
    client(ctx).delete_tags(arn, keys)
    done(ctx, {"ResourceArn": arn, "TagKeys": keys}, f"removed {', '.join(keys)} from {arn}")
