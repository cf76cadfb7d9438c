"""The snapshot step: ``python -m orchestrator.datasources.snapshot`` (the internal
``datasource-snapshot`` algorithm; ``algorithms/train.py`` hands such a job here).

It follows the training contract under ``$ORCH_ML_ROOT`` (``/opt/ml`` when unset):
hyperparameters from ``input/config/hyperparameters.json`` (``hyperparameters.py``), for a SQL
source the credentials from the ``credentials`` channel (one JSON file, deleted once read), for
an S3 source the objects in the ``data`` channel. The rows stream into Parquet parts
``output/dataset/part-NNNNN.parquet`` (a new part every ``PART_ROWS`` rows or ``PART_BYTES``),
then the profiler writes ``schema.json`` and ``insights.json`` beside them. Memory stays bounded
by a batch and a row group whatever the table's size. ``RowCount=`` and ``DataSizeInBytes=``
lines on stdout are the job's metrics. A failure writes its reason to ``output/failure``
(never the password) and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.datasources.errors import DataSourceError
from orchestrator.datasources.hyperparameters import SnapshotParams, parse_snapshot_hyperparameters
from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import DATASET_DIR, INSIGHTS_FILE, SCHEMA_FILE
from orchestrator.training.contract import ML_ROOT_ENV, MlPaths

CREDENTIALS_CHANNEL = "credentials"
DATA_CHANNEL = "data"
CREDENTIALS_FIELD = "DataSpec.Sql.DatabaseCredentials.SecretUri"
PART_ROWS = 1_000_000
PART_BYTES = 256 << 20  # of Arrow memory written to a part (its file is smaller)
ROW_GROUP_ROWS = 65_536  # the profiler decodes one row group at a time (insights.py)
# Measured on 100k-row groups (1M rows x 30 columns, this machine): random float64 took
# 0.64 s with snappy and no dictionary (232 MB), 1.24 s with zstd (219 MB), and 2.7-3.3 s
# with either when dictionary-encoded (which fails on high-cardinality floats and falls back);
# small integers took 0.43 s with snappy and 0.54 s with zstd, dictionary-encoded (26 MB both).
# So: snappy, with dictionaries for every column but the floating-point ones.
COMPRESSION = "snappy"
PROGRESS_SECONDS = 5.0
PROGRESS_ROWS = 1_000_000


def _log(message: str) -> None:
    print(message, flush=True)  # a plain line, never name=value: metric regexes skip it


def read_raw_hyperparameters(paths: MlPaths) -> dict[str, str]:
    file = paths.config_dir / "hyperparameters.json"
    if not file.is_file():
        raise ValidationError(
            f"{file} is missing: a snapshot job needs its hyperparameters", field="HyperParameters"
        )
    try:
        raw: Any = json.loads(file.read_text())
    except ValueError as e:
        raise ValidationError(f"{file} is not JSON: {e}", field="HyperParameters") from None
    if not isinstance(raw, dict):
        raise ValidationError(f"{file} must hold a JSON object", field="HyperParameters")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def read_credentials(paths: MlPaths, params: SnapshotParams) -> tuple[str, str]:
    """``(username, password)`` from the credentials channel's one file, which is then
    deleted (whatever it held), so that nothing after this step can read it."""
    directory = paths.channel_dir(CREDENTIALS_CHANNEL)
    found = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if len(found) != 1:
        for path in found:
            path.unlink(missing_ok=True)
        raise DataSourceError(
            f"data source {params.data_source}: the credentials channel holds {len(found)} "
            f"files, not one; point {CREDENTIALS_FIELD} at one JSON object "
            '{"Username": ..., "Password": ...}',
            field=CREDENTIALS_FIELD,
        )
    try:
        text = found[0].read_bytes()
    finally:
        found[0].unlink(missing_ok=True)
    try:
        document = json.loads(text)
    except ValueError:
        document = None  # the text itself may be the password: never in a message
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("Username"), str)
        or not document["Username"]
        or not isinstance(document.get("Password", ""), str)
    ):
        raise DataSourceError(
            f"data source {params.data_source}: the object at {CREDENTIALS_FIELD} is not a "
            'JSON object {"Username": "...", "Password": "..."} with a non-empty Username; '
            "store the credentials in that shape",
            field=CREDENTIALS_FIELD,
        )
    return str(document["Username"]), str(document.get("Password", ""))


class PartWriter:
    """Batches into Parquet parts of ``PART_ROWS`` rows, in row groups of ``ROW_GROUP_ROWS``:
    at most one row group is buffered."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory = directory
        self.schema = schema
        self.parts: list[Path] = []
        self.rows = 0
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._part_rows = 0
        self._part_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        while batch.num_rows:
            take = min(ROW_GROUP_ROWS - self._buffered, batch.num_rows)
            self._buffer.append(batch.slice(0, take))
            self._buffered += take
            batch = batch.slice(take)
            if self._buffered >= ROW_GROUP_ROWS:
                self._flush()

    def _open(self) -> pq.ParquetWriter:
        path = self.directory / f"part-{len(self.parts):05d}.parquet"
        self.parts.append(path)
        self._part_rows = self._part_bytes = 0
        dictionary = [f.name for f in self.schema if not pa.types.is_floating(f.type)]
        return pq.ParquetWriter(
            path, self.schema, compression=COMPRESSION, use_dictionary=dictionary
        )

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        self._buffer, self._buffered = [], 0
        if self._writer is None:
            self._writer = self._open()
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._part_rows += table.num_rows
        self._part_bytes += table.nbytes
        if self._part_rows >= PART_ROWS or self._part_bytes >= PART_BYTES:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is None and not self.parts:
            self._writer = self._open()  # no row: one empty part that has the schema
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.parts


