"""Amazon ML's recipes: a data source's typed table as the numeric features the algorithms take.

A :class:`Recipe` is fitted on the train channel only (one pass over its Parquet parts, record
batch by record batch) and then applied, unchanged, to every channel and to every request the
model serves; training saves it beside the model (``recipe.json``). Per attribute type:

- ``NUMERIC``: one column, the value as a float (ints, floats, decimals, bools, numeric
  strings; dates and timestamps as seconds since the epoch). A missing or invalid value is
  the train channel's mean of the valid values. No binning: the algorithms' Normalization
  layer (``normalize_data``, on by default) standardises every column, these included.
- ``BINARY``: one column, 1 for ``true/t/yes/y/1`` (any case, bools, the number 1), 0 for
  ``false/f/no/n/0``; a missing or unrecognised value is :data:`BINARY_MISSING` (0.5, halfway).
- ``CATEGORICAL``: one-hot over the train channel's :data:`MAX_CATEGORIES` most frequent
  values (ties in value order), then one ``<other>`` column for the rest and for values never
  seen in training. A missing value (null, empty string) sets no column (all zeros). Values are
  compared as stripped strings, case kept (a number as its shortest text: ``3.0`` is ``"3"``).
- ``TEXT``: Amazon ML's ``ngram(text, 2)``: lowercased, split on anything not a letter or digit,
  unigrams and bigrams (``"red car"``) counted into :data:`TEXT_BUCKETS` buckets by
  ``zlib.crc32`` of the UTF-8 n-gram (stable across processes, unlike ``hash()``), each count
  as ``log1p(count)``. A missing text counts nothing (all zeros).

The target (``TargetAttributeName``, required) by ``predictor_type``: a regressor's is a number;
a binary classifier's is 0/1 (a ``BINARY`` target through the words above, any other through
its two values in sorted order: the first is 0); a multiclass classifier's values are sorted
and numbered 0..K-1. The classes are recorded (``classes``). A row whose target is missing is
skipped (Amazon ML does the same); a held-out row whose class training never saw is an error.

The output is a dense float64 matrix: with the algorithms taking the whole matrix in memory,
a channel's features are held at once (``width`` floats per row); only the reading is bounded.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import ValidationError

FORMAT_VERSION = 1
RECIPE_FILE = "recipe.json"
SCHEMA_FILE = "schema.json"  # = orchestrator.resources.datasources.SCHEMA_FILE
PART_GLOB = "part-*.parquet"
MAX_CATEGORIES = 100
TEXT_BUCKETS = 2**10
BINARY_MISSING = 0.5
BATCH_ROWS = 65_536
OTHER = "<other>"
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n"})
TARGET_FIELD = "InputDataConfig.train.DataSource.DataSourceReference.TargetAttributeName"
TYPES = ("NUMERIC", "BINARY", "CATEGORICAL", "TEXT")
PREDICTOR_TYPES = ("regressor", "binary_classifier", "multiclass_classifier")

_SPLIT = re.compile(r"[\W_]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

Column: TypeAlias = Any  # a pyarrow Array or ChunkedArray, or a Python sequence


class RecipeError(ValidationError):
    """Data (or a request) a recipe cannot read; the message names the attribute."""


# ---- values: canonical strings and numbers, from Arrow arrays or Python lists ----


def canonical(value: Any) -> str | None:
    """A value as the text categories, binary words and n-grams are made of (None: missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _strings(values: Column) -> list[str | None]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return [v.strip() or None if v is not None else None for v in values.to_pylist()]
        values = values.to_pylist()
    return [canonical(v) for v in values]


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        number = float(value)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        number = (moment - _EPOCH).total_seconds()
    elif isinstance(value, date):
        number = float((value - _EPOCH.date()).days * 86400)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return _float(datetime.fromisoformat(text))
            except ValueError:
                return math.nan
    return number if math.isfinite(number) else math.nan


def numbers(values: Column) -> np.ndarray:
    """float64, NaN where missing or not a number; temporal values in epoch seconds."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        kind = values.type
        if (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)
        ):
            out = np.asarray(
                values.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
            )
            return np.where(np.isfinite(out), out, np.nan)
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            scale = (
                86400.0
                if pa.types.is_date32(kind)
                else 1e-3
                if pa.types.is_date64(kind)
                else _UNIT_SECONDS[kind.unit]
            )
            raw = values.cast(pa.int32() if pa.types.is_date32(kind) else pa.int64())
            out = np.asarray(raw.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
            return out * scale
        values = values.to_pylist()
    return np.fromiter((_float(v) for v in values), dtype=np.float64, count=len(values))


def binaries(values: Column) -> np.ndarray:
    """1.0 / 0.0, NaN where missing or not one of the binary words."""
    out = np.full(len(values), np.nan)
    for i, text in enumerate(_strings(values)):
        if text is None:
            continue
        word = text.lower()
        if word in TRUE_WORDS:
            out[i] = 1.0
        elif word in FALSE_WORDS:
            out[i] = 0.0
    return out


def ngrams(text: str) -> list[str]:
    """Amazon ML's ``ngram(text, 2)``: lowercased words and each pair of adjacent words."""
    words = [w for w in _SPLIT.split(text.lower()) if w]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def bucket(gram: str, buckets: int = TEXT_BUCKETS) -> int:
    return zlib.crc32(gram.encode("utf-8")) % buckets


def _sort_key(values: Iterable[str]) -> list[str]:
    texts = list(values)
    parsed = [_float(t) for t in texts]
    if all(not math.isnan(p) for p in parsed):
        return [t for _, t in sorted(zip(parsed, texts, strict=True))]
    return sorted(texts)


# ---- the recipe ----


@dataclass(frozen=True)
class AttributeRecipe:
    """How one attribute becomes columns."""

    name: str
    type: str
    mean: float = 0.0  # NUMERIC: the train mean, for missing values
    categories: tuple[str, ...] = ()  # CATEGORICAL: the one-hot columns, then OTHER
    buckets: int = 0  # TEXT

    @property
    def width(self) -> int:
        if self.type == "CATEGORICAL":
            return len(self.categories) + 1
        if self.type == "TEXT":
            return self.buckets
        return 1

    @property
    def feature_names(self) -> list[str]:
        if self.type == "CATEGORICAL":
            return [f"{self.name}={c}" for c in (*self.categories, OTHER)]
        if self.type == "TEXT":
            return [f"{self.name}:ngram[{i}]" for i in range(self.buckets)]
        return [self.name]

    def encode(self, values: Column) -> np.ndarray:
        """The attribute's ``[rows, width]`` block."""
        n = len(values)
        if self.type == "NUMERIC":
            x = numbers(values)
            return np.where(np.isnan(x), self.mean, x).reshape(n, 1)
        if self.type == "BINARY":
            x = binaries(values)
            return np.where(np.isnan(x), BINARY_MISSING, x).reshape(n, 1)
        out = np.zeros((n, self.width))
        texts = _strings(values)
        if self.type == "CATEGORICAL":
            index = {c: i for i, c in enumerate(self.categories)}
            other = len(self.categories)
            for row, text in enumerate(texts):
                if text is not None:
                    out[row, index.get(text, other)] = 1.0
            return out
        rows: list[int] = []
        cols: list[int] = []
        cache: dict[str, int] = {}
        for row, text in enumerate(texts):
            if text is None:
                continue
            for gram in ngrams(text):
                column = cache.get(gram)
                if column is None:
                    column = cache[gram] = bucket(gram, self.buckets)
                rows.append(row)
                cols.append(column)
        np.add.at(out, (np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)), 1.0)
        return np.log1p(out)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "NUMERIC":
            out["mean"] = self.mean
        if self.type == "CATEGORICAL":
            out["categories"] = list(self.categories)
        if self.type == "TEXT":
            out["buckets"] = self.buckets
        return out


