"""Replica traffic over TLS on Docker (``ORCH_SERVING__REPLICA_TLS=true``): each replica
container mounts its certificate and key (0600, the container user's) read-only and serves
HTTPS only on its published port; the container's own health check and the controller's
``/ping`` verify it against the replica CA; invocations through the control plane reach it.

Needs a serving image built from this tree (``make images``); ``ORCH_TEST_SERVING_IMAGE``
names another such image instead."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from orchestrator import tls
from orchestrator.settings import DockerSettings
from tests.docker.conftest import _unavailable, remove_test_containers
from tests.docker.test_docker_endpoints import replicas
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env
from tests.e2e.test_endpoints_process import deploy

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_docker_server(
    tmp_path: Path, images: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[RunningServer]:
    extra = dict(images)
    if os.environ.get("ORCH_TEST_SERVING_IMAGE"):
        extra["ORCH_DOCKER__SERVING_IMAGE"] = os.environ["ORCH_TEST_SERVING_IMAGE"]
    image = extra.get("ORCH_DOCKER__SERVING_IMAGE", DockerSettings().serving_image)
    usage = docker_client.containers.run(
        image, ["python", "-m", "orchestrator.serving", "--help"], entrypoint=[], remove=True
    )
    if b"--tls-cert" not in usage:
        _unavailable(f"{image} predates replica TLS (rebuild it with `make images`)")
    env = server_env(tmp_path, ORCH_BACKEND="docker", ORCH_SERVING__REPLICA_TLS="true", **extra)
    s = RunningServer(root=tmp_path, env=env)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")
        remove_test_containers(docker_client, tmp_path)
        shutil.rmtree(tmp_path / "home" / "work", ignore_errors=True)


def test_docker_replicas_serve_https_verified_against_the_replica_ca(
    tls_docker_server: RunningServer, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    c = tls_docker_server.client()
    x, expected = deploy(c, tmp_path, "tls-docker")
    body = json.dumps(x[:3].tolist()).encode()
    for _ in range(5):
        got = json.loads(c.invoke_endpoint("tls-docker", body).body)
        assert got["predictions"] == expected[:3].tolist()

    [container] = replicas(docker_client, "tls-docker")
    attrs = container.attrs
    assert container.labels["orchestrator.tls"] == "true"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/opt/ml/tls"]["RW"] is False
    tls_dir = Path(mounts["/opt/ml/tls"]["Source"])
    for name in ("replica.crt", "replica.key", "ca.crt"):
        assert stat.S_IMODE((tls_dir / name).stat().st_mode) == 0o600
    assert "--tls-cert" in attrs["Config"]["Cmd"]
    assert "https://" in attrs["Config"]["Healthcheck"]["Test"][-1]
    port = attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    ca = tmp_path / "config" / "tls" / "replica-ca.crt"
    ping = httpx.get(
        f"https://127.0.0.1:{port}/ping", verify=tls.replica_client_context(ca), trust_env=False
    )
    assert ping.status_code == 200
    with pytest.raises(httpx.HTTPError):  # HTTPS only
        httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2, trust_env=False)
    # The container's own health check (over HTTPS, verified with the CA) turns healthy.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"health: {container.attrs['State'].get('Health')}")