def write_parts(
    directory: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> tuple[list[Path], int]:
    """Stream the batches into parts under ``directory``; ``(parts, rows)``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("part-*.parquet"):
        stale.unlink()  # a retried job's earlier attempt
    writer = PartWriter(directory, schema)
    started = last = time.monotonic()
    last_rows = 0
    for batch in batches:
        writer.write(batch)
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS or writer.rows - last_rows >= PROGRESS_ROWS:
            rate = writer.rows / max(now - started, 1e-9)
            _log(f"snapshot: {writer.rows:,} rows read, {rate:,.0f} rows/s")
            last, last_rows = now, writer.rows
    parts = writer.close()
    elapsed = time.monotonic() - started
    _log(
        f"snapshot: {writer.rows:,} rows in {len(parts)} part(s), {elapsed:.1f} s, "
        f"{writer.rows / max(elapsed, 1e-9):,.0f} rows/s"
    )
    return parts, writer.rows


def snapshot(paths: MlPaths, env: Mapping[str, str]) -> dict[str, Any]:
    """Read, write the parts, profile; returns the schema document."""
    del env
    params = parse_snapshot_hyperparameters(read_raw_hyperparameters(paths))
    what = f"version {params.version} of data source {params.data_source}"
    if params.source == "sql":
        from orchestrator.datasources import sql

        username, password = read_credentials(paths, params)
        _log(
            f"snapshot: {what}: reading a query from {params.engine} "
            f"{params.host}:{params.port}/{params.database} as {username}"
        )
        schema, source_types, batches = sql.read_query(params, username, password)
        del password
    else:
        from orchestrator.datasources import files

        _log(f"snapshot: {what}: reading the {params.format} files of the data channel")
        schema, source_types, batches = files.read_files(params, paths.channel_dir(DATA_CHANNEL))
    _log("snapshot: columns: " + ", ".join(f"{n} {source_types[n]}" for n in schema.names))
    out = paths.output_dir / DATASET_DIR
    parts, rows = write_parts(out, schema, batches)
    if rows == 0:
        _log(
            f"snapshot: {what} has no rows: the snapshot is one empty part with the schema, "
            "and the data source completes with RowCount 0"
        )
    if params.target and params.target not in schema.names:
        raise DataSourceError(
            f"data source {params.data_source}: the target attribute {params.target!r} is not "
            f"a column of the data ({', '.join(schema.names)}); fix TargetAttributeName",
            field="TargetAttributeName",
        )
    from orchestrator.datasources import insights

    schema_doc, insights_doc = insights.profile(
        parts,
        target=params.target,
        compute_statistics=params.compute_statistics,
        source_types=source_types,
    )
    size = sum(p.stat().st_size for p in parts)
    schema_doc["RowCount"] = rows
    schema_doc["DataSizeInBytes"] = size
    schema_doc["Files"] = [p.name for p in parts]
    (out / SCHEMA_FILE).write_text(json.dumps(schema_doc, indent=2))
    (out / INSIGHTS_FILE).write_text(json.dumps(insights_doc, indent=2))
    print(f"RowCount={rows}", flush=True)
    print(f"DataSizeInBytes={size}", flush=True)
    return schema_doc


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def fail(paths: MlPaths, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(message)
    return 1


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    paths = MlPaths(Path(env.get(ML_ROOT_ENV, "/opt/ml")))
    secrets = _secrets(paths)
    try:
        snapshot(paths, env)
    except ValidationError as e:
        return fail(paths, _scrub(e.message, secrets))
    except Exception as e:
        print(_scrub(traceback.format_exc(), secrets), file=sys.stderr, flush=True)
        return fail(paths, _scrub(f"the snapshot failed: {type(e).__name__}: {e}", secrets))
    return 0


def _secrets(paths: MlPaths) -> list[str]:
    """The password in the credentials file, if any, read before the step so that any message
    can be scrubbed of it (the step itself reads the file again and deletes it)."""
    directory = paths.channel_dir(CREDENTIALS_CHANNEL)
    if not directory.is_dir():
        return []
    out: list[str] = []
    for path in directory.rglob("*"):
        try:
            document = json.loads(path.read_bytes()) if path.is_file() else None
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and isinstance(document.get("Password"), str):
            out.append(document["Password"])
    return out


if __name__ == "__main__":
    sys.exit(main())
