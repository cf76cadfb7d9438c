"""Inference pipelines: several models served by one replica, run in order.

Step ``i``'s response body and content type become step ``i+1``'s request; intermediate steps
answer their default type (``Accept: */*``) and the client's Accept applies to the last one.
A pipeline is itself a servable (``decode`` / ``predict`` / ``encode``): it decodes with its
first step and encodes with its last, so the dispatcher (and the v2 protocol) treat it like
one model. Every error names the step it came from, by index and hostname.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import DeadlineExceededError, OrchestratorError
from orchestrator.serving.handler import ModelHandler

INTERMEDIATE_ACCEPT = "*/*"


class Servable(Protocol):
    """What the dispatcher runs: a model's three stages, apart."""

    def decode(self, body: bytes, content_type: str) -> Any: ...

    def predict(self, data: Any, cancelled: Callable[[], bool] | None = None) -> Any: ...

    def encode(self, prediction: Any, accept: str) -> tuple[bytes, str]: ...


@dataclass(frozen=True, slots=True)
class Step:
    handler: ModelHandler
    hostname: str = ""


class Pipeline:
    """Steps run in order; pre-process -> predict -> post-process, or any other chain."""

    def __init__(self, steps: Sequence[Step]) -> None:
        if len(steps) < 1:
            raise ValueError("a pipeline needs at least one step")
        self.steps = list(steps)

    def decode(self, body: bytes, content_type: str) -> Any:
        with self._step(0):
            return self.steps[0].handler.decode(body, content_type)

    def predict(self, data: Any, cancelled: Callable[[], bool] | None = None) -> Any:
        with self._step(0):
            prediction = self.steps[0].handler.predict(data)
        for index in range(1, len(self.steps)):
            if cancelled is not None and cancelled():
                raise DeadlineExceededError(
                    f"the request was abandoned before pipeline step {self._name(index)}"
                )
            with self._step(index - 1):
                body, content_type = self.steps[index - 1].handler.encode(
                    prediction, INTERMEDIATE_ACCEPT
                )
            with self._step(index):
                step = self.steps[index].handler
                prediction = step.predict(step.decode(body, content_type))
        return prediction

    def encode(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        with self._step(len(self.steps) - 1):
            return self.steps[-1].handler.encode(prediction, accept)

    def _name(self, index: int) -> str:
        hostname = self.steps[index].hostname
        return f"{index} ({hostname})" if hostname else str(index)

    @contextlib.contextmanager
    def _step(self, index: int) -> Iterator[None]:
        try:
            yield
        except OrchestratorError as e:
            raise _renamed(e, f"pipeline step {self._name(index)}: {e.message}") from e


def _renamed(error: OrchestratorError, message: str) -> OrchestratorError:
    """The same error (class, field, status) with a new message."""
    out = copy.copy(error)
    out.message = message
    out.args = (message,)
    return out


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where one model (one pipeline step) is on disk: its artifact, its script, its name."""

    model_dir: Path
    code_dir: Path | None = None
    program: str | None = None
    hostname: str = ""


def load_servable(sources: Sequence[ModelSource]) -> ModelHandler | Pipeline:
    """One model's handler, or a pipeline of several; load errors name the step."""
    if len(sources) == 1:
        s = sources[0]
        return ModelHandler.load(s.model_dir, code_dir=s.code_dir, program=s.program)
    steps = []
    for index, s in enumerate(sources):
        try:
            handler = ModelHandler.load(s.model_dir, code_dir=s.code_dir, program=s.program)
        except OrchestratorError as e:
            name = f"{index} ({s.hostname})" if s.hostname else str(index)
            raise _renamed(e, f"pipeline step {name}: {e.message}") from e
        steps.append(Step(handler, s.hostname))
    return Pipeline(steps)
