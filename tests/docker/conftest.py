"""A real control plane on the Docker backend, and the images it runs.

Skipped, naming what is missing, when the Docker engine or the images are absent, except in CI
(``CI=true``), where that is a failure. The images are the ones settings name
(``orchestrator/training:0.1.0``, ``orchestrator/serving:0.1.0``; ``make images``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from orchestrator.settings import DockerSettings
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Docker tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        _unavailable(f"no Docker engine reachable ({e})")
    yield client
    client.close()


def _has(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """ORCH_DOCKER__* overrides for the server (none: the images settings name are here)."""
    wanted = DockerSettings()
    missing = [
        i for i in (wanted.training_image, wanted.serving_image) if not _has(docker_client, i)
    ]
    if missing:
        _unavailable(f"images {', '.join(missing)} are missing (build them with `make images`)")
    return {}


def remove_test_containers(client: docker.DockerClient, under: Path) -> None:
    """Containers whose mounts lie under this test's directory, and emptied job networks."""
    for c in client.containers.list(
        all=True, ignore_removed=True, filters={"label": "orchestrator.kind"}
    ):
        if any(str(m.get("Source", "")).startswith(str(under)) for m in c.attrs["Mounts"]):
            c.remove(force=True)
    for n in client.networks.list(filters={"label": "orchestrator.kind=training-job"}):
        n.reload()
        if not n.containers:
            n.remove()


@pytest.fixture
def docker_server(
    tmp_path: Path, images: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[RunningServer]:
    s = RunningServer(root=tmp_path, env=server_env(tmp_path, ORCH_BACKEND="docker", **images))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")
        remove_test_containers(docker_client, tmp_path)
        shutil.rmtree(tmp_path / "home" / "work", ignore_errors=True)
