"""What every command shares: the per-invocation state, the client, output and errors.

The CLI only parses and prints; every operation is a ``Client`` call. Errors from the library
(``OrchestratorError``) are rendered once, by ``ErrorHandlingGroup``: ``error: <message>`` in
red on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from orchestrator.client import Client, LogChunk
from orchestrator.errors import OrchestratorError

# Rich resolves sys.stdout / sys.stderr at write time, so these follow redirection.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


@dataclass
class State:
    """Global options of one invocation; ``transport`` lets tests talk to an app in-process."""

    endpoint_url: str | None = None
    api_key: str | None = None
    output: OutputFormat = OutputFormat.table
    transport: httpx.BaseTransport | None = None
    ca_bundle: Path | None = None
    _client: Client | None = None

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.json

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                self.endpoint_url, self.api_key, transport=self.transport, ca_bundle=self.ca_bundle
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # a command invoked without the root callback (not via ``orch``)
        found = ctx.ensure_object(State)
    return found


def client(ctx: typer.Context) -> Client:
    return state(ctx).client()


def report_error(err: OrchestratorError) -> None:
    err_console.print(f"[bold red]error:[/bold red] [red]{escape(err.message)}[/red]")
    if err.field:
        err_console.print(f"[red]field: {escape(err.field)}[/red]")


class ErrorHandlingGroup(TyperGroup):
    """The root group: renders any ``OrchestratorError`` raised below it and exits 1."""

    def invoke(self, ctx: Any) -> Any:  # typer's click.Context
        try:
            return super().invoke(ctx)
        except OrchestratorError as e:
            report_error(e)
            raise typer.Exit(1) from None


# --- output ----------------------------------------------------------------------------------
def print_log(
    read: Callable[[int], LogChunk],
    *,
    follow: bool,
    poll: float = 0.5,
    first: LogChunk | None = None,
) -> None:
    """Print a job's log from the start (``read(offset)`` is the client's log call), or from
    ``first`` (a tail read) on; with ``follow``, keep printing until the server says no more
    will come (the job ended)."""
    offset = 0
    if first is not None:
        if first.text:
            typer.echo(first.text, nl=False)
        offset = first.next_offset
    while True:
        chunk = read(offset)
        if chunk.text:
            typer.echo(chunk.text, nl=False)
        if chunk.next_offset != offset:
            offset = chunk.next_offset
            continue
        if not (follow and chunk.more):
            return
        time.sleep(poll)


def print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    typer.echo(json.dumps(data, indent=2))


def emit(ctx: typer.Context, data: BaseModel | dict[str, Any], render: Callable[[], None]) -> None:
    """JSON (the API's response) with ``-o json``; otherwise the human rendering."""
    if state(ctx).json:
        print_json(data)
    else:
        render()


def done(ctx: typer.Context, data: dict[str, Any], message: str) -> None:
    emit(ctx, data, lambda: console.print(message, markup=False))


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a usage error naming ``option``."""
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"expected KEY=VALUE, got {value!r} (e.g. {option} lr=0.1)", param_hint=option
            )
        pairs[key.strip()] = rest
    return pairs


def when(t: datetime | None) -> str:
    if t is None:
        return "-"
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def since(start: datetime, end: datetime | None = None) -> str:
    return duration(((end or datetime.now(UTC)) - start).total_seconds())


STATUS_STYLES = {
    "Completed": "green",
    "InService": "green",
    "Failed": "red",
    "Stopped": "yellow",
    "Stopping": "yellow",
    "Deleting": "yellow",
    "InProgress": "cyan",
    "Creating": "cyan",
    "Updating": "cyan",
}


def styled(status: str) -> str:
    style = STATUS_STYLES.get(status)
    return f"[{style}]{escape(status)}[/{style}]" if style else escape(status)


def read_document(path: Path, option: str) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping; errors name the option and the file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}", param_hint=option) from e
    try:
        doc = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise typer.BadParameter(f"{path} is not valid JSON or YAML: {e}", param_hint=option) from e
    if not isinstance(doc, dict):
        raise typer.BadParameter(f"{path} must hold a mapping (an object)", param_hint=option)
    return doc
