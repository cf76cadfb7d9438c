"""``orch search``: SageMaker's Search in a readable form, printed as a table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.common import client, console, emit, styled
from orchestrator.resources.search_syntax import parse_expression


def search(  # noqa: PLR0917 - one parameter per option
    ctx: typer.Context,
    expression: Annotated[
        str | None,
        typer.Argument(
            help="What to find, e.g. 'Metrics.validation:accuracy > 0.95 and "
            "HyperParameters.optimizer = adam', 'Tags.team exists', "
            "'TrainingJobStatus in Completed,Stopped'; and, or, parentheses. Empty: all."
        ),
    ] = None,
    resource: Annotated[
        str, typer.Option(help="TrainingJob or HyperParameterTuningJob.")
    ] = "TrainingJob",
    sort: Annotated[
        str | None, typer.Option(help="Property to sort by (default CreationTime).")
    ] = None,
    order: Annotated[str | None, typer.Option(help="Ascending or Descending.")] = None,
    max_results: Annotated[int | None, typer.Option("--max", help="Page size (1-100).")] = None,
    next_token: Annotated[str | None, typer.Option(help="The page after a previous one.")] = None,
) -> None:
    """Search training jobs (or tuning jobs) by metrics, hyperparameters, tags and fields."""
    parsed = parse_expression(expression) if expression and expression.strip() else None
    resp = client(ctx).search(
        parsed, resource=resource, sort_by=sort, sort_order=order,
        max_results=max_results, next_token=next_token,
    )  # fmt: skip
    emit(ctx, resp, lambda: _print(resp, resource, sort, _names(parsed)))


def _names(expression: dict[str, Any] | None) -> list[str]:
    """Every property the expression filters on, in order, once."""
    out: list[str] = []
    for f in (expression or {}).get("Filters", []):
        if f["Name"] not in out:
            out.append(f["Name"])
    for sub in (expression or {}).get("SubExpressions", []):
        out += [n for n in _names(sub) if n not in out]
    return out


def value_of(doc: dict[str, Any], name: str) -> str:
    """A property of a record as the table shows it (``-`` when it has none)."""
    family, _, key = name.partition(".")
    value: Any
    if family == "Metrics":
        value = next(
            (
                m.get("Value")
                for m in doc.get("FinalMetricDataList", [])
                if m.get("MetricName") == key
            ),
            None,
        )
    elif family == "HyperParameters":
        value = (doc.get("HyperParameters") or {}).get(key)
    elif family == "Tags":
        value = next((t.get("Value") for t in doc.get("Tags", []) if t.get("Key") == key), None)
    else:
        value = doc
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print(resp: dict[str, Any], resource: str, sort: str | None, filtered: list[str]) -> None:
    name_field, status_field = f"{resource}Name", f"{resource}Status"
    columns = [c for c in [sort, *filtered] if c and c not in {name_field, status_field}]
    columns = list(dict.fromkeys(columns))
    table = Table("Name", "Status", *columns)
    for result in resp.get("Results", []):
        doc = result.get(resource, {})
        status = str(doc.get(status_field, "-"))
        table.add_row(
            str(doc.get(name_field, "-")), styled(status), *(value_of(doc, c) for c in columns)
        )
    console.print(table)
    if resp.get("NextToken"):
        console.print(f"[dim]more: --next-token {resp['NextToken']}[/dim]", soft_wrap=True)
