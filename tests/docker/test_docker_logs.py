"""A Docker replica's output (the model's prints) as its endpoint's log stream, with the
engine's times."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_logs_process import _deploy, _messages_until

pytestmark = pytest.mark.slow


def test_replica_prints_are_its_stream_with_the_engines_times(
    docker_server: RunningServer, tmp_path: Path
) -> None:
    c = docker_server.client()
    x = _deploy(c, tmp_path, "chatty-docker")
    c.invoke_endpoint("chatty-docker", json.dumps(x[:3].tolist()).encode())
    group = "/aws/sagemaker/Endpoints/chatty-docker"
    created = c.describe_endpoint("chatty-docker").CreationTime.timestamp() * 1000
    events = _messages_until(c, group, "predicting 3 rows", stream_prefix="blue/")
    [printed] = [e for e in events if e["Message"] == "predicting 3 rows"]
    assert printed["Stream"].startswith("blue/blue-")
    assert printed["Timestamp"] > created  # the engine's time of the line, not a fallback
    recent = c.log_events(group, since=str(printed["Timestamp"]))["Events"]
    assert "predicting 3 rows" in [e["Message"] for e in recent]
    c.delete_endpoint("chatty-docker")
    deadline = time.monotonic() + 60
    while any(e.EndpointName == "chatty-docker" for e in c.list_endpoints().Endpoints):
        assert time.monotonic() < deadline, "the endpoint was not deleted"
        time.sleep(0.5)
