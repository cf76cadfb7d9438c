"""The model lifecycle of one replica: load, then decode -> predict -> encode per request.

User code follows the SageMaker script-mode contract. The script (``program``, a file in
``code_dir``, by default ``<model_dir>/code``) may define any of::

    model_fn(model_dir: str) -> model
    input_fn(body: bytes, content_type: str) -> data
    predict_fn(data, model) -> prediction
    output_fn(prediction, accept: str) -> bytes | str | (body, content_type)

and each one it leaves out falls back to a default: ``model.joblib``/``model.pkl``/
``model.pickle`` loaded with joblib, the codecs of :mod:`orchestrator.serving.codecs`, and
``model.predict(data)``.

Errors while serving: what the user's ``input_fn`` raises is the caller's fault
(``ModelError``, HTTP 400); what ``predict_fn``/``output_fn`` raise is the model's
(``ModelError``, 500). The default ``predict_fn`` maps a ``ValueError`` (scikit-learn's answer
to a wrong feature count or shape) to 400, since the request, not the model, is wrong.
Errors of the product (``OrchestratorError``) pass through unchanged.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib

from orchestrator.errors import ModelError, OrchestratorError, ValidationError
from orchestrator.serving import codecs

MODEL_FILES: tuple[str, ...] = ("model.joblib", "model.pkl", "model.pickle")


@dataclass(frozen=True, slots=True)
class InvokeResult:
    body: bytes
    content_type: str
    model_seconds: float


def default_model_fn(model_dir: str) -> Any:
    """Load the first of :data:`MODEL_FILES` found in ``model_dir``."""
    root = Path(model_dir)
    for name in MODEL_FILES:
        path = root / name
        if path.is_file():
            return joblib.load(path)
    raise ValidationError(
        f"no model file in {root}: expected one of {', '.join(MODEL_FILES)} "
        f"(or a model_fn in the inference script); found {_listing(root)}",
        field="model_dir",
    )


def default_input_fn(body: bytes, content_type: str) -> Any:
    return codecs.decode(body, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    return codecs.encode(prediction, accept)


class ModelHandler:
    """A loaded model and the four functions that serve it. Thread-safe if the model is."""

    def __init__(
        self,
        model: Any,
        *,
        input_fn: Callable[[bytes, str], Any] | None = None,
        predict_fn: Callable[[Any, Any], Any] | None = None,
        output_fn: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self.model = model
        self._input_fn = input_fn
        self._predict_fn = predict_fn
        self._output_fn = output_fn

    @classmethod
    def load(
        cls, model_dir: Path, *, code_dir: Path | None = None, program: str | None = None
    ) -> ModelHandler:
        """Import the user's script (if any) and load the model with its ``model_fn``."""
        module = None
        if program is not None:
            module = _import_program(code_dir or model_dir / "code", program)
        model_fn = _user_fn(module, "model_fn")
        if model_fn is None:
            model = default_model_fn(str(model_dir))
        else:
            try:
                model = model_fn(str(model_dir))
            except OrchestratorError:
                raise
            except Exception as e:
                raise ModelError(f"model_fn {_describe(e)}", http_status=500) from e
        return cls(
            model,
            input_fn=_user_fn(module, "input_fn"),
            predict_fn=_user_fn(module, "predict_fn"),
            output_fn=_user_fn(module, "output_fn"),
        )

    def invoke(self, body: bytes, content_type: str, accept: str) -> InvokeResult:
        """Serve one request; raises ``OrchestratorError`` (``ModelError`` for user code)."""
        started = time.perf_counter()
        data = self.decode(body, content_type)
        prediction = self.predict(data)
        out_body, out_type = self.encode(prediction, accept)
        return InvokeResult(out_body, out_type, time.perf_counter() - started)

    # The three stages apart, so a batcher can decode requests one by one, predict them
    # together and encode them one by one again.

    def decode(self, body: bytes, content_type: str) -> Any:
        """The request body as the model's input (``input_fn``)."""
        if self._input_fn is None:
            return default_input_fn(body, content_type)
        try:
            return self._input_fn(body, content_type)
        except OrchestratorError:
            raise
        except Exception as e:
            raise ModelError(f"input_fn {_describe(e)}", http_status=400) from e

    def predict(self, data: Any, cancelled: Callable[[], bool] | None = None) -> Any:
        """The model's prediction for ``data`` (``predict_fn``); ``cancelled`` is for
        multi-step servables (a pipeline) and unused here."""
        try:
            if self._predict_fn is None:
                return default_predict_fn(data, self.model)
            return self._predict_fn(data, self.model)
        except OrchestratorError:
            raise
        except ValueError as e:
            status = 400 if self._predict_fn is None else 500
            raise ModelError(f"predict_fn {_describe(e)}", http_status=status) from e
        except Exception as e:
            raise ModelError(f"predict_fn {_describe(e)}", http_status=500) from e

    def encode(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        """The prediction as a response body and its content type (``output_fn``)."""
        if self._output_fn is None:
            try:
                return default_output_fn(prediction, accept)
            except OrchestratorError:
                raise
            except Exception as e:
                raise ModelError(f"output_fn {_describe(e)}", http_status=500) from e
        try:
            result = self._output_fn(prediction, accept)
        except OrchestratorError:
            raise
        except Exception as e:
            raise ModelError(f"output_fn {_describe(e)}", http_status=500) from e
        return _as_response(result, accept)


def _as_response(result: Any, accept: str) -> tuple[bytes, str]:
    content_type = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, content_type = result
    if content_type is None:
        kind = codecs.accepted_types(accept)[0]
        content_type = kind if "*" not in kind else "application/octet-stream"
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), content_type
    raise ModelError(
        f"output_fn must return bytes, str or (body, content_type), not {type(result).__name__}",
        http_status=500,
    )


def _import_program(code_dir: Path, program: str) -> ModuleType:
    path = code_dir / program
    if not path.is_file():
        raise ValidationError(
            f"inference script {program!r} not found in {code_dir}; found {_listing(code_dir)}",
            field="program",
        )
    # The script's sibling modules must import, as they do when it runs as a script.
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    name = f"orchestrator_user_code_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot import {path} as a Python module", field="program")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ModelError(f"importing {program} {_describe(e)}", http_status=500) from e
    return module


def _user_fn(module: ModuleType | None, name: str) -> Callable[..., Any] | None:
    fn = getattr(module, name, None) if module is not None else None
    return fn if callable(fn) else None


def _describe(e: BaseException) -> str:
    return f"raised {type(e).__name__}: {e}"


def _listing(directory: Path) -> str:
    if not directory.is_dir():
        return "no such directory"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    return ", ".join(names) if names else "an empty directory"
