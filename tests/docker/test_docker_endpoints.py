"""Endpoint replicas as containers: health, routing, replacement, adoption after a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.test_endpoints_process import deploy

pytestmark = pytest.mark.slow


def replicas(
    client: docker.DockerClient, endpoint: str
) -> list[docker.models.containers.Container]:
    labels = {"label": ["orchestrator.kind=replica", f"orchestrator.resource={endpoint}"]}
    for _ in range(10):
        try:
            return list(client.containers.list(all=True, ignore_removed=True, filters=labels))
        except docker.errors.NotFound:
            continue  # removed between the listing and its inspection: list again
    raise AssertionError(f"the replicas of {endpoint} kept vanishing while listed")


def test_killed_replica_is_replaced_and_never_routed_to(
    docker_server: RunningServer, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    x, expected = deploy(c, tmp_path, "heal-docker", instances=2)
    body = json.dumps(x[:3].tolist()).encode()
    before = replicas(docker_client, "heal-docker")
    assert len(before) == 2 and all(r.status == "running" for r in before)
    attrs = before[0].attrs
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert attrs["Config"]["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    assert {m["Destination"]: m["RW"] for m in attrs["Mounts"]}["/opt/ml/model"] is False
    victim = before[0]
    victim.kill()
    failures = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c.invoke_endpoint("heal-docker", body)
        except Exception as e:
            failures += 1
            print("invocation failed:", type(e).__name__, e)
        ep = c.describe_endpoint("heal-docker")
        names = {r.name for r in replicas(docker_client, "heal-docker")}
        if ep.ProductionVariants[0].CurrentInstanceCount == 2 and victim.name not in names:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the killed replica was not replaced")
    assert failures == 0
    answer = c.invoke_endpoint("heal-docker", body)
    assert json.loads(answer.body)["predictions"] == expected[:3].tolist()


def test_restarted_control_plane_adopts_running_replicas(
    docker_server: RunningServer, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    x, expected = deploy(c, tmp_path, "keep-docker")
    before = {r.id for r in replicas(docker_client, "keep-docker")}
    docker_server.kill()
    docker_server.start()
    c = docker_server.client()
    c.wait_for_endpoint("keep-docker", timeout=60)
    answer = c.invoke_endpoint("keep-docker", json.dumps(x[:2].tolist()).encode())
    assert json.loads(answer.body)["predictions"] == expected[:2].tolist()
    assert {r.id for r in replicas(docker_client, "keep-docker")} == before  # no new container
    c.delete_endpoint("keep-docker")
    c.wait_for_endpoint_deleted("keep-docker", timeout=60)
    assert replicas(docker_client, "keep-docker") == []
