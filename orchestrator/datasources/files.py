"""Reading the objects of an S3 data source (CSV with a header row, or Parquet) as batches.

The job's ``data`` channel holds the objects downloaded from ``DataLocationS3`` (nested
folders as the keys had them). Files are read in sorted path order; files of another format
are skipped with a log line.

CSV types are decided over every file before any row is written, in a first pass that reads
all values as strings and keeps, for each column, the narrowest of int64, float64, bool,
date32, timestamp and string that every value casts to. Pyarrow's own inference looks at the
first block of the first file only, so a column of integers whose 200,000th row is ``1.5``, or
whose second file has a float, would fail mid-stream (or the files would disagree); reading
twice costs a parse of the text, not memory: both passes stream.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from orchestrator.datasources.errors import DataSourceError
from orchestrator.datasources.hyperparameters import SnapshotParams

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".parq")
CSV_BLOCK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 65_536
# The candidate types of a CSV column, narrowest first.
_CANDIDATES: tuple[pa.DataType, ...] = (
    pa.int64(),
    pa.float64(),
    pa.bool_(),
    pa.date32(),
    pa.timestamp("us"),
)
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def data_files(params: SnapshotParams, directory: Path) -> list[Path]:
    """The channel's files of the data source's format, in sorted path order."""
    suffixes = CSV_SUFFIXES if params.format == "CSV" else PARQUET_SUFFIXES
    found: list[Path] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if path.name.lower().endswith(suffixes):
            found.append(path)
        else:
            _log(f"data source {params.data_source}: skipped {relative} (not {params.format})")
    if not found:
        raise DataSourceError(
            f"data source {params.data_source}: no {params.format} file "
            f"({', '.join(suffixes)}) under DataSpec.S3.DataLocationS3; put the data there or "
            "fix the location or DataFormat",
            field="DataSpec.S3.DataLocationS3",
        )
    return found


def _open_csv(path: Path, column_types: dict[str, pa.DataType] | None) -> pacsv.CSVStreamingReader:
    convert = pacsv.ConvertOptions(
        column_types=column_types or {},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        true_values=["true", "True", "TRUE", "1"],
        false_values=["false", "False", "FALSE", "0"],
        timestamp_parsers=[pacsv.ISO8601],
    )
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    return pacsv.open_csv(pa.input_stream(str(path), compression="detect"), read, None, convert)


def _fits(values: pa.Array, candidate: pa.DataType) -> bool:
    try:
        pc.cast(values, candidate)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _csv_types(params: SnapshotParams, files: list[Path], root: Path) -> dict[str, pa.DataType]:
    """Each column's type, decided over every value of every file (the first pass)."""
    names: list[str] | None = None
    candidates: dict[str, list[pa.DataType]] = {}
    for path in files:
        try:
            reader = _open_csv(path, None)
            header = list(reader.schema.names)
            all_text = {n: pa.string() for n in header}
            reader.close()
            reader = _open_csv(path, all_text)
            _check_columns(params, names, header, path, root)
            if names is None:
                names = header
                candidates = {n: list(_CANDIDATES) for n in names}
            for batch in reader:
                for name, values in zip(batch.schema.names, batch.columns, strict=True):
                    kept = candidates[name]
                    if kept and values.null_count < len(values):
                        candidates[name] = [t for t in kept if _fits(values, t)]
        except pa.ArrowInvalid as e:
            raise _unreadable(params, path, root, e) from None
    return {n: (candidates[n][0] if candidates[n] else pa.string()) for n in names or []}


def _unreadable(params: SnapshotParams, path: Path, root: Path, e: Exception) -> DataSourceError:
    return DataSourceError(
        f"data source {params.data_source}: {path.relative_to(root).as_posix()} is not readable "
        f"as {params.format}: {e}",
        field="DataSpec.S3.DataLocationS3",
    )


def _check_columns(
    params: SnapshotParams, expected: list[str] | None, got: list[str], path: Path, root: Path
) -> None:
    if len(set(got)) != len(got):
        twice = next(n for n in got if got.count(n) > 1)
        raise DataSourceError(
            f"data source {params.data_source}: {path.relative_to(root).as_posix()} has two "
            f"columns named {twice!r}; give each column a distinct name",
            field="DataSpec.S3.DataLocationS3",
        )
    if expected is None or got == expected:
        return
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing:
        what = f"lacks the column {missing[0]!r}"
    elif extra:
        what = f"has the column {extra[0]!r}, which the first file lacks"
    else:
        what = "has the same columns in another order"
    raise DataSourceError(
        f"data source {params.data_source}: {path.relative_to(root).as_posix()} {what}; "
        f"every file must have the columns of the first ({', '.join(expected)}), in order",
        field="DataSpec.S3.DataLocationS3",
    )


def read_files(
    params: SnapshotParams, directory: Path
) -> tuple[pa.Schema, dict[str, str], Iterator[pa.RecordBatch]]:
    """The files' Arrow schema, each column's source type, and their rows as batches."""
    files = data_files(params, directory)
    if params.format == "CSV":
        types = _csv_types(params, files, directory)
        schema = pa.schema([pa.field(n, t) for n, t in types.items()])
        sources = {n: f"csv ({t})" for n, t in types.items()}
        return schema, sources, _csv_batches(params, files, directory, schema)
    try:
        first = pq.ParquetFile(files[0]).schema_arrow
    except (pa.ArrowInvalid, OSError) as e:
        raise _unreadable(params, files[0], directory, e) from None
    sources = {f.name: f"parquet ({f.type})" for f in first}
    return first, sources, _parquet_batches(params, files, directory, first)


def _csv_batches(
    params: SnapshotParams, files: list[Path], root: Path, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    types = {f.name: f.type for f in schema}
    for path in files:
        try:
            yield from _open_csv(path, types)
        except pa.ArrowInvalid as e:
            raise _unreadable(params, path, root, e) from None


def _parquet_batches(
    params: SnapshotParams, files: list[Path], root: Path, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    for path in files:
        try:
            source = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise _unreadable(params, path, root, e) from None
        _check_columns(params, schema.names, list(source.schema_arrow.names), path, root)
        for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            if batch.schema.equals(schema):
                yield batch
                continue
            arrays = []
            for field, values in zip(schema, batch.columns, strict=True):
                try:
                    arrays.append(pc.cast(values, field.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise DataSourceError(
                        f"data source {params.data_source}: {path.relative_to(root).as_posix()}"
                        f" has the column {field.name!r} as {values.type}, the first file as "
                        f"{field.type}, and its values do not convert; give every file the "
                        "same column types",
                        field="DataSpec.S3.DataLocationS3",
                    ) from None
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
