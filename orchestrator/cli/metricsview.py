"""How ``orch jobs metrics`` shows a job's metric series: a table of points, or a chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import when
from orchestrator.resources.jobmetrics import MetricSeriesOut, TrainingJobMetricsResponse

BLOCKS = "▁▂▃▄▅▆▇█"
CHART_WIDTH = 60


def sparkline(values: Sequence[float], width: int = CHART_WIDTH) -> str:
    """One line of unicode blocks: at most ``width`` columns, each the mean of its share of
    the values, scaled from the smallest (▁) to the largest (█)."""
    if not values:
        return ""
    if len(values) > width:
        columns = []
        for i in range(width):
            part = values[i * len(values) // width : (i + 1) * len(values) // width]
            columns.append(sum(part) / len(part))
    else:
        columns = list(values)
    low, high = min(columns), max(columns)
    span = high - low
    if span <= 0 or not math.isfinite(span):
        return BLOCKS[len(BLOCKS) // 2] * len(columns)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - low) / span * top)] for v in columns)


def chart(series: MetricSeriesOut) -> Table:
    values = [p.Value for p in series.Points]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(Text(series.MetricName), Text(sparkline(values), style="cyan"))
    if values:
        last = series.Points[-1]
        epoch = f", epoch {last.Epoch}" if last.Epoch is not None else ""
        grid.add_row(
            "",
            Text(
                f"{len(values)} points; min {min(values):g}, max {max(values):g}, "
                f"last {last.Value:g} (step {last.Step}{epoch})",
                style="dim",
            ),
        )
    else:
        grid.add_row("", Text("no points yet", style="dim"))
    return grid


def points_table(series: MetricSeriesOut, last: int) -> Table:
    shown = series.Points[-last:] if last > 0 else series.Points
    caption = (
        f"the last {len(shown)} of {len(series.Points)} points (--last 0 for all)"
        if len(shown) < len(series.Points)
        else None
    )
    table = Table("Step", "Epoch", "Time", "Value", title=series.MetricName, caption=caption)
    for p in shown:
        table.add_row(
            str(p.Step), "-" if p.Epoch is None else str(p.Epoch), when(p.Timestamp), f"{p.Value:g}"
        )
    return table


def render_metrics(resp: TrainingJobMetricsResponse, *, as_chart: bool, last: int) -> list[Any]:
    """What to print for a job's metrics (a note when it has printed none yet)."""
    if not resp.Metrics:
        return [Text(f"{resp.TrainingJobName} has printed no metric lines yet", style="dim")]
    if as_chart:
        return [chart(s) for s in resp.Metrics]
    return [points_table(s, last) for s in resp.Metrics]
