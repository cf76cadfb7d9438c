"""Rendering a job's evaluation (evaluation.json): metric tables and the confusion matrix."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

SPLITS = ("validation", "test")


def _scalar_table(split: str, metrics: dict[str, Any]) -> Table | None:
    rows = [
        (k, v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if not rows:
        return None
    t = Table("Metric", "Value", title=f"Evaluation ({split})")
    for k, v in rows:
        t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    return t


def confusion_grid(matrix: list[list[int]], labels: list[Any] | None = None) -> Table:
    """Rows are the actual class, columns the predicted one; the diagonal is right."""
    names = [str(x) for x in (labels or range(len(matrix)))]
    t = Table(title="Confusion matrix (rows: actual, columns: predicted)")
    t.add_column("actual \\ predicted", style="bold")
    for n in names:
        t.add_column(n, justify="right")
    for i, row in enumerate(matrix):
        cells = [
            Text(str(v), style="green" if i == j else ("red" if v else ""))
            for j, v in enumerate(row)
        ]
        t.add_row(names[i], *cells)
    return t


def _per_class(split: str, rows: list[dict[str, Any]]) -> Table:
    t = Table("Class", "Precision", "Recall", "F1", "Support", title=f"Per class ({split})")
    for r in rows:
        t.add_row(
            str(r.get("label")),
            f"{r.get('precision', 0):.4g}",
            f"{r.get('recall', 0):.4g}",
            f"{r.get('f1', 0):.4g}",
            str(r.get("support", "")),
        )
    return t


def render_evaluation(doc: dict[str, Any]) -> list[RenderableType]:
    """Tables for each split the document has (test last: it is the one to read)."""
    parts: list[RenderableType] = []
    labels = doc.get("classes")
    for split in SPLITS:
        metrics = doc.get(split)
        if not isinstance(metrics, dict):
            continue
        table = _scalar_table(split, metrics)
        if table is not None:
            parts.append(table)
        if isinstance(metrics.get("per_class"), list):
            parts.append(_per_class(split, metrics["per_class"]))
        if split == "test" and isinstance(metrics.get("confusion_matrix"), list):
            parts.append(confusion_grid(metrics["confusion_matrix"], labels))
    if not parts and isinstance(doc.get("confusion_matrix"), list):
        parts.append(confusion_grid(doc["confusion_matrix"], labels))
    return parts
