"""What the runner's tests share: a file object store, a trained model on disk and the real
model server (``python -m orchestrator.serving``) in a subprocess behind a ``ModelServer``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from orchestrator.objects import FileObjectStore, LocalKeyring, ObjectStore
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import TransformSettings
from orchestrator.transformer.driver import InstanceConfig, run_instance
from orchestrator.transformer.scratch import InstanceResult
from orchestrator.transformer.server import ModelServer, wait_for_ping

REPO = Path(__file__).resolve().parents[2]
FEATURES = 5


def file_store(root: Path) -> FileObjectStore:
    return FileObjectStore(root / "objects", LocalKeyring(root / "keys" / "keyring.json"))


def trained_model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y)


def model_dir(root: Path, model: LogisticRegression, script: str | None = None) -> Path:
    directory = root / "model"
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    if script is not None:
        (directory / "code").mkdir(exist_ok=True)
        (directory / "code" / "inference.py").write_text(textwrap.dedent(script))
    return directory


def csv_rows(rows: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows).encode()


class ServingProcess:
    """``python -m orchestrator.serving`` on a model directory, as a ``ModelServer``."""

    def __init__(self, directory: Path, log: Path, *, concurrency: int = 2, **env: str) -> None:
        self.directory = directory
        self.log_path = log
        self.concurrency = concurrency
        self.env = env
        self.port_file = log.with_suffix(".port")
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port_file.unlink(missing_ok=True)
        args = [
            sys.executable, "-m", "orchestrator.serving", "--model-dir", str(self.directory),
            "--port", "0", "--port-file", str(self.port_file),
            "--max-concurrency", str(self.concurrency), "--grace-seconds", "1",
        ]  # fmt: skip
        if (self.directory / "code" / "inference.py").is_file():
            args += ["--program", "inference.py"]
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log, env=env)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            why = self.died()
            if why is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the model server did not start: {why}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(self.port_file.read_text())}"
        wait_for_ping(self.url, max(0.1, deadline - time.monotonic()), self.died)

    def died(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace")[-2000:]
        return f"exit code {self.proc.returncode}: {tail}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def transform_spec(name: str = "job", **overrides: Any) -> CreateTransformJobRequest:
    """A CSV Line MultiRecord job over ``s3://data/in/`` into ``s3://data/out/``; any field
    (nested ones as dicts) replaced by ``overrides``."""
    document: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "model",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": "s3://data/out",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "local", "InstanceCount": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return CreateTransformJobRequest.model_validate(document)


def config_for(
    spec: CreateTransformJobRequest, instance: int = 0, attempt: int = 1
) -> InstanceConfig:
    return InstanceConfig(
        Name=spec.TransformJobName,
        Instance=instance,
        Attempt=attempt,
        InstanceCount=spec.TransformResources.InstanceCount,
        Spec=spec,
        ModelName=spec.ModelName,
    )


def settings(**overrides: Any) -> TransformSettings:
    values: dict[str, Any] = {"range_bytes": 64 * 1024, "progress_interval_seconds": 0.2}
    return TransformSettings(**{**values, **overrides})


def run(
    store: ObjectStore,
    spec: CreateTransformJobRequest,
    server: ModelServer,
    *,
    instance: int = 0,
    attempt: int = 1,
    stop: threading.Event | None = None,
    **setting: Any,
) -> InstanceResult:
    return run_instance(
        store,
        config_for(spec, instance, attempt),
        server,
        settings(**setting),
        stop or threading.Event(),
    )