@dataclass(frozen=True)
class TargetRecipe:
    """How the target becomes the label ``y``."""

    name: str
    type: str
    predictor_type: str
    classes: tuple[str, ...] = ()  # a classifier's class values; the label is the index

    def encode(self, values: Column, where: str, offset: int = 0) -> np.ndarray:
        """float64 labels, NaN where the target is missing (those rows are skipped)."""
        if self.predictor_type == "regressor":
            y = numbers(values)
            texts = _strings(values) if np.isnan(y).any() else []
            for i, text in enumerate(texts):
                if text is not None and np.isnan(y[i]):
                    raise RecipeError(
                        f"{where}, row {offset + i + 1}: target {self.name!r} value {text!r} "
                        "is not a number (a regressor's target is numeric)"
                    )
            return y
        if self.type == "BINARY" and self.predictor_type == "binary_classifier":
            y = binaries(values)
            for i, text in enumerate(_strings(values)):
                if text is not None and np.isnan(y[i]):
                    raise RecipeError(
                        f"{where}, row {offset + i + 1}: binary target {self.name!r} value "
                        f"{text!r} is none of {', '.join(sorted(TRUE_WORDS | FALSE_WORDS))}"
                    )
            return y
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.full(len(values), np.nan)
        for i, text in enumerate(_strings(values)):
            if text is None:
                continue
            if text not in index:
                raise RecipeError(
                    f"{where}, row {offset + i + 1}: target {self.name!r} value {text!r} is "
                    f"not one of the train channel's classes ({', '.join(self.classes)})"
                )
            y[i] = index[text]
        return y

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "predictor_type": self.predictor_type,
            "classes": list(self.classes),
        }


