"""Inference pipelines: three steps with their own artifacts and scripts, run in order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.errors import ModelError
from orchestrator.serving import ModelSource, Pipeline, load_servable

pytestmark = pytest.mark.anyio

PRE = """
import json

def model_fn(model_dir):
    import pathlib
    return float(pathlib.Path(model_dir, "scale.txt").read_text())

def input_fn(body, content_type):
    assert content_type == "text/plain", content_type
    return [[float(v) for v in line.split()] for line in body.decode().splitlines()]

def predict_fn(data, scale):
    return [[v * scale for v in row] for row in data]

def output_fn(rows, accept):
    assert accept == "*/*", accept  # an intermediate step answers its default type
    return json.dumps(rows), "application/json"
"""

POST = """
import json

def model_fn(model_dir):
    import pathlib
    return pathlib.Path(model_dir, "names.txt").read_text().split()

def input_fn(body, content_type):
    assert content_type == "application/json", content_type
    return json.loads(body)["predictions"]

def predict_fn(labels, names):
    return [names[i] for i in labels]

def output_fn(names, accept):
    if accept == "text/plain":
        return "\\n".join(names), "text/plain"
    return json.dumps({"species": names}), "application/json"
"""


def step(root: Path, name: str, files: dict[str, str], script: str | None) -> ModelSource:
    model_dir = root / name / "model"
    model_dir.mkdir(parents=True)
    for file, text in files.items():
        (model_dir / file).write_text(text)
    code_dir = None
    if script is not None:
        code_dir = root / name / "code"
        code_dir.mkdir()
        (code_dir / "inference.py").write_text(textwrap.dedent(script))
    return ModelSource(model_dir, code_dir, "inference.py" if script else None, name)


@pytest.fixture
def pipeline(tmp_path: Path, trained: LogisticRegression) -> Pipeline:
    pre = step(tmp_path, "pre", {"scale.txt": "1.0"}, PRE)
    classifier = step(tmp_path, "classifier", {}, None)
    joblib.dump(trained, classifier.model_dir / "model.joblib")
    post = step(tmp_path, "post", {"names.txt": "setosa versicolor virginica"}, POST)
    servable = load_servable([pre, classifier, post])
    assert isinstance(servable, Pipeline)
    return servable


async def test_three_steps_run_in_order_and_accept_applies_to_the_last(
    pipeline: Pipeline, iris, trained: LogisticRegression, app_client
) -> None:
    x, _ = iris
    rows = x[::50]
    body = "\n".join(" ".join(map(str, row)) for row in rows)
    names = ["setosa", "versicolor", "virginica"]
    expected = [names[i] for i in trained.predict(rows)]
    async with app_client(pipeline) as client:
        as_text = await client.post(
            "/invocations",
            content=body,
            headers={"Content-Type": "text/plain", "Accept": "text/plain"},
        )
        as_json = await client.post(
            "/invocations", content=body, headers={"Content-Type": "text/plain"}
        )
    assert as_text.status_code == 200, as_text.text
    assert as_text.headers["content-type"] == "text/plain"
    assert as_text.text.split("\n") == expected
    assert as_json.json() == {"species": expected}


async def test_an_error_names_the_step_by_index_and_hostname(
    pipeline: Pipeline, app_client
) -> None:
    async with app_client(pipeline) as client:
        response = await client.post(
            "/invocations", content="1 2", headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 400  # the classifier refuses two features
    message = response.json()["message"]
    assert message.startswith("pipeline step 1 (classifier): ")
    assert "features" in message


async def test_v2_infer_through_a_pipeline(
    pipeline: Pipeline, iris, trained: LogisticRegression, app_client
) -> None:
    x, _ = iris
    tensor = {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": x[:2].ravel().tolist()}
    async with app_client(pipeline) as client:
        response = await client.post("/v2/models/model/infer", json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["setosa", "setosa"]
    assert response.json()["outputs"][0]["datatype"] == "BYTES"


def test_a_step_that_fails_to_load_is_named(tmp_path: Path) -> None:
    good = step(tmp_path, "pre", {"scale.txt": "1.0"}, PRE)
    empty = step(tmp_path, "classifier", {}, None)
    with pytest.raises(Exception, match=r"pipeline step 1 \(classifier\): no model file") as caught:
        load_servable([good, empty])
    assert not isinstance(caught.value, ModelError)
