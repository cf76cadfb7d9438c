"""A snapshot's schema and data insights, as Amazon ML infers and shows them.

``profile`` reads the snapshot's Parquet parts by record batches (memory bounded whatever the
row count: per-batch vectorized numpy/pyarrow work, bounded counters and samples), in two
passes when statistics are asked for: pass 1 counts (missing, invalid, distinct values with
their counts, numbers' min/max/moments, a bounded sample for the median, words), then the
types are inferred; pass 2 takes the histograms, the text's top words and the correlations
with the target (which need the types and the ranges of pass 1).

Type inference (the thresholds are the module's constants):

- ``BINARY``: a boolean column, or exactly two distinct values that are a pair of
  {0, 1}, {true, false}, {yes, no}, {y, n}, {t, f} (case-insensitive).
- ``CATEGORICAL``: whole numbers (integers; floats and numeric strings whose values are all
  whole: ratings, codes, a nullable integer column read as floats) or strings with few
  distinct values: at most ``max(CATEGORICAL_MIN_LIMIT, CATEGORICAL_SHARE * non-missing
  values)``, never more than ``CATEGORICAL_MAX_LIMIT``; also short strings (under
  ``TEXT_MIN_MEAN_WORDS`` words on average) with many distinct values (identifiers, codes).
- ``NUMERIC``: numbers with fractions, whole numbers with many distinct values, strings of
  which at least ``NUMERIC_STRING_SHARE`` parse as numbers (by the same rules; the rest are
  counted invalid), and dates, times and timestamps (Amazon ML has no date type: they are
  read as seconds since the epoch, or since midnight for a time of day).
- ``TEXT``: strings with many distinct values and at least ``TEXT_MIN_MEAN_WORDS`` words on
  average. A target is never TEXT (one inferred so is made CATEGORICAL).

Missing values are nulls and blank strings; invalid ones are NaN and infinities in float
columns, and the values of a numeric string column that do not parse. A snapshot of no rows
gets its types from the Arrow types alone (strings: CATEGORICAL).

Correlation with the target (``TargetCorrelation.Method``): ``Pearson`` for a numeric
attribute and a numeric target; ``CorrelationRatio`` (eta) between a numeric attribute and a
categorical or binary target, or a categorical or binary attribute and a numeric target;
``CramersV`` between categorical or binary attributes and target (a contingency table of the
``TOP_CATEGORIES`` most frequent values of each, plus one "other"); a TEXT attribute is
correlated by its number of words per row (``Pearson(WordCount)`` or
``CorrelationRatio(WordCount)``).

Warnings (``Code``): ``RareTargetClass`` (a target class under ``RARE_CLASS_SHARE`` of the
rows with a target, or under ``RARE_CLASS_ROWS`` rows), ``ConstantAttribute`` (one distinct
value), ``HighMissingShare`` (at least ``HIGH_MISSING_SHARE`` of the rows missing),
``TargetMissing`` (rows without a target) and ``HighInvalidShare`` (at least
``HIGH_INVALID_SHARE`` of the non-missing values invalid).

Distinct values are counted exactly up to ``DISTINCT_CAP``; past it the count is estimated
(a k-minimum-values sketch of 64-bit hashes; ``DistinctCountApproximate``) and the top values'
counts are lower bounds. The median is that of a uniform sample of ``SAMPLE_SIZE`` values
(exact below it). Every value of the documents is JSON-serializable (no NaN: null).

Memory: the batches are read one row group at a time and ``COLUMN_GROUP`` columns at a time
(with the target in pass 2), so at most that many columns of the largest row group are
decoded at once (best: parts with row groups of ``BATCH_ROWS`` rows); beyond it, a few batch-sized
arrays per column, ``DISTINCT_CAP`` counted values, a ``SAMPLE_SIZE`` sample and a
``SKETCH_K`` sketch per column. Columns of other Arrow types (binary, lists, structs) get
their missing count only and CATEGORICAL, with a reason saying they are not profiled.
"""

from __future__ import annotations

import math
import pathlib
import string
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import AttributeType

BATCH_ROWS = 65536
COLUMN_GROUP = 8
DISTINCT_CAP = 10_000
CATEGORICAL_MIN_LIMIT = 10
CATEGORICAL_SHARE = 0.05
CATEGORICAL_MAX_LIMIT = DISTINCT_CAP
NUMERIC_STRING_SHARE = 0.9
TEXT_MIN_MEAN_WORDS = 2.0
TOP_CATEGORIES = 20
TOP_WORDS = 20
HISTOGRAM_BINS = 20
SAMPLE_SIZE = 20_000
SKETCH_K = 4096
RARE_CLASS_SHARE = 0.01
RARE_CLASS_ROWS = 10
HIGH_MISSING_SHARE = 0.5
HIGH_INVALID_SHARE = 0.1

