"""Loading a channel's CSV and Parquet files into arrays, with errors that say where.

A channel directory holds ``*.csv`` and ``*.parquet`` files (read in name order, nested
folders included), all with the same columns. A CSV file whose first row is not all numbers
has a header. The label column is a header name or a 0-based index (default ``0``); every
other column is a feature. Every value must be a finite number: an error names the file, the
line (CSV, counting the header) or row (Parquet, from 1) and the column.

A channel read from a data source (``schema.json`` beside ``part-*.parquet`` files, typed
columns) goes through a recipe instead (``algorithms.recipes``): fitted on the train channel,
applied to the others; the label is the schema's ``TargetAttributeName``, not ``label``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import ValidationError

if TYPE_CHECKING:
    from orchestrator.algorithms.recipes import Recipe

SUFFIXES: tuple[str, ...] = (".csv", ".parquet")


class DataError(ValidationError):
    """The user's data cannot be trained on; the message says what and where."""


@dataclass(frozen=True)
class Table:
    """One file's values, before the label is picked out."""

    path: Path
    values: np.ndarray  # float64 [rows, columns]
    columns: tuple[str, ...] | None  # the header, if the file has one
    numbers: tuple[int, ...]  # each row's line (CSV, blank lines skipped) or row (Parquet)
    unit: str  # "line" or "row"

    def where(self, index: int) -> str:
        return f"{self.path.name}, {self.unit} {self.numbers[index]}"


@dataclass(frozen=True)
class Dataset:
    """Features and labels of one channel (or a part of it) and where each row came from."""

    x: np.ndarray  # float64 [n, d]
    y: np.ndarray  # float64 [n]
    feature_names: tuple[str, ...]
    label_name: str
    origins: tuple[str, ...]  # "file, line N" per row, for error messages

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(
            self.x[index],
            self.y[index],
            self.feature_names,
            self.label_name,
            tuple(self.origins[i] for i in index),
        )


def channel_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DataError(f"channel directory {directory} does not exist")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        found = sorted(p.name for p in directory.rglob("*") if p.is_file())[:10]
        raise DataError(
            f"no .csv or .parquet file in channel {directory.name!r}; found: "
            f"{', '.join(found) if found else 'nothing'}"
        )
    return files


def read_table(path: Path) -> Table:
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    return _read_csv(path)


def load_channel(directory: Path, label: str) -> Dataset:
    """Read every file of a channel; ``label`` is a column name or a 0-based index."""
    parts: list[Dataset] = []
    for path in channel_files(directory):
        parts.append(split_label(read_table(path), label))
    first = parts[0]
    for part, path in zip(parts[1:], channel_files(directory)[1:], strict=True):
        if part.x.shape[1] != first.x.shape[1]:
            raise DataError(
                f"{path.name} has {part.x.shape[1] + 1} columns but {directory.name}'s first "
                f"file has {first.x.shape[1] + 1}; every file of a channel needs the same columns"
            )
    return Dataset(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        first.feature_names,
        first.label_name,
        tuple(o for p in parts for o in p.origins),
    )


def is_datasource_channel(directory: Path) -> bool:
    """A channel a data source was downloaded into: ``schema.json`` and ``part-*.parquet``."""
    if not (directory / "schema.json").is_file():
        return False  # a plain channel: pyarrow is not imported for it
    from orchestrator.algorithms import recipes

    return recipes.is_datasource_channel(directory)


def fit_recipe(directory: Path, predictor_type: str, num_classes: int | None) -> Recipe:
    """The recipe of the train channel of a data source (its schema and rows)."""
    from orchestrator.algorithms import recipes

    return recipes.fit(directory, predictor_type, num_classes, channel=directory.name)


def load_datasource_channel(directory: Path, recipe: Recipe) -> Dataset:
    """A data-source channel through ``recipe``; rows without a target are skipped."""
    from orchestrator.algorithms import recipes

    x, y, origins = recipes.transform_channel(directory, recipe)
    if len(y) == 0:
        raise DataError(
            f"channel {directory.name!r} has no row with a target value ({recipe.target.name!r})"
        )
    return Dataset(x, y, recipe.feature_names, recipe.target.name, tuple(origins))


def label_index(label: str, columns: tuple[str, ...] | None, count: int, name: str) -> int:
    if columns is not None and label in columns:
        return columns.index(label)
    try:
        index = int(label)
    except ValueError:
        if columns is None:
            raise DataError(
                f"label column {label!r} is a name, but {name} has no header row; "
                "give the label as a 0-based column index"
            ) from None
        raise DataError(
            f"label column {label!r} not found in {name}; its columns are {', '.join(columns)}"
        ) from None
    if not 0 <= index < count:
        raise DataError(f"label column index {index} is out of range: {name} has {count} columns")
    return index


