"""``orch objects``: put, get, list and remove objects in the control plane's object store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, done, emit

app = typer.Typer(help="Objects: s3://bucket/key URIs in the control plane's object store.")

Uri = Annotated[str, typer.Argument(help="s3://bucket/key")]


@app.command()
def put(
    ctx: typer.Context,
    local: Annotated[Path, typer.Argument(help="A file, or a directory (uploaded recursively).")],
    uri: Uri,
) -> None:
    """Upload a file to URI, or a directory under the prefix URI."""
    api = client(ctx)
    if local.is_dir():
        uris = api.upload_dir(local, uri)
        done(ctx, {"Uris": uris}, f"uploaded {len(uris)} files under {uri}")
    else:
        info = api.upload_file(local, uri)
        done(ctx, info, f"uploaded {local} to {uri} ({info.get('Size', '?')} bytes)")


@app.command()
def get(
    ctx: typer.Context,
    uri: Uri,
    local: Annotated[
        Path | None, typer.Argument(help="Where to write (default: the key's last part; - stdout).")
    ] = None,
) -> None:
    """Download an object."""
    data = client(ctx).download_bytes(uri)
    if local is not None and str(local) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = local or Path(uri.rstrip("/").rsplit("/", 1)[-1])
    if target.is_dir():
        target = target / uri.rstrip("/").rsplit("/", 1)[-1]
    target.write_bytes(data)
    done(
        ctx,
        {"Uri": uri, "Path": str(target), "Size": len(data)},
        f"wrote {target} ({len(data)} bytes)",
    )


@app.command("ls")
def ls(
    ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="s3://bucket[/prefix]")]
) -> None:
    """List objects under a prefix."""
    items = client(ctx).list_objects(prefix)

    def render() -> None:
        table = Table("Uri", "Size", "Last modified")
        for o in items:
            table.add_row(Text(str(o.get("Uri"))), str(o.get("Size")), str(o.get("LastModified")))
        console.print(table)

    emit(ctx, {"Objects": items}, render)


@app.command("rm")
def rm(ctx: typer.Context, uri: Uri) -> None:
    """Delete an object."""
    client(ctx).delete_object(uri)
    done(ctx, {"Uri": uri}, f"deleted {uri}")