BINARY_PAIRS = [
    frozenset(p) for p in (("0", "1"), ("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"))
]
_NUMBER = r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
_PUNCTUATION = string.punctuation + "\u201c\u201d\u2018\u2019\u2026"
_UNIT_SECONDS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_U64 = npt.NDArray[np.uint64]
_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]


# --- hashing (the distinct-count sketch) -------------------------------------------------------
def splitmix64(x: _U64) -> _U64:
    """SplitMix64's finalizer, vectorized (uint64 arithmetic wraps)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: _U64 = z ^ (z >> np.uint64(31))
    return out


def _hash_floats(x: _F64) -> _U64:
    return splitmix64(np.ascontiguousarray(x + 0.0).view(np.uint64))  # +0.0: -0.0 is 0.0


def _hash_strings(arr: Any) -> _U64:
    """A 64-bit hash of each string of a null-free string array: CRC-32 of its UTF-8 bytes
    and its length, mixed (deterministic; 32 bits of the content are plenty for a distinct
    count). A loop in C per string: a batch's distinct values only are hashed."""
    values = arr.to_pylist()
    crc = np.fromiter((zlib.crc32(v.encode()) for v in values), dtype=np.uint64, count=len(values))
    lengths = np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False), dtype=np.uint64)
    return splitmix64(crc | (lengths << np.uint64(32)))


class Sketch:
    """K minimum values: the ``SKETCH_K`` smallest distinct hashes estimate the distinct count."""

    def __init__(self) -> None:
        self.mins: _U64 = np.zeros(0, dtype=np.uint64)

    def add(self, hashes: _U64) -> None:
        if len(self.mins) == SKETCH_K:
            hashes = hashes[hashes < self.mins[-1]]
        merged = np.sort(np.concatenate([self.mins, hashes]))
        if len(merged) > 1:
            merged = merged[np.concatenate([[True], merged[1:] != merged[:-1]])]
        self.mins = merged[:SKETCH_K]

    def estimate(self) -> int:
        if len(self.mins) < SKETCH_K:
            return len(self.mins)
        kth = float(self.mins[-1]) / 2.0**64
        return round((SKETCH_K - 1) / kth)


# --- one column's accumulators ---------------------------------------------------------------
@dataclass
class Moments:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, x: _F64) -> None:
        nb = len(x)
        if nb == 0:
            return
        mb = float(x.mean())
        m2b = float(np.square(x - mb).sum())
        total = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / total
        self.m2 += m2b + delta * delta * self.n * nb / total
        self.n = total
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))


