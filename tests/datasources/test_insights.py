"""A snapshot's schema and insights (``orchestrator.datasources.insights``)."""

from __future__ import annotations

import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.datasources.insights import profile
from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import DataSourceSchema

N = 2000
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def mixed_table(n: int = N, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    label = np.where(signal > 0, "up", "down").astype(object)
    label[:5] = "rare"  # a rare class (5 rows)
    sentences = [
        " ".join(rng.choice(WORDS, size=int(rng.integers(4, 11)))) + f" no{i}." for i in range(n)
    ]
    numberish = [f"{v:.3f}" for v in rng.normal(size=n)]
    for i in range(0, n, 50):  # 2% bad values
        numberish[i] = "n/a"
    mostly_null = [None if i % 10 else float(i) for i in range(n)]
    day0 = dt.date(2024, 1, 1)
    return pa.table(
        {
            "score": pa.array(signal * 3 + 10 + rng.normal(scale=0.1, size=n)),
            "noise": pa.array(rng.normal(size=n)),
            "step": pa.array(np.where(signal > 0, 3.0, -3.0) + rng.normal(scale=0.1, size=n)),
            "flag01": pa.array(rng.integers(0, 2, size=n), pa.int64()),
            "answer": pa.array(rng.choice(["yes", "no", "Yes"], size=n)),
            "color": pa.array(rng.choice(["red", "green", "blue", "black"], size=n)),
            "comment": pa.array(sentences),
            "numberish": pa.array(numberish),
            "constant": pa.array([7] * n, pa.int32()),
            "mostly_null": pa.array(mostly_null, pa.float64()),
            "day": pa.array([day0 + dt.timedelta(days=i % 400) for i in range(n)], pa.date32()),
            "target_num": pa.array(signal * 2 + rng.normal(scale=0.05, size=n)),
            "target_cat": pa.array(label.tolist()),
        }
    )


def write_parts(tmp_path: Path, table: pa.Table, parts: int = 2) -> list[Path]:
    files = []
    step = -(-table.num_rows // parts) if table.num_rows else 0
    for i in range(parts):
        f = tmp_path / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * step, step) if step else table, f)
        files.append(f)
    return files


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["AttributeName"]: a for a in doc["Attributes"]}


SOURCE = {"score": "double", "flag01": "int4", "answer": "VARCHAR", "comment": "text"}


