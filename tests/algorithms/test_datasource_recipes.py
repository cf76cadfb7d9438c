"""Amazon ML's recipes: a data source's typed table as features, in training and serving."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from algorithms_harness import run_job, write_root

from orchestrator.algorithms import recipes
from orchestrator.algorithms.recipes import Recipe, RecipeError
from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import DataSourceSchema


def write_channel(
    directory: Path,
    columns: dict[str, list[Any]],
    types: dict[str, str],
    target: str | None,
    parts: int = 1,
) -> Path:
    """A channel as the download step leaves it: Parquet parts and the schema beside them."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    size = -(-table.num_rows // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * size, size), directory / f"part-{i:05d}.parquet")
    schema = {
        "Version": 1,
        "RowCount": table.num_rows,
        "TargetAttributeName": target,
        "Attributes": [
            {
                "AttributeName": n,
                "AttributeType": t,
                "InferredType": t,
                "SourceType": "",
                "Reasons": [],
            }
            for n, t in types.items()
        ],
    }
    DataSourceSchema.model_validate(schema)  # the shape the snapshot writes
    (directory / recipes.SCHEMA_FILE).write_text(json.dumps(schema))
    return directory


def fitted(
    tmp_path: Path, columns: dict[str, list[Any]], types: dict[str, str], **kw: Any
) -> Recipe:
    predictor = kw.pop("predictor_type", "binary_classifier")
    target = kw.pop("target", "y")
    channel = write_channel(tmp_path / "train", columns, types, target, **kw)
    return recipes.fit(channel, predictor)


def test_categorical_one_hot_with_other_unseen_and_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipes, "MAX_CATEGORIES", 2)
    colors = ["red"] * 5 + ["blue"] * 3 + ["green"] * 2 + [None, " red "]
    recipe = fitted(
        tmp_path,
        {"color": colors, "y": [0, 1] * 6},
        {"color": "CATEGORICAL", "y": "BINARY"},
    )
    (color,) = recipe.attributes
    assert color.categories == ("red", "blue")  # by frequency, the stripped " red " counted
    assert recipe.feature_names == ("color=red", "color=blue", "color=<other>")
    x = recipe.transform_items([["red"], ["blue"], ["green"], ["purple"], [None], [""]])
    assert x.tolist() == [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],  # beyond the top categories: other
        [0, 0, 1],  # never seen: other
        [0, 0, 0],  # missing: no column
        [0, 0, 0],
    ]
    # numbers as categories: 3.0 and 3 and "3" are one value
    recipe = fitted(
        tmp_path / "n",
        {"zip": [3.0, 4.0, 3.0], "y": [0, 1, 1]},
        {"zip": "CATEGORICAL", "y": "BINARY"},
    )
    assert recipe.attributes[0].categories == ("3", "4")
    assert recipe.transform_items([[3], ["3"], [4.0]]).tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0]]


def test_numeric_missing_and_invalid_values_are_the_train_mean(tmp_path: Path) -> None:
    recipe = fitted(
        tmp_path,
        {"n": [1.0, None, 3.0, float("nan")], "s": ["2", "x", "4", None], "y": [0, 1, 0, 1]},
        {"n": "NUMERIC", "s": "NUMERIC", "y": "BINARY"},
    )
    assert [a.mean for a in recipe.attributes] == [2.0, 3.0]
    x = recipe.transform_items([[None, "oops"], [5, "6.5"], [{"no": 1}, None]])
    assert x.tolist() == [[2.0, 3.0], [5.0, 6.5], [2.0, 3.0]]
    dates = recipes.numbers(pa.array([date(1970, 1, 2), None], pa.date32()))
    assert dates[0] == 86400.0 and np.isnan(dates[1])
    stamps = pa.array([datetime(1970, 1, 1, 0, 0, 2)], pa.timestamp("ms"))
    assert recipes.numbers(stamps).tolist() == [2.0]
    assert recipes.numbers(["1970-01-01T00:01:00"]).tolist() == [60.0]


def test_binary_mapping_and_missing(tmp_path: Path) -> None:
    recipe = fitted(
        tmp_path,
        {"b": [True, False, None, True], "w": ["Yes", "n", "maybe", None], "y": [1, 0, 1, 0]},
        {"b": "BINARY", "w": "BINARY", "y": "BINARY"},
    )
    x = recipe.transform_items(
        [[True, "TRUE"], ["t", "0"], [1, "y"], [0.0, "f"], [None, "perhaps"], ["no", 1.0]]
    )
    assert x.tolist() == [[1, 1], [1, 0], [1, 1], [0, 0], [0.5, 0.5], [0, 1]]
    assert recipes.BINARY_MISSING == 0.5


