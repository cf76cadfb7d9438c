"""What the real-process transform tests share: settings, a scikit-learn model artifact in the
object store, CSV input, and waiting on a backend's observation."""

from __future__ import annotations

import io
import tarfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from orchestrator.backends.base import TransformBackend
from orchestrator.controller.plan.types import (
    ObservedTransform,
    ObservedTransformInstance,
    TransformLaunch,
)
from orchestrator.objects import ObjectStore
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import ControllerSettings, Settings, TransformSettings
from orchestrator.testing import transform_job_spec

FEATURES = 4

# Sleeps per request, so that a test can catch the job half way; optionally for ever.
SLOW = """
import os, time

def predict_fn(data, model):
    time.sleep(float(os.environ.get("PREDICT_SLEEP", "0.2")))
    return model.predict(data)
"""


def transform_settings(home: Path, **extra: Any) -> Settings:
    return Settings(
        home=home,
        config_dir=home / "config",
        controller=ControllerSettings(stop_grace_seconds=2.0),
        transform=TransformSettings(
            range_bytes=64 * 1024, progress_interval_seconds=0.2, startup_timeout_seconds=60
        ),
        **extra,
    )


def trained() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, FEATURES))
    return LogisticRegression().fit(x, (x[:, 0] - x[:, 1] > 0).astype(int))


def artifact(model: LogisticRegression, script: str | None = None) -> bytes:
    """A model.tar.gz: model.joblib, and code/inference.py when ``script`` is given."""
    files: dict[str, bytes] = {}
    buf = io.BytesIO()
    joblib.dump(model, buf)
    files["model.joblib"] = buf.getvalue()
    if script is not None:
        files["code/inference.py"] = textwrap.dedent(script).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES))


def csv(x: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in x).encode()


def predicted(model: LogisticRegression, x: np.ndarray) -> list[str]:
    """What the model answers for the CSV as written (the values rounded as in the file)."""
    parsed = np.loadtxt(io.BytesIO(csv(x)), delimiter=",", ndmin=2)
    return [str(p) for p in model.predict(parsed).tolist()]


def put_model(
    store: ObjectStore, name: str, model: LogisticRegression, script: str | None = None, **env: str
) -> CreateModelRequest:
    if not store.bucket_exists("data"):
        store.create_bucket("data")
    uri = f"s3://data/models/{name}/model.tar.gz"
    store.put_bytes(uri, artifact(model, script))
    return CreateModelRequest.model_validate(
        {"ModelName": name, "PrimaryContainer": {"ModelDataUrl": uri, "Environment": env}}
    )


def job_spec(
    name: str, model: str, *, instances: int = 1, **fields: Any
) -> CreateTransformJobRequest:
    doc = transform_job_spec(
        name,
        model,
        f"s3://data/{name}/in/",
        f"s3://data/{name}/out",
        instances=instances,
        split_type="Line",
        content_type="text/csv",
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        **fields,
    )
    doc["TransformOutput"].update({"Accept": "text/csv", "AssembleWith": "Line"})
    return CreateTransformJobRequest.model_validate(doc)


def launch(
    spec: CreateTransformJobRequest, model: CreateModelRequest, instance: int = 0, attempt: int = 1
) -> TransformLaunch:
    return TransformLaunch(
        name=spec.TransformJobName,
        instance=instance,
        attempt=attempt,
        spec=spec,
        model_name=model.ModelName,
        model=model,
    )


def wait_for(
    backend: TransformBackend,
    name: str,
    check: Callable[[ObservedTransform], bool],
    what: str,
    timeout: float = 90.0,
) -> ObservedTransform:
    deadline = time.monotonic() + timeout
    while True:
        seen = backend.observe_transform(name)
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            logs = backend.read_transform_logs(name, 0, 20_000)[0].decode(errors="replace")
            raise AssertionError(f"{name}: never {what}; last seen {seen}\n--- log ---\n{logs}")
        time.sleep(0.1)


def one(seen: ObservedTransform, instance: int = 0) -> ObservedTransformInstance:
    return next(x for x in seen.instances if x.instance == instance)


def exited(instance: int = 0) -> Callable[[ObservedTransform], bool]:
    def check(seen: ObservedTransform) -> bool:
        return any(x.instance == instance and x.state == "exited" for x in seen.instances)

    return check
