"""A training channel read from a data source: the rows its ``DataRearrangement`` selects, and
the effective schema beside them.

The download step fetched a snapshot's prefix into the channel's directory (``part-*.parquet``,
``schema.json``, ``insights.json``); ``rearrange_channel`` then keeps the rows
``DataRearrangement.splitting`` selects, with Amazon ML's semantics:

- ``sequential``: the rows at positions ``[floor(percentBegin% * N), floor(percentEnd% * N))``
  in file order (the parts sorted by name; N: their rows, from the files' metadata);
- ``random``: the row at position p when ``bucket(randomSeed, p)`` is in
  ``[percentBegin, percentEnd)``, where the bucket is SplitMix64 of the position XOR a
  64-bit BLAKE2b digest of the seed, modulo 100 (vectorized, stable across processes and
  machines), so the same seed and bounds pick the same rows and complementary bounds
  (0-70 and 70-100) partition the rows exactly;
- ``complement``: the rows outside the range instead.

The parts are rewritten in place batch by batch (to a temporary file, then renamed); a part
left with no rows is removed, unless none is left with rows (the first stays, empty, to keep
the table's schema). A part kept whole is not rewritten. ``schema.json`` becomes the effective
schema (``effective_schema``): the reference's ``AttributeTypes`` over the inferred types, its
``TargetAttributeName``, ``RowCount`` the rows kept, plus ``DataRearrangement`` and
``DataSource`` (``Name``, ``Version``).

A channel ``ShardedByS3Key`` over several hosts: each host rearranges what it downloaded (its
share of the parts), positions counted over that share, so a random split still partitions
each host's rows exactly, but a sequential one is a range of each host's share, not of the
whole snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.datasources.insights import BATCH_ROWS, splitmix64
from orchestrator.resources.datasources import SCHEMA_FILE, Splitting, effective_schema
from orchestrator.resources.training import DataSourceReference

PARTS = "part-*.parquet"
_CHUNK = 1 << 20  # positions hashed at once when counting a part's kept rows


def bucket(seed: str, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Each position's bucket in 0..99 for ``seed`` (``random`` splitting)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    salt = np.uint64(int.from_bytes(digest, "little"))
    out: npt.NDArray[np.uint64] = splitmix64(positions.astype(np.uint64) ^ salt) % np.uint64(100)
    return out


def keep_mask(
    splitting: Splitting, total: int, positions: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether each row position (of ``total`` rows) is kept."""
    if splitting.strategy == "sequential":
        lo = splitting.percentBegin * total // 100
        hi = splitting.percentEnd * total // 100
        inside = (positions >= lo) & (positions < hi)
    else:
        b = bucket(splitting.randomSeed, positions)
        inside = (b >= np.uint64(splitting.percentBegin)) & (b < np.uint64(splitting.percentEnd))
    out: npt.NDArray[np.bool_] = ~inside if splitting.complement else inside
    return out


def _kept_rows(splitting: Splitting, total: int, start: int, rows: int) -> int:
    kept = 0
    for lo in range(start, start + rows, _CHUNK):
        positions = np.arange(lo, min(lo + _CHUNK, start + rows), dtype=np.int64)
        kept += int(keep_mask(splitting, total, positions).sum())
    return kept


def _rewrite(part: pathlib.Path, splitting: Splitting, total: int, start: int) -> None:
    tmp = part.with_name(part.name + ".tmp")
    pf = pq.ParquetFile(part)
    try:
        with pq.ParquetWriter(tmp, pf.schema_arrow) as writer:
            position = start
            for group in range(pf.num_row_groups):
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
                    n = batch.num_rows
                    positions = np.arange(position, position + n, dtype=np.int64)
                    position += n
                    mask = keep_mask(splitting, total, positions)
                    if mask.any():
                        writer.write_batch(batch.filter(pa.array(mask)))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        pf.close()
    os.replace(tmp, part)


def _empty(part: pathlib.Path) -> None:
    schema = pq.read_schema(part)
    tmp = part.with_name(part.name + ".tmp")
    pq.write_table(schema.empty_table(), tmp)
    os.replace(tmp, part)


def rearrange_channel(
    channel_dir: pathlib.Path, reference: DataSourceReference, *, channel: str = ""
) -> int:
    """Keep the rows of ``channel_dir``'s parts that ``reference.DataRearrangement`` selects
    (all without one: nothing rewritten) and write the effective ``schema.json``; the rows
    kept."""
    prefix = f"InputDataConfig.{channel}.DataSource.DataSourceReference." if channel else ""
    parts = sorted(channel_dir.glob(PARTS))
    counts = [int(pq.read_metadata(p).num_rows) for p in parts]
    total = sum(counts)
    schema_path = channel_dir / SCHEMA_FILE
    if schema_path.is_file():
        schema_doc: dict[str, Any] = json.loads(schema_path.read_text())
    else:  # a snapshot without one: the columns' names only
        names = list(pq.read_schema(parts[0]).names) if parts else []
        schema_doc = {
            "Version": 1,
            "RowCount": total,
            "Attributes": [
                {"AttributeName": n, "AttributeType": "CATEGORICAL", "Reasons": []} for n in names
            ],
        }
    # Validated before any file changes.
    doc = effective_schema(
        schema_doc, reference.AttributeTypes, reference.TargetAttributeName, prefix=prefix
    )
    rearrangement = reference.DataRearrangement
    kept_total = total
    if rearrangement is not None:
        splitting = rearrangement.splitting
        kept_total = 0
        empty: list[pathlib.Path] = []
        start = 0
        for part, rows in zip(parts, counts, strict=True):
            kept = _kept_rows(splitting, total, start, rows)
            if kept == 0:
                empty.append(part)
            elif kept < rows:
                _rewrite(part, splitting, total, start)
            start += rows
            kept_total += kept
        if parts and len(empty) == len(parts):  # keep one part: the table's schema
            _empty(empty.pop(0))
        for part in empty:
            part.unlink()
    doc["RowCount"] = kept_total
    doc["DataRearrangement"] = (
        rearrangement.model_dump(mode="json") if rearrangement is not None else None
    )
    doc["DataSource"] = {"Name": reference.DataSourceName, "Version": reference.Version}
    tmp = schema_path.with_name(SCHEMA_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False))
    os.replace(tmp, schema_path)
    return kept_total


__all__ = ["bucket", "keep_mask", "rearrange_channel"]