def test_binary_target_words_and_two_valued_categorical_target(tmp_path: Path) -> None:
    columns: dict[str, list[Any]] = {"a": [1.0, 2.0, 3.0, 4.0], "y": ["Yes", "no", "N", None]}
    recipe = fitted(tmp_path / "b", columns, {"a": "NUMERIC", "y": "BINARY"})
    assert recipe.target.classes == ("false", "true")
    x, y, origins = recipes.transform_channel(tmp_path / "b" / "train", recipe)
    assert y.tolist() == [1, 0, 0]  # the row without a target is skipped
    assert x[:, 0].tolist() == [1, 2, 3]
    assert origins == [
        "part-00000.parquet, row 1",
        "part-00000.parquet, row 2",
        "part-00000.parquet, row 3",
    ]
    columns = {"a": [1.0, 2.0, 3.0], "y": ["spam", "ham", "spam"]}
    recipe = fitted(tmp_path / "c", columns, {"a": "NUMERIC", "y": "CATEGORICAL"})
    assert recipe.target.classes == ("ham", "spam")  # sorted: ham is 0
    assert recipes.transform_channel(tmp_path / "c" / "train", recipe)[1].tolist() == [1, 0, 1]
    with pytest.raises(RecipeError, match="needs two values; 'y' has 3"):
        fitted(
            tmp_path / "d",
            {"a": [1, 2, 3], "y": ["a", "b", "c"]},
            {"a": "NUMERIC", "y": "CATEGORICAL"},
        )


def test_multiclass_mapping_and_unseen_class(tmp_path: Path) -> None:
    types = {"a": "NUMERIC", "y": "CATEGORICAL"}
    recipe = fitted(
        tmp_path,
        {"a": [1, 2, 3, 4, 5], "y": ["cat", "dog", "bird", "dog", "cat"]},
        types,
        predictor_type="multiclass_classifier",
    )
    assert recipe.target.classes == ("bird", "cat", "dog")
    assert recipe.num_classes == 3
    assert recipes.transform_channel(tmp_path / "train", recipe)[1].tolist() == [1, 2, 0, 2, 1]
    numbered = fitted(
        tmp_path / "n",
        {"a": [1, 2, 3], "y": [10, 9, 10]},
        types,
        predictor_type="multiclass_classifier",
    )
    assert numbered.target.classes == ("9", "10")  # numbers sort as numbers
    held = write_channel(tmp_path / "validation", {"a": [1, 2], "y": ["cat", "fish"]}, types, "y")
    with pytest.raises(RecipeError, match="row 2: target 'y' value 'fish' is not one of"):
        recipes.transform_channel(held, recipe)
    with pytest.raises(RecipeError, match="num_classes is 4 but"):
        recipes.fit(tmp_path / "train", "multiclass_classifier", num_classes=4)


def test_regression_target_and_missing_target(tmp_path: Path) -> None:
    types = {"a": "NUMERIC", "y": "NUMERIC"}
    recipe = fitted(tmp_path, {"a": [1, 2], "y": ["1.5", "x"]}, types, predictor_type="regressor")
    with pytest.raises(RecipeError, match="row 2: target 'y' value 'x' is not a number"):
        recipes.transform_channel(tmp_path / "train", recipe)
    channel = write_channel(tmp_path / "none", {"a": [1, 2], "y": [0, 1]}, types, None)
    with pytest.raises(ValidationError, match=recipes.TARGET_FIELD.replace(".", r"\.")) as caught:
        recipes.fit(channel, "regressor")
    assert caught.value.field == recipes.TARGET_FIELD
    assert "the data source's TargetAttributeName" in caught.value.message


def test_text_ngrams_hashed_stably_across_processes(tmp_path: Path) -> None:
    assert recipes.ngrams("Great, GREAT product!! 10/10") == [
        "great", "great", "product", "10", "10",
        "great great", "great product", "product 10", "10 10",
    ]  # fmt: skip
    recipe = fitted(
        tmp_path, {"t": ["a b", None, "b"], "y": [0, 1, 0]}, {"t": "TEXT", "y": "BINARY"}
    )
    assert recipe.width == recipes.TEXT_BUCKETS
    x = recipe.transform_items([["Red car, red car"], [None]])
    counts = {recipes.bucket(g): 0 for g in ("red", "car", "red car", "car red")}
    for g in ("red", "car", "red", "car", "red car", "car red", "red car"):
        counts[recipes.bucket(g)] += 1
    assert {int(i): float(v) for i, v in enumerate(x[0]) if v} == {
        k: pytest.approx(float(np.log1p(v))) for k, v in counts.items()
    }
    assert not x[1].any()
    grams = ["red", "red car", "données", "日本語"]
    code = (
        "import json, sys; from orchestrator.algorithms import recipes; "
        "print(json.dumps([recipes.bucket(g) for g in json.loads(sys.argv[1])]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, json.dumps(grams)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "", "PYTHONPATH": str(Path.cwd())},
    )
    assert json.loads(other.stdout) == [recipes.bucket(g) for g in grams]


