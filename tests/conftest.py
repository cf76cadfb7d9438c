"""Suite-wide collection rules for parallel workers (``pytest -n``, pytest-xdist).

``make test`` runs the suite on ``PYTEST_WORKERS`` workers with ``--dist loadgroup``. Tests
that share one machine-wide resource run in one group, so one worker runs them in turn:

- ``docker``: the one Docker engine. A Docker backend sweeps the containers it takes for
  orphans, and the images are built once; two control planes on one engine at a time would
  race for both.
- ``browser``: the web console's tests drive one Chromium and wait on real time (a
  session's expiry), which two browsers on two cores would stretch past their limits.

Every other test may run on any worker; module and session fixtures are made once per worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The CLI's tables are as wide as the terminal; a worker has none (its streams are pipes), so
# every worker renders at one width, wide enough for the tests' lines.
os.environ["COLUMNS"] = "200"

_HERE = Path(__file__).parent

# Files outside tests/docker and tests/images that start containers on the engine.
_DOCKER_FILES = {
    "core/test_support.py",
    "core/test_images.py",
    "core/test_user_code_isolation.py",
    "core/test_transform_control.py",
    "serving/test_docker_replica_tls_files.py",
    "serving/test_serving_launch.py",
    "conformance/test_table.py",
}
_DOCKER_DIRS = ("docker/", "images/")
_BROWSER_DIRS = ("console/",)


def group_of(relative: str, nodeid: str = "") -> str | None:
    """The xdist group a test runs in (None: any worker). The conformance scenarios run on
    each backend: only their Docker runs share the engine."""
    if relative.startswith("conformance/") and "[docker" in nodeid:
        return "docker"
    if relative in _DOCKER_FILES or relative.startswith(_DOCKER_DIRS):
        return "docker"
    if relative.startswith(_BROWSER_DIRS):
        return "browser"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            relative = item.path.relative_to(_HERE).as_posix()
        except ValueError:
            continue
        group = group_of(relative, item.nodeid)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
