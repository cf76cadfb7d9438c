"""The process backend's transform observation read from its files and the scratch records, and
the runner's job log (no processes started)."""

from __future__ import annotations

import collections
import io
import os
import time
from pathlib import Path

import pytest
from core_builders import model_spec, transform_spec

from orchestrator.backends.process.transform_main import JobLog, _Tee, server_replica_file
from orchestrator.backends.process.transforms import (
    EXIT_FILE,
    INSTANCE_FILE,
    PID_FILE,
    READY_FILE,
    InstanceFile,
    ProcessTransforms,
    RunnerExit,
)
from orchestrator.controller.plan.types import TransformLaunch
from orchestrator.procs import ProcessId, start_ticks
from orchestrator.resources.failures import client_error
from orchestrator.settings import Settings
from orchestrator.transformer.scratch import InstanceResult, TransformScratch

NAME = "batch-1"


@pytest.fixture
def transforms(tmp_path: Path) -> ProcessTransforms:
    return ProcessTransforms(Settings(home=tmp_path / "home", config_dir=tmp_path / "config"))


def attempt(t: ProcessTransforms, instance: int, n: int, *, age: float = 0.0) -> Path:
    """An attempt's directory as a launch leaves it (no runner), ``age`` seconds old."""
    root = t.transform_attempt_root(NAME, instance, n)
    root.mkdir(parents=True)
    launch = TransformLaunch(NAME, instance, n, transform_spec(), "model-1", model_spec())
    (root / INSTANCE_FILE).write_text(t.instance_file(launch, root).model_dump_json())
    if age:
        then = time.time() - age
        os.utime(root / INSTANCE_FILE, (then, then))
    return root


def own_pid(root: Path) -> None:
    ticks = start_ticks(os.getpid())
    assert ticks is not None
    (root / PID_FILE).write_text(ProcessId(os.getpid(), ticks).to_json())


def result(instance: int, n: int, outcome: str = "completed", **fields: object) -> InstanceResult:
    return InstanceResult.model_validate(
        {"Instance": instance, "Attempt": n, "Outcome": outcome, **fields}
    )


def test_nothing_launched_is_an_empty_observation(transforms: ProcessTransforms) -> None:
    seen = transforms.observe_transform(NAME)
    assert (seen.instances, seen.progress) == ((), None)


def test_the_instance_file_carries_the_config_the_model_and_the_store(
    transforms: ProcessTransforms,
) -> None:
    root = attempt(transforms, 1, 2)
    doc = InstanceFile.model_validate_json((root / INSTANCE_FILE).read_text())
    assert (doc.config.Name, doc.config.Instance, doc.config.Attempt) == (NAME, 1, 2)
    assert doc.config.InstanceCount == 2 and doc.config.ModelName == "model-1"
    assert doc.model == model_spec()
    assert doc.store.keyring_path == str(transforms.settings.keyring_path)
    assert doc.log_path == str(transforms.transform_log_path(NAME))
    assert doc.transform == transforms.settings.transform
    assert "secret" not in (root / INSTANCE_FILE).read_text().lower()


def test_each_instance_is_seen_at_its_latest_attempt(transforms: ProcessTransforms) -> None:
    for n in (1, 2, 10):
        own_pid(attempt(transforms, 0, n))
    own_pid(attempt(transforms, 1, 1))
    (transforms.transform_attempt_root(NAME, 1, 1) / READY_FILE).write_text("1")
    seen = transforms.observe_transform(NAME)
    assert [(x.instance, x.attempt, x.state) for x in seen.instances] == [
        (0, 10, "starting"),  # its model server has not answered yet
        (1, 1, "running"),
    ]


def test_a_launch_that_left_no_runner_is_starting_then_never_started(
    transforms: ProcessTransforms,
) -> None:
    attempt(transforms, 0, 1)
    attempt(transforms, 1, 1, age=60)
    seen = transforms.observe_transform(NAME)
    assert [(x.state, x.outcome) for x in seen.instances] == [("starting", None), ("exited", None)]
    assert seen.instances[1].message == "the runner of this attempt never started"


def test_an_exited_runner_reports_its_code_times_and_recorded_outcome(
    transforms: ProcessTransforms,
) -> None:
    root = attempt(transforms, 0, 1)
    (root / EXIT_FILE).write_text(
        RunnerExit(exit_code=1, started_at=100, ended_at=160).model_dump_json()
    )
    reason = client_error("a.csv: line 3: the model answered 400")
    TransformScratch(transforms.transform_store, NAME).write_result(
        result(0, 1, "failed", Failure=reason)
    )
    (x,) = transforms.observe_transform(NAME).instances
    assert (x.state, x.exit_code, x.outcome, x.failure, x.message) == (
        "exited",
        1,
        "failed",
        reason,
        "",
    )
    assert x.started_at is not None and x.started_at.timestamp() == 100
    assert x.ended_at is not None and x.ended_at.timestamp() == 160