def test_json_round_trip_and_records(tmp_path: Path) -> None:
    recipe = fitted(
        tmp_path,
        {
            "n": [1.0, 2.0, None],
            "c": ["a", "b", "a"],
            "t": ["x y", "z", None],
            "b": ["yes", "no", "yes"],
            "y": ["p", "q", "p"],
        },
        {"n": "NUMERIC", "c": "CATEGORICAL", "t": "TEXT", "b": "BINARY", "y": "CATEGORICAL"},
        parts=2,
    )
    again = Recipe.from_json(recipe.to_json())
    assert again == recipe
    assert recipe.save(tmp_path) == tmp_path / recipes.RECIPE_FILE
    assert Recipe.load(tmp_path) == recipe
    assert recipe.width == 1 + 3 + recipes.TEXT_BUCKETS + 1
    records: list[dict[str, Any]] = [
        {"n": 4, "c": "b", "t": "x", "b": True, "y": "ignored"},
        {"b": "no", "t": None, "c": None, "n": None},
    ]
    rows = [[4, "b", "x", True], [None, None, None, "no"]]
    assert np.array_equal(again.transform_items(records), recipe.transform_items(rows))
    x, y, _ = recipes.transform_channel(tmp_path / "train", again)
    assert y.tolist() == [0, 1, 0] and x.shape == (3, recipe.width)
    with pytest.raises(RecipeError, match="instance 1: attribute 'b' is missing"):
        recipe.transform_items([records[0], {"n": 1, "c": "a", "t": "x"}])
    with pytest.raises(RecipeError, match="instance 0: unknown attribute 'color'"):
        recipe.transform_items([{**records[0], "color": 1}])
    with pytest.raises(RecipeError, match="CSV line 3 has 2 values; this model reads 4"):
        recipe.transform_items([["1", "a"]], ["CSV line 3"])


def test_channel_errors(tmp_path: Path) -> None:
    channel = write_channel(
        tmp_path / "train", {"a": [1, 2], "y": [0, 1]}, {"a": "NUMERIC", "y": "NUMERIC"}, "y"
    )
    (channel / recipes.SCHEMA_FILE).write_text(
        json.dumps({"RowCount": 2, "TargetAttributeName": "y", "Attributes": [
            {"AttributeName": "a", "AttributeType": "NUMERIC"},
            {"AttributeName": "gone", "AttributeType": "TEXT"},
            {"AttributeName": "y", "AttributeType": "NUMERIC"},
        ]})
    )  # fmt: skip
    with pytest.raises(RecipeError, match=r"part-00000\.parquet has no column 'gone'"):
        recipes.fit(channel, "regressor")
    (channel / recipes.SCHEMA_FILE).write_text("{}")
    with pytest.raises(RecipeError, match="is not a data source schema"):
        recipes.fit(channel, "regressor")


# ---- end to end: linear-learner on a data source's channel, then served ----

GOOD_WORDS = ("great", "excellent", "love", "perfect")
BAD_WORDS = ("awful", "broken", "hate", "poor")
FILLER = ("the", "item", "arrived", "today", "box", "it", "was", "and")
TYPES = {
    "weight": "NUMERIC",
    "color": "CATEGORICAL",
    "review": "TEXT",
    "gift": "BINARY",
    "bought": "BINARY",
}


def table(rows: int, seed: int) -> dict[str, list[Any]]:
    """``bought`` is yes when 2*color + 2*review + gift > 0 (each +1/-1): linear in the three."""
    rng = np.random.default_rng(seed)
    colors, reviews, gifts, bought = [], [], [], []
    for _ in range(rows):
        good_color = bool(rng.random() < 0.5)
        good_text = bool(rng.random() < 0.5)
        gift = bool(rng.random() < 0.5)
        colors.append(str(rng.choice(["red", "blue"] if good_color else ["green", "yellow"])))
        words = [*rng.choice(FILLER, 3), rng.choice(GOOD_WORDS if good_text else BAD_WORDS)]
        rng.shuffle(words)
        reviews.append(" ".join(str(w) for w in words).capitalize() + "!")
        gifts.append(gift)
        score = 2 * (1 if good_color else -1) + 2 * (1 if good_text else -1) + (1 if gift else -1)
        bought.append("yes" if score > 0 else "no")
    weight: list[Any] = [float(w) for w in rng.normal(10, 3, rows)]
    for i in range(0, rows, 17):
        weight[i] = None
    return {"weight": weight, "color": colors, "review": reviews, "gift": gifts, "bought": bought}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("datasource")
    hps = {
        "predictor_type": "binary_classifier",
        "epochs": "8",
        "num_models": "1",
        "l2": "0.0001",
        "mini_batch_size": "32",
        "validation_split": "0",
    }
    write_root(root, hps, {})
    data = root / "input" / "data"
    write_channel(data / "train", table(600, 1), TYPES, "bought", parts=3)
    write_channel(data / "validation", table(150, 2), TYPES, "bought")
    write_channel(data / "test", table(150, 3), TYPES, "bought")
    return run_job(root, "linear-learner")


