"""Fixtures for the operator tests: the API emulator (one per session), a client, settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_harness import Cluster, Emulator, emulator_client, operator_settings
from kubernetes import client

from orchestrator.kube.objects import KubeSettings
from orchestrator.kube.operator import Operator


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    em = Emulator()
    try:
        yield em
    finally:
        em.close()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[client.ApiClient]:
    emulator.km.objects.clear()
    emulator.km.logs.clear()
    emulator.km.created.clear()
    emulator.km.latency = None
    with emulator_client(emulator.url) as api:
        yield api


@pytest.fixture
def settings() -> KubeSettings:
    return operator_settings()


@pytest.fixture
def cluster(api: client.ApiClient) -> Cluster:
    return Cluster(api)


@pytest.fixture
def operator(api: client.ApiClient, settings: KubeSettings) -> Operator:
    return Operator(api, settings)