class Sample:
    """A uniform sample (bottom-k of random priorities) of a column's numbers."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.values: _F64 = np.zeros(0)
        self.priorities: _F64 = np.zeros(0)

    def add(self, x: _F64) -> None:
        if len(x) == 0:
            return
        values = np.concatenate([self.values, x])
        priorities = np.concatenate([self.priorities, self.rng.random(len(x))])
        if len(values) > SAMPLE_SIZE:
            keep = np.argpartition(priorities, SAMPLE_SIZE)[:SAMPLE_SIZE]
            values, priorities = values[keep], priorities[keep]
        self.values, self.priorities = values, priorities

    def median(self) -> float | None:
        return float(np.median(self.values)) if len(self.values) else None


class Counter:
    """Distinct values with their counts: exact up to ``DISTINCT_CAP`` values; past it the
    most frequent (lower bounds of their counts) and a sketch of the distinct count."""

    def __init__(self, cap: int = DISTINCT_CAP) -> None:
        self.cap = cap
        self.counts: dict[Any, int] = {}
        self.overflow = False
        self.sketch = Sketch()

    def add(self, values: Any, hashes: Any, *, keep_top: bool = True) -> None:
        """``values``: a null-free Arrow array; ``hashes``: a function of the batch's distinct
        values (an Arrow array) to their uint64 hashes (used once past the cap).
        ``keep_top``: False when the most frequent values are not needed past the cap (a
        column of numbers with that many distinct values is NUMERIC)."""
        if len(values) == 0:
            return
        if self.overflow and not keep_top:
            self.sketch.add(hashes(values))
            return
        vc = pc.value_counts(values)
        keys, counts = vc.field("values"), vc.field("counts")
        if not self.overflow and len(self.counts) + len(keys) > self.cap:
            new = (
                len(keys)
                if len(keys) > self.cap
                else sum(1 for k in keys.to_pylist() if k not in self.counts)
            )
            if len(self.counts) + new > self.cap:
                self.overflow = True
                known = pa.array(list(self.counts), type=keys.type)
                self.sketch.add(hashes(known))
        if self.overflow:
            self.sketch.add(hashes(keys))
            if len(keys) > self.cap:  # keep the batch's most frequent
                counted = np.asarray(counts.to_numpy(zero_copy_only=False))
                top = pa.array(np.argpartition(-counted, self.cap)[: self.cap])
                keys, counts = keys.take(top), counts.take(top)
        for k, c in zip(keys.to_pylist(), counts.to_pylist(), strict=True):
            self.counts[k] = self.counts.get(k, 0) + c
        if self.overflow and len(self.counts) > 2 * self.cap:
            kept = sorted(self.counts.items(), key=lambda kv: -kv[1])[: self.cap]
            self.counts = dict(kept)

    @property
    def distinct(self) -> int:
        return max(self.sketch.estimate(), len(self.counts)) if self.overflow else len(self.counts)

    def top(self, k: int) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]


def _kind(t: Any) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_temporal(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    return "other"


def _temporal_seconds(arr: Any) -> Any:
    """A temporal array as float64 seconds (since the epoch; a time of day: since midnight)."""
    t = arr.type
    if pa.types.is_date32(t):
        return pc.multiply(pc.cast(pc.cast(arr, pa.int32()), pa.float64()), 86400.0)
    if pa.types.is_date64(t):
        return pc.divide(pc.cast(pc.cast(arr, pa.int64()), pa.float64()), 1000.0)
    unit = getattr(t, "unit", "s")
    width = pa.int32() if pa.types.is_time32(t) else pa.int64()
    raw = pc.cast(pc.cast(arr, width), pa.float64())
    return pc.divide(raw, _UNIT_SECONDS.get(unit, 1.0))


@dataclass
class Column:
    """One column's pass-1 accumulators, and its inferred type."""

    name: str
    arrow_type: Any
    kind: str
    statistics: bool
    seed: int
    missing: int = 0
    nonmissing: int = 0
    invalid_float: int = 0  # NaN/inf of a float column
    parsed: int = 0  # a string column's values that parse as numbers
    fractional: int = 0  # numbers that are not whole
    words: int = 0
    counter: Counter = field(default_factory=Counter)
    moments: Moments = field(default_factory=Moments)
    sample: Sample | None = None
    type: AttributeType = AttributeType.CATEGORICAL
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.statistics:
            self.sample = Sample(self.seed)

    # The batch's values, prepared the same way in both passes.
    def prepare(self, arr: Any) -> tuple[Any, _F64, npt.NDArray[np.bool_]]:
        """(values, numbers, missing): the values (strings trimmed; temporal as seconds), each
        row's number (NaN: missing, invalid or not a number) and whether it is missing."""
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        kind = self.kind
        if kind == "string":
            values = pc.utf8_trim_whitespace(pc.cast(arr, pa.large_string()))
            missing = pc.fill_null(pc.equal(pc.utf8_length(values), 0), True)
            matched = pc.fill_null(pc.match_substring_regex(values, _NUMBER), False)
            numbers = _to_float(pc.if_else(matched, values, pa.scalar(None, pa.large_string())))
            return values, numbers, np.asarray(missing.to_numpy(zero_copy_only=False))
        missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        if kind in ("int", "float"):
            values = arr
            numbers = _to_float(arr)
        elif kind == "time":
            values = _temporal_seconds(arr)
            numbers = _to_float(values)
        elif kind == "bool":
            values = arr
            numbers = _to_float(pc.cast(arr, pa.float64()))
        else:
            values = arr
            numbers = np.full(len(arr), np.nan)
        return values, numbers, missing

    def add(self, arr: Any) -> None:
        values, numbers, missing = self.prepare(arr)
        n_missing = int(missing.sum())
        self.missing += n_missing
        self.nonmissing += len(arr) - n_missing
        if self.kind == "other":
            return
        finite = numbers[np.isfinite(numbers)]
        if self.kind == "float":
            self.invalid_float += len(arr) - n_missing - len(finite)
        present = pc.filter(values, pa.array(~missing)) if n_missing else values
        if self.kind == "string":
            self.parsed += len(finite)
            self.words += int(
                pc.sum(pc.list_value_length(pc.utf8_split_whitespace(present))).as_py() or 0
            )
            self.counter.add(present, _hash_strings)
        elif self.kind == "bool":
            self.counter.add(present, lambda k: _hash_floats(_to_float(pc.cast(k, pa.float64()))))
        else:
            if self.kind == "float":
                present = pa.array(finite)
            self.counter.add(
                pc.cast(present, pa.float64()),
                lambda k: _hash_floats(_to_float(k)),
                keep_top=False,
            )
        if self.kind != "bool":
            if self.kind != "int":
                self.fractional += int(np.count_nonzero(finite != np.floor(finite)))
            self.moments.add(finite)
            if self.sample is not None:
                self.sample.add(finite)

    # --- inference ---------------------------------------------------------------------------
    @property
    def invalid(self) -> int:
        if self.kind == "float":
            return self.invalid_float
        if self.kind == "string" and self.type is AttributeType.NUMERIC:
            return self.nonmissing - self.parsed
        return 0

    def infer(self, rows: int, *, target: bool) -> None:
        t, reasons = self._infer(rows)
        if target and t is AttributeType.TEXT:
            t = AttributeType.CATEGORICAL
            reasons.append("the target cannot be TEXT, so it is CATEGORICAL")
        self.type, self.reasons = t, reasons

    def _infer(self, rows: int) -> tuple[AttributeType, list[str]]:
        source = str(self.arrow_type)
        if rows == 0 or self.nonmissing == 0 or self.kind == "other":
            t = {
                "bool": AttributeType.BINARY,
                "int": AttributeType.NUMERIC,
                "float": AttributeType.NUMERIC,
                "time": AttributeType.NUMERIC,
            }.get(self.kind, AttributeType.CATEGORICAL)
            if rows == 0:
                why = "there were no rows"
            elif self.kind == "other":
                why = f"values of type {source} are not profiled"
            else:
                why = f"all {rows:,} values are missing"
            return t, [f"{why}: {t.value} from the column's type {source}"]
        distinct = self.counter.distinct
        approx = "about " if self.counter.overflow else ""
        plural = "s" if distinct != 1 else ""
        of = f"{approx}{distinct:,} distinct value{plural} of {self.nonmissing:,} non-missing"
        if self.kind == "bool":
            return AttributeType.BINARY, [f"a boolean column ({of})"]
        keys = list(self.counter.counts)
        if not self.counter.overflow and 2 <= len(keys) <= 8:
            lowered = {_label(k).lower() for k in keys}
            if lowered in BINARY_PAIRS:
                shown = ", ".join(sorted(lowered))
                case = "" if len(keys) == 2 else f" ignoring case ({len(keys)} spellings)"
                return AttributeType.BINARY, [f"2 distinct values{case}: {shown}"]
        limit = min(
            CATEGORICAL_MAX_LIMIT,
            max(CATEGORICAL_MIN_LIMIT, math.floor(CATEGORICAL_SHARE * self.nonmissing)),
        )
        few = not self.counter.overflow and distinct <= limit
        rule = (
            f"at most {limit:,} (the larger of {CATEGORICAL_MIN_LIMIT} and "
            f"{CATEGORICAL_SHARE:.0%} of the non-missing values)"
        )
        if self.kind == "time":
            return AttributeType.NUMERIC, [
                f"dates and times are NUMERIC, as seconds since the epoch ({source}; {of})"
            ]
        if self.kind in ("int", "float"):
            return self._numbers(source, of, few, rule, limit)
        # strings
        mean_words = self.words / self.nonmissing
        share = self.parsed / self.nonmissing
        words = f"{mean_words:.1f} words on average"
        if share >= NUMERIC_STRING_SHARE:
            bad = self.nonmissing - self.parsed
            parse = (
                f"{_pct(share)} of values parse as numbers (at least {NUMERIC_STRING_SHARE:.0%})"
            )
            t, because = self._numbers("parsed", of, few, rule, limit)
            if t is AttributeType.NUMERIC:
                return t, [f"{parse}; the other {bad:,} are counted invalid", *because]
            return t, [parse, *because]
        if few:
            return AttributeType.CATEGORICAL, [f"strings with few distinct values: {of}, {rule}"]
        if mean_words >= TEXT_MIN_MEAN_WORDS:
            return AttributeType.TEXT, [f"strings with many distinct values: {of}, {words}"]
        return AttributeType.CATEGORICAL, [
            f"short strings with many distinct values: {of}, {words} "
            f"(under {TEXT_MIN_MEAN_WORDS:g} for TEXT)"
        ]

    def _numbers(
        self, source: str, of: str, few: bool, rule: str, limit: int
    ) -> tuple[AttributeType, list[str]]:
        """Numbers (integers, floats, numeric strings): whole numbers with few distinct values
        are CATEGORICAL (codes, ratings, a nullable integer column read as floats), the rest
        NUMERIC."""
        if self.fractional:
            return AttributeType.NUMERIC, [f"numbers with fractions ({source}; {of})"]
        what = "integers" if self.kind == "int" else "whole numbers"
        if few:
            return AttributeType.CATEGORICAL, [f"{what} with few distinct values: {of}, {rule}"]
        return AttributeType.NUMERIC, [
            f"{what} with many distinct values: {of}, more than {limit:,}"
        ]

    def categories(self) -> list[Any]:
        return [k for k, _ in self.counter.top(TOP_CATEGORIES)]


