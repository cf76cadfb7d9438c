"""``orch alarms``: metric alarms (put, list, history, delete, set-state)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import client, console, done, emit, parse_pairs, read_document, when
from orchestrator.resources.alarms import AlarmHistory, AlarmList, AlarmOut

app = typer.Typer(help="Metric alarms: OK, ALARM, INSUFFICIENT_DATA, with history and actions.")

STATE_STYLES = {"OK": "green", "ALARM": "red", "INSUFFICIENT_DATA": "yellow"}
_OPS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def _state(state: str) -> str:
    style = STATE_STYLES.get(state)
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(state)


def _condition(a: AlarmOut) -> str:
    stat = a.Statistic or a.ExtendedStatistic or "?"
    m = a.DatapointsToAlarm or a.EvaluationPeriods
    return (
        f"{stat} {_OPS.get(a.ComparisonOperator, a.ComparisonOperator)} {a.Threshold:g} "
        f"for {m} of {a.EvaluationPeriods} x {a.Period}s"
    )


def _render_list(alarms: AlarmList) -> None:
    if not alarms.MetricAlarms:
        console.print("no alarms", markup=False)
        return
    table = Table("Name", "State", "Metric", "Condition", "Since", "Reason", title="Alarms")
    for a in alarms.MetricAlarms:
        dims = ",".join(f"{d['Name']}={d['Value']}" for d in a.Dimensions)
        metric = f"{a.Namespace}/{a.MetricName}" + (f" [{dims}]" if dims else "")
        table.add_row(Text(a.AlarmName), _state(a.StateValue), Text(metric),
                      Text(_condition(a)), when(a.StateUpdatedTimestamp),
                      Text(a.StateReason))  # fmt: skip
    console.print(table)


def _render_history(name: str, history: AlarmHistory) -> None:
    if not history.AlarmHistoryItems:
        console.print(f"no history for {name}", markup=False)
        return
    table = Table("Time", "Type", "Summary", title=f"History of {name}")
    for item in history.AlarmHistoryItems:
        summary = item.HistorySummary
        if item.HistoryItemType == "Action":
            summary += f" ({item.HistoryData})"
        table.add_row(when(item.Timestamp), item.HistoryItemType, Text(summary))
    console.print(table)


@app.command("put")
def put(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="AlarmName.")],
    *,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A PutMetricAlarm body (JSON or YAML).")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace, e.g. AWS/SageMaker.")] = None,
    metric: Annotated[str | None, typer.Option(help="MetricName.")] = None,
    dimension: Annotated[
        list[str] | None, typer.Option(help="A dimension NAME=VALUE (repeat).")
    ] = None,
    statistic: Annotated[
        str | None, typer.Option(help="Sum, Average, Minimum, Maximum, SampleCount or pNN.")
    ] = None,
    period: Annotated[int | None, typer.Option(help="Seconds: 10, 30 or a multiple of 60.")] = None,
    evaluation_periods: Annotated[int | None, typer.Option(help="N periods looked at.")] = None,
    datapoints_to_alarm: Annotated[
        int | None, typer.Option(help="M of the N that must cross (default N).")
    ] = None,
    comparison: Annotated[
        str | None, typer.Option(help="GreaterThanThreshold, LessThanThreshold, ...")
    ] = None,
    threshold: Annotated[str | None, typer.Option(help="The threshold, a number.")] = None,
    treat_missing: Annotated[
        str | None, typer.Option(help="missing, ignore, breaching or notBreaching.")
    ] = None,
    alarm_action: Annotated[
        list[str] | None, typer.Option(help="An action on ALARM (repeat); see docs/alarms.md.")
    ] = None,
    ok_action: Annotated[list[str] | None, typer.Option(help="An action on OK (repeat).")] = None,
) -> None:
    """Create or update an alarm, from options or a file (options override the file)."""
    body: dict[str, Any] = read_document(file, "--file") if file else {}
    body["AlarmName"] = name
    if dimension:
        pairs = parse_pairs(dimension, "--dimension")
        body["Dimensions"] = [{"Name": k, "Value": v} for k, v in pairs.items()]
    if statistic is not None:
        body["ExtendedStatistic" if statistic.startswith("p") else "Statistic"] = statistic
    options = {
        "Namespace": namespace, "MetricName": metric, "Period": period,
        "EvaluationPeriods": evaluation_periods, "DatapointsToAlarm": datapoints_to_alarm,
        "ComparisonOperator": comparison, "Threshold": threshold,
        "TreatMissingData": treat_missing, "AlarmActions": alarm_action, "OKActions": ok_action,
    }  # fmt: skip
    body.update({k: v for k, v in options.items() if v is not None})
    out = client(ctx).put_metric_alarm(body)
    emit(ctx, out, lambda: console.print(
        f"alarm {escape(out.AlarmName)} is {_state(out.StateValue)}: {escape(_condition(out))}"
    ))  # fmt: skip


@app.command("list")
def list_alarms(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help="Only alarms in OK, ALARM or INSUFFICIENT_DATA.")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Only names starting so.")] = None,
) -> None:
    """Alarms with their state, condition and the reason for the state."""
    alarms = client(ctx).describe_alarms(prefix=prefix, state=state)
    emit(ctx, alarms, lambda: _render_list(alarms))


@app.command("history")
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="AlarmName.")],
    type_: Annotated[
        str | None,
        typer.Option("--type", help="StateUpdate, ConfigurationUpdate or Action."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many items (1-100).")] = 100,
) -> None:
    """An alarm's state changes, configuration updates and actions, newest first."""
    items = client(ctx).describe_alarm_history(name, item_type=type_, max_records=limit)
    emit(ctx, items, lambda: _render_history(name, items))


@app.command("delete")
def delete(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="AlarmNames.")],
) -> None:
    """Delete alarms and their history."""
    n = client(ctx).delete_alarms(names)
    done(ctx, {"Deleted": n}, f"deleted {n} alarm(s)")


@app.command("set-state")
def set_state(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="AlarmName.")],
    state: Annotated[str, typer.Argument(help="OK, ALARM or INSUFFICIENT_DATA.")],
    reason: Annotated[str, typer.Option(help="StateReason.")] = "set by hand (orch alarms)",
) -> None:
    """Set an alarm's state now (its actions run: a way to test them); the next evaluation
    sets it from the data again."""
    out = client(ctx).set_alarm_state(name, state, reason)
    emit(ctx, out, lambda: console.print(f"alarm {escape(name)} is {_state(out.StateValue)}"))
