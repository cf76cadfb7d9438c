"""Transform jobs on the real process backend: runners and model servers as processes, through
the controller and through the backend alone (a runner killed and resumed, stop, cleanup)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator import procs
from orchestrator.backends.base import TransformBackend
from orchestrator.backends.process import ProcessBackend
from orchestrator.backends.process.transforms import PID_FILE, SERVER_DIR
from orchestrator.controller.runtime import Controller
from orchestrator.resources.transform import TransformJobState
from orchestrator.store import StateStore
from orchestrator.transformer.scratch import TransformScratch, observe_scratch
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
def backend(tmp_path: Path) -> Iterator[ProcessBackend]:
    b = ProcessBackend(transform_settings(tmp_path / "home"))
    try:
        yield b
    finally:
        b.close()
        _kill_leftovers(tmp_path / "home")


def _server_of(backend: ProcessBackend, name: str, instance: int, attempt: int) -> Path:
    return backend.transform_attempt_root(name, instance, attempt) / SERVER_DIR


def _gone(root: Path, timeout: float = 10.0) -> bool:
    """No live process has ``root`` on its command line (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while procs.find_by_argument(str(root)) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_two_instance_job_runs_to_completion_through_the_controller(
    tmp_path: Path, model: LogisticRegression
) -> None:
    settings = transform_settings(tmp_path / "home")
    backend = ProcessBackend(settings)
    assert isinstance(backend, TransformBackend)
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        spec_model = put_model(backend.transform_store, "iris-ish", model)
        big, small = rows(12_000), rows(500, seed=2)
        backend.transform_store.put_bytes("s3://data/tj/in/big.csv", csv(big))
        backend.transform_store.put_bytes("s3://data/tj/in/sub/small.csv", csv(small))
        spec = job_spec("tj", "iris-ish", instances=2)
        now = datetime.now(tz=UTC)
        state.create(
            "Model", "iris-ish", spec_model.model_dump(mode="json", exclude_none=True), {},
            phase="Ready", active=False, now=now,
        )  # fmt: skip
        state.create(
            "TransformJob", "tj", spec.model_dump(mode="json", exclude_none=True),
            TransformJobState().model_dump(mode="json"), phase="InProgress", active=True, now=now,
        )  # fmt: skip
        ctl = Controller(state, backend, settings)
        seen_running = False
        deadline = time.monotonic() + 120
        while state.get("TransformJob", "tj").phase == "InProgress":
            assert time.monotonic() < deadline, backend.read_transform_logs("tj", 0, 20_000)
            ctl.run_pass()
            st = TransformJobState.model_validate(state.get("TransformJob", "tj").status)
            seen_running = seen_running or any(i.Status == "Running" for i in st.Instances)
            time.sleep(0.2)
        st = TransformJobState.model_validate(state.get("TransformJob", "tj").status)
        assert st.TransformJobStatus == "Completed", st.FailureReason
        assert seen_running
        assert [(i.Instance, i.Attempt, i.Status) for i in st.Instances] == [
            (0, 1, "Completed"),
            (1, 1, "Completed"),
        ]
        assert st.Progress.RecordsProcessed == 12_500
        assert (st.Progress.FilesTotal, st.Progress.FilesCompleted) == (2, 2)
        out = backend.transform_store
        assert out.get_bytes("s3://data/tj/out/big.csv.out").decode().splitlines() == predicted(
            model, big
        )
        assert out.get_bytes(
            "s3://data/tj/out/sub/small.csv.out"
        ).decode().splitlines() == predicted(model, small)
        # Both instances wrote to the one job log, each line tagged with its host.
        log = backend.read_transform_logs("tj", 0, 1 << 20)[0].decode()
        assert "[algo-1] transform: instance 0 completed" in log
        assert "[algo-2] transform: instance 1 completed" in log
        assert all(line.startswith(("[algo-1] ", "[algo-2] ")) for line in log.splitlines())
        # The ended job was cleaned up: its runners' directories and its scratch records.
        assert not (backend.transforms_dir / "tj").exists()
        assert observe_scratch(out, "tj") == (None, {})
        assert backend.observe_transform("tj").instances == ()
    finally:
        state.close()
        backend.close()
        _kill_leftovers(tmp_path / "home")


def test_a_killed_runner_takes_its_server_along_and_attempt_2_resumes(
    backend: ProcessBackend, model: LogisticRegression
) -> None:
    store = backend.transform_store
    slow = put_model(store, "slow", model, SLOW, PREDICT_SLEEP="0.3")
    x = rows(12_000)
    store.put_bytes("s3://data/kill/in/a.csv", csv(x))
    spec = job_spec("kill", "slow", MaxConcurrentTransforms=1)
    backend.launch_transform_instance(launch(spec, slow))
    root = backend.transform_attempt_root("kill", 0, 1)
    pid_text = (root / PID_FILE).read_text()
    backend.launch_transform_instance(launch(spec, slow))  # a second launch does nothing
    assert (root / PID_FILE).read_text() == pid_text
    assert one(backend.observe_transform("kill")).state in ("starting", "running")

    scratch = TransformScratch(store, "kill")
    wait_for(backend, "kill", lambda s: one(s).state == "running", "running")
    wait_for(backend, "kill", lambda s: len(scratch.done_ranges()) >= 3, "3 ranges done")
    done = {i.uri: i.version for i in scratch.store.list(scratch.uri("parts/"))}
    pid = procs.ProcessId.from_file(root / PID_FILE)
    assert pid is not None and procs.find_by_argument(str(root / SERVER_DIR)) is not None
    os.kill(pid.pid, signal.SIGKILL)

    seen = one(wait_for(backend, "kill", exited(), "seen dead"))
    assert (seen.attempt, seen.outcome, seen.failure) == (1, None, None)
    assert "without recording a result" in seen.message
    assert _gone(root / SERVER_DIR), "the model server outlived its runner"
    assert not store.exists("s3://data/kill/out/a.csv.out")

    backend.launch_transform_instance(launch(spec, slow, attempt=2))
    seen = one(wait_for(backend, "kill", lambda s: one(s).attempt == 2 and exited()(s), "done"))
    assert (seen.state, seen.outcome, seen.exit_code) == ("exited", "completed", 0)
    assert seen.started_at is not None and seen.ended_at is not None
    assert store.get_bytes("s3://data/kill/out/a.csv.out").decode().splitlines() == predicted(
        model, x
    )
    after = {i.uri: i.version for i in scratch.store.list(scratch.uri("parts/"))}
    assert {uri: after[uri] for uri in done} == done  # attempt 2 kept attempt 1's parts
    log = backend.read_transform_logs("kill", 0, 1 << 20)[0].decode()
    assert "algo-1: attempt 1 of instance 0 starting" in log
    assert "algo-1: attempt 2 of instance 0 starting" in log
    assert f"{len(done)} done already" in log
    assert _gone(_server_of(backend, "kill", 0, 2))  # the runner stopped its server

    backend.cleanup_transform("kill")
    assert not (backend.transforms_dir / "kill").exists()
    assert observe_scratch(store, "kill") == (None, {})
    assert backend.observe_transform("kill").instances == ()
    # The job's log stays (the API serves it after the job is gone).
    assert backend.read_transform_logs("kill", 0, 100)[0]


def test_stop_ends_the_runner_as_stopped_and_force_kills_the_whole_group(
    backend: ProcessBackend, model: LogisticRegression
) -> None:
    store = backend.transform_store
    slow = put_model(store, "slow", model, SLOW, PREDICT_SLEEP="0.3")
    stuck = put_model(store, "stuck", model, SLOW, PREDICT_SLEEP="600")
    store.put_bytes("s3://data/st/in/a.csv", csv(rows(12_000)))
    store.put_bytes("s3://data/hang/in/a.csv", csv(rows(100)))
    gentle, hard = job_spec("st", "slow"), job_spec("hang", "stuck")
    backend.launch_transform_instance(launch(gentle, slow))
    backend.launch_transform_instance(launch(hard, stuck))
    wait_for(backend, "st", lambda s: one(s).state == "running", "running")
    wait_for(backend, "hang", lambda s: one(s).state == "running", "running")

    backend.stop_transform("st", force=False)
    seen = one(wait_for(backend, "st", exited(), "stopped"))
    assert (seen.outcome, seen.exit_code) == ("stopped", 143)
    assert _gone(_server_of(backend, "st", 0, 1))

    # A runner waiting on a model that never answers: SIGTERM is not enough, SIGKILL is.
    backend.stop_transform("hang", force=False)
    time.sleep(1.0)
    assert one(backend.observe_transform("hang")).state == "running"
    backend.stop_transform("hang", force=True)
    seen = one(wait_for(backend, "hang", exited(), "killed"))
    assert seen.outcome is None
    assert _gone(_server_of(backend, "hang", 0, 1))
    backend.stop_transform("hang", force=True)  # nothing left to stop: no error


def test_a_model_that_cannot_be_fetched_fails_the_instance_saying_why(
    backend: ProcessBackend,
) -> None:
    store = backend.transform_store
    missing = put_model(store, "m", trained()).model_copy(deep=True)
    store.put_bytes("s3://data/nf/in/a.csv", b"1,2,3,4\n")
    assert missing.PrimaryContainer is not None
    missing.PrimaryContainer.ModelDataUrl = "s3://data/models/nowhere/model.tar.gz"
    backend.launch_transform_instance(launch(job_spec("nf", "m"), missing))
    seen = one(wait_for(backend, "nf", exited(), "failed"))
    assert seen.outcome == "failed" and seen.failure is not None
    assert "the model server did not start" in seen.failure.message
    assert "model download failed" in seen.failure.message
    assert "nowhere/model.tar.gz" in seen.failure.message
    assert seen.exit_code == 1


def test_the_job_environment_reaches_the_model_server(
    backend: ProcessBackend, model: LogisticRegression
) -> None:
    echo = """
    import os
    import numpy as np

    def predict_fn(data, model):
        return np.array([os.environ["GREETING"] + os.environ["FROM_MODEL"]] * len(data))
    """
    store = backend.transform_store
    m = put_model(store, "env", model, echo, FROM_MODEL="-model", GREETING="model-says")
    store.put_bytes("s3://data/env/in/a.csv", b"1,2,3,4\n5,6,7,8\n")
    spec = job_spec("env", "env", Environment={"GREETING": "hello"})
    backend.launch_transform_instance(launch(spec, m))
    seen = one(wait_for(backend, "env", exited(), "done"))
    assert seen.outcome == "completed", seen.failure
    answer = store.get_bytes("s3://data/env/out/a.csv.out").decode()
    assert answer.splitlines() == ["hello-model", "hello-model"], json.dumps(answer)
