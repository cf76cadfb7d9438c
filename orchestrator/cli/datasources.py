"""``orch datasources``: data sources (Amazon ML's) from an object-store prefix or a SQL query:
create, list, describe (the schema, each type with its reasons), insights, edit the schema,
refresh (a new snapshot), wait, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, done, emit, err_console, styled, when
from orchestrator.cli.jobs import list_all
from orchestrator.resources.datasources import (
    AttributeType,
    DataSourceStatus,
    DescribeDataSourceResponse,
    ListDataSourcesResponse,
)

app = typer.Typer(
    help="Data sources: snapshots of a table (S3 prefix, PostgreSQL or MySQL query) to train on."
)
Name = Annotated[str, typer.Argument(help="Data source name.")]
Version = Annotated[
    int | None, typer.Option(min=1, help="A version (default: the latest completed).")
]
AllPages = Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")]
Types = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        metavar="ATTRIBUTE=TYPE",
        help="An attribute's type over the inferred one: NUMERIC, BINARY, CATEGORICAL or TEXT "
        "(repeatable).",
    ),
]


def parse_types(values: list[str] | None) -> dict[str, str]:
    """``["city=CATEGORICAL"]`` -> ``{"city": "CATEGORICAL"}``; a usage error naming --type."""
    out: dict[str, str] = {}
    allowed = [t.value for t in AttributeType]
    for value in values or []:
        key, sep, kind = value.rpartition("=")
        if not sep or not key or kind.upper() not in allowed:
            raise typer.BadParameter(
                f"expected ATTRIBUTE=TYPE with TYPE one of {', '.join(allowed)}, got {value!r}",
                param_hint="--type",
            )
        out[key] = kind.upper()
    return out


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    *,
    s3: Annotated[
        str | None, typer.Option(help="Objects to read: s3://bucket/prefix/ (CSV or Parquet).")
    ] = None,
    data_format: Annotated[str, typer.Option("--format", help="CSV or Parquet.")] = "CSV",
    engine: Annotated[
        str | None, typer.Option(help="A SQL source: postgresql or mysql (MariaDB).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="The database's host.")] = None,
    port: Annotated[int | None, typer.Option(help="Its port (default the engine's).")] = None,
    database: Annotated[str | None, typer.Option(help="The database name.")] = None,
    query: Annotated[str | None, typer.Option(help="The SELECT to snapshot.")] = None,
    query_file: Annotated[
        Path | None, typer.Option(help="A file holding the SELECT.", exists=True, dir_okay=False)
    ] = None,
    credentials: Annotated[
        str | None,
        typer.Option(
            help='s3:// URI of a JSON object {"Username": ..., "Password": ...} in the store.'
        ),
    ] = None,
    connect_timeout: Annotated[int, typer.Option(min=1, max=300, help="Seconds.")] = 10,
    target: Annotated[str | None, typer.Option(help="The attribute to predict.")] = None,
    types: Types = None,
    statistics: Annotated[
        bool, typer.Option(help="Compute the data insights (distributions, correlations).")
    ] = True,
    output: Annotated[str | None, typer.Option(help="Where snapshots go (s3://...).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the snapshot.")] = False,
) -> None:
    """Create a data source; its first snapshot starts at once."""
    spec: dict[str, Any] = {"DataSourceName": name}
    if (s3 is None) == (engine is None):
        raise typer.BadParameter("give --s3 URI, or --engine with a query", param_hint="--s3")
    if s3 is not None:
        spec["DataSpec"] = {"S3": {"DataLocationS3": s3, "DataFormat": data_format}}
    else:
        text = query_file.read_text() if query_file is not None else query
        missing = [
            flag
            for flag, value in (
                ("--host", host),
                ("--database", database),
                ("--query", text),
                ("--credentials", credentials),
            )
            if not value
        ]
        if missing:
            raise typer.BadParameter(
                f"a SQL source needs {', '.join(missing)}", param_hint=missing[0]
            )
        info: dict[str, Any] = {"Engine": engine, "Host": host, "DatabaseName": database}
        if port is not None:
            info["Port"] = port
        spec["DataSpec"] = {
            "Sql": {
                "DatabaseInformation": info,
                "SelectSqlQuery": text,
                "DatabaseCredentials": {"SecretUri": credentials},
                "ConnectTimeoutSeconds": connect_timeout,
            }
        }
    if target:
        spec["TargetAttributeName"] = target
    if types:
        spec["AttributeTypes"] = parse_types(types)
    spec["ComputeStatistics"] = statistics
    if output:
        spec["OutputDataConfig"] = {"S3OutputPath": output}
    api = client(ctx)
    arn = api.create_data_source(spec)
    if not wait:
        done(ctx, {"DataSourceArn": arn}, f"created data source {name} ({arn})")
        return
    ds = api.wait_for_data_source(name)
    _finish(ctx, ds)


def _finish(ctx: typer.Context, ds: DescribeDataSourceResponse) -> None:
    emit(ctx, ds, lambda: _render(ds))
    if ds.Status != DataSourceStatus.COMPLETED:
        raise typer.Exit(1)


@app.command("list")
def list_sources(
    ctx: typer.Context,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    all_pages: AllPages = False,
) -> None:
    """List data sources."""
    resp: ListDataSourcesResponse = list_all(
        client(ctx).list_data_sources, all_pages, NameContains=name_contains
    )

    def render() -> None:
        table = Table("Name", "Status", "Version", "Rows", "Created")
        for d in resp.DataSources:
            rows = f"{d.RowCount:,}" if d.RowCount is not None else "-"
            table.add_row(
                escape(d.DataSourceName), styled(d.Status), str(d.Version), rows,
                when(d.CreationTime),
            )  # fmt: skip
        console.print(table)

    emit(ctx, resp, render)


@app.command("describe")
def describe(ctx: typer.Context, name: Name, version: Version = None) -> None:
    """Show a data source: its versions and the schema (types and why)."""
    ds = client(ctx).describe_data_source(name, version)
    emit(ctx, ds, lambda: _render(ds))


def _render(ds: DescribeDataSourceResponse) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("ARN", ds.DataSourceArn)
    grid.add_row("Status", Text.from_markup(styled(ds.Status)))
    grid.add_row("Message", Text(ds.Message or "-"))
    sql = ds.DataSpec.Sql
    if sql is not None:
        db = sql.DatabaseInformation
        grid.add_row("Database", Text(f"{db.Engine}://{db.Host}:{db.port}/{db.DatabaseName}"))
        grid.add_row("Query", Text(sql.SelectSqlQuery))
    elif ds.DataSpec.S3 is not None:
        grid.add_row(
            "Location", Text(f"{ds.DataSpec.S3.DataLocationS3} ({ds.DataSpec.S3.DataFormat})")
        )
    grid.add_row("Target", Text(ds.TargetAttributeName or "-"))
    console.print(Panel(grid, title=f"[bold]{escape(ds.DataSourceName)}[/bold]", expand=False))
    versions = Table("Version", "Status", "Rows", "Size", "Snapshot job", "Created", "Reason")
    for v in ds.Versions:
        versions.add_row(
            str(v.Version),
            styled(v.Status),
            f"{v.RowCount:,}" if v.RowCount is not None else "-",
            f"{v.DataSizeInBytes:,} B" if v.DataSizeInBytes is not None else "-",
            escape(v.SnapshotJobName),
            when(v.CreatedAt),
            escape((v.FailureReason or "")[:120]),
        )
    console.print(versions)
    if ds.DataSchema is not None:
        schema = Table("Attribute", "Type", "Inferred", "Source type", "Why", title="Schema")
        for a in ds.DataSchema.Attributes:
            edited = a.InferredType is not None and a.InferredType != a.AttributeType
            schema.add_row(
                escape(a.AttributeName)
                + (" (target)" if a.AttributeName == ds.DataSchema.TargetAttributeName else ""),
                a.AttributeType.value + (" (edited)" if edited else ""),
                a.InferredType.value if a.InferredType else "-",
                escape(a.SourceType),
                escape("; ".join(a.Reasons)),
            )
        console.print(schema)


@app.command("insights")
def insights(ctx: typer.Context, name: Name, version: Version = None) -> None:
    """Amazon ML's data insights: missing and invalid shares, distributions, correlation with
    the target, warnings."""
    doc = client(ctx).data_source_insights(name, version)

    def render() -> None:
        table = Table(
            "Attribute", "Type", "Missing", "Invalid", "Distinct", "Summary", "Target corr.",
            title=f"{escape(name)} v{doc.get('Version')}: {doc.get('RowCount', 0):,} rows",
        )  # fmt: skip
        for a in doc.get("Attributes") or []:
            table.add_row(
                escape(str(a.get("AttributeName"))),
                str(a.get("AttributeType", "")),
                _share(a.get("MissingShare")),
                _share(a.get("InvalidShare")),
                f"{a.get('DistinctCount', '-')}",
                escape(_summary(a)),
                _corr(a.get("TargetCorrelation")),
            )
        console.print(table)
        for w in doc.get("Warnings") or []:
            err_console.print(
                f"[yellow]warning[/yellow] {escape(str(w.get('Code')))}: "
                f"{escape(str(w.get('Message')))}"
            )

    emit(ctx, doc, render)


def _share(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "-"


def _corr(c: Any) -> str:
    if not isinstance(c, dict) or c.get("Value") is None:
        return "-"
    return f"{float(c['Value']):+.2f} ({c.get('Method', '')})"


def _summary(a: dict[str, Any]) -> str:
    num = a.get("Numeric")
    if isinstance(num, dict):
        return f"min {num.get('Min')}  mean {_round(num.get('Mean'))}  max {num.get('Max')}"
    cats = a.get("Categories")
    if isinstance(cats, dict):
        top = cats.get("Top") or []
        return ", ".join(f"{t.get('Value')} ({t.get('Count')})" for t in top[:4])
    text = a.get("Text")
    if isinstance(text, dict):
        return f"{_round(text.get('MeanWords'))} words on average"
    return ""


def _round(v: Any) -> str:
    return f"{float(v):.4g}" if isinstance(v, int | float) else "-"


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    types: Types = None,
    target: Annotated[str | None, typer.Option(help="The attribute to predict.")] = None,
) -> None:
    """Edit the schema (types over the inferred ones, the target); no new snapshot."""
    if not types and target is None:
        raise typer.BadParameter("give --type ATTRIBUTE=TYPE or --target", param_hint="--type")
    client(ctx).update_data_source(name, attribute_types=parse_types(types) or None, target=target)
    done(ctx, {"DataSourceName": name}, f"updated data source {name}")


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    name: Name,
    wait: Annotated[bool, typer.Option(help="Wait for the snapshot.")] = False,
) -> None:
    """Take a new snapshot of the same query or location (a new version)."""
    api = client(ctx)
    version = api.refresh_data_source(name)
    if not wait:
        done(ctx, {"DataSourceName": name, "Version": version},
             f"data source {name}: version {version} requested")  # fmt: skip
        return
    _finish(ctx, api.wait_for_data_source(name, version=version))


@app.command("wait")
def wait(
    ctx: typer.Context,
    name: Name,
    timeout: Annotated[float | None, typer.Option(min=0, help="Seconds.")] = None,
) -> None:
    """Wait for the latest snapshot; exit 1 unless it completed."""
    _finish(ctx, client(ctx).wait_for_data_source(name, timeout=timeout))


@app.command("delete")
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a data source (its snapshots stay in the object store)."""
    client(ctx).delete_data_source(name)
    done(ctx, {"DataSourceName": name}, f"deleted data source {name}")
