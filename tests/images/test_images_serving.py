"""The serving image serves a scikit-learn model from a read-only mount and stops cleanly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from tests.images.conftest import HARDENED, docker

GRACE_SECONDS = 10


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    model = LinearRegression().fit(x, x @ np.array([2.0, 3.0]) + 1.0)
    path = tmp_path / "model"
    path.mkdir()
    joblib.dump(model, path / "model.joblib")
    # The container's user (1000) reads the mount; the test may run as anyone.
    path.chmod(0o755)
    (path / "model.joblib").chmod(0o644)
    return path


@pytest.fixture
def container(image: Callable[[str], str], model_dir: Path) -> Iterator[str]:
    cid = docker(
        "run",
        "--detach",
        *HARDENED,
        "--publish",
        "127.0.0.1::8080",
        "--volume",
        f"{model_dir}:/opt/ml/model:ro",
        image("serving"),
    ).stdout.strip()
    try:
        yield cid
    finally:
        docker("rm", "--force", cid, check=False)


def _wait_ready(cid: str, timeout: float = 60) -> str:
    port = docker("port", cid, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        state = docker("inspect", "--format", "{{.State.Running}}", cid).stdout.strip()
        if state != "true":
            logs = docker("logs", cid, check=False)
            pytest.fail(f"the serving container exited:\n{logs.stdout}\n{logs.stderr}")
        time.sleep(0.25)
    pytest.fail(f"the serving container was not ready within {timeout} s")


def _predictions(body: Any) -> Any:
    return body["predictions"] if isinstance(body, dict) else body


def _state(cid: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(docker("inspect", "--format", "{{json .State}}", cid).stdout)
    return state


@pytest.mark.slow
def test_serves_and_stops_on_sigterm(container: str) -> None:
    url = _wait_ready(container)

    response = httpx.post(
        f"{url}/invocations",
        content=b"1.0,1.0\n0.0,0.0\n",
        headers={"Content-Type": "text/csv", "Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert np.allclose(np.ravel(_predictions(response.json())), [6.0, 1.0])

    # The image's HEALTHCHECK command, run as Docker runs it.
    health = docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", container)
    test = json.loads(health.stdout)
    assert test[0] == "CMD"
    docker("exec", container, *test[1:])

    started = time.monotonic()
    docker("stop", "--time", str(GRACE_SECONDS), container, timeout=GRACE_SECONDS + 30)
    assert time.monotonic() - started < GRACE_SECONDS
    assert _state(container)["ExitCode"] == 0
