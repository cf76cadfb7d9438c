"""One harness per backend for the whole session (``h``), torn down before the next backend's
starts: pytest groups the scenarios by the fixture's parameter.

Process and Docker cells start a real ``orch server`` and are ``slow``; the Kubernetes cells
run in-process against the API emulator and are slow only where a scenario waits for real
time (``waits=True``) or runs real processes there too (``processes=True``: batch
transform, whose pods' containers the cluster double runs). Docker missing is a skip naming
what is missing, except in CI (``CI=true``), where it is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import Harness
from tests.conformance.kube import KubernetesHarness
from tests.conformance.local import DockerHarness, ProcessHarness, docker_available
from tests.kube_operator.kube_harness import Emulator

HIT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(id): a conformance scenario (tests/conformance)")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("process", marks=pytest.mark.slow),
        pytest.param("docker", marks=pytest.mark.slow),
        "kubernetes",
    ],
)
def h(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    backend: str = request.param
    root = Path(tmp_path_factory.mktemp(f"conformance-{backend}"))
    harness: ProcessHarness | DockerHarness | KubernetesHarness
    if backend == "process":
        harness = ProcessHarness(root)
    elif backend == "docker":
        docker, missing = docker_available()
        if missing is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"the Docker conformance cells cannot run in CI: {missing}")
            pytest.skip(f"the Docker conformance cells need Docker: {missing}")
        harness = DockerHarness(root, docker)
    else:
        emulator = Emulator()
        request.addfinalizer(emulator.close)
        harness = KubernetesHarness(root, emulator)
    try:
        yield harness
    finally:
        HIT.extend(harness.hit)
        harness.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The declared gaps the scenarios met (each is in docs/conformance.md too)."""
    if HIT:
        terminalreporter.section("conformance: declared gaps, not checked")
        for line in sorted(set(HIT)):
            terminalreporter.write_line(line)
