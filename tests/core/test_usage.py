"""training.usage: samples of a real process tree, the usage file, sizes, GPUs (fake NVML)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from core_builders import training_spec

from orchestrator.gpus import Gpu, GpuUsage, NvmlGpus
from orchestrator.testing import FakeGpus
from orchestrator.training.usage import (
    CPU,
    DISK,
    GPU,
    GPU_MEMORY,
    MEMORY,
    USAGE_MARK,
    CgroupProbe,
    DiskProbe,
    HostSampler,
    Reading,
    Sizes,
    TreeProbe,
    UsageFile,
    UsageSampler,
    bytes_under,
    descendants,
    gpu_percents,
    gpu_reader,
    host_memory_bytes,
    memory_size,
    sizes_of,
    split_usage,
    usage_line,
    usage_path,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# A parent that starts a child burning one core and holding 200 MiB, then waits. The child
# writes its own CPU time (time.process_time) to a file, so the test knows what it really got
# on a shared machine.
BURN = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
held = bytearray(200 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
out = sys.argv[1]
t = last = time.time()
while time.time() - t < 30:
    if time.time() - last > 0.02:
        last = time.time()
        with open(out + ".tmp", "w") as f:
            f.write(repr(time.process_time()))
        os.replace(out + ".tmp", out)
''', sys.argv[1]])
child.wait()
"""