def _to_float(arr: Any) -> _F64:
    out = np.asarray(
        pc.fill_null(pc.cast(arr, pa.float64()), np.nan).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    out = out.copy() if not out.flags.writeable else out
    out[~np.isfinite(out)] = np.nan
    return out


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _pct(share: float) -> str:
    pct = share * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}%"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --- pass 2 accumulators -----------------------------------------------------------------------
@dataclass
class Pass2:
    histogram: _I64 | None = None
    words: Counter | None = None
    # Correlation sums: Pearson (n, sx, sy, sxx, syy, sxy), eta (per group n, s, ss) or a
    # contingency table.
    pearson: _F64 = field(default_factory=lambda: np.zeros(6))
    groups: _F64 | None = None  # (groups, 3)
    table: _I64 | None = None


def _groups(columns: list[Column]) -> Iterator[list[Column]]:
    """The columns ``COLUMN_GROUP`` at a time: each group is read on its own (Parquet decodes
    only the columns asked for), so a large row group is never decoded whole."""
    for start in range(0, len(columns), COLUMN_GROUP):
        yield columns[start : start + COLUMN_GROUP]


def _batches(files: list[pathlib.Path], columns: list[str]) -> Iterator[Any]:
    """The files' record batches, one row group at a time: ``iter_batches`` over a whole file
    reads ahead (every row group decoded at once, the whole table in memory), so memory is
    bounded by the largest row group (the snapshot writes them of ``BATCH_ROWS`` rows)."""
    for f in files:
        pf = pq.ParquetFile(f)
        try:
            for group in range(pf.num_row_groups):
                yield from pf.iter_batches(
                    batch_size=BATCH_ROWS, columns=columns, row_groups=[group]
                )
        finally:
            pf.close()