def test_linear_learner_trains_on_a_datasource_and_serves_raw_values(trained: Any) -> None:
    from orchestrator.algorithms import inference
    from orchestrator.serving import ModelHandler

    assert trained.code == 0, trained.stdout
    document = trained.evaluation()
    assert document["validation"]["accuracy"] > 0.9
    assert document["test"]["accuracy"] > 0.9
    metadata = json.loads((trained.model_dir / "algorithm.json").read_text())
    recipe = Recipe.load(trained.model_dir)
    assert metadata["recipe"] == recipes.RECIPE_FILE
    assert metadata["n_features"] == recipe.width == 1 + 5 + recipes.TEXT_BUCKETS + 1
    assert metadata["attributes"] == ["weight", "color", "review", "gift"]
    assert metadata["class_values"] == ["false", "true"]

    held = table(40, 4)
    expected = [1 if b == "yes" else 0 for b in held["bought"]]
    records = [{k: held[k][i] for k in TYPES if k != "bought"} for i in range(40)]
    handler = ModelHandler.load(trained.model_dir, program="inference.py")
    body = json.dumps({"instances": records}).encode()
    answer = json.loads(handler.invoke(body, "application/json", "application/json").body)
    labels = [p["predicted_label"] for p in answer["predictions"]]
    assert np.mean(np.asarray(labels) == expected) > 0.9
    assert answer["predictions"][0]["predicted_class"] == ("true" if labels[0] else "false")
    lines = [
        f'{"" if r["weight"] is None else r["weight"]},{r["color"]},"{r["review"]}",{r["gift"]}'
        for r in records
    ]
    csv_answer = handler.invoke("\n".join(lines).encode(), "text/csv", "text/csv").body.decode()
    assert [int(line.split(",")[0]) for line in csv_answer.splitlines()] == labels
    one = handler.invoke(json.dumps(records[0]).encode(), "application/json", "application/json")
    assert json.loads(one.body)["predictions"][0]["predicted_label"] == labels[0]
    features = {"instances": [{"features": [records[1][k] for k in metadata["attributes"]]}]}
    positional = handler.invoke(json.dumps(features).encode(), "application/json", "text/csv")
    assert int(positional.body.decode().split(",")[0]) == labels[1]

    model = inference.model_fn(str(trained.model_dir))
    with pytest.raises(ValidationError, match="attribute 'gift' is missing"):
        handler.invoke(json.dumps([{"weight": 1, "color": "red", "review": "x"}]).encode(),
                       "application/json", "application/json")  # fmt: skip
    with pytest.raises(ValidationError, match="unknown attribute 'size'"):
        inference.predict_fn(inference.recipe_input_fn(
            json.dumps([{**records[0], "size": 3}]).encode(), "application/json"), model)  # fmt: skip
    with pytest.raises(ValidationError, match="CSV line 2 has 3 values; this model reads 4"):
        inference.predict_fn(
            inference.recipe_input_fn(b"1,red,x,yes\n1,red,x\n", "text/csv"), model
        )


def test_a_job_without_a_target_or_with_mixed_channels_fails_saying_why(tmp_path: Path) -> None:
    hps = {"predictor_type": "binary_classifier", "epochs": "1"}
    root = write_root(tmp_path / "a", hps, {})
    write_channel(root / "input" / "data" / "train", table(20, 0), TYPES, None)
    done = run_job(root, "linear-learner")
    assert done.code == 1
    assert recipes.TARGET_FIELD in done.failure
    root = write_root(tmp_path / "b", hps, {"validation": "1,2\n0,3\n"})
    write_channel(root / "input" / "data" / "train", table(20, 0), TYPES, "bought")
    done = run_job(root, "linear-learner")
    assert done.code == 1
    assert "the validation channel does not" in done.failure
    root = write_root(tmp_path / "c", hps, {"train": "1,2\n0,3\n1,4\n0,5\n"})
    write_channel(root / "input" / "data" / "test", table(20, 0), TYPES, "bought")
    done = run_job(root, "linear-learner")
    assert done.code == 1
    assert "the test channel reads a data source but the train channel does not" in done.failure
