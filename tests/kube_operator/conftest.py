"""Fixtures for the operator tests: the API emulator (one per session), a client, settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_harness import NS, Cluster, Emulator
from kubernetes import client

from orchestrator.kube.api import api_client
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
    config = client.Configuration()
    config.host = emulator.url
    with api_client(config) as api:  # configured as the product's own (one try per call)
        yield api


@pytest.fixture
def settings() -> KubeSettings:
    return KubeSettings(
        namespace=NS,
        training_image="registry.example/orchestrator/training:1",
        serving_image="registry.example/orchestrator/serving:1",
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        gpu_runtime_class_name="nvidia",
        object_store_url="s3://ml-bucket",
        s3_endpoint_url="http://minio.storage:9000",
    )


@pytest.fixture
def cluster(api: client.ApiClient) -> Cluster:
    return Cluster(api)


@pytest.fixture
def operator(api: client.ApiClient, settings: KubeSettings) -> Operator:
    return Operator(api, settings)