def _codes(col: Column, values: Any, missing: npt.NDArray[np.bool_], cats: list[Any]) -> _I64:
    """Each row's category: its index among ``cats``, ``len(cats)`` for another value, -1 when
    missing."""
    if col.kind == "string":
        value_set = pa.array(cats, type=pa.large_string())
    elif col.kind == "bool":
        value_set = pa.array(cats, type=pa.bool_())
        values = values.cast(pa.bool_())
    else:
        value_set = pa.array(cats, type=pa.float64())
        values = pc.cast(values, pa.float64())
    idx = pc.fill_null(pc.index_in(values, value_set=value_set), len(cats))
    codes = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64).copy()
    codes[missing] = -1
    return codes


def _word_counts(values: Any, missing: npt.NDArray[np.bool_]) -> _F64:
    counts = _to_float(pc.list_value_length(pc.utf8_split_whitespace(values)))
    counts[missing] = np.nan
    return counts


def _words(values: Any) -> Any:
    words = pc.list_flatten(pc.utf8_split_whitespace(pc.utf8_lower(values)))
    words = pc.utf8_trim(words, characters=_PUNCTUATION)
    return pc.filter(words, pc.greater(pc.utf8_length(words), 0))


def _eta(groups: _F64) -> float | None:
    n = groups[:, 0]
    total_n = n.sum()
    if total_n < 2:
        return None
    s = groups[:, 1].sum()
    ss_total = groups[:, 2].sum() - s * s / total_n
    nz = n > 0
    ss_between = float((groups[nz, 1] ** 2 / n[nz]).sum() - s * s / total_n)
    if ss_total <= 1e-12 * max(1.0, groups[:, 2].sum()) or nz.sum() < 2:
        return None
    return math.sqrt(min(1.0, max(0.0, ss_between / ss_total)))