def split_label(table: Table, label: str) -> Dataset:
    count = table.values.shape[1]
    index = label_index(label, table.columns, count, table.path.name)
    if count < 2:
        raise DataError(f"{table.path.name} has only the label column and no feature column")
    names = table.columns or tuple(f"column_{i}" for i in range(count))
    keep = [i for i in range(count) if i != index]
    return Dataset(
        table.values[:, keep],
        table.values[:, index],
        tuple(names[i] for i in keep),
        names[index],
        tuple(table.where(i) for i in range(table.values.shape[0])),
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read_csv(path: Path) -> Table:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = [(n, r) for n, r in enumerate(csv.reader(f), start=1) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path.name} is empty")
    columns: tuple[str, ...] | None = None
    if any(_number(c) is None for c in rows[0][1]):
        columns = tuple(c.strip() for c in rows[0][1])
        rows = rows[1:]
        if not rows:
            raise DataError(f"{path.name} has a header row but no data rows")
    width = len(columns) if columns is not None else len(rows[0][1])
    values = np.empty((len(rows), width))
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path.name}, line {line}: {len(row)} columns where {width} expected")
        for j, cell in enumerate(row):
            value = _number(cell)
            column = _column(columns, j)
            if value is None:
                raise DataError(f"{path.name}, line {line}, {column}: {cell!r} is not a number")
            if not math.isfinite(value):
                raise DataError(
                    f"{path.name}, line {line}, {column}: missing or non-finite value {cell!r}"
                )
            values[i, j] = value
    return Table(path, values, columns, tuple(n for n, _ in rows), "line")


def _column(columns: tuple[str, ...] | None, j: int) -> str:
    return f"column {j} ({columns[j]!r})" if columns is not None else f"column {j}"


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path.name} is not a readable Parquet file: {e}") from e
    if table.num_rows == 0:
        raise DataError(f"{path.name} is empty")
    columns = tuple(table.column_names)
    values = np.empty((table.num_rows, len(columns)))
    for j in range(len(columns)):
        values[:, j] = _parquet_column(path, table.column(j), _column(columns, j))
    return Table(path, values, columns, tuple(range(1, table.num_rows + 1)), "row")


def _parquet_column(path: Path, chunked: Any, column: str) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_integer(chunked.type) or pa.types.is_floating(chunked.type):
        out = np.asarray(chunked.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            i = int(bad[0])
            kind = "missing value" if np.isnan(out[i]) else f"non-finite value {out[i]}"
            raise DataError(f"{path.name}, row {i + 1}, {column}: {kind}")
        return out
    cells = chunked.to_pylist()
    out = np.empty(len(cells))
    for i, cell in enumerate(cells):
        if cell is None:
            raise DataError(f"{path.name}, row {i + 1}, {column}: missing value")
        value = _number(cell) if isinstance(cell, str) else None
        if value is None:
            raise DataError(f"{path.name}, row {i + 1}, {column}: {cell!r} is not a number")
        if not math.isfinite(value):
            raise DataError(f"{path.name}, row {i + 1}, {column}: non-finite value {cell!r}")
        out[i] = value
    return out


def check_label_values(
    data: Dataset, channel: str, predictor_type: str, num_classes: int | None
) -> int:
    """Check each label's value; return the number of classes it implies (0: regression)."""
    if predictor_type == "regressor":
        return 0
    y = data.y
    if predictor_type == "binary_classifier":
        bad = np.flatnonzero((y != 0) & (y != 1))
        allowed = "0 or 1"
    elif num_classes is None:
        bad = np.flatnonzero((y != np.round(y)) | (y < 0))
        allowed = "an integer class index (0, 1, 2, ...)"
    else:
        bad = np.flatnonzero((y != np.round(y)) | (y < 0) | (y >= num_classes))
        allowed = f"an integer class index in 0..{num_classes - 1}"
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{channel} data, {data.origins[i]}, label column {data.label_name!r}: "
            f"label {y[i]:g} is not {allowed}"
        )
    if predictor_type == "binary_classifier":
        return 2
    return num_classes if num_classes is not None else int(y.max()) + 1


def check_labels(data: Dataset, channel: str, predictor_type: str, num_classes: int | None) -> int:
    """:func:`check_label_values`, and a classifier's training data needs two classes."""
    count = check_label_values(data, channel, predictor_type, num_classes)
    present = np.unique(data.y)
    if count and present.size < 2:
        raise DataError(
            f"{channel} data has a single class ({present[0]:g}) in label column "
            f"{data.label_name!r}; a classifier needs at least two"
        )
    return count


def split(data: Dataset, fraction: float, seed: int, stratify: bool) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of the rows (per class when ``stratify``); seeded."""
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(data.y == c) for c in np.unique(data.y)]
        if stratify
        else [np.arange(len(data))]
    )
    held: list[np.ndarray] = []
    for group in groups:
        count = round(len(group) * fraction)
        held.append(rng.permutation(group)[: min(count, len(group) - 1)])
    out = np.sort(np.concatenate(held)).astype(int)
    keep = np.setdiff1d(np.arange(len(data)), out)
    return data.take(keep), data.take(out)
