"""Fixtures for the image tests: a Docker engine and the images `make images` builds.

Outside CI a missing engine or image skips these tests with a message naming what is
missing; in CI (``CI=true``) it fails them, since `make test` builds the images first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

VERSION = "0.1.0"
IMAGES = {
    name: f"orchestrator/{name}:{VERSION}"
    for name in ("training", "algorithms", "serving", "controller")
}
# How production runs every container: nothing writable but /tmp and the mounts, no
# capabilities, no privilege escalation.
HARDENED = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def _missing(what: str) -> None:
    message = f"{what}; run `make images` (as root: it installs and starts Docker)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"in CI the image tests must run: {message}")
    pytest.skip(message)


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI and return its result (raising on failure when ``check``)."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if shutil.which("docker") is None:
        _missing("the docker CLI is not installed")
    if docker("info", timeout=30, check=False).returncode != 0:
        _missing("no Docker engine answers `docker info`")


@pytest.fixture(scope="session")
def image(docker_engine: None) -> Callable[[str], str]:
    """``image("serving")`` -> the tag, once it is known to exist."""

    def get(name: str) -> str:
        tag = IMAGES[name]
        if docker("image", "inspect", tag, check=False).returncode != 0:
            _missing(f"image {tag} is not built")
        return tag

    return get


@pytest.fixture(scope="session")
def inspect(image: Callable[[str], str]) -> Callable[[str], dict[str, Any]]:
    def get(name: str) -> dict[str, Any]:
        doc: list[dict[str, Any]] = json.loads(docker("image", "inspect", image(name)).stdout)
        return doc[0]

    return get