def _pearson(p: _F64) -> float | None:
    n, sx, sy, sxx, syy, sxy = (float(v) for v in p)
    if n < 2:
        return None
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    if vx <= 1e-12 * max(1.0, sxx) or vy <= 1e-12 * max(1.0, syy):
        return None
    return max(-1.0, min(1.0, (sxy - sx * sy / n) / math.sqrt(vx * vy)))


def _cramers_v(table: _I64) -> float | None:
    t = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype(np.float64)
    n = t.sum()
    r, c = t.shape
    if n == 0 or min(r, c) < 2:
        return None
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float((np.square(t - expected) / expected).sum())
    return math.sqrt(min(1.0, chi2 / n / (min(r, c) - 1)))


# --- the entry point -------------------------------------------------------------------------
def profile(
    files: list[pathlib.Path],
    *,
    target: str | None,
    compute_statistics: bool,
    source_types: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema_doc, insights_doc)`` of the Parquet parts ``files`` (one schema). See the
    module's docstring for the rules."""
    schema = pq.read_schema(files[0]) if files else pa.schema([])
    names = list(schema.names)
    if target is not None and target not in names:
        raise ValidationError(
            f"TargetAttributeName: {target!r} is not a column of the data; the columns are "
            f"{', '.join(names) or '(none)'}",
            field="TargetAttributeName",
        )
    columns = [
        Column(n, schema.field(n).type, _kind(schema.field(n).type), compute_statistics, i)
        for i, n in enumerate(names)
    ]
    rows = sum(int(pq.read_metadata(f).num_rows) for f in files)
    for group in _groups(columns):
        for batch in _batches(files, [c.name for c in group]):
            for i, col in enumerate(group):
                col.add(batch.column(i))
    for col in columns:
        col.infer(rows, target=col.name == target)
    by_name = {c.name: c for c in columns}
    tcol = by_name.get(target) if target is not None else None

    schema_doc: dict[str, Any] = {
        "Version": 1,
        "RowCount": rows,
        "DataSizeInBytes": 0,
        "Files": [],
        "TargetAttributeName": target,
        "Attributes": [
            {
                "AttributeName": c.name,
                "AttributeType": c.type.value,
                "InferredType": c.type.value,
                "SourceType": source_types.get(c.name) or str(c.arrow_type),
                "Reasons": c.reasons,
            }
            for c in columns
        ],
    }
    second = _pass2(files, columns, tcol, rows) if compute_statistics and rows else {}
    attributes = [
        _attribute(c, rows, compute_statistics, second.get(c.name), tcol) for c in columns
    ]
    insights: dict[str, Any] = {
        "RowCount": rows,
        "TargetAttributeName": target,
        "Attributes": attributes,
        "Target": _target_doc(tcol, second.get(tcol.name) if tcol else None)
        if tcol is not None and compute_statistics
        else None,
        "Warnings": _warnings(columns, rows, tcol),
    }
    return schema_doc, insights


def _pass2(
    files: list[pathlib.Path], columns: list[Column], tcol: Column | None, rows: int
) -> dict[str, Pass2]:
    state = {c.name: Pass2() for c in columns}
    numeric_target = tcol is not None and tcol.type is AttributeType.NUMERIC
    tcats = tcol.categories() if tcol is not None and not numeric_target else []
    for group in _groups(columns):
        read = [c.name for c in group]
        if tcol is not None and tcol.name not in read:
            read.append(tcol.name)
        _pass2_group(files, group, read, state, target=(tcol, tcats))
    return state


