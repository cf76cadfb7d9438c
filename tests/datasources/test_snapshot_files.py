"""The snapshot step of an S3 data source: the objects in the ``data`` channel."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.datasources.hyperparameters import SnapshotParams, snapshot_hyperparameters
from tests.datasources.conftest import Job


def configure(job: Job, fmt: str = "CSV", target: str | None = None) -> Path:
    params = SnapshotParams(
        source="s3",
        data_source="clicks",
        version=2,
        format=fmt,
        target=target,  # type: ignore[arg-type]
    )
    job.configure(snapshot_hyperparameters(params))
    return job.paths.channel_dir("data")


def read(job: Job) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(job.dataset.glob("part-*.parquet")))


def test_csv_files_under_a_prefix(job: Job, capfd: pytest.CaptureFixture[str]) -> None:
    data = configure(job, target="label")
    (data / "2024" / "02").mkdir(parents=True)
    (data / "2024" / "01.csv").write_text("id,score,name,flag,label\n1,5,a,true,0\n2,7,,false,1\n")
    # the second file makes score a float and holds an empty id: the types are of every file
    (data / "2024" / "02" / "part.csv").write_text("id,score,name,flag,label\n,2.5,c,TRUE,1\n")
    with gzip.open(data / "2024" / "03.csv.gz", "wt") as f:
        f.write("id,score,name,flag,label\n4,1,d,false,0\n")
    (data / "2024" / "_SUCCESS").write_text("")
    (data / "README.txt").write_text("not data")
    assert job.run() == 0
    out, err = capfd.readouterr()
    assert "skipped README.txt" in err and "skipped 2024/_SUCCESS" in err
    table = read(job)
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("score", pa.float64()),
            ("name", pa.string()),
            ("flag", pa.bool_()),
            ("label", pa.int64()),
        ]
    )
    assert table.to_pylist() == [
        {"id": 1, "score": 5.0, "name": "a", "flag": True, "label": 0},
        {"id": 2, "score": 7.0, "name": None, "flag": False, "label": 1},
        {"id": None, "score": 2.5, "name": "c", "flag": True, "label": 1},
        {"id": 4, "score": 1.0, "name": "d", "flag": False, "label": 0},
    ]
    assert "RowCount=4" in out.splitlines()
    schema = job.schema()
    assert schema["RowCount"] == 4 and schema["TargetAttributeName"] == "label"
    assert {a["AttributeName"]: a["SourceType"] for a in schema["Attributes"]}["score"] == (
        "csv (double)"
    )


def test_a_late_float_in_a_big_csv(job: Job) -> None:
    """A value past pyarrow's first block still decides the column's type."""
    data = configure(job)
    lines = ["n"] + [str(i) for i in range(400_000)] + ["0.5"]
    (data / "big.csv").write_text("\n".join(lines) + "\n")
    assert job.run() == 0
    column = read(job).column("n")
    assert column.type == pa.float64() and column[-1].as_py() == 0.5 and len(column) == 400_001


def test_parquet_files(job: Job) -> None:
    data = configure(job, fmt="Parquet")
    pq.write_table(
        pa.table({"x": pa.array([1, 2], pa.int32()), "y": ["a", "b"]}), data / "a.parquet"
    )
    (data / "sub").mkdir()
    # a wider integer type in a later file is cast to the first file's
    pq.write_table(
        pa.table({"x": pa.array([3], pa.int64()), "y": ["c"]}), data / "sub" / "b.parquet"
    )
    assert job.run() == 0
    table = read(job)
    assert table.schema == pa.schema([("x", pa.int32()), ("y", pa.string())])
    assert table.to_pylist() == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}]
    assert job.schema()["RowCount"] == 3


def test_mismatched_csv_columns(job: Job) -> None:
    data = configure(job)
    (data / "a.csv").write_text("id,score\n1,2\n")
    (data / "b.csv").write_text("id,points\n1,2\n")
    assert job.run() == 1
    failure = job.failure()
    assert "data source clicks" in failure and "b.csv" in failure and "'score'" in failure


def test_mismatched_parquet_columns(job: Job) -> None:
    data = configure(job, fmt="Parquet")
    pq.write_table(pa.table({"x": [1]}), data / "a.parquet")
    pq.write_table(pa.table({"x": [1], "z": [2]}), data / "b.parquet")
    assert job.run() == 1
    assert "b.parquet" in job.failure() and "'z'" in job.failure()


def test_mismatched_parquet_types(job: Job) -> None:
    data = configure(job, fmt="Parquet")
    pq.write_table(pa.table({"x": [1]}), data / "a.parquet")
    pq.write_table(pa.table({"x": ["not a number"]}), data / "b.parquet")
    assert job.run() == 1
    assert "b.parquet" in job.failure() and "'x'" in job.failure()


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_no_data_file(job: Job, fmt: str) -> None:
    data = configure(job, fmt=fmt)
    (data / "notes.txt").write_text("x")
    assert job.run() == 1
    failure = job.failure()
    assert "data source clicks" in failure and "DataSpec.S3.DataLocationS3" in failure
    assert f"no {fmt} file" in failure


def test_a_header_only_csv_is_zero_rows(job: Job) -> None:
    data = configure(job)
    (data / "empty.csv").write_text("a,b\n")
    assert job.run() == 0
    table = read(job)
    assert table.num_rows == 0 and table.schema.names == ["a", "b"]
    assert job.schema()["RowCount"] == 0


def test_an_unknown_target(job: Job) -> None:
    data = configure(job, target="nope")
    (data / "a.csv").write_text("a\n1\n")
    assert job.run() == 1
    assert "'nope'" in job.failure() and "TargetAttributeName" in job.failure()
