"""How ``orch jobs metrics`` shows a job's metric series: a table of points, or a chart; and
how ``orch jobs describe`` shows its latest resource use per host."""

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


USAGE_COLUMNS = (
    ("CPUUtilization", "CPU %"),
    ("MemoryUtilization", "Memory %"),
    ("DiskUtilization", "Disk %"),
    ("GPUUtilization", "GPU %"),
    ("GPUMemoryUtilization", "GPU memory %"),
)


def label(series: MetricSeriesOut) -> str:
    """A series' name, with the host a resource-usage series was sampled on."""
    return f"{series.MetricName} [{series.Host}]" if series.Host else series.MetricName


def usage_table(resp: TrainingJobMetricsResponse) -> Table | None:
    """The latest resource-usage sample of each host (None: none sampled)."""
    latest: dict[str, dict[str, float]] = {}
    when_of: dict[str, str] = {}
    for s in resp.Metrics:
        if s.Host is None or not s.Points:
            continue
        latest.setdefault(s.Host, {})[s.MetricName] = s.Points[-1].Value
        when_of[s.Host] = max(when_of.get(s.Host, ""), when(s.Points[-1].Timestamp))
    if not latest:
        return None
    shown = [(m, head) for m, head in USAGE_COLUMNS if any(m in v for v in latest.values())]
    table = Table("Host", *(head for _, head in shown), "Sampled", title="Resource use (latest)")
    for host, values in latest.items():
        cells = [f"{values[m]:.1f}" if m in values else "-" for m, _ in shown]
        table.add_row(host, *cells, when_of[host])
    return table


def chart(series: MetricSeriesOut) -> Table:
    values = [p.Value for p in series.Points]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(Text(label(series)), Text(sparkline(values), style="cyan"))
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
    table = Table("Step", "Epoch", "Time", "Value", title=label(series), caption=caption)
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