def _pass2_group(
    files: list[pathlib.Path],
    group: list[Column],
    read: list[str],
    state: dict[str, Pass2],
    *,
    target: tuple[Column | None, list[Any]],
) -> None:
    tcol, tcats = target
    numeric_target = tcol is not None and tcol.type is AttributeType.NUMERIC
    for batch in _batches(files, read):
        y: _F64 | None = None
        ycodes: _I64 | None = None
        if tcol is not None:
            tv, tn, tm = tcol.prepare(batch.column(read.index(tcol.name)))
            if numeric_target:
                y = tn - tcol.moments.mean
            else:
                ycodes = _codes(tcol, tv, tm, tcats)
        for i, col in enumerate(group):
            st = state[col.name]
            if col.kind == "other":
                continue
            values, numbers, missing = col.prepare(batch.column(i))
            if col.type is AttributeType.NUMERIC and col.moments.n:
                lo, hi = col.moments.lo, col.moments.hi
                finite = numbers[np.isfinite(numbers)]
                counts = _histogram(finite, lo, hi)
                st.histogram = counts if st.histogram is None else st.histogram + counts
            if col.type is AttributeType.TEXT:
                if st.words is None:
                    st.words = Counter()
                words = _words(pc.filter(values, pa.array(~missing)))
                st.words.add(words, _hash_strings)
            if tcol is None or col is tcol:
                continue
            # The attribute as numbers (NUMERIC; TEXT by its words) or as categories.
            x: _F64 | None = None
            xcodes: _I64 | None = None
            if col.type is AttributeType.NUMERIC:
                x = numbers - col.moments.mean
            elif col.type is AttributeType.TEXT:
                x = _word_counts(values, missing)
            else:
                xcodes = _codes(col, values, missing, col.categories())
            if x is not None and y is not None:
                ok = np.isfinite(x) & np.isfinite(y)
                xs, ys = x[ok], y[ok]
                st.pearson += np.array(
                    # Not ``@``: BLAS's threads cost more than they give on a batch.
                    [len(xs), xs.sum(), ys.sum(), _dot(xs, xs), _dot(ys, ys), _dot(xs, ys)],
                    dtype=np.float64,
                )
            elif x is not None and ycodes is not None:
                _add_groups(st, ycodes, x, len(tcats) + 1)
            elif xcodes is not None and y is not None:
                _add_groups(st, xcodes, y, len(col.categories()) + 1)
            elif xcodes is not None and ycodes is not None:
                k1, k2 = len(col.categories()) + 1, len(tcats) + 1
                ok = (xcodes >= 0) & (ycodes >= 0)
                flat = np.bincount(xcodes[ok] * k2 + ycodes[ok], minlength=k1 * k2)
                table = flat.reshape(k1, k2).astype(np.int64)
                st.table = table if st.table is None else st.table + table


def _dot(a: _F64, b: _F64) -> float:
    return float(np.multiply(a, b).sum())


def _histogram(x: _F64, lo: float, hi: float) -> _I64:
    """Counts in ``HISTOGRAM_BINS`` equal bins over ``[lo, hi]`` (the last one closed), as
    ``np.histogram`` counts them, faster."""
    width = (hi - lo) / HISTOGRAM_BINS if hi > lo else 1.0 / HISTOGRAM_BINS
    idx = np.floor((x - lo) / width).astype(np.int64)
    np.clip(idx, 0, HISTOGRAM_BINS - 1, out=idx)
    out: _I64 = np.bincount(idx, minlength=HISTOGRAM_BINS).astype(np.int64)
    return out


def _add_groups(st: Pass2, codes: _I64, values: _F64, k: int) -> None:
    ok = (codes >= 0) & np.isfinite(values)
    c, v = codes[ok], values[ok]
    g = np.stack(
        [
            np.bincount(c, minlength=k).astype(np.float64),
            np.bincount(c, weights=v, minlength=k),
            np.bincount(c, weights=v * v, minlength=k),
        ],
        axis=1,
    )
    st.groups = g if st.groups is None else st.groups + g


def _histogram_doc(col: Column, st: Pass2 | None) -> dict[str, Any] | None:
    if st is None or st.histogram is None:
        return None
    lo, hi = col.moments.lo, col.moments.hi
    edges = np.linspace(lo, hi if hi > lo else lo + 1, HISTOGRAM_BINS + 1)
    return {"Edges": [float(e) for e in edges], "Counts": [int(c) for c in st.histogram]}


def _categories_doc(col: Column, limit: int = TOP_CATEGORIES) -> dict[str, Any]:
    top = col.counter.top(limit)
    shown = sum(c for _, c in top)
    return {
        "Top": [{"Value": _label(v), "Count": int(c)} for v, c in top],
        "OtherCount": max(0, col.nonmissing - shown),
    }


def _correlation(col: Column, st: Pass2 | None, tcol: Column | None) -> dict[str, Any] | None:
    if st is None or tcol is None or col is tcol:
        return None
    numeric_target = tcol.type is AttributeType.NUMERIC
    suffix = "(WordCount)" if col.type is AttributeType.TEXT else ""
    value: float | None
    if col.type in (AttributeType.NUMERIC, AttributeType.TEXT):
        if numeric_target:
            method, value = "Pearson" + suffix, _pearson(st.pearson)
        else:
            method = "CorrelationRatio" + suffix
            value = _eta(st.groups) if st.groups is not None else None
    elif numeric_target:
        method = "CorrelationRatio"
        value = _eta(st.groups) if st.groups is not None else None
    else:
        method = "CramersV"
        value = _cramers_v(st.table) if st.table is not None else None
    return {"Method": method, "Value": _num(value)}


