"""``orch invoke``: send a request body to an endpoint and print the response."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import client, console

CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".npy": "application/x-npy",
    ".txt": "text/plain",
}


def read_body(body: str) -> bytes:
    if body == "-":
        return sys.stdin.buffer.read()
    path = Path(body).expanduser()
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {body!r} (use - for stdin)", param_hint="--body")
    return path.read_bytes()


def guess_content_type(body: str) -> str:
    return CONTENT_TYPES.get(Path(body).suffix.lower(), "application/json")


def invoke(
    ctx: typer.Context,
    *,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    body: Annotated[str, typer.Option(help="Request body file; - reads stdin.")],
    content_type: Annotated[
        str | None, typer.Option(help="Content-Type (default: from the file's extension).")
    ] = None,
    accept: Annotated[str, typer.Option(help="Accept header.")] = "application/json",
    variant: Annotated[str | None, typer.Option(help="Send to this production variant.")] = None,
) -> None:
    """Invoke an endpoint and print its response body."""
    data = read_body(body)
    result = client(ctx).invoke_endpoint(
        endpoint,
        data,
        content_type=content_type or guess_content_type(body),
        accept=accept,
        target_variant=variant,
    )
    if "json" in result.content_type:
        try:
            console.print_json(result.body.decode())
            return
        except (ValueError, UnicodeDecodeError):
            pass
    if result.content_type.startswith("text/"):
        typer.echo(result.body.decode(errors="replace"), nl=not result.body.endswith(b"\n"))
    else:
        sys.stdout.buffer.write(result.body)
        sys.stdout.flush()
