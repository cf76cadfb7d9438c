"""GPU allocation on the process backend: a job sees exactly the devices it was given."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer, _kill_leftovers, script_job, server_env

pytestmark = pytest.mark.slow

SHOW = "import os, time\nprint('visible=[' + os.environ.get('CUDA_VISIBLE_DEVICES', 'unset') + ']', flush=True)\ntime.sleep(float(os.environ.get('HOLD', '0')))\n"


@pytest.fixture
def gpu_server(tmp_path: Path) -> Iterator[RunningServer]:
    # Two devices declared by settings (this machine has none for NVML to find), on a host
    # declared big enough for two ml.p3.2xlarge jobs at once (8 vCPUs, 61 GiB each), so that
    # the GPUs, not the CPUs, are what the queue hands out here.
    env = server_env(
        tmp_path,
        ORCH_GPU_DEVICES="[0, 1]",
        ORCH_CONTROLLER__TRAINING_VCPUS="16",
        ORCH_CONTROLLER__TRAINING_MEMORY_MIB=str(2 * 62464),
    )
    s = RunningServer(root=tmp_path, env=env)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def log_of(server: RunningServer, name: str) -> str:
    return server.client().training_job_logs(name).text


def test_each_job_sees_only_its_own_gpus(gpu_server: RunningServer) -> None:
    c = gpu_server.client()
    script_job(
        c,
        "gpu-a",
        SHOW,
        ResourceConfig={"InstanceType": "ml.p3.2xlarge"},
        Environment={"HOLD": "3"},
    )
    script_job(
        c,
        "gpu-b",
        SHOW,
        ResourceConfig={"InstanceType": "ml.p3.2xlarge"},
        Environment={"HOLD": "3"},
    )
    script_job(c, "cpu", SHOW)
    for name in ("gpu-a", "gpu-b", "cpu"):
        assert c.wait_for_training_job(name, timeout=30, poll=0.1).TrainingJobStatus == "Completed"
    seen = {
        name: log_of(gpu_server, name).split("visible=")[1].split("\n")[0]
        for name in ("gpu-a", "gpu-b", "cpu")
    }
    assert sorted([seen["gpu-a"], seen["gpu-b"]]) == ["[0]", "[1]"]  # never the same device
    assert seen["cpu"] == "[]"  # a CPU job is not handed any GPU


def test_a_third_gpu_job_waits_pending_then_runs(gpu_server: RunningServer) -> None:
    c = gpu_server.client()
    for name in ("hold-0", "hold-1"):
        script_job(
            c,
            name,
            SHOW,
            ResourceConfig={"InstanceType": "ml.p3.2xlarge"},
            Environment={"HOLD": "4"},
        )
    deadline = time.monotonic() + 20
    while not all("visible=" in log_of(gpu_server, n) for n in ("hold-0", "hold-1")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    script_job(c, "third", SHOW, ResourceConfig={"InstanceType": "ml.p3.2xlarge"})
    time.sleep(1.0)
    waiting = c.describe_training_job("third")
    assert waiting.SecondaryStatus == "Pending"
    assert (
        "Waiting for 1 GPU(s): 0 of 2 free" in waiting.SecondaryStatusTransitions[-1].StatusMessage
    )
    done = c.wait_for_training_job("third", timeout=30, poll=0.1)
    assert done.TrainingJobStatus == "Completed"
    assert [t.Status for t in done.SecondaryStatusTransitions][:2] == ["Pending", "Starting"]


def test_more_gpus_than_the_host_has_fails_at_once(gpu_server: RunningServer) -> None:
    c = gpu_server.client()
    script_job(c, "too-big", SHOW, ResourceConfig={"InstanceType": "ml.p3.8xlarge"})
    job = c.wait_for_training_job("too-big", timeout=15, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert "needs 4 GPU(s) and this host has 2" in (job.FailureReason or "")
