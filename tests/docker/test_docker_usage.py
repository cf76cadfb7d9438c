"""The Docker backend's usage probe: a recorded stats document parsed, and a real container."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from orchestrator.backends.docker.stats import StatsProbe, parse_stats
from orchestrator.settings import DockerSettings
from orchestrator.training.usage import CPU, MEMORY, HostSampler, Reading, Sizes

DATA = Path(__file__).parent / "data"


def test_a_recorded_cgroup_v1_stats_document() -> None:
    # Recorded from Docker 20.10 (cgroup v1, cgroupfs) with one-shot=true: a container that
    # held 50 MiB and burned a core for about a second.
    doc = json.loads((DATA / "stats-cgroup-v1.json").read_text())
    reading = parse_stats(doc)
    assert reading == Reading(cpu_seconds=1.172853326, memory_bytes=55885824)


def test_a_cgroup_v2_document_counts_memory_less_the_inactive_file_cache() -> None:
    # The Engine API's shape on cgroup v2: no total_* keys, inactive_file in memory_stats.stats.
    doc = {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}, "online_cpus": 4},
        "memory_stats": {"usage": 300 << 20, "stats": {"inactive_file": 100 << 20}},
    }
    assert parse_stats(doc) == Reading(2.5, 200 << 20)


def test_a_stopped_container_has_no_reading() -> None:
    # What the engine answers for a container that is not running.
    assert parse_stats({"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "memory_stats": {}}) is None
    assert parse_stats({}) is None


BURN = (
    "import time\n"
    "held = bytearray(100 << 20)\n"
    "for i in range(0, len(held), 4096):\n"
    "    held[i] = 1\n"
    "print('ready', flush=True)\n"
    "t = time.time()\n"
    "while time.time() - t < 30:\n"
    "    pass\n"
)


@pytest.mark.slow
def test_a_real_container_burning_a_core_and_holding_100_mib(
    docker_client: docker.DockerClient,
) -> None:
    image = DockerSettings().training_image
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {image} is missing (make images)")
    container = docker_client.containers.run(
        image, ["python", "-c", BURN], detach=True, labels={"orchestrator.test": "usage"}
    )
    try:
        deadline = time.monotonic() + 60
        while b"ready" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        sampler = HostSampler(StatsProbe(container), Sizes(memory_bytes=4 << 30, disk_bytes=0))
        first = sampler.sample()
        assert CPU not in first and 2.4 <= first[MEMORY] <= 4.0, first  # 100 MiB of 4 GiB
        time.sleep(2.0)
        second = sampler.sample()
        # One busy core is 100; the machine is shared, so what it got is less, never more.
        assert 10.0 <= second[CPU] <= 110.0, second
    finally:
        container.remove(force=True)
    assert StatsProbe(container).read() is None  # removed: no reading, no error
