"""Endpoints on the real process backend: replicas, routing, limits, model errors, recovery."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from orchestrator.client import Client
from orchestrator.errors import ModelError, PayloadTooLargeError, ValidationError
from tests.e2e.conftest import RunningServer, source_tarball

pytestmark = pytest.mark.slow

INFERENCE = """
import json
import joblib, os
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    if np.any(data < 0):
        raise ValueError("negative measurements are not valid for this model")
    return model.predict(data)
"""


def model_artifact(tmp: Path) -> tuple[bytes, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    joblib.dump(model, tmp / "model.joblib")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp / "model.joblib", arcname="model.joblib")
    return buf.getvalue(), x, model.predict(x)


def deploy(
    c: Client, tmp: Path, name: str, *, instances: int = 1, public: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    artifact, x, expected = model_artifact(tmp)
    c.upload_bytes(artifact, f"s3://orchestrator/{name}/model.tar.gz")
    c.upload_bytes(
        source_tarball({"inference.py": INFERENCE}), f"s3://orchestrator/{name}/source.tar.gz"
    )
    c.create_model(
        ModelName=name,
        PrimaryContainer={
            "ModelDataUrl": f"s3://orchestrator/{name}/model.tar.gz",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://orchestrator/{name}/source.tar.gz",
            },
        },
    )
    c.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "main", "ModelName": name, "InitialInstanceCount": instances}
        ],
    )
    c.create_endpoint(
        EndpointName=name, EndpointConfigName=name, AuthMode="None" if public else "ApiKey"
    )
    c.wait_for_endpoint(name, timeout=60)
    return x, expected


def test_script_mode_model_serves_predictions_and_survives_its_own_errors(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    x, expected = deploy(c, tmp_path, "iris")
    answer = c.invoke_endpoint("iris", json.dumps(x[:10].tolist()).encode())
    assert answer.variant == "main"
    assert json.loads(answer.body)["predictions"] == expected[:10].tolist()
    csv = "\n".join(",".join(str(v) for v in row) for row in x[:5]).encode()
    answer = c.invoke_endpoint("iris", csv, content_type="text/csv")
    assert json.loads(answer.body)["predictions"] == expected[:5].tolist()
    # The model's own error comes back with its message; the replica stays up.
    with pytest.raises(ModelError, match="negative measurements are not valid") as info:
        c.invoke_endpoint("iris", json.dumps([[-1, 0, 0, 0]]).encode())
    assert info.value.http_status == 500
    # Malformed input is the caller's error.
    with pytest.raises(ValidationError):
        c.invoke_endpoint("iris", b"not json")
    answer = c.invoke_endpoint("iris", json.dumps(x[:1].tolist()).encode())
    assert json.loads(answer.body)["predictions"] == expected[:1].tolist()
    ep = c.describe_endpoint("iris")
    assert ep.EndpointStatus == "InService" and ep.ProductionVariants[0].CurrentInstanceCount == 1


def test_payload_over_6_mb_is_413_before_reaching_a_replica(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    deploy(c, tmp_path, "big")
    with pytest.raises(PayloadTooLargeError):
        c.invoke_endpoint("big", b"[" + b"1," * (3 * 1024 * 1024) + b"1]")

    # Streamed (chunked) without a Content-Length too.
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(7):
            yield b" " * (1024 * 1024)

    r = httpx.post(
        f"{server.url}/endpoints/big/invocations",
        content=chunks(),
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        trust_env=False,
    )
    assert r.status_code == 413


def test_dead_replica_is_replaced_and_never_routed_to(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    x, expected = deploy(c, tmp_path, "heal", instances=2)
    body = json.dumps(x[:3].tolist()).encode()
    replicas = sorted((server.root / "home" / "work" / "endpoints" / "heal").glob("*/replica.pid"))
    assert len(replicas) == 2
    victim = json.loads(replicas[0].read_text())["pid"]
    os.killpg(victim, signal.SIGKILL)
    failures = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c.invoke_endpoint("heal", body)
        except Exception as e:
            failures += 1
            print("invocation failed:", type(e).__name__, e)
        ep = c.describe_endpoint("heal")
        live = sorted((server.root / "home" / "work" / "endpoints" / "heal").glob("*/replica.pid"))
        if ep.ProductionVariants[0].CurrentInstanceCount == 2 and replicas[0] not in live:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the dead replica was not replaced")
    # Connection refused by the dead replica is retried on the live one: no failed request.
    assert failures == 0
    assert json.loads(c.invoke_endpoint("heal", body).body)["predictions"] == expected[:3].tolist()


def test_public_endpoint_needs_no_key_and_private_one_does(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    x, _ = deploy(c, tmp_path, "open", public=True)
    body = json.dumps(x[:1].tolist()).encode()
    r = httpx.post(
        f"{server.url}/endpoints/open/invocations",
        content=body,
        headers={"Content-Type": "application/json"},
        trust_env=False,
    )
    assert r.status_code == 200
    r = httpx.post(f"{server.url}/endpoints/missing/invocations", content=body, trust_env=False)
    assert r.status_code == 401


def test_endpoint_whose_model_cannot_load_fails_with_the_replica_message(
    server: RunningServer,
) -> None:
    c = server.client()
    c.upload_bytes(
        source_tarball({"README.txt": "no model here"}), "s3://orchestrator/empty/model.tar.gz"
    )
    c.create_model(
        ModelName="empty", PrimaryContainer={"ModelDataUrl": "s3://orchestrator/empty/model.tar.gz"}
    )
    c.create_endpoint_config(
        EndpointConfigName="empty", ProductionVariants=[{"VariantName": "v", "ModelName": "empty"}]
    )
    c.create_endpoint(EndpointName="empty", EndpointConfigName="empty")
    deadline = time.monotonic() + 60
    while (ep := c.describe_endpoint("empty")).EndpointStatus != "Failed":
        assert time.monotonic() < deadline, ep
        time.sleep(0.2)
    assert "model.joblib" in (ep.FailureReason or "")
    assert "README.txt" in (ep.FailureReason or "")
    c.delete_endpoint("empty")
    c.wait_for_endpoint_deleted("empty", timeout=30)
