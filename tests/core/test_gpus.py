"""GPU allocation: planned purely from the host's capacity, applied by the runtime so that two
jobs never share a device, waiting as Pending when none is free, failing at once when the host
can never satisfy the job; per-job GPU metrics."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from core_builders import NOW, at, desired_job, job_state, training_spec

from orchestrator import metrics
from orchestrator.controller.plan.admission import (
    Candidate,
    Demand,
    HostCapacity,
    candidate_of,
    plan_admissions,
)
from orchestrator.controller.plan.training import plan_training_job
from orchestrator.controller.plan.types import Admission, LaunchJob, ObservedJob
from orchestrator.gpus import NoGpus, NvmlGpus, Restricted
from orchestrator.resources.training import TrainingJobState
from orchestrator.testing import FakeGpus, local_control_plane, training_job_spec

GPU_SPEC = training_spec(ResourceConfig={"InstanceType": "ml.p3.2xlarge"})  # 1 GPU
FOUR_GPU_SPEC = training_spec(ResourceConfig={"InstanceType": "ml.p3.8xlarge"})  # 4 GPUs
CPU_SPEC = training_spec()


def gpus_free(spec: Any, total: int, free: tuple[int, ...]) -> Admission:
    """The queue's admission of the job on a host of ``total`` GPUs of which ``free`` are free
    (another running job holds the rest)."""
    job = candidate_of("job-1", NOW, spec.model_dump(mode="json"), {})
    held = tuple(i for i in range(total) if i not in free)
    other = Candidate("other", NOW, Demand(gpus=len(held)), holds=True, held_gpus=held)
    return plan_admissions([job, other], HostCapacity(gpus=tuple(range(total))))["job-1"]


def launched_gpus(plan: Any) -> tuple[int, ...] | None:
    [action] = [a for a in plan.actions if isinstance(a, LaunchJob)]
    return action.launch.gpus


def test_gpu_job_gets_the_first_free_devices() -> None:
    plan = plan_training_job(
        desired_job(spec=GPU_SPEC), None, NOW, admission=gpus_free(GPU_SPEC, 2, (1,))
    )
    assert launched_gpus(plan) == (1,)
    assert TrainingJobState.model_validate(plan.status).AllocatedGpus == [1]


def test_cpu_job_gets_no_device_so_it_sees_none() -> None:
    plan = plan_training_job(
        desired_job(spec=CPU_SPEC), None, NOW, admission=gpus_free(CPU_SPEC, 2, (0, 1))
    )
    assert launched_gpus(plan) == ()


def test_without_capacity_the_backend_places_gpus_itself() -> None:
    plan = plan_training_job(desired_job(spec=GPU_SPEC), None, NOW, admission=None)
    assert launched_gpus(plan) is None


def test_no_free_device_waits_as_pending_with_a_reason() -> None:
    plan = plan_training_job(
        desired_job(spec=GPU_SPEC), None, NOW, admission=gpus_free(GPU_SPEC, 1, ())
    )
    st = TrainingJobState.model_validate(plan.status)
    assert plan.actions == () and plan.active and plan.requeue_after is not None
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("InProgress", "Pending")
    assert st.SecondaryStatusTransitions[-1].StatusMessage == "Waiting for 1 GPU(s): 0 of 1 free"
    # Freed later: it launches then.
    later = plan_training_job(
        desired_job(spec=GPU_SPEC, status=st), None, at(5), admission=gpus_free(GPU_SPEC, 1, (0,))
    )
    assert launched_gpus(later) == (0,)


def test_more_gpus_than_the_host_has_fails_at_once() -> None:
    plan = plan_training_job(
        desired_job(spec=FOUR_GPU_SPEC), None, NOW, admission=gpus_free(FOUR_GPU_SPEC, 2, (0, 1))
    )
    st = TrainingJobState.model_validate(plan.status)
    assert st.TrainingJobStatus == "Failed" and not plan.active
    assert st.FailureReason == (
        "CapacityError: ml.p3.8xlarge needs 4 GPU(s) and this host has 2; pick an instance "
        "type with fewer GPUs, or a bigger host"
    )


def test_a_stop_while_pending_stops_without_launching() -> None:
    pending = TrainingJobState.model_validate(
        plan_training_job(
            desired_job(spec=GPU_SPEC), None, NOW, admission=gpus_free(GPU_SPEC, 1, ())
        ).status
    )
    plan = plan_training_job(
        desired_job(spec=GPU_SPEC, status=pending, stop=True),
        None,
        at(1),
        admission=gpus_free(GPU_SPEC, 1, ()),
    )
    assert TrainingJobState.model_validate(plan.status).TrainingJobStatus == "Stopped"
    assert plan.actions == ()


def test_an_adopted_launch_keeps_the_devices_it_was_given() -> None:
    observed = ObservedJob(name="job-1", attempt=1, state="running", started_at=NOW, gpus=(3,))
    plan = plan_training_job(
        desired_job(spec=GPU_SPEC, status=job_state()),
        observed,
        at(1),
        admission=gpus_free(GPU_SPEC, 4, (0, 1, 2)),
    )
    assert plan.actions == ()
    assert TrainingJobState.model_validate(plan.status).AllocatedGpus == [3]


def test_two_jobs_never_share_a_device_and_the_second_waits(tmp_path: Any) -> None:
    gpus = FakeGpus(1)
    with local_control_plane(tmp_path, gpus=gpus) as cp:
        cp.client.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
        for name in ("first", "second"):
            cp.client.create_training_job(
                training_job_spec(name, ResourceConfig={"InstanceType": "ml.p3.2xlarge"})
            )
        cp.controller.run_pass()
        first, second = (cp.client.describe_training_job(n) for n in ("first", "second"))
        assert (first.AllocatedGpus, first.SecondaryStatus) == ([0], "Starting")
        assert (second.AllocatedGpus, second.SecondaryStatus) == ([], "Pending")
        assert [launch.gpus for launch in cp.backend.launches] == [(0,)]

        gpus.usage_of[0] = (87.0, 3 << 30)
        cp.controller._last_counts = 0.0  # the metrics refresh is rate-limited
        cp.controller.run_pass()
        assert metrics.JOB_GPU_UTILIZATION.labels(job="first", gpu="0")._value.get() == 87.0
        assert metrics.JOB_GPU_MEMORY.labels(job="first", gpu="0")._value.get() == 3 << 30

        cp.backend.complete("first", artifact="s3://orchestrator/first/model.tar.gz")
        cp.controller.run_pass()  # first ends; its device is free for the next pass
        cp.controller.run_pass()
        second = cp.client.describe_training_job("second")
        assert second.AllocatedGpus == [0] and second.SecondaryStatus == "Starting"
        assert [launch.gpus for launch in cp.backend.launches] == [(0,), (0,)]


def test_restricted_inventory_and_nvml_adapter() -> None:
    fake_nvml = SimpleNamespace(
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA H100",
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=80 << 30, used=(h + 1) << 30),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=10 * (h + 1)),
    )
    nvml = NvmlGpus(fake_nvml)
    assert [(d.index, d.name, d.uuid) for d in nvml.devices()] == [
        (0, "NVIDIA H100", "GPU-0"),
        (1, "NVIDIA H100", "GPU-1"),
    ]
    assert [(u.index, u.utilization_percent, u.memory_used_bytes) for u in nvml.usage()] == [
        (0, 10.0, 1 << 30),
        (1, 20.0, 2 << 30),
    ]
    only_one = Restricted(nvml, [1])
    assert [d.index for d in only_one.devices()] == [1]
    assert [u.index for u in only_one.usage()] == [1]
    declared = Restricted(NoGpus(), [0, 1])  # NVML missing, devices declared by settings
    assert [d.index for d in declared.devices()] == [0, 1] and declared.usage() == []


@pytest.fixture(autouse=True)
def _clear_gpu_metrics() -> Any:
    yield
    metrics.JOB_GPU_UTILIZATION.clear()
    metrics.JOB_GPU_MEMORY.clear()
