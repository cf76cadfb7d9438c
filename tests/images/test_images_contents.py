"""Every image runs as a non-root user and works with a read-only root filesystem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.images.conftest import HARDENED, IMAGES, docker


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_runs_as_non_root(name: str, inspect: Callable[[str], dict[str, Any]]) -> None:
    user = inspect(name)["Config"]["User"]
    assert user in ("1000:1000", "orch"), f"{IMAGES[name]} runs as {user!r}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("training", ["python", "-c", "import orchestrator, sklearn, joblib, numpy"]),
        ("serving", ["python", "-c", "import orchestrator.serving, sklearn"]),
        ("algorithms", ["python", "-c", "import orchestrator.algorithms, tensorflow, pyarrow"]),
        ("controller", ["orch", "--help"]),
    ],
)
def test_runs_hardened(name: str, command: list[str], image: Callable[[str], str]) -> None:
    result = docker(
        "run", "--rm", *HARDENED, "--network", "none", image(name), *command, timeout=120
    )
    assert result.returncode == 0


@pytest.mark.slow
def test_training_user_and_python(image: Callable[[str], str]) -> None:
    script = "import os, sys; print(os.getuid(), os.getgid(), sys.version_info[:2] == (3, 11))"
    result = docker(
        "run", "--rm", *HARDENED, "--network", "none", image("training"), "python", "-c", script
    )
    assert result.stdout.split() == ["1000", "1000", "True"]


@pytest.mark.slow
def test_controller_state_lives_in_its_volume(inspect: Callable[[str], dict[str, Any]]) -> None:
    config = inspect("controller")["Config"]
    assert "/var/lib/orchestrator" in (config.get("Volumes") or {})
    assert "ORCH_HOME=/var/lib/orchestrator" in config["Env"]
    assert config["Cmd"] == ["orch", "server", "--host", "0.0.0.0"]
    # Plain HTTP on 0.0.0.0 inside the container is allowed by name (docs/security.md).
    assert "ORCH_SERVER__ALLOW_INSECURE_HTTP=true" in config["Env"]