@dataclass(frozen=True)
class Recipe:
    attributes: tuple[AttributeRecipe, ...]
    target: TargetRecipe
    constants: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return sum(a.width for a in self.attributes)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(n for a in self.attributes for n in a.feature_names)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def num_classes(self) -> int:
        return len(self.target.classes)

    def features(self, columns: Mapping[str, Column], rows: int) -> np.ndarray:
        """``[rows, width]`` float64 from each attribute's column."""
        if not self.attributes:
            return np.zeros((rows, 0))
        return np.concatenate([a.encode(columns[a.name]) for a in self.attributes], axis=1)

    def transform_batch(
        self, batch: pa.RecordBatch | pa.Table, where: str, offset: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """A table's features and labels (NaN where the target is missing)."""
        names = set(batch.schema.names)
        for name in (*self.attribute_names, self.target.name):
            if name not in names:
                raise RecipeError(f"{where} has no column {name!r} (the recipe's attribute)")
        columns = {a.name: batch.column(a.name) for a in self.attributes}
        return (
            self.features(columns, batch.num_rows),
            self.target.encode(batch.column(self.target.name), where, offset),
        )

    def transform_items(
        self, items: Sequence[Any], where: Sequence[str] | None = None
    ) -> np.ndarray:
        """Requests' instances: objects by attribute name, or lists in the attribute order;
        ``where`` names each in errors (default ``instance <i>``). A target attribute in an
        object is ignored; a null is a missing value."""
        names = self.attribute_names
        known = set(names)
        columns: dict[str, list[Any]] = {n: [] for n in names}
        for index, item in enumerate(items):
            i = where[index] if where is not None else f"instance {index}"
            if isinstance(item, Mapping):
                missing = [n for n in names if n not in item]
                if missing:
                    raise RecipeError(
                        f"{i}: attribute {missing[0]!r} is missing (give null for a "
                        f"missing value); this model reads {', '.join(names)}",
                        field="body",
                    )
                extra = [k for k in item if k not in known and k != self.target.name]
                if extra:
                    raise RecipeError(
                        f"{i}: unknown attribute {str(extra[0])!r}; this model reads "
                        f"{', '.join(names)}",
                        field="body",
                    )
                for n in names:
                    columns[n].append(item[n])
            elif isinstance(item, list | tuple):
                if len(item) != len(names):
                    raise RecipeError(
                        f"{i} has {len(item)} values; this model reads {len(names)}, "
                        f"in this order, without the target {self.target.name!r}: "
                        f"{', '.join(names)}",
                        field="body",
                    )
                for n, value in zip(names, item, strict=True):
                    columns[n].append(value)
            else:
                raise RecipeError(
                    f"{i} is neither an object of attributes nor a list of values",
                    field="body",
                )
        return self.features(columns, len(items))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "target": self.target.to_dict(),
            "attributes": [a.to_dict() for a in self.attributes],
            "constants": self.constants,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        raw = json.loads(text)
        if raw.get("format_version") != FORMAT_VERSION:
            raise RecipeError(f"unsupported recipe format {raw.get('format_version')!r}")
        t = raw["target"]
        return cls(
            tuple(
                AttributeRecipe(
                    str(a["name"]),
                    str(a["type"]),
                    float(a.get("mean", 0.0)),
                    tuple(str(c) for c in a.get("categories", ())),
                    int(a.get("buckets", 0)),
                )
                for a in raw["attributes"]
            ),
            TargetRecipe(
                str(t["name"]),
                str(t["type"]),
                str(t["predictor_type"]),
                tuple(str(c) for c in t["classes"]),
            ),
            dict(raw.get("constants", {})),
        )

    def save(self, model_dir: Path) -> Path:
        path = model_dir / RECIPE_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, model_dir: Path) -> Recipe:
        return cls.from_json((model_dir / RECIPE_FILE).read_text())