@pytest.fixture
def numeric_target(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    files = write_parts(tmp_path, mixed_table())
    return profile(files, target="target_num", compute_statistics=True, source_types=SOURCE)


@pytest.fixture
def categorical_target(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    files = write_parts(tmp_path, mixed_table())
    return profile(files, target="target_cat", compute_statistics=True, source_types=SOURCE)


def test_types_and_reasons(numeric_target: tuple[dict[str, Any], dict[str, Any]]) -> None:
    schema, insights = numeric_target
    DataSourceSchema.model_validate(schema)
    json.dumps(schema, allow_nan=False)
    json.dumps(insights, allow_nan=False)
    assert schema["RowCount"] == N and schema["TargetAttributeName"] == "target_num"
    attrs = by_name(schema)
    types = {n: a["AttributeType"] for n, a in attrs.items()}
    assert types == {
        "score": "NUMERIC",
        "noise": "NUMERIC",
        "step": "NUMERIC",
        "flag01": "BINARY",
        "answer": "BINARY",
        "color": "CATEGORICAL",
        "comment": "TEXT",
        "numberish": "NUMERIC",
        "constant": "CATEGORICAL",
        "mostly_null": "NUMERIC",
        "day": "NUMERIC",
        "target_num": "NUMERIC",
        "target_cat": "CATEGORICAL",
    }
    assert all(a["InferredType"] == a["AttributeType"] for a in attrs.values())
    assert attrs["flag01"]["Reasons"] == ["2 distinct values: 0, 1"]
    assert attrs["flag01"]["SourceType"] == "int4"
    assert attrs["noise"]["SourceType"] == "double"  # from the Arrow type
    assert "98% of values parse as numbers" in attrs["numberish"]["Reasons"][0]
    assert "2,000 non-missing" in attrs["comment"]["Reasons"][0]
    assert "words on average" in attrs["comment"]["Reasons"][0]
    assert "seconds since the epoch" in attrs["day"]["Reasons"][0]
    assert "4 distinct values" in attrs["color"]["Reasons"][0]


def test_counts_histograms_categories(
    numeric_target: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, insights = numeric_target
    attrs = by_name(insights)
    assert insights["RowCount"] == N
    mn = attrs["mostly_null"]
    assert mn["MissingCount"] == N - N // 10 and mn["MissingShare"] == pytest.approx(0.9)
    ni = attrs["numberish"]
    assert ni["InvalidCount"] == N // 50 and ni["MissingCount"] == 0
    for name in ("score", "noise", "numberish", "mostly_null", "day"):
        a = attrs[name]
        counts = a["Numeric"]["Histogram"]["Counts"]
        assert sum(counts) == N - a["MissingCount"] - a["InvalidCount"], name
        assert len(a["Numeric"]["Histogram"]["Edges"]) == len(counts) + 1
    noise = attrs["noise"]["Numeric"]
    assert noise["Min"] <= noise["Median"] <= noise["Max"]
    assert abs(noise["Mean"]) < 0.1 and noise["Std"] == pytest.approx(1.0, abs=0.1)
    color = attrs["color"]["Categories"]
    assert {t["Value"] for t in color["Top"]} == {"red", "green", "blue", "black"}
    assert sum(t["Count"] for t in color["Top"]) == N and color["OtherCount"] == 0
    assert attrs["color"]["DistinctCount"] == 4 and not attrs["color"]["DistinctCountApproximate"]
    assert attrs["comment"]["Text"]["MeanWords"] > 4
    assert {t["Value"] for t in attrs["comment"]["Text"]["TopWords"][:5]} <= set(WORDS)
    assert attrs["comment"]["Categories"] is None and attrs["score"]["Categories"] is None


def test_correlations_with_a_numeric_target(
    numeric_target: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, insights = numeric_target
    attrs = by_name(insights)
    assert attrs["score"]["TargetCorrelation"]["Method"] == "Pearson"
    assert attrs["score"]["TargetCorrelation"]["Value"] > 0.8
    assert abs(attrs["noise"]["TargetCorrelation"]["Value"]) < 0.1
    assert attrs["target_cat"]["TargetCorrelation"]["Method"] == "CorrelationRatio"
    assert attrs["target_cat"]["TargetCorrelation"]["Value"] > 0.7
    assert attrs["color"]["TargetCorrelation"]["Value"] < 0.15
    assert attrs["comment"]["TargetCorrelation"]["Method"] == "Pearson(WordCount)"
    assert attrs["target_num"]["TargetCorrelation"] is None
    target = insights["Target"]
    assert target["AttributeType"] == "NUMERIC"
    assert sum(target["Distribution"]["Histogram"]["Counts"]) == N


def test_correlations_with_a_categorical_target(
    categorical_target: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, insights = categorical_target
    attrs = by_name(insights)
    assert attrs["score"]["TargetCorrelation"]["Method"] == "CorrelationRatio"
    assert attrs["score"]["TargetCorrelation"]["Value"] > 0.75  # sqrt(2 / pi) for its sign
    assert attrs["step"]["TargetCorrelation"]["Value"] > 0.95
    assert attrs["noise"]["TargetCorrelation"]["Value"] < 0.1
    assert attrs["color"]["TargetCorrelation"]["Method"] == "CramersV"
    assert attrs["color"]["TargetCorrelation"]["Value"] < 0.1
    assert attrs["answer"]["TargetCorrelation"]["Method"] == "CramersV"
    target = insights["Target"]
    assert target["AttributeType"] == "CATEGORICAL"
    assert {t["Value"] for t in target["Distribution"]["Top"]} == {"up", "down", "rare"}


def test_a_categorical_feature_that_decides_the_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cls = rng.choice(["a", "b", "c"], size=3000)
    copy = np.where(rng.random(3000) < 0.95, cls, "a")
    table = pa.table({"feature": pa.array(copy), "label": pa.array(cls)})
    files = write_parts(tmp_path, table, parts=1)
    _, insights = profile(files, target="label", compute_statistics=True, source_types={})
    corr = by_name(insights)["feature"]["TargetCorrelation"]
    assert corr["Method"] == "CramersV" and corr["Value"] > 0.8


def test_warnings(categorical_target: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, insights = categorical_target
    warnings = {(w["AttributeName"], w["Code"]): w["Message"] for w in insights["Warnings"]}
    assert "rare" in warnings["target_cat", "RareTargetClass"]
    assert "5 of 2,000" in warnings["target_cat", "RareTargetClass"]
    assert "one distinct value (7)" in warnings["constant", "ConstantAttribute"]
    assert "90%" in warnings["mostly_null", "HighMissingShare"]
    assert ("numberish", "HighInvalidShare") not in warnings  # 2% is under the threshold
    assert not any(code == "TargetMissing" for _, code in warnings)


def test_target_missing_and_high_invalid(tmp_path: Path) -> None:
    y = [None if i % 4 == 0 else float(i % 3) + 0.5 for i in range(400)]
    x = [str(i) if i % 5 else "bad value" for i in range(400)]
    table = pa.table({"y": pa.array(y), "x": pa.array(x), "z": pa.array(np.arange(400.0))})
    files = write_parts(tmp_path, table, parts=1)
    _, insights = profile(files, target="y", compute_statistics=True, source_types={})
    codes = {(w["AttributeName"], w["Code"]) for w in insights["Warnings"]}
    assert ("y", "TargetMissing") in codes
    x_doc = by_name(insights)["x"]
    assert x_doc["AttributeType"] == "CATEGORICAL"  # 80% numbers: under 90%
    assert ("x", "HighInvalidShare") not in codes
    # 90% numbers: NUMERIC, the rest invalid; over 10% invalid warns.
    x2 = [str(i * 1.5) if i % 10 else "oops" for i in range(400)]
    pq.write_table(pa.table({"x": pa.array(x2)}), tmp_path / "x2.parquet")
    _, ins2 = profile(
        [tmp_path / "x2.parquet"], target=None, compute_statistics=True, source_types={}
    )
    a = by_name(ins2)["x"]
    assert a["AttributeType"] == "NUMERIC" and a["InvalidCount"] == 40
    assert ("x", "HighInvalidShare") in {(w["AttributeName"], w["Code"]) for w in ins2["Warnings"]}


def test_float_nan_and_inf_are_invalid(tmp_path: Path) -> None:
    values = [1.5, float("nan"), float("inf"), None, 2.5, 3.5] * 10
    pq.write_table(pa.table({"v": pa.array(values, pa.float64())}), tmp_path / "p.parquet")
    _, insights = profile(
        [tmp_path / "p.parquet"], target=None, compute_statistics=True, source_types={}
    )
    a = insights["Attributes"][0]
    assert a["MissingCount"] == 10 and a["InvalidCount"] == 20
    assert a["AttributeType"] == "NUMERIC" and a["Numeric"]["Max"] == 3.5
    json.dumps(insights, allow_nan=False)


def test_whole_numbers_with_few_values_are_categorical(tmp_path: Path) -> None:
    table = pa.table(
        {
            "rating": pa.array([float(i % 5 + 1) if i % 7 else None for i in range(500)]),
            "code": pa.array([str(100 + i % 4) for i in range(500)]),
            "count": pa.array(np.arange(500), pa.int16()),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    schema, _ = profile(
        [tmp_path / "p.parquet"], target=None, compute_statistics=False, source_types={}
    )
    attrs = by_name(schema)
    assert attrs["rating"]["AttributeType"] == "CATEGORICAL"
    assert attrs["rating"]["Reasons"][0].startswith("whole numbers with few distinct values: 5")
    assert attrs["code"]["AttributeType"] == "CATEGORICAL"
    assert attrs["code"]["Reasons"][0] == "100% of values parse as numbers (at least 90%)"
    assert attrs["count"]["AttributeType"] == "NUMERIC"
    assert "more than 25" in attrs["count"]["Reasons"][0]


def test_boolean_and_true_false_strings(tmp_path: Path) -> None:
    table = pa.table(
        {
            "b": pa.array([True, False, None, True] * 25),
            "s": pa.array(["T", "f", "t", "F"] * 25),
            "one_of_two": pa.array(["maybe", "no"] * 50),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    schema, insights = profile(
        [tmp_path / "p.parquet"], target="b", compute_statistics=True, source_types={}
    )
    types = {a["AttributeName"]: a["AttributeType"] for a in schema["Attributes"]}
    assert types == {"b": "BINARY", "s": "BINARY", "one_of_two": "CATEGORICAL"}
    assert by_name(schema)["s"]["Reasons"] == [
        "2 distinct values ignoring case (4 spellings): f, t"
    ]
    assert insights["Target"]["Distribution"]["Top"][0] == {"Value": "true", "Count": 50}
    assert by_name(insights)["one_of_two"]["TargetCorrelation"]["Method"] == "CramersV"


def test_zero_rows(tmp_path: Path) -> None:
    empty = mixed_table().slice(0, 0)
    files = write_parts(tmp_path, empty, parts=1)
    schema, insights = profile(files, target="target_cat", compute_statistics=True, source_types={})
    DataSourceSchema.model_validate(schema)
    json.dumps(insights, allow_nan=False)
    attrs = by_name(schema)
    assert schema["RowCount"] == 0 and insights["RowCount"] == 0
    assert attrs["score"]["AttributeType"] == "NUMERIC"
    assert attrs["comment"]["AttributeType"] == "CATEGORICAL"
    assert attrs["day"]["AttributeType"] == "NUMERIC"
    assert all("no rows" in a["Reasons"][0] for a in attrs.values())
    assert insights["Warnings"] == []
    assert by_name(insights)["score"]["MissingShare"] == 0.0


def test_target_not_a_column(tmp_path: Path) -> None:
    files = write_parts(tmp_path, mixed_table(50), parts=1)
    with pytest.raises(ValidationError) as e:
        profile(files, target="nope", compute_statistics=True, source_types={})
    assert e.value.field == "TargetAttributeName"
    assert "TargetAttributeName" in e.value.message and "score, noise" in e.value.message


def test_without_statistics(tmp_path: Path) -> None:
    files = write_parts(tmp_path, mixed_table())
    schema, insights = profile(
        files, target="target_cat", compute_statistics=False, source_types={}
    )
    assert by_name(schema)["comment"]["AttributeType"] == "TEXT"
    a = by_name(insights)["mostly_null"]
    assert a["MissingCount"] == 1800 and "Numeric" not in a
    assert insights["Target"] is None
    codes = {(w["AttributeName"], w["Code"]) for w in insights["Warnings"]}
    assert ("target_cat", "RareTargetClass") in codes and ("constant", "ConstantAttribute") in codes


def test_distinct_count_past_the_cap_is_approximate(tmp_path: Path) -> None:
    n = 60_000
    table = pa.table(
        {
            "id": pa.array([f"id-{i}" for i in range(n)]),
            "x": pa.array(np.arange(n, dtype=np.float64) % 30_000),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=10_000)
    schema, insights = profile(
        [tmp_path / "p.parquet"], target=None, compute_statistics=True, source_types={}
    )
    attrs = by_name(insights)
    assert attrs["id"]["DistinctCountApproximate"] and attrs["x"]["DistinctCountApproximate"]
    assert attrs["id"]["DistinctCount"] == pytest.approx(n, rel=0.1)
    assert attrs["x"]["DistinctCount"] == pytest.approx(30_000, rel=0.1)
    assert by_name(schema)["id"]["AttributeType"] == "CATEGORICAL"  # short strings
    assert "about" in by_name(schema)["id"]["Reasons"][0]


def test_a_million_rows_in_bounded_memory(tmp_path: Path) -> None:
    rows, cols = 1_000_000, 30
    rng = np.random.default_rng(0)
    writer = None
    path = tmp_path / "big.parquet"
    for _ in range(4):  # written in pieces, not held whole
        chunk = pa.table({f"c{j}": rng.normal(size=rows // 4) for j in range(cols)})
        if writer is None:
            writer = pq.ParquetWriter(path, chunk.schema)
        writer.write_table(chunk, row_group_size=65536)
        del chunk
    assert writer is not None
    writer.close()
    table_bytes = rows * cols * 8
    tracemalloc.start()
    start = time.perf_counter()
    try:
        schema, _ = profile([path], target="c0", compute_statistics=True, source_types={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    print(f"\n1,000,000 x 30 floats profiled in {elapsed:.2f} s, numpy peak {peak / 2**20:.1f} MiB")
    assert schema["RowCount"] == rows
    assert all(a["AttributeType"] == "NUMERIC" for a in schema["Attributes"])
    # numpy's buffers are traced; a whole column (8 MB) of each of 30 columns would be 240 MB.
    assert peak < table_bytes / 4


def test_no_files_and_unprofiled_types(tmp_path: Path) -> None:
    schema, insights = profile([], target=None, compute_statistics=True, source_types={})
    assert schema["RowCount"] == 0 and schema["Attributes"] == [] and insights["Attributes"] == []
    table = pa.table({"blob": pa.array([b"x", None, b"y"]), "tags": pa.array([[1], [2, 3], None])})
    pq.write_table(table, tmp_path / "p.parquet")
    schema, insights = profile(
        [tmp_path / "p.parquet"], target=None, compute_statistics=True, source_types={}
    )
    assert [a["AttributeType"] for a in schema["Attributes"]] == ["CATEGORICAL", "CATEGORICAL"]
    assert "not profiled" in schema["Attributes"][0]["Reasons"][0]
    assert [a["MissingCount"] for a in insights["Attributes"]] == [1, 1]
    json.dumps(insights, allow_nan=False)
