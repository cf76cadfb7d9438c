"""ModelHandler: loading user code and models, and the default codecs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.errors import ModelError, ValidationError
from orchestrator.serving import (
    InvokeResult,
    ModelHandler,
    NotAcceptableError,
    UnsupportedMediaTypeError,
)

WriteScript = Callable[..., Path]


def predictions(result: InvokeResult) -> list[int]:
    assert result.content_type == "application/json"
    return json.loads(result.body)["predictions"]


def test_public_api_is_pinned() -> None:
    import orchestrator.serving as serving

    assert sorted(serving.__all__) == [
        "BatchingConfig",
        "Dispatcher",
        "InvokeResult",
        "MODEL_LATENCY_HEADER",
        "ModelHandler",
        "ModelSource",
        "NotAcceptableError",
        "Pipeline",
        "ServingApp",
        "Step",
        "UnsupportedMediaTypeError",
        "build_app",
        "load_servable",
        "serve",
    ]


@pytest.mark.parametrize(
    "wrap",
    [lambda rows: rows, lambda rows: {"instances": rows}, lambda rows: {"inputs": rows}],
    ids=["rows", "instances", "inputs"],
)
def test_default_json(model_dir: Path, iris, trained: LogisticRegression, wrap) -> None:
    x, _ = iris
    handler = ModelHandler.load(model_dir)
    result = handler.invoke(json.dumps(wrap(x[:10].tolist())).encode(), "application/json", "*/*")
    assert predictions(result) == trained.predict(x[:10]).tolist()
    assert result.model_seconds > 0


def test_default_json_single_row(model_dir: Path, iris, trained: LogisticRegression) -> None:
    x, _ = iris
    handler = ModelHandler.load(model_dir)
    body = json.dumps(x[50].tolist()).encode()
    result = handler.invoke(body, "application/json; charset=utf-8", "application/json")
    assert predictions(result) == trained.predict(x[50:51]).tolist()


def test_default_csv(model_dir: Path, iris, trained: LogisticRegression) -> None:
    x, _ = iris
    body = "\n".join(",".join(str(v) for v in row) for row in x[::15]).encode()
    result = ModelHandler.load(model_dir).invoke(body, "text/csv", "application/json")
    assert predictions(result) == trained.predict(x[::15]).tolist()


def test_default_npy(model_dir: Path, iris, trained: LogisticRegression) -> None:
    x, _ = iris
    buffer = io.BytesIO()
    np.save(buffer, x[100:120])
    result = ModelHandler.load(model_dir).invoke(buffer.getvalue(), "application/x-npy", "*/*")
    assert predictions(result) == trained.predict(x[100:120]).tolist()


def test_script_functions_are_used(model_dir: Path, write_script: WriteScript) -> None:
    code_dir = write_script(
        """
        import json, os
        from helpers import SCALE

        def model_fn(model_dir):
            assert os.path.isfile(os.path.join(model_dir, "model.joblib"))
            return {"scale": SCALE}

        def input_fn(body, content_type):
            assert content_type == "application/vnd.numbers"
            return [float(v) for v in body.decode().split()]

        def predict_fn(data, model):
            return [v * model["scale"] for v in data]

        def output_fn(prediction, accept):
            return json.dumps({"doubled": prediction}), "application/vnd.doubled+json"
        """,
        helpers="SCALE = 2\n",
    )
    handler = ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")
    result = handler.invoke(b"1 2.5", "application/vnd.numbers", "*/*")
    assert result.content_type == "application/vnd.doubled+json"
    assert json.loads(result.body) == {"doubled": [2.0, 5.0]}


def test_script_defaults_fill_in_and_code_dir_defaults_to_model_code(
    model_dir: Path, iris, trained: LogisticRegression
) -> None:
    (model_dir / "code").mkdir()
    (model_dir / "code" / "serve.py").write_text(
        "def output_fn(prediction, accept):\n    return ' '.join(map(str, prediction))\n"
    )
    x, _ = iris
    handler = ModelHandler.load(model_dir, program="serve.py")
    result = handler.invoke(json.dumps(x[:3].tolist()).encode(), "application/json", "text/plain")
    assert result.content_type == "text/plain"
    assert result.body.decode() == " ".join(map(str, trained.predict(x[:3])))


def test_missing_program_names_file_and_listing(model_dir: Path, write_script: WriteScript) -> None:
    code_dir = write_script("x = 1\n", name="serve.py")
    with pytest.raises(ValidationError, match=r"'inference\.py' not found .*serve\.py"):
        ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")


def test_no_model_file_lists_files(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValidationError, match=r"model\.joblib.*found weights\.bin"):
        ModelHandler.load(tmp_path)


def test_script_import_error_is_a_model_error(model_dir: Path, write_script: WriteScript) -> None:
    code_dir = write_script("raise RuntimeError('no GPU here')\n")
    with pytest.raises(ModelError, match="no GPU here"):
        ModelHandler.load(model_dir, code_dir=code_dir, program="inference.py")


def test_unsupported_content_type_names_allowed(model_dir: Path) -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="application/json, text/csv"):
        ModelHandler.load(model_dir).invoke(b"x", "image/png", "*/*")


def test_unacceptable_accept_names_allowed(model_dir: Path) -> None:
    with pytest.raises(
        NotAcceptableError, match="writes application/json, text/csv, application/x-npy"
    ):
        ModelHandler.load(model_dir).invoke(b"[[1, 2, 3, 4]]", "application/json", "image/png")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{not json", "application/json"), (b"a,b\n1,2", "text/csv"), (b"nope", "application/x-npy")],
)
def test_malformed_bodies_are_validation_errors(
    model_dir: Path, body: bytes, content_type: str
) -> None:
    with pytest.raises(ValidationError):
        ModelHandler.load(model_dir).invoke(body, content_type, "*/*")


def test_wrong_feature_count_is_a_400_model_error(model_dir: Path) -> None:
    with pytest.raises(ModelError, match="features") as caught:
        ModelHandler.load(model_dir).invoke(b"[[1, 2]]", "application/json", "*/*")
    assert caught.value.http_status == 400