# ---- fitting ----


@dataclass(frozen=True)
class SchemaAttribute:
    name: str
    type: str


def read_schema(directory: Path) -> tuple[list[SchemaAttribute], str | None]:
    """A channel's ``schema.json`` (``DataSourceSchema``): its attributes and target."""
    path = directory / SCHEMA_FILE
    try:
        raw = json.loads(path.read_text())
        attributes = [
            SchemaAttribute(str(a["AttributeName"]), str(a["AttributeType"]))
            for a in raw["Attributes"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RecipeError(f"{directory.name}/{SCHEMA_FILE} is not a data source schema: {e}") from e
    for a in attributes:
        if a.type not in TYPES:
            raise RecipeError(
                f"{directory.name}/{SCHEMA_FILE}: attribute {a.name!r} has type {a.type!r}; "
                f"the types are {', '.join(TYPES)}"
            )
    target = raw.get("TargetAttributeName")
    return attributes, str(target) if target else None


def part_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob(PART_GLOB) if p.is_file())


def iter_batches(path: Path, columns: list[str]) -> Iterable[pa.RecordBatch]:
    try:
        file = pq.ParquetFile(path)
        present = set(file.schema_arrow.names)
        for name in columns:
            if name not in present:
                raise RecipeError(
                    f"{path.name} has no column {name!r} (an attribute of the schema)"
                )
        yield from file.iter_batches(batch_size=BATCH_ROWS, columns=columns)
    except RecipeError:
        raise
    except (OSError, pa.ArrowException) as e:
        raise RecipeError(f"{path.name} is not a readable Parquet file: {e}") from e


@dataclass
class _Stats:
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    categories: dict[str, Counter[str]] = field(default_factory=dict)
    target: Counter[str] = field(default_factory=Counter)


def fit(
    directory: Path, predictor_type: str, num_classes: int | None = None, channel: str = "train"
) -> Recipe:
    """The recipe of a data-source channel (``schema.json`` and ``part-*.parquet``)."""
    if predictor_type not in PREDICTOR_TYPES:
        raise RecipeError(f"unknown predictor_type {predictor_type!r}")
    attributes, target = read_schema(directory)
    if target is None:
        raise RecipeError(
            f"the {channel} channel reads a data source without a target: set {TARGET_FIELD} "
            "(or the data source's TargetAttributeName) to the attribute to predict",
            field=TARGET_FIELD,
        )
    types = {a.name: a.type for a in attributes}
    if target not in types:
        raise RecipeError(
            f"the target {target!r} is not an attribute of the data source; its attributes are "
            f"{', '.join(types)}",
            field=TARGET_FIELD,
        )
    features = [a for a in attributes if a.name != target]
    files = part_files(directory)
    if not files:
        raise RecipeError(f"the {channel} channel has {SCHEMA_FILE} but no {PART_GLOB} file")
    stats = _Stats()
    for path in files:
        for batch in iter_batches(path, [*(a.name for a in features), target]):
            _observe(stats, batch, features, target)
    target_type = types[target]
    classes = _classes(
        stats.target,
        target=target,
        target_type=target_type,
        predictor_type=predictor_type,
        num_classes=num_classes,
        channel=channel,
    )
    recipe_attributes = []
    for a in features:
        if a.type == "NUMERIC":
            count = stats.counts.get(a.name, 0)
            mean = stats.sums.get(a.name, 0.0) / count if count else 0.0
            recipe_attributes.append(AttributeRecipe(a.name, a.type, mean=mean))
        elif a.type == "CATEGORICAL":
            counter = stats.categories.get(a.name, Counter())
            top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]
            recipe_attributes.append(
                AttributeRecipe(a.name, a.type, categories=tuple(c for c, _ in top))
            )
        elif a.type == "TEXT":
            recipe_attributes.append(AttributeRecipe(a.name, a.type, buckets=TEXT_BUCKETS))
        else:
            recipe_attributes.append(AttributeRecipe(a.name, a.type))
    constants = {
        "max_categories": MAX_CATEGORIES,
        "text_buckets": TEXT_BUCKETS,
        "text_counts": "log1p",
        "ngram": 2,
        "hash": "crc32",
        "binary_missing": BINARY_MISSING,
    }
    return Recipe(
        tuple(recipe_attributes),
        TargetRecipe(target, target_type, predictor_type, classes),
        constants,
    )


