"""A channel read from a data source (``orchestrator.datasources.rearrange``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.datasources.rearrange import rearrange_channel
from orchestrator.errors import ValidationError
from orchestrator.objects import ObjectStore
from orchestrator.resources.datasources import DataSourceSchema, effective_schema
from orchestrator.resources.training import CreateTrainingJobRequest, DataSourceReference
from orchestrator.training.contract import MlPaths
from orchestrator.training.transfer import TrainingFailure, Transfer

SCHEMA: dict[str, Any] = {
    "Version": 1,
    "RowCount": 0,
    "DataSizeInBytes": 123,
    "Files": ["part-00000.parquet"],
    "TargetAttributeName": "y",
    "Attributes": [
        {
            "AttributeName": "id",
            "AttributeType": "NUMERIC",
            "InferredType": "NUMERIC",
            "SourceType": "int8",
            "Reasons": ["integers with many distinct values"],
        },
        {
            "AttributeName": "y",
            "AttributeType": "NUMERIC",
            "InferredType": "NUMERIC",
            "SourceType": "double",
            "Reasons": ["floating-point numbers"],
        },
    ],
}


def snapshot(path: Path, rows: int, parts: int = 3) -> Path:
    """``rows`` rows (``id`` = position) in ``parts`` parts, with schema.json."""
    path.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    for i in range(parts):
        ids = np.arange(bounds[i], bounds[i + 1], dtype=np.int64)
        table = pa.table({"id": ids, "y": ids * 0.5})
        pq.write_table(table, path / f"part-{i:05d}.parquet", row_group_size=4096)
    (path / "schema.json").write_text(json.dumps({**SCHEMA, "RowCount": rows}))
    (path / "insights.json").write_text("{}")
    return path


def ids(path: Path) -> list[int]:
    out: list[int] = []
    for p in sorted(path.glob("part-*.parquet")):
        out.extend(pq.read_table(p).column("id").to_pylist())
    return out


def ref(**splitting: Any) -> DataSourceReference:
    return DataSourceReference.model_validate(
        {"DataSourceName": "ds", "Version": 2, "DataRearrangement": {"splitting": splitting}}
    )


def test_sequential_ranges_partition_the_rows_in_order(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 1000)
    b = snapshot(tmp_path / "b", 1000)
    assert rearrange_channel(a, ref(percentBegin=0, percentEnd=70)) == 700
    assert rearrange_channel(b, ref(percentBegin=70, percentEnd=100)) == 300
    assert ids(a) == list(range(700)) and ids(b) == list(range(700, 1000))
    # Parts of rows 0-332, 333-665, 666-999: a rewrites the last, b keeps only it.
    assert len(list(a.glob("part-*.parquet"))) == 3
    assert [p.name for p in b.glob("part-*.parquet")] == ["part-00002.parquet"]
    schema = json.loads((b / "schema.json").read_text())
    assert schema["RowCount"] == 300
    assert schema["DataRearrangement"]["splitting"]["percentBegin"] == 70
    assert schema["DataSource"] == {"Name": "ds", "Version": 2}
    DataSourceSchema.model_validate(schema)


def test_sequential_floors(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 7, parts=1)
    assert rearrange_channel(a, ref(percentBegin=10, percentEnd=50)) == 3  # [0, 3)
    assert ids(a) == [0, 1, 2]


def test_complement(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 1000)
    kept = rearrange_channel(a, ref(percentBegin=20, percentEnd=70, complement=True))
    assert kept == 500 and ids(a) == list(range(200)) + list(range(700, 1000))
    c = snapshot(tmp_path / "c", 5000)
    d = snapshot(tmp_path / "d", 5000)
    r = {"percentBegin": 0, "percentEnd": 70, "strategy": "random", "randomSeed": "s"}
    rearrange_channel(c, ref(**r))
    rearrange_channel(d, ref(**r, complement=True))
    assert sorted(ids(c) + ids(d)) == list(range(5000))


def test_random_is_seeded_and_complementary_ranges_partition(tmp_path: Path) -> None:
    n = 100_000
    train = snapshot(tmp_path / "train", n, parts=4)
    again = snapshot(tmp_path / "again", n, parts=4)
    test = snapshot(tmp_path / "test", n, parts=4)
    other = snapshot(tmp_path / "other", n, parts=4)
    r = {"strategy": "random", "randomSeed": "my seed"}
    kept = rearrange_channel(train, ref(percentBegin=0, percentEnd=70, **r))
    rearrange_channel(again, ref(percentBegin=0, percentEnd=70, **r))
    rearrange_channel(test, ref(percentBegin=70, percentEnd=100, **r))
    rearrange_channel(other, ref(percentBegin=0, percentEnd=70, strategy="random", randomSeed="x"))
    a, t = ids(train), ids(test)
    assert a == ids(again)  # the same seed: the same rows, in order
    assert a == sorted(a)
    assert set(a).isdisjoint(t) and sorted(a + t) == list(range(n))
    assert kept == len(a) and abs(len(a) / n - 0.7) < 0.01
    assert ids(other) != a  # another seed: other rows
    assert json.loads((test / "schema.json").read_text())["RowCount"] == len(t)


def test_no_rearrangement_keeps_everything(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 500)
    before = {p.name: p.stat().st_mtime_ns for p in a.glob("part-*.parquet")}
    reference = DataSourceReference.model_validate({"DataSourceName": "ds", "Version": 1})
    assert rearrange_channel(a, reference) == 500
    assert {p.name: p.stat().st_mtime_ns for p in a.glob("part-*.parquet")} == before
    schema = json.loads((a / "schema.json").read_text())
    assert schema["RowCount"] == 500 and schema["DataRearrangement"] is None


def test_nothing_kept_leaves_one_empty_part(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 50)
    assert rearrange_channel(a, ref(percentBegin=0, percentEnd=1)) == 0  # floor(0.5) = 0
    parts = list(a.glob("part-*.parquet"))
    assert len(parts) == 1 and pq.read_table(parts[0]).schema.names == ["id", "y"]
    assert pq.read_metadata(parts[0]).num_rows == 0
    assert not list(a.glob("*.tmp"))


def test_effective_schema_overrides() -> None:
    doc = effective_schema(SCHEMA, {"id": "CATEGORICAL"}, "id")
    attrs = {a["AttributeName"]: a for a in doc["Attributes"]}
    assert (
        attrs["id"]["AttributeType"] == "CATEGORICAL" and attrs["id"]["InferredType"] == "NUMERIC"
    )
    assert attrs["y"]["AttributeType"] == "NUMERIC"
    assert doc["TargetAttributeName"] == "id"
    assert SCHEMA["Attributes"][0]["AttributeType"] == "NUMERIC"  # pure: the input unchanged
    assert effective_schema(SCHEMA, {}, None)["TargetAttributeName"] == "y"


def test_a_bad_attribute_type_key(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 100)
    reference = DataSourceReference.model_validate(
        {
            "DataSourceName": "ds",
            "AttributeTypes": {"nope": "BINARY"},
            "DataRearrangement": {"splitting": {"percentEnd": 50}},
        }
    )
    with pytest.raises(ValidationError) as e:
        rearrange_channel(a, reference, channel="train")
    field = "InputDataConfig.train.DataSource.DataSourceReference.AttributeTypes.nope"
    assert e.value.field == field and field in e.value.message and "id, y" in e.value.message
    assert ids(a) == list(range(100))  # nothing rewritten
    with pytest.raises(ValidationError) as e2:
        effective_schema(SCHEMA, {}, "missing")
    assert e2.value.field == "TargetAttributeName"


def test_types_and_target_from_the_reference(tmp_path: Path) -> None:
    a = snapshot(tmp_path / "a", 100)
    reference = DataSourceReference.model_validate(
        {
            "DataSourceName": "ds",
            "AttributeTypes": {"id": "CATEGORICAL"},
            "TargetAttributeName": "id",
        }
    )
    rearrange_channel(a, reference, channel="train")
    schema = json.loads((a / "schema.json").read_text())
    assert schema["TargetAttributeName"] == "id"
    assert schema["Attributes"][0]["AttributeType"] == "CATEGORICAL"
    assert schema["Attributes"][0]["InferredType"] == "NUMERIC"


def transfer_spec(uri: str, reference: dict[str, Any]) -> CreateTrainingJobRequest:
    return CreateTrainingJobRequest.model_validate(
        {
            "TrainingJobName": "j",
            "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {"S3Uri": uri},
                        "DataSourceReference": reference,
                    },
                }
            ],
        }
    )


def test_the_training_download_rearranges_a_data_source_channel(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap", 1000)

    def no_store() -> ObjectStore:
        raise AssertionError("a file:// channel opens no store")

    spec = transfer_spec(
        snap.as_uri(),
        {
            "DataSourceName": "ds",
            "Version": 1,
            "DataRearrangement": {"splitting": {"percentEnd": 25}},
        },
    )
    paths = MlPaths(tmp_path / "ml")
    Transfer(spec, paths, no_store, output_uri="s3://b/o/model.tar.gz").download()
    got = paths.channel_dir("train")
    assert ids(got) == list(range(250))
    assert json.loads((got / "schema.json").read_text())["RowCount"] == 250
    assert ids(snap) == list(range(1000))  # the source untouched

    bad = transfer_spec(snap.as_uri(), {"DataSourceName": "ds", "AttributeTypes": {"zz": "TEXT"}})
    with pytest.raises(TrainingFailure) as e:
        Transfer(
            bad, MlPaths(tmp_path / "ml2"), no_store, output_uri="s3://b/o/m.tar.gz"
        ).download()
    assert "AttributeTypes.zz" in e.value.reason.render()
