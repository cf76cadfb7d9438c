"""The runner container of a transform pod (``python -m orchestrator.kube.transform_step``), run
as its Job's manifest runs it: the configuration from the manifest's environment, the keyring
file, a file-backed store, and the model server beside it (the real one, in a subprocess, as the
sidecar would be)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.controller.plan.types import TransformLaunch
from orchestrator.kube import transform_step
from orchestrator.kube.transforms import STEP_ENV, transform_job_manifest
from orchestrator.objects import FileObjectStore, LocalKeyring
from orchestrator.resources.failures import FailureReason
from orchestrator.resources.models import CreateModelRequest
from orchestrator.settings import KubeSettings, TransformSettings
from orchestrator.transformer.scratch import TransformScratch
from tests.transform._runner import (
    REPO,
    ServingProcess,
    csv_rows,
    model_dir,
    trained_model,
    transform_spec,
)

REFUSING = """
def predict_fn(data, model):
    if (data[:, 0] > 1000).any():
        raise RuntimeError(f"feature 0 is {data[:, 0].max():g}, over 1000")
    return model.predict(data)
"""


def runner_env(tmp_path: Path, port: int, **spec: Any) -> dict[str, str]:
    """The runner container's environment as its Job's manifest gives it."""
    launch = TransformLaunch(
        name="scores",
        instance=0,
        attempt=1,
        spec=transform_spec("scores", **spec),
        model_name="model",
        model=CreateModelRequest(ModelName="model", PrimaryContainer={}),
    )
    settings = KubeSettings(object_store_url=(tmp_path / "objects").as_uri(), serving_port=port)
    job = transform_job_manifest(
        launch,
        "ml",
        owner=None,
        settings=settings,
        transform=TransformSettings(range_bytes=64 * 1024, progress_interval_seconds=0.2),
    )
    [runner] = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in runner["env"]}


def run_step(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "orchestrator.kube.transform_step",
        "--keyring", str(tmp_path / "keys" / "keyring.json"),
        "--termination-log", str(tmp_path / "termination-log"),
    ]  # fmt: skip
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        args, cwd=REPO, env=full, capture_output=True, text=True, timeout=120, check=False
    )


def said(tmp_path: Path) -> FailureReason:
    return FailureReason.decode((tmp_path / "termination-log").read_text())


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "objects", LocalKeyring(tmp_path / "keys" / "keyring.json"))


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[ServingProcess]:
    server = ServingProcess(model_dir(tmp_path, trained_model(), REFUSING), tmp_path / "serve.log")
    server.start()
    try:
        server.wait_ready(60)
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_the_runner_scores_its_share_against_the_sidecar(
    tmp_path: Path, store: FileObjectStore, sidecar: ServingProcess
) -> None:
    rows = np.random.default_rng(3).normal(size=(40, 5))
    store.put_bytes("s3://data/in/a.csv", csv_rows(rows))
    port = int(sidecar.url.rsplit(":", 1)[1])
    done = run_step(tmp_path, runner_env(tmp_path, port))
    assert done.returncode == 0, done.stderr
    out = store.get_bytes("s3://data/out/a.csv.out").decode().splitlines()
    assert len(out) == 40
    assert not (tmp_path / "termination-log").exists()
    result = TransformScratch(store, "scores").read_result(0)
    assert result is not None and (result.Outcome, result.Attempt) == ("completed", 1)


@pytest.mark.slow
def test_a_failure_is_said_in_the_termination_message_as_in_the_result(
    tmp_path: Path, store: FileObjectStore, sidecar: ServingProcess
) -> None:
    rows = np.random.default_rng(3).normal(size=(10, 5))
    rows[4, 0] = 5000.0
    store.put_bytes("s3://data/in/a.csv", csv_rows(rows))
    port = int(sidecar.url.rsplit(":", 1)[1])
    done = run_step(tmp_path, runner_env(tmp_path, port, BatchStrategy="SingleRecord"))
    assert done.returncode == 1
    result = TransformScratch(store, "scores").read_result(0)
    assert result is not None and result.Failure is not None
    assert said(tmp_path) == result.Failure
    assert "a.csv" in result.Failure.message


def test_no_configuration_is_a_client_error_naming_the_variable(tmp_path: Path) -> None:
    code = transform_step.main(["--termination-log", str(tmp_path / "termination-log")])
    assert code == 1
    reason = said(tmp_path)
    assert reason.kind == "ClientError"
    assert reason.message.startswith(f"{STEP_ENV} is not set")


def test_a_bad_configuration_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = runner_env(tmp_path, 8080)
    monkeypatch.setenv(STEP_ENV, env[STEP_ENV].replace('"Attempt":1', '"Attempt":0'))
    assert transform_step.main(["--termination-log", str(tmp_path / "termination-log")]) == 1
    reason = said(tmp_path)
    assert reason.kind == "ClientError"
    assert "Attempt: Input should be greater than or equal to 1" in reason.message
    monkeypatch.setenv(STEP_ENV, "{not json")
    assert transform_step.main(["--termination-log", str(tmp_path / "termination-log")]) == 1
    assert said(tmp_path).message.startswith(f"{STEP_ENV} is not a valid configuration: ")


def test_a_keyring_that_cannot_be_read_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STEP_ENV, runner_env(tmp_path, 8080)[STEP_ENV])
    args = ["--keyring", str(tmp_path / "missing.json")]
    assert transform_step.main([*args, "--termination-log", str(tmp_path / "termination-log")]) == 1
    reason = said(tmp_path)
    assert reason.kind == "InternalServerError"
    assert reason.message.startswith("opening the object store: FileNotFoundError")