def _attribute(
    col: Column, rows: int, statistics: bool, st: Pass2 | None, tcol: Column | None
) -> dict[str, Any]:
    invalid = col.invalid
    doc: dict[str, Any] = {
        "AttributeName": col.name,
        "AttributeType": col.type.value,
        "MissingCount": col.missing,
        "MissingShare": col.missing / rows if rows else 0.0,
        "InvalidCount": invalid,
        "InvalidShare": invalid / rows if rows else 0.0,
        "DistinctCount": col.counter.distinct,
        "DistinctCountApproximate": col.counter.overflow,
    }
    if not statistics:
        return doc
    numeric = None
    if col.type is AttributeType.NUMERIC and col.moments.n:
        m = col.moments
        numeric = {
            "Min": _num(m.lo),
            "Max": _num(m.hi),
            "Mean": _num(m.mean),
            "Std": _num(math.sqrt(m.m2 / m.n)),
            "Median": _num(col.sample.median() if col.sample else None),
            "Histogram": _histogram_doc(col, st),
        }
    categories = (
        _categories_doc(col)
        if col.type in (AttributeType.BINARY, AttributeType.CATEGORICAL) and col.nonmissing
        else None
    )
    text = None
    if col.type is AttributeType.TEXT:
        words = st.words if st is not None else None
        text = {
            "MeanWords": col.words / col.nonmissing if col.nonmissing else 0.0,
            "TopWords": [{"Value": str(v), "Count": int(c)} for v, c in words.top(TOP_WORDS)]
            if words is not None
            else [],
        }
    doc.update(
        {
            "Numeric": numeric,
            "Categories": categories,
            "Text": text,
            "TargetCorrelation": _correlation(col, st, tcol),
        }
    )
    return doc


def _target_doc(tcol: Column, st: Pass2 | None) -> dict[str, Any]:
    distribution: dict[str, Any] | None
    if tcol.type is AttributeType.NUMERIC:
        distribution = {"Histogram": _histogram_doc(tcol, st)}
    elif tcol.nonmissing:
        distribution = _categories_doc(tcol)
    else:
        distribution = None
    return {
        "AttributeName": tcol.name,
        "AttributeType": tcol.type.value,
        "MissingCount": tcol.missing,
        "Distribution": distribution,
    }


def _warnings(columns: list[Column], rows: int, tcol: Column | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def warn(col: Column, code: str, message: str) -> None:
        out.append({"AttributeName": col.name, "Code": code, "Message": message})

    if rows == 0:
        return out
    for col in columns:
        if col.nonmissing and not col.counter.overflow and col.counter.distinct == 1:
            ((value, _),) = col.counter.top(1)
            warn(
                col,
                "ConstantAttribute",
                f"{col.name}: one distinct value ({_label(value)}) in {col.nonmissing:,} "
                "non-missing rows; it cannot help a model",
            )
        share = col.missing / rows
        if share >= HIGH_MISSING_SHARE and col is not tcol:
            warn(
                col,
                "HighMissingShare",
                f"{col.name}: {col.missing:,} of {rows:,} values missing ({_pct(share)}; "
                f"warned from {HIGH_MISSING_SHARE:.0%})",
            )
        invalid = col.invalid
        if col.nonmissing and invalid / col.nonmissing >= HIGH_INVALID_SHARE:
            warn(
                col,
                "HighInvalidShare",
                f"{col.name}: {invalid:,} of {col.nonmissing:,} non-missing values invalid "
                f"({_pct(invalid / col.nonmissing)}; warned from {HIGH_INVALID_SHARE:.0%})",
            )
    if tcol is not None:
        if tcol.missing:
            warn(
                tcol,
                "TargetMissing",
                f"{tcol.name}: {tcol.missing:,} of {rows:,} rows have no target "
                f"({_pct(tcol.missing / rows)}); training skips them",
            )
        if tcol.type is not AttributeType.NUMERIC and tcol.nonmissing:
            for value, count in tcol.counter.top(TOP_CATEGORIES):
                share = count / tcol.nonmissing
                if share < RARE_CLASS_SHARE or count < RARE_CLASS_ROWS:
                    warn(
                        tcol,
                        "RareTargetClass",
                        f"{tcol.name}: the class {_label(value)} has {count:,} of "
                        f"{tcol.nonmissing:,} rows ({_pct(share)}; warned under "
                        f"{RARE_CLASS_SHARE:.0%} or {RARE_CLASS_ROWS} rows)",
                    )
    return out


__all__ = ["profile"]
