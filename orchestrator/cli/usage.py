"""``orch usage``: what training jobs, endpoints and transform jobs used, and what it cost."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, emit
from orchestrator.usage.models import UsageReport


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f}"


def _render(report: UsageReport) -> None:
    title = (
        f"Usage {report.Since.isoformat()} to {report.Until.isoformat()} "
        f"by {report.GroupBy} (prices: {report.PriceSource})"
    )
    table = Table(
        report.GroupBy.capitalize(),
        "Instance-seconds",
        "Instance-hours",
        "Spot saved (s)",
        "Memory GiB-hours",
        "Predictions",
        f"Cost ({report.Currency})",
        title=title,
    )
    for g in report.Groups:
        cost = "no price" if g.Cost is None else f"{g.Cost:.4f}"
        if g.Cost is not None and g.NoPrice:
            cost += f" (+ no price: {', '.join(g.NoPrice)})"
        table.add_row(
            Text(g.Group),
            f"{g.InstanceSeconds:.0f}",
            _hours(g.InstanceSeconds),
            f"{g.SpotSavedSeconds:.0f}",
            _hours(g.MemoryGiBSeconds),
            str(g.Predictions),
            Text(cost),
        )
    if report.Groups:
        console.print(table)
    else:
        console.print("no usage in this window", markup=False)
    if report.Storage:
        storage = Table("Bucket", "Objects", "Bytes", "GB", f"{report.Currency}/month",
                        title="Object store (now)")  # fmt: skip
        for b in report.Storage:
            storage.add_row(Text(b.Bucket), str(b.Objects), str(b.Bytes),
                            f"{b.Bytes / 1e9:.3f}", f"{b.MonthlyCost:.4f}")  # fmt: skip
        console.print(storage)


def usage(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Start (ISO 8601 date or time, UTC if no zone).")],
    until: Annotated[str | None, typer.Option(help="End, exclusive (default: now).")] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="tenant, resource or instance-type.")
    ] = "resource",
    storage: Annotated[
        bool, typer.Option(help="List the object store's buckets (bytes now).")
    ] = True,
) -> None:
    """Usage and cost: instance-seconds, memory, predictions, priced per instance type."""
    report = client(ctx).get_usage(since, until, group_by, storage=storage)
    emit(ctx, report, lambda: _render(report))