@pytest.fixture
def burner(tmp_path: Path):  # type: ignore[no-untyped-def]
    cpu_file = tmp_path / "cpu"
    proc = subprocess.Popen([sys.executable, "-c", BURN, str(cpu_file)])
    deadline = time.monotonic() + 30
    while not cpu_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cpu_file.exists(), "the burner did not start"
    yield proc, cpu_file
    for pid in reversed(descendants(proc.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    proc.wait()


def test_a_process_tree_burning_one_core_and_holding_200_mib(burner) -> None:  # type: ignore[no-untyped-def]
    proc, cpu_file = burner
    now = [time.monotonic()]
    sizes = Sizes(memory_bytes=4 << 30, disk_bytes=1 << 30)
    sampler = HostSampler(TreeProbe(proc.pid), sizes, monotonic=lambda: now[0])
    t0 = now[0]
    first = sampler.sample()
    child_before = float(cpu_file.read_text())
    assert CPU not in first  # CPU needs two readings
    time.sleep(2.0)
    now[0] = time.monotonic()
    second = sampler.sample()
    child_after = float(cpu_file.read_text())
    # What the child itself counted over the same time (its file is at most ~20 ms stale), as
    # percent of one core; the machine is shared, so this is what "one busy core" got.
    got = 100.0 * (child_after - child_before) / (now[0] - t0)
    assert second[CPU] == pytest.approx(got, abs=15.0), (second, got)
    assert second[CPU] > 10.0
    # 200 MiB of 4 GiB is 4.9%, plus two interpreters.
    assert 4.8 <= second[MEMORY] <= 8.0, second


def test_the_tree_is_the_process_and_its_descendants(burner) -> None:  # type: ignore[no-untyped-def]
    proc, _ = burner
    tree = descendants(proc.pid)
    assert tree[0] == proc.pid and len(tree) == 2
    assert os.getpid() not in tree


def test_a_gone_process_reads_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert TreeProbe(proc.pid).read() is None
    sampler = HostSampler(TreeProbe(proc.pid), Sizes(1 << 30, 0))
    assert sampler.sample() == {}


class Steps:
    def __init__(self, *readings: Reading) -> None:
        self.readings = list(readings)

    def read(self) -> Reading | None:
        return self.readings.pop(0) if self.readings else None


def test_percentages_follow_sagemakers_definitions() -> None:
    now = [100.0]
    probe = Steps(Reading(10.0, 1 << 30), Reading(13.0, 2 << 30))
    disk = [512 << 20]
    sampler = HostSampler(
        probe,
        Sizes(memory_bytes=8 << 30, disk_bytes=30 << 30),
        disk=lambda: disk[0],
        gpus=lambda: (150.0, 50.0),
        monotonic=lambda: now[0],
    )
    assert sampler.sample() == pytest.approx(
        {MEMORY: 12.5, DISK: 100 * 0.5 / 30, GPU: 150.0, GPU_MEMORY: 50.0}
    )
    now[0] = 102.0
    # 3 CPU seconds over 2 s: one and a half cores, summed over cores as SageMaker does.
    assert sampler.sample()[CPU] == pytest.approx(150.0)


def test_cgroup_counters_v2_and_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "v2" / "job"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (v2 / "memory.current").write_text("3145728\n")
    (v2 / "memory.stat").write_text("anon 2097152\ninactive_file 1048576\n")
    assert CgroupProbe(Path("/job"), root=tmp_path / "v2").read() == Reading(2.5, 2 << 20)
    v1 = tmp_path / "v1"
    (v1 / "cpuacct").mkdir(parents=True)
    (v1 / "memory").mkdir()
    (v1 / "cpuacct" / "cpuacct.usage").write_text("1500000000\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("4194304\n")
    (v1 / "memory" / "memory.stat").write_text("cache 0\ntotal_inactive_file 1048576\n")
    assert CgroupProbe(root=v1).read() == Reading(1.5, 3 << 20)
    assert CgroupProbe(root=tmp_path / "none").read() is None


def test_disk_is_the_blocks_under_the_directory_walked_at_most_every_interval(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(os.urandom(1 << 20))
    (tmp_path / "link").symlink_to("/usr")  # not followed
    assert (1 << 20) <= bytes_under(tmp_path) < (1 << 20) + (64 << 10)
    now = [0.0]
    probe = DiskProbe(tmp_path, interval=5.0, monotonic=lambda: now[0])
    first = probe()
    (tmp_path / "g").write_bytes(os.urandom(1 << 20))
    now[0] = 1.0
    assert probe() == first  # not walked again yet
    now[0] = 6.0
    assert probe() >= first + (1 << 20)


def test_memory_size_is_the_instance_types_or_the_hosts() -> None:
    assert memory_size("ml.m5.xlarge") == 16384 << 20
    assert memory_size("local") == host_memory_bytes() > 0
    spec = training_spec(
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10}
    )
    assert sizes_of(spec) == Sizes(8192 << 20, 10 << 30)


def test_gpu_percents_sum_over_the_held_devices() -> None:
    gpus = FakeGpus(4)
    gpus.usage_of = {0: (90.0, 8 << 30), 1: (30.0, 4 << 30), 2: (100.0, 16 << 30)}
    assert gpu_percents(gpus, [0, 1]) == pytest.approx((120.0, 75.0))
    assert gpu_percents(gpus, None) == pytest.approx((220.0, 175.0))  # all it shows
    assert gpu_percents(gpus, [3]) is None  # NVML reports nothing for it
    cpu_spec = training_spec()
    assert (
        gpu_reader(cpu_spec.ResourceConfig.InstanceType, [0], gpus) is None
    )  # no GPUs on the type: NVML not loaded
    gpu_spec = training_spec(
        ResourceConfig={
            "InstanceType": "ml.g4dn.12xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 10,
        }
    )
    reader = gpu_reader(gpu_spec.ResourceConfig.InstanceType, [2], gpus)
    assert reader is not None and reader() == pytest.approx((100.0, 100.0))


class FakeNvml:
    """The few pynvml calls NvmlGpus makes, over two devices."""

    class _Mem:
        def __init__(self, total: int, used: int) -> None:
            self.total, self.used = total, used

    class _Util:
        def __init__(self, gpu: int) -> None:
            self.gpu = gpu

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"Fake H200"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> FakeNvml._Mem:
        return self._Mem(80 << 30, (20 << 30) * (h + 1))

    def nvmlDeviceGetUtilizationRates(self, h: int) -> FakeNvml._Util:
        return self._Util(40 + 50 * h)


def test_gpu_percents_through_nvml() -> None:
    gpus = NvmlGpus(FakeNvml())
    assert gpus.devices()[1] == Gpu(1, "GPU-1", "Fake H200", 80 << 30)
    assert gpus.usage()[1] == GpuUsage(1, 90.0, 40 << 30)
    assert gpu_percents(gpus, [1]) == pytest.approx((90.0, 50.0))
    assert gpu_percents(gpus, [0, 1]) == pytest.approx((130.0, 75.0))


def test_the_sampler_appends_one_line_per_host_and_sample(tmp_path: Path) -> None:
    log = tmp_path / "job-1.log"
    path = usage_path(log)
    assert path.name == "job-1.usage.jsonl"
    targets = {"algo-1": Steps(Reading(1.0, 1 << 20), Reading(2.0, 1 << 20))}
    now = [0.0]
    sampler = UsageSampler(
        UsageFile(path),
        2,
        targets,
        lambda probe: HostSampler(probe, Sizes(1 << 30, 0), monotonic=lambda: now[0]),
        interval=60,
        clock=lambda: 1_700_000_000.5,
    )
    assert sampler.sample_once() == 1
    now[0] = 2.0
    targets["algo-2"] = Steps(Reading(0.0, 2 << 20))
    assert sampler.sample_once() == 2
    sampler.sample_once()  # algo-1 and algo-2 read nothing more: no lines
    sampler.stop()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["Host"], x["Attempt"], sorted(x["Metrics"])) for x in lines] == [
        ("algo-1", 2, [MEMORY]),
        ("algo-1", 2, [CPU, MEMORY]),
        ("algo-2", 2, [MEMORY]),
    ]
    assert lines[1]["Metrics"][CPU] == 50.0 and lines[0]["Timestamp"] == 1_700_000_000_500


def test_a_failing_probe_is_said_once_and_sampling_goes_on(tmp_path: Path) -> None:
    class Broken:
        calls = 0

        def read(self) -> Reading | None:
            Broken.calls += 1
            raise OSError("gone sideways")

    said: list[Exception] = []
    sampler = UsageSampler(
        UsageFile(tmp_path / "u.jsonl"),
        1,
        {"algo-1": Broken()},
        lambda probe: HostSampler(probe, Sizes(1 << 30, 0)),
        interval=0.01,
        on_error=said.append,
    )
    sampler.start()
    deadline = time.monotonic() + 10
    while Broken.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert Broken.calls >= 3 and len(said) == 1 and "gone sideways" in str(said[0])


def test_marked_samples_are_split_off_a_log_even_mid_line() -> None:
    sample = USAGE_MARK + usage_line(5, "algo-1", 1, {CPU: 10.0})
    log = b"epoch 1\n" + sample + b"loss=0." + sample + b"5\n" + USAGE_MARK + b'{"Time'
    text, samples = split_usage(log)
    # The cut line is whole again; a mark whose line is not finished is neither.
    assert text == b"epoch 1\nloss=0.5\n"
    assert samples == usage_line(5, "algo-1", 1, {CPU: 10.0}) * 2
    assert split_usage(b"plain\n") == (b"plain\n", b"")


def test_the_termination_message_does_not_show_samples() -> None:
    from orchestrator.kube.observe import _message

    tail = (USAGE_MARK + usage_line(5, "algo-1", 1, {CPU: 10.0})).decode() + "KeyError: 'x'\n"
    assert _message({"name": "algo"}, {"message": tail, "exitCode": 1}) == "KeyError: 'x'"


def test_the_supervisors_sampler_writes_each_hosts_gpus_beside_the_log(tmp_path: Path) -> None:
    from orchestrator.training.files import JobFile, StoreAccess
    from orchestrator.training.usage import job_sampler

    spec = training_spec(
        ResourceConfig={
            "InstanceType": "ml.g4dn.12xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 1,
        }
    )
    log = tmp_path / "logs" / "job-1.log"
    job = JobFile(
        name="job-1",
        attempt=3,
        spec=spec,
        output_uri="s3://b/out",
        ml_root=str(tmp_path / "ml"),
        log_path=str(log),
        store=StoreAccess(object_store_url="file:///nowhere", keyring_path="/nowhere"),
        gpus=[1, 2],
        usage_interval_seconds=60,
    )
    (tmp_path / "ml").mkdir()
    gpus = FakeGpus(4)
    gpus.usage_of = {0: (99.0, 16 << 30), 1: (60.0, 4 << 30), 2: (20.0, 8 << 30)}
    targets = {"algo-1": Steps(Reading(1.0, 48 << 30), Reading(2.0, 48 << 30))}
    sampler = job_sampler(job, tmp_path / "ml", targets, inventory=gpus)
    assert sampler.sample_once() == 1
    sampler.stop()
    (line,) = [json.loads(x) for x in usage_path(log).read_text().splitlines()]
    assert (line["Host"], line["Attempt"]) == ("algo-1", 3)
    # Devices 1 and 2 only (device 0 is another job's): 60 + 20, and 25% + 50% of 16 GiB.
    assert line["Metrics"][GPU] == 80.0 and line["Metrics"][GPU_MEMORY] == 75.0
    assert line["Metrics"][MEMORY] == 25.0  # 48 GiB of the type's 192
    assert 0.0 <= line["Metrics"][DISK] < 0.01
