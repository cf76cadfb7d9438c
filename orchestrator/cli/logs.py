"""``orch logs``: log groups (as SageMaker names them), their streams, events and retention;
``print_events`` also serves ``orch endpoints logs``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, done, emit, state
from orchestrator.client import Client
from orchestrator.client.logs import follow_log_events

app = typer.Typer(help="Log groups: training, endpoint and transform logs, the control plane's.")

GroupArg = Annotated[str, typer.Argument(help="Log group, e.g. /aws/sagemaker/TrainingJobs.")]
Since = Annotated[
    str | None,
    typer.Option(help="From this time on: a duration before now (10m, 2h), ISO 8601 or epoch ms."),
]
Filter = Annotated[
    str | None,
    typer.Option(help='CloudWatch filter pattern: ERROR, "a phrase", ?A ?B, -exclude.'),
]
Follow = Annotated[
    bool, typer.Option("--follow", "-f", help="Keep printing new events until interrupted.")
]


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def print_events(
    ctx: typer.Context,
    api: Client,
    group: str,
    *,
    stream: str | None = None,
    stream_prefix: str | None = None,
    pattern: str | None = None,
    since: str | None = None,
    follow: bool = False,
) -> None:
    """One line an event, ``TIME STREAM MESSAGE`` (``-o json``: one JSON object a line)."""
    as_json = state(ctx).json
    try:
        for e in follow_log_events(
            api, group, stream=stream, stream_prefix=stream_prefix, pattern=pattern,
            since=since, follow=follow,
        ):  # fmt: skip
            if as_json:
                import json

                typer.echo(json.dumps(e))
            else:
                typer.echo(f"{_time(e['Timestamp'])} {e['Stream']} {e['Message']}")
    except KeyboardInterrupt:
        return


@app.command("groups")
def groups(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option(help="Only groups whose name starts so.")] = None,
) -> None:
    """List the log groups."""
    rows = client(ctx).log_groups(prefix)

    def render() -> None:
        table = Table("NAME", "CREATED", "RETENTION")
        for g in rows:
            days = g.get("RetentionInDays")
            table.add_row(g["Name"], _time(g["CreationTime"]), f"{days} d" if days else "forever")
        console.print(table)

    emit(ctx, {"LogGroups": rows}, render)


@app.command("streams")
def streams(ctx: typer.Context, group: GroupArg) -> None:
    """List a log group's streams."""
    rows: list[dict[str, Any]] = client(ctx).log_streams(group)

    def render() -> None:
        table = Table("STREAM", "FIRST EVENT", "LAST EVENT")
        for s in rows:
            table.add_row(s["Name"], _time(s["FirstEventTime"]), _time(s["LastEventTime"]))
        console.print(table)

    emit(ctx, {"LogStreams": rows}, render)


@app.command("tail")
def tail(  # noqa: PLR0917 - one option per query parameter
    ctx: typer.Context,
    group: GroupArg,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    filter: Filter = None,
    since: Since = None,
    follow: Follow = False,
) -> None:
    """Print a log group's events in time order (every stream's, or one's)."""
    print_events(ctx, client(ctx), group, stream=stream, pattern=filter, since=since, follow=follow)


@app.command("retention")
def retention(
    ctx: typer.Context,
    group: GroupArg,
    days: Annotated[
        int | None, typer.Argument(help="Days to keep (CloudWatch's values); omit: keep all.")
    ] = None,
) -> None:
    """Set how long a log group keeps its events (PutRetentionPolicy)."""
    client(ctx).put_log_retention(group, days)
    done(
        ctx,
        {"Group": group, "RetentionInDays": days},
        f"{group} keeps {f'{days} days' if days else 'every event'}",
    )
