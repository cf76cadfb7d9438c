"""``orch audit``: look the audit trail up, export it as JSON lines, verify it (admins only)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import client, console, err_console, print_json, state

app = typer.Typer(
    help="The audit trail: who called what, when, from where, with what answer; "
    "tamper-evident (hash-chained records, signed digests)."
)


class Output(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


Username = Annotated[
    str | None, typer.Option("--identity", "--username", help="A key's name or key id.")
]
EventName = Annotated[
    str | None, typer.Option("--action", "--event-name", help="e.g. CreateTrainingJob.")
]
ResourceName = Annotated[
    str | None, typer.Option("--resource", "--resource-name", help="e.g. a job's name.")
]
Start = Annotated[
    datetime | None, typer.Option("--start", help="Records at or after this time (ISO 8601).")
]
End = Annotated[datetime | None, typer.Option("--end", help="Records at or before this time.")]


def _filters(
    *,
    username: str | None,
    event_name: str | None,
    resource_name: str | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, Any]:
    return {
        "username": username,
        "event_name": event_name,
        "resource_name": resource_name,
        "start": start,
        "end": end,
    }


@app.command("lookup")
def lookup(
    ctx: typer.Context,
    *,
    username: Username = None,
    event_name: EventName = None,
    resource_name: ResourceName = None,
    start: Start = None,
    end: End = None,
    max_results: Annotated[
        int, typer.Option("--max-results", min=1, help="At most this many records.")
    ] = 50,
    output: Annotated[
        Output | None,
        typer.Option("--output", "-o", help="table, json, or jsonl (one record a line)."),
    ] = None,
) -> None:
    """Records, newest first, that match every filter given (LookupEvents' filters)."""
    events = list(
        client(ctx).iter_audit_events(
            limit=max_results,
            **_filters(
                username=username,
                event_name=event_name,
                resource_name=resource_name,
                start=start,
                end=end,
            ),
        )
    )
    chosen = output or (Output.json if state(ctx).json else Output.table)
    if chosen is Output.jsonl:
        for event in events:
            typer.echo(json.dumps(event, separators=(",", ":")))
        return
    if chosen is Output.json:
        print_json({"Events": events})
        return
    table = Table("Time", "Identity", "Source", "Action", "Resource", "Status", "Error", "Request")
    for e in events:
        identity = e.get("userIdentity") or {}
        table.add_row(
            escape(str(e.get("eventTime", ""))),
            escape(str(identity.get("userName") or identity.get("keyId") or "-")),
            escape(str(e.get("sourceIPAddress") or "-")),
            escape(str(e.get("eventName", ""))),
            escape(", ".join(e.get("resources") or []) or "-"),
            str(e.get("statusCode", "")),
            escape(str(e.get("errorCode") or "")),
            escape(str(e.get("requestID", ""))),
        )
    console.print(table)


@app.command("export")
def export(
    ctx: typer.Context,
    *,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write here (default: standard output).")
    ] = None,
    username: Username = None,
    event_name: EventName = None,
    resource_name: ResourceName = None,
    start: Start = None,
    end: End = None,
) -> None:
    """Every matching record as JSON lines (newest first), for another tool to keep."""
    events = client(ctx).iter_audit_events(
        **_filters(
            username=username,
            event_name=event_name,
            resource_name=resource_name,
            start=start,
            end=end,
        )
    )
    if file is None:
        for event in events:
            typer.echo(json.dumps(event, separators=(",", ":")))
        return
    count = 0
    with file.open("w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    err_console.print(f"wrote {count} records to {file}", markup=False)


@app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Check every digest's signature and every record's chain; name the first record or
    digest changed, removed or reordered (exit 1), or say OK with the counts."""
    report = client(ctx).verify_audit_trail()
    if state(ctx).json:
        print_json(report)
    elif report.get("Ok"):
        console.print(
            f"OK: {report['Records']} records in {report['RecordFiles']} files, "
            f"{report['Digests']} digests verified "
            f"({report['UndigestedFiles']} newest files not yet in a digest)",
            markup=False,
        )
    else:
        first = report.get("FirstProblem") or {}
        err_console.print(f"[bold red]FAILED:[/bold red] {escape(str(first.get('Message', '')))}")
        for problem in (report.get("Problems") or [])[1:]:
            err_console.print(f"  also: {problem.get('Message', '')}", markup=False)
    if not report.get("Ok"):
        raise typer.Exit(1)


@app.command("public-key")
def public_key(ctx: typer.Context) -> None:
    """Print the key the digests verify with (PEM), to check the trail elsewhere."""
    found = client(ctx).audit_public_key()
    if state(ctx).json:
        print_json(found)
        return
    typer.echo(found["PublicKey"], nl=False)
    err_console.print(f"fingerprint {found['Fingerprint']}", markup=False)