def test_an_earlier_attempts_result_is_not_the_latest_attempts(
    transforms: ProcessTransforms,
) -> None:
    TransformScratch(transforms.transform_store, NAME).write_result(result(0, 1, "stopped"))
    own_pid(attempt(transforms, 0, 2))
    (x,) = transforms.observe_transform(NAME).instances
    assert (x.attempt, x.state, x.outcome) == (2, "starting", None)


def test_a_dead_runner_without_a_result_says_so_with_its_last_lines(
    transforms: ProcessTransforms,
) -> None:
    root = attempt(transforms, 0, 1)
    # A pid that is not alive: ours, with a start time that is not ours.
    (root / PID_FILE).write_text(ProcessId(os.getpid(), 1).to_json())
    (root / "supervisor.log").write_text("Traceback (most recent call last):\nMemoryError\n")
    (x,) = transforms.observe_transform(NAME).instances
    assert (x.state, x.outcome, x.exit_code) == ("exited", None, None)
    assert x.message.startswith("the instance runner died (killed) without recording a result")
    assert x.message.endswith("MemoryError")


def test_cleanup_removes_the_attempts_and_the_scratch_records(
    transforms: ProcessTransforms,
) -> None:
    attempt(transforms, 0, 1)
    scratch = TransformScratch(transforms.transform_store, NAME)
    scratch.write_result(result(0, 1))
    transforms.transform_log_path(NAME).parent.mkdir(parents=True)
    transforms.transform_log_path(NAME).write_text("kept\n")
    transforms.cleanup_transform(NAME)
    assert not (transforms.transforms_dir / NAME).exists()
    assert scratch.read_results() == {}
    assert transforms.read_transform_logs(NAME, 0, 100) == (b"kept\n", 5)
    transforms.cleanup_transform(NAME)  # idempotent
    transforms.stop_transform(NAME, force=True)  # nothing to stop


def test_the_model_server_replica_file_gets_the_jobs_environment(
    transforms: ProcessTransforms, tmp_path: Path
) -> None:
    spec = transform_spec(Environment={"A": "job", "B": "job"})
    pipeline = model_spec(
        PrimaryContainer=None,
        Containers=[{"Image": "x", "Environment": {"A": "model", "C": "model"}}, {"Image": "x"}],
    )
    launch = TransformLaunch(NAME, 1, 3, spec, "model-1", pipeline)
    doc = transforms.instance_file(launch, tmp_path)
    replica = server_replica_file(doc, tmp_path / "replica")
    assert [c.Environment for c in replica.containers] == [
        {"A": "job", "B": "job", "C": "model"},
        {"A": "job", "B": "job"},
    ]
    assert (replica.endpoint, replica.replica_id, replica.generation) == (NAME, "algo-2", 3)
    assert replica.model_name == "model-1"


def test_the_job_log_takes_whole_lines_with_the_hosts_tag(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "job.log"
    log = JobLog(path, "[algo-2] ")
    kept: collections.deque[str] = collections.deque(maxlen=2)
    log.pump([b"one\ntw", b"o\n\nthr", b"ee"], kept)
    original = io.StringIO()
    tee = _Tee(log, original)
    tee.write("a partial ")
    tee.write("line\nnext")
    tee.write("\n")
    assert original.getvalue() == "a partial line\nnext\n"
    assert path.read_text().splitlines() == [
        "[algo-2] one",
        "[algo-2] two",
        "[algo-2] ",
        "[algo-2] three",
        "[algo-2] a partial line",
        "[algo-2] next",
    ]
    assert list(kept) == ["two", "three"]


def test_a_runner_that_recorded_its_end_is_running_until_it_is_gone(
    transforms: ProcessTransforms,
) -> None:
    root = attempt(transforms, 0, 1)
    own_pid(root)  # alive: this very process
    (root / READY_FILE).write_text("1")
    (root / EXIT_FILE).write_text(
        RunnerExit(exit_code=0, started_at=1, ended_at=2).model_dump_json()
    )
    TransformScratch(transforms.transform_store, NAME).write_result(result(0, 1))
    (x,) = transforms.observe_transform(NAME).instances
    assert (x.state, x.outcome, x.exit_code) == ("running", "completed", None)