def _observe(
    stats: _Stats, batch: pa.RecordBatch, features: list[SchemaAttribute], target: str
) -> None:
    for a in features:
        values = batch.column(a.name)
        if a.type == "NUMERIC":
            x = numbers(values)
            valid = x[~np.isnan(x)]
            stats.sums[a.name] = stats.sums.get(a.name, 0.0) + float(valid.sum())
            stats.counts[a.name] = stats.counts.get(a.name, 0) + int(valid.size)
        elif a.type == "CATEGORICAL":
            counter = stats.categories.setdefault(a.name, Counter())
            counter.update(t for t in _strings(values) if t is not None)
    stats.target.update(t for t in _strings(batch.column(target)) if t is not None)


def _classes(
    seen: Counter[str],
    *,
    target: str,
    target_type: str,
    predictor_type: str,
    num_classes: int | None,
    channel: str,
) -> tuple[str, ...]:
    if predictor_type == "regressor":
        return ()
    if not seen:
        raise RecipeError(f"the {channel} channel's target {target!r} has no value")
    if predictor_type == "binary_classifier":
        if target_type == "BINARY":
            return ("false", "true")
        if len(seen) != 2:
            shown = ", ".join(repr(v) for v in _sort_key(seen)[:10])
            raise RecipeError(
                f"a binary classifier's target needs two values; {target!r} has {len(seen)} in "
                f"the {channel} channel: {shown}"
            )
        return tuple(_sort_key(seen))
    classes = tuple(_sort_key(seen))
    if len(classes) < 2:
        raise RecipeError(
            f"the {channel} channel's target {target!r} has a single class ({classes[0]!r}); "
            "a classifier needs at least two"
        )
    if num_classes is not None and len(classes) != num_classes:
        raise RecipeError(
            f"num_classes is {num_classes} but the {channel} channel's target {target!r} has "
            f"{len(classes)} classes: {', '.join(classes[:20])}",
            field="num_classes",
        )
    return classes


def is_datasource_channel(directory: Path) -> bool:
    return (directory / SCHEMA_FILE).is_file() and bool(part_files(directory))


def transform_channel(directory: Path, recipe: Recipe) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A channel's features, labels and each row's origin; rows without a target skipped."""
    files = part_files(directory)
    if not files:
        raise RecipeError(f"channel {directory.name!r} has no {PART_GLOB} file")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    origins: list[str] = []
    columns = [*recipe.attribute_names, recipe.target.name]
    for path in files:
        start = 0
        for batch in iter_batches(path, columns):
            x, y = recipe.transform_batch(batch, f"{directory.name}/{path.name}", start)
            keep = ~np.isnan(y)
            xs.append(x[keep])
            ys.append(y[keep])
            origins.extend(f"{path.name}, row {start + int(i) + 1}" for i in np.flatnonzero(keep))
            start += batch.num_rows
    return (
        np.concatenate(xs) if xs else np.zeros((0, recipe.width)),
        np.concatenate(ys) if ys else np.zeros(0),
        origins,
    )
