"""Logs on the real process backend: a model's prints and the request log as the endpoint's
log streams per variant and instance, and the control plane's own log as a group."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import Client
from tests.e2e.conftest import RunningServer, source_tarball
from tests.e2e.test_endpoints_process import model_artifact

pytestmark = pytest.mark.slow

INFERENCE = """
import joblib, os

def model_fn(model_dir):
    print("loading the iris model")
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    print(f"predicting {len(data)} rows")
    return model.predict(data)
"""


def _deploy(c: Client, tmp: Path, name: str) -> Any:
    artifact, x, _ = model_artifact(tmp)
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
                "ORCH_SERVING__REQUEST_LOG": "true",
            },
        },
    )
    c.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "blue", "ModelName": name, "InitialInstanceCount": 1}],
    )
    c.create_endpoint(EndpointName=name, EndpointConfigName=name)
    c.wait_for_endpoint(name, timeout=60)
    return x


def _messages_until(c: Client, group: str, text: str, **query: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        events: list[dict[str, Any]] = c.log_events(group, **query)["Events"]
        if any(text in e["Message"] for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_model_prints_and_request_log_are_the_replicas_stream(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    x = _deploy(c, tmp_path, "chatty")
    c.invoke_endpoint("chatty", json.dumps(x[:3].tolist()).encode())
    group = "/aws/sagemaker/Endpoints/chatty"
    events = _messages_until(c, group, "status=200", stream_prefix="blue/")
    messages = [e["Message"] for e in events]
    assert "loading the iris model" in messages
    assert "predicting 3 rows" in messages
    [request] = [m for m in messages if " request /invocations " in m]
    assert "status=200 latency_ms=" in request
    streams = {e["Stream"] for e in events}
    assert len(streams) == 1
    [stream] = streams
    variant, _, instance = stream.partition("/")
    assert variant == "blue" and instance.startswith("blue-")  # VARIANT/INSTANCE
    assert [s["Name"] for s in c.log_streams(group)] == [stream]
    filtered = c.log_events(group, pattern="predicting")["Events"]
    assert [e["Message"] for e in filtered] == ["predicting 3 rows"]
    # each line carries the time it was written (the replica marks its output), so --since
    # selects by it
    created = c.describe_endpoint("chatty").CreationTime.timestamp() * 1000
    [printed] = filtered
    assert printed["Timestamp"] > created
    later = c.log_events(group, since=str(printed["Timestamp"]))["Events"]
    assert "loading the iris model" not in [e["Message"] for e in later]
    assert "predicting 3 rows" in [e["Message"] for e in later]


def test_control_plane_log_is_readable_as_its_group(server: RunningServer) -> None:
    c = server.client()
    groups = [g["Name"] for g in c.log_groups()]
    assert "/orchestrator/control-plane" in groups
    events = c.log_events("/orchestrator/control-plane", since="10m")["Events"]
    assert events, "the server logs at start-up"
    assert all(e["Timestamp"] > 0 for e in events)
