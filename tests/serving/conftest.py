"""Fixtures for the inference server: a tiny trained model on disk and script writers."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from orchestrator.serving import build_app
from orchestrator.settings import ServingSettings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, data.target


@pytest.fixture(scope="session")
def trained(iris: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    x, y = iris
    return LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def model_dir(tmp_path: Path, trained: LogisticRegression) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    joblib.dump(trained, directory / "model.joblib")
    return directory


WriteScript = Callable[..., Path]


@pytest.fixture
def write_script(tmp_path: Path) -> WriteScript:
    """Write ``inference.py`` (and optional sibling modules) into a fresh code dir."""

    def write(source: str, *, name: str = "inference.py", **siblings: str) -> Path:
        code_dir = tmp_path / "code"
        code_dir.mkdir(exist_ok=True)
        (code_dir / name).write_text(textwrap.dedent(source))
        for module, text in siblings.items():
            (code_dir / f"{module}.py").write_text(textwrap.dedent(text))
        return code_dir

    return write


AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client() -> AppClient:
    """``async with app_client(handler, settings) as client``: HTTP to the app, in process."""
    return _app_client


@asynccontextmanager
async def _app_client(
    handler: Any, settings: ServingSettings | None = None, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(handler, settings=settings or ServingSettings(), **options)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            yield client
    finally:
        app.dispatcher.close()
