"""Loading channels: formats, header detection, the label column, errors that say where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.algorithms import data
from orchestrator.algorithms.data import DataError


def channel(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "train"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_csv_without_header_label_by_index(tmp_path: Path) -> None:
    ds = data.load_channel(channel(tmp_path, {"a.csv": "1,2,3\n0,5,6\n"}), "0")
    np.testing.assert_array_equal(ds.y, [1, 0])
    np.testing.assert_array_equal(ds.x, [[2, 3], [5, 6]])
    assert ds.feature_names == ("column_1", "column_2")
    assert ds.origins == ("a.csv, line 1", "a.csv, line 2")


def test_csv_with_header_label_by_name_and_many_files(tmp_path: Path) -> None:
    files = {"a.csv": "x,y,target\n1,2,0\n", "b.csv": "x,y,target\n3,4,1\n\n5,6,1\n"}
    ds = data.load_channel(channel(tmp_path, files), "target")
    np.testing.assert_array_equal(ds.y, [0, 1, 1])
    np.testing.assert_array_equal(ds.x[:, 0], [1, 3, 5])
    assert (ds.feature_names, ds.label_name) == (("x", "y"), "target")
    assert ds.origins[-1] == "b.csv, line 4"
    assert data.load_channel(channel(tmp_path, files), "2").label_name == "target"


def test_parquet(tmp_path: Path) -> None:
    directory = tmp_path / "train"
    directory.mkdir()
    table = pa.table({"f": [1.0, 2.0], "n": pa.array([3, 4], pa.int32()), "label": [0, 1]})
    pq.write_table(table, directory / "part.parquet")
    ds = data.load_channel(directory, "label")
    np.testing.assert_array_equal(ds.x, [[1, 3], [2, 4]])
    assert ds.origins == ("part.parquet, row 1", "part.parquet, row 2")


def parquet(tmp_path: Path, columns: dict[str, pa.Array]) -> Path:
    directory = tmp_path / "train"
    directory.mkdir(exist_ok=True)
    pq.write_table(pa.table(columns), directory / "p.parquet")
    return directory


@pytest.mark.parametrize(
    ("files", "label", "expected"),
    [
        ({"a.csv": ""}, "0", r"a.csv is empty"),
        ({"a.csv": "\n\n"}, "0", r"a.csv is empty"),
        ({"a.csv": "x,label\n"}, "0", r"a.csv has a header row but no data rows"),
        ({"a.csv": "x,y\n1,2\n"}, "price", r"label column 'price' not found in a.csv; .* x, y"),
        ({"a.csv": "1,2\n"}, "price", r"'price' is a name, but a.csv has no header row"),
        ({"a.csv": "1,2\n"}, "5", r"index 5 is out of range: a.csv has 2 columns"),
        ({"a.csv": "y,x\n1,2\n0,abc\n"}, "0", r"a.csv, line 3, column 1 \('x'\): 'abc' is not"),
        (
            {"a.csv": "1,2\n0,\n"},
            "0",
            r"a.csv, line 2, column 1: 'missing or non-finite|a.csv, line 2, column 1: '' is not",
        ),
        (
            {"a.csv": "1,2\n0,nan\n"},
            "0",
            r"a.csv, line 2, column 1: missing or non-finite value 'nan'",
        ),
        ({"a.csv": "1,2\n0,2,3\n"}, "0", r"a.csv, line 2: 3 columns where 2 expected"),
        ({"a.csv": "1\n0\n"}, "0", r"only the label column"),
        ({"a.txt": "1,2\n"}, "0", r"no .csv or .parquet file in channel 'train'; found: a.txt"),
        ({"a.csv": "1,2\n", "b.csv": "1,2,3\n"}, "0", r"b.csv has 3 columns but"),
    ],
)
def test_csv_errors_say_what_and_where(
    tmp_path: Path, files: dict[str, str], label: str, expected: str
) -> None:
    with pytest.raises(DataError, match=expected):
        data.load_channel(channel(tmp_path, files), label)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"y": [0, 1], "x": [1.0, None]}, r"p.parquet, row 2, column 1 \('x'\): missing value"),
        ({"y": [0, 1], "x": [1.0, float("nan")]}, r"row 2, column 1 \('x'\): missing value"),
        ({"y": [0, 1], "x": ["1.5", "red"]}, r"row 2, column 1 \('x'\): 'red' is not a number"),
        ({"y": [0, 1], "x": [1.0, float("inf")]}, r"row 2, column 1 \('x'\): non-finite"),
        ({"y": pa.array([], pa.int64()), "x": pa.array([], pa.float64())}, r"p.parquet is empty"),
    ],
)
def test_parquet_errors(tmp_path: Path, columns: dict[str, pa.Array], expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        data.load_channel(parquet(tmp_path, columns), "y")


def dataset(y: list[float]) -> data.Dataset:
    x = np.arange(len(y), dtype=float).reshape(-1, 1)
    origins = tuple(f"a.csv, line {i + 2}" for i in range(len(y)))
    return data.Dataset(x, np.asarray(y, float), ("x",), "target", origins)


@pytest.mark.parametrize(
    ("ptype", "y", "num_classes", "expected"),
    [
        (
            "binary_classifier",
            [0, 1, 2],
            None,
            r"a.csv, line 4, label column 'target': label 2 is not 0 or 1",
        ),
        ("binary_classifier", [1, 1, 1], None, r"single class \(1\) in label column 'target'"),
        ("multiclass_classifier", [0, 1.5], None, r"line 3, .* label 1.5 is not an integer"),
        (
            "multiclass_classifier",
            [0, 1, 3],
            3,
            r"line 4, .* label 3 is not an integer class index in 0..2",
        ),
        ("multiclass_classifier", [2, 2], None, r"single class \(2\)"),
    ],
)
def test_label_errors(ptype: str, y: list[float], num_classes: int | None, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        data.check_labels(dataset(y), "train", ptype, num_classes)


def test_label_counts() -> None:
    assert data.check_labels(dataset([0, 1, 1]), "train", "binary_classifier", None) == 2
    assert data.check_labels(dataset([0, 2, 1]), "train", "multiclass_classifier", None) == 3
    assert data.check_labels(dataset([0, 2, 1]), "train", "multiclass_classifier", 5) == 5
    assert data.check_labels(dataset([0.5, 2]), "train", "regressor", None) == 0


def test_split_is_stratified_seeded_and_disjoint() -> None:
    ds = dataset([0] * 80 + [1] * 20)
    rest, held = data.split(ds, 0.2, seed=7, stratify=True)
    assert (len(rest), len(held)) == (80, 20)
    assert (held.y == 1).sum() == 4
    assert set(rest.x[:, 0]).isdisjoint(held.x[:, 0])
    again = data.split(ds, 0.2, seed=7, stratify=True)[1]
    np.testing.assert_array_equal(again.x, held.x)
    other = data.split(ds, 0.2, seed=8, stratify=True)[1]
    assert not np.array_equal(other.x, held.x)
    assert held.origins[0].startswith("a.csv, line ")
