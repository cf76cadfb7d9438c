"""Transform jobs on Docker: the host-side runner with its model server as a container of the
serving image (hardened, labelled, published), an orphan container removed, cleanup."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator import procs
from orchestrator.backends.docker import DockerBackend, engine
from orchestrator.backends.process.transforms import PID_FILE
from orchestrator.resources.models import CreateModelRequest
from orchestrator.transformer.scratch import TransformScratch, observe_scratch
from tests.docker.conftest import remove_test_containers
from tests.e2e.conftest import _kill_leftovers
from tests.e2e.transform_harness import (
    SLOW,
    csv,
    exited,
    job_spec,
    launch,
    one,
    predicted,
    put_model,
    rows,
    trained,
    transform_settings,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return trained()


@pytest.fixture
def backend(
    tmp_path: Path, images: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[DockerBackend]:
    b = DockerBackend(transform_settings(tmp_path / "home"))
    try:
        yield b
    finally:
        b.close()
        _kill_leftovers(tmp_path / "home")
        remove_test_containers(docker_client, tmp_path)


def servers(client: docker.DockerClient, job: str) -> list[docker.models.containers.Container]:
    labels = [f"{engine.KIND}={engine.KIND_TRANSFORM}", f"{engine.RESOURCE}={job}"]
    return list(client.containers.list(all=True, ignore_removed=True, filters={"label": labels}))


def test_an_instance_scores_through_a_hardened_serving_container_then_removes_it(
    backend: DockerBackend, docker_client: docker.DockerClient, model: LogisticRegression
) -> None:
    store = backend.transform_store
    slow = put_model(store, "slow", model, SLOW, PREDICT_SLEEP="0.2")
    x = rows(6_000)
    store.put_bytes("s3://data/dk/in/a.csv", csv(x))
    spec = job_spec("dk", "slow", MaxConcurrentTransforms=1)
    backend.launch_transform_instance(launch(spec, slow))
    wait_for(backend, "dk", lambda s: one(s).state == "running", "running")

    (c,) = servers(docker_client, "dk")
    assert c.name == "orch-dk-algo-1-1" and c.status == "running"
    assert c.image.tags == [backend.settings.docker.serving_image]
    assert c.labels[engine.OWNER] == backend.owner
    assert (c.labels[engine.HOST], c.labels[engine.ATTEMPT]) == ("algo-1", "1")
    host = c.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert c.attrs["Config"]["User"] == engine.container_user(backend.settings.docker.user)
    assert {m["Destination"]: m["RW"] for m in c.attrs["Mounts"]}["/opt/ml/model"] is False
    published = host["PortBindings"]["8080/tcp"][0]["HostIp"]
    assert published == backend.settings.docker.publish_host

    seen = one(wait_for(backend, "dk", exited(), "done"))
    assert (seen.outcome, seen.exit_code) == ("completed", 0), seen.failure
    assert store.get_bytes("s3://data/dk/out/a.csv.out").decode().splitlines() == predicted(
        model, x
    )
    assert servers(docker_client, "dk") == []  # the runner removed its container
    log = backend.read_transform_logs("dk", 0, 1 << 20)[0].decode()
    assert "transform: instance 0 completed" in log


def test_a_killed_runners_container_is_removed_and_attempt_2_completes(
    backend: DockerBackend, docker_client: docker.DockerClient, model: LogisticRegression
) -> None:
    store = backend.transform_store
    slow = put_model(store, "slow", model, SLOW, PREDICT_SLEEP="0.3")
    x = rows(8_000)
    store.put_bytes("s3://data/dkill/in/a.csv", csv(x))
    spec = job_spec("dkill", "slow", MaxConcurrentTransforms=1)
    backend.launch_transform_instance(launch(spec, slow))
    scratch = TransformScratch(store, "dkill")
    wait_for(backend, "dkill", lambda s: len(scratch.done_ranges()) >= 2, "2 ranges done")
    pid = procs.ProcessId.from_file(backend.transform_attempt_root("dkill", 0, 1) / PID_FILE)
    assert pid is not None
    os.kill(pid.pid, signal.SIGKILL)

    seen = one(wait_for(backend, "dkill", exited(), "seen dead"))
    assert seen.outcome is None and "without recording a result" in seen.message
    assert servers(docker_client, "dkill") == []  # the orphan went with that observation

    backend.launch_transform_instance(launch(spec, slow, attempt=2))
    wait_for(backend, "dkill", lambda s: one(s).state == "running", "running again")
    assert [c.name for c in servers(docker_client, "dkill")] == ["orch-dkill-algo-1-2"]
    backend.cleanup_transform("dkill")  # mid-run: the runner and its container go
    assert servers(docker_client, "dkill") == []
    assert not (backend.transforms_dir / "dkill").exists()
    assert observe_scratch(store, "dkill") == (None, {})


@pytest.mark.parametrize(
    ("containers", "said"),
    [
        (
            [{"Image": "example/one:1"}, {"Image": "example/two:1"}],
            "every step must name the same Image",
        ),
        ([{"Image": "orchestrator/missing-serving:0"}], "is not on this host"),
    ],
)
def test_a_model_server_that_cannot_start_fails_the_instance_saying_why(
    backend: DockerBackend,
    docker_client: docker.DockerClient,
    containers: list[dict[str, str]],
    said: str,
) -> None:
    store = backend.transform_store
    put_model(store, "m", trained())
    store.put_bytes("s3://data/bad/in/a.csv", b"1,2,3,4\n")
    bad = CreateModelRequest.model_validate({"ModelName": "m", "Containers": containers})
    backend.launch_transform_instance(launch(job_spec("bad", "m"), bad))
    seen = one(wait_for(backend, "bad", exited(), "failed"))
    assert seen.outcome == "failed" and seen.failure is not None
    assert "the model server did not start" in seen.failure.message
    assert said in seen.failure.message
    assert servers(docker_client, "bad") == []
