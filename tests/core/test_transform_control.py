"""Transform jobs through the controller: the SQL store, the fake backend, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from core_builders import TRANSFORM, FakeClock, model_spec, transform_doc

from orchestrator import metrics
from orchestrator.backends.base import TransformBackend
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.executor import Executor
from orchestrator.controller.plan.types import StopTransform, TransformLaunch
from orchestrator.controller.runtime import Controller
from orchestrator.errors import ConflictError, ValidationError
from orchestrator.metrics import REGISTRY
from orchestrator.resources.common import ConditionType
from orchestrator.resources.transform import TransformJobState, TransformProgress
from orchestrator.settings import ControllerSettings, Settings, TransformSettings
from orchestrator.store import StateStore
from orchestrator.store.source import Record

KIND = "TransformJob"


@dataclass
class Env:
    store: StateStore
    fake: FakeBackend
    clock: FakeClock
    ctl: Controller

    def add_model(self, name: str = "model-1") -> None:
        doc = model_spec(name).model_dump(mode="json", exclude_none=True)
        self.store.create("Model", name, doc, {}, phase="Ready", active=False, now=self.clock.now())

    def add_job(self, name: str = TRANSFORM, **overrides: Any) -> None:
        self.store.create(
            KIND,
            name,
            transform_doc(name, **overrides),
            TransformJobState().model_dump(mode="json"),
            phase="InProgress",
            active=True,
            now=self.clock.now(),
        )

    def job(self, name: str = TRANSFORM) -> TransformJobState:
        return TransformJobState.model_validate(self.store.get(KIND, name).status)

    def record(self, name: str = TRANSFORM) -> Record:
        return self.store.get(KIND, name)

    def passes(self, n: int = 1) -> None:
        for _ in range(n):
            self.ctl.run_pass()


def make_env(tmp_path: Path, fake: FakeBackend, *, restarts: int = 3) -> Env:
    settings = Settings(
        home=tmp_path,
        config_dir=tmp_path,
        backend="fake",
        controller=ControllerSettings(stop_grace_seconds=30.0),
        transform=TransformSettings(max_instance_restarts=restarts),
    )
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    clock = FakeClock(datetime.now(tz=UTC))
    fake.clock = clock
    return Env(store, fake, clock, Controller(store, fake, settings, clock=clock))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path, FakeBackend())
    yield e
    e.store.close()


def gauge(name: str, job: str = TRANSFORM) -> float | None:
    return REGISTRY.get_sample_value(name, {"job": job})


def test_instances_launch_report_progress_and_complete(env: Env) -> None:
    env.add_model()
    env.add_job(instances=2)
    env.passes()
    launches = env.fake.transform_launches
    assert [(x.instance, x.attempt) for x in launches] == [(0, 1), (1, 1)]
    assert launches[0].model == model_spec()
    assert launches[0].spec.TransformOutput.S3OutputPath == "s3://data/out"
    st = env.job()
    assert st.TransformJobStatus == "InProgress" and st.TransformStartTime == env.clock.now()
    assert [s.Status for s in st.Instances] == ["Starting", "Starting"]
    valid = next(c for c in st.Conditions if c.Type == ConditionType.VALID)
    assert valid.Status == "True"

    progress = TransformProgress(
        FilesTotal=2, BytesTotal=100, RecordsProcessed=42, RecordsPerSecond=21.0,
        ModelLatencyMicroseconds=2500.0,
    )  # fmt: skip
    env.fake.set_transform_progress(TRANSFORM, progress)
    env.clock.advance(2)
    env.passes()
    st = env.job()
    assert [s.Status for s in st.Instances] == ["Running", "Running"]
    assert st.Progress == progress
    assert gauge("orch_transform_records_total") == 42
    assert gauge("orch_transform_records_per_second") == 21.0
    assert gauge("orch_transform_model_latency_seconds") == pytest.approx(0.0025)

    env.fake.complete_transform_instance(TRANSFORM, 0)
    env.fake.complete_transform_instance(TRANSFORM, 1)
    ended = env.clock.now()
    env.clock.advance(1)
    env.passes()
    st = env.job()
    # The end is when the last instance ended, not when the controller saw it.
    assert st.TransformJobStatus == "Completed" and st.TransformEndTime == ended
    record = env.record()
    assert (record.phase, record.active) == ("Completed", False)
    assert env.fake.transform_cleaned == [TRANSFORM]
    assert gauge("orch_transform_records_total") is None  # ended: its series went
    env.passes(3)
    assert env.fake.transform_cleaned == [TRANSFORM]  # once
    assert len(env.fake.transform_launches) == 2


def test_a_killed_instance_is_relaunched_then_the_job_fails_past_the_setting(
    tmp_path: Path,
) -> None:
    e = make_env(tmp_path, FakeBackend(), restarts=1)
    e.add_model()
    e.add_job(instances=2)
    e.passes()
    e.fake.kill_transform_instance(TRANSFORM, 1, "exit code -9; last lines: oom")
    e.passes()
    assert [(x.instance, x.attempt) for x in e.fake.transform_launches][-1] == (1, 2)
    entry = e.job().Instances[1]
    assert (entry.Attempt, entry.Status) == (2, "Starting")
    assert entry.Message.startswith("Relaunched as attempt 2 of 2: attempt 1 ended without")
    e.fake.kill_transform_instance(TRANSFORM, 1, "exit code -9")
    e.passes()
    st = e.job()
    assert st.TransformJobStatus == "Failed"
    assert st.FailureReason == (
        "InternalServerError: instance 1 died 2 times: attempt 2 ended without a result "
        "(exit code -9)"
    )
    # The other instance was told to stop; it honoured SIGTERM, so the next pass cleans up.
    assert e.fake.transform_stops == [(TRANSFORM, False)]
    assert e.record().active
    e.passes()
    assert (e.record().phase, e.record().active) == ("Failed", False)
    assert e.fake.transform_cleaned == [TRANSFORM]
    assert [s.Status for s in e.job().Instances] == ["Stopped", "Failed"]
    e.store.close()


def test_a_failed_instance_fails_the_job_naming_the_reason(env: Env) -> None:
    env.add_model()
    env.add_job(instances=2)
    env.passes()
    env.fake.fail_transform_instance(TRANSFORM, 0, "in/a.csv: line 7: the model answered 400")
    env.passes()
    st = env.job()
    assert st.FailureReason == "ClientError: in/a.csv: line 7: the model answered 400"
    assert st.TransformJobStatus == "Failed"
    succeeded = next(c for c in st.Conditions if c.Type == ConditionType.SUCCEEDED)
    assert (succeeded.Status, succeeded.Message) == ("False", st.FailureReason)


def test_stop_waits_the_grace_then_kills(tmp_path: Path) -> None:
    e = make_env(tmp_path, FakeBackend(honour_sigterm=False))
    e.add_model()
    e.add_job(instances=1)
    e.passes()
    e.store.set_flag(KIND, TRANSFORM, "stop_requested", e.clock.now())
    e.passes()
    assert e.fake.transform_stops == [(TRANSFORM, False)]
    assert e.job().TransformJobStatus == "Stopping"
    e.clock.advance(10)
    e.passes()
    assert e.fake.transform_stops == [(TRANSFORM, False)]
    e.clock.advance(20)
    e.passes()
    assert e.fake.transform_stops == [(TRANSFORM, False), (TRANSFORM, True)]
    e.passes()
    assert e.job().TransformJobStatus == "Stopped"
    assert not e.record().active
    assert e.fake.transform_cleaned == [TRANSFORM]
    e.store.close()


def test_a_deleted_job_is_stopped_cleaned_up_and_let_go(env: Env) -> None:
    env.add_model()
    env.add_job(instances=1)
    env.passes()
    env.store.set_flag(KIND, TRANSFORM, "delete_requested", env.clock.now())
    env.passes()  # SIGTERM: the fake's runner ends at once
    env.passes()
    assert env.store.find(KIND, TRANSFORM) is None
    assert env.fake.transform_cleaned == [TRANSFORM]


def test_a_missing_model_fails_the_job_and_nothing_runs(env: Env) -> None:
    env.add_job(instances=1)
    env.passes()
    st = env.job()
    assert st.TransformJobStatus == "Failed"
    assert st.FailureReason is not None
    assert st.FailureReason.startswith(
        "ClientError: ModelName: model 'model-1' does not exist; create the Model first"
    )
    assert env.fake.transform_launches == []


def test_the_model_is_read_once_per_pass(env: Env) -> None:
    env.add_model()
    env.add_job("batch-1", instances=1)
    env.add_job("batch-2", instances=1)
    reads: list[tuple[str, str]] = []
    find = env.store.find

    def counted(kind: str, name: str) -> Record | None:
        reads.append((kind, name))
        return find(kind, name)

    env.store.find = counted  # type: ignore[method-assign]
    env.passes()
    assert reads.count(("Model", "model-1")) == 1
    assert len(env.fake.transform_launches) == 2


class NoTransforms(FakeBackend):
    """A backend that runs training jobs and endpoints, not transform jobs."""

    name = "legacy"
    launch_transform_instance = None  # type: ignore[assignment]


def test_a_backend_without_transform_jobs_refuses_them_by_name(tmp_path: Path) -> None:
    e = make_env(tmp_path, NoTransforms())
    assert not isinstance(e.fake, TransformBackend)
    e.add_model()
    e.add_job()
    e.passes()
    st = e.job()
    message = (
        "TransformJob: backend 'legacy' cannot run transform jobs (it does not implement "
        "TransformBackend); run them on the process, docker or kubernetes backend"
    )
    assert st.TransformJobStatus == "Failed"
    assert st.FailureReason == f"ValidationException: {message}"
    valid = next(c for c in st.Conditions if c.Type == ConditionType.VALID)
    assert (valid.Status, valid.Message) == ("False", message)
    assert not e.record().active
    e.store.close()


def test_data_capture_is_refused_naming_the_field(env: Env) -> None:
    env.add_model()
    env.add_job(DataCaptureConfig={"DestinationS3Uri": "s3://data/capture"})
    env.passes()
    st = env.job()
    valid = next(c for c in st.Conditions if c.Type == ConditionType.VALID)
    assert valid.Status == "False"
    assert valid.Message == (
        "DataCaptureConfig: batch data capture is not supported on the fake backend; "
        "remove DataCaptureConfig"
    )
    assert st.TransformJobStatus == "Failed"
    assert env.fake.transform_launches == []


def test_the_scratch_goes_only_once_the_ending_status_is_stored(env: Env) -> None:
    env.add_model()
    env.add_job(instances=1)
    env.passes()
    env.fake.complete_transform_instance(TRANSFORM, 0)
    update = env.store.update_status
    lost: list[bool] = []

    def racing(record: Record, status: dict[str, Any], **kw: Any) -> Record:
        if not lost:
            lost.append(True)
            raise ConflictError("changed meanwhile")
        return update(record, status, **kw)

    env.store.update_status = racing  # type: ignore[method-assign]
    env.passes()
    assert lost and env.fake.transform_cleaned == []  # the write lost: nothing removed
    assert env.job().TransformJobStatus == "InProgress"
    env.passes()
    assert env.job().TransformJobStatus == "Completed"
    assert env.fake.transform_cleaned == [TRANSFORM]


class RefusesSecondInstance(FakeBackend):
    """A backend that cannot place instance 1 (a permanent refusal, as a cluster gives)."""

    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        if launch.instance == 1:
            raise ValidationError("no node can take instance 1: it asks for 64 GPUs")
        super().launch_transform_instance(launch)


def test_a_launch_the_backend_refuses_for_good_fails_the_job_and_stops_the_rest(
    tmp_path: Path,
) -> None:
    e = make_env(tmp_path, RefusesSecondInstance())
    e.add_model()
    e.add_job(instances=2)
    e.passes()
    st = e.job()
    assert st.TransformJobStatus == "Failed"
    assert st.FailureReason == "ClientError: no node can take instance 1: it asks for 64 GPUs"
    assert [(x.instance, x.attempt) for x in e.fake.transform_launches] == [(0, 1)]
    assert e.fake.transform_stops == [(TRANSFORM, False)]
    e.passes()
    assert not e.record().active and e.fake.transform_cleaned == [TRANSFORM]
    e.store.close()


def test_the_executor_refuses_transform_actions_on_a_backend_without_them(env: Env) -> None:
    env.add_job()
    executor = Executor(NoTransforms(), env.store)
    with pytest.raises(ValidationError, match="backend 'legacy' cannot run transform jobs"):
        executor.run(env.record(), (StopTransform(TRANSFORM, force=False),))


def test_a_measure_not_known_any_more_drops_its_series() -> None:
    metrics.record_transform_progress(
        "m-1", records=3, records_per_second=1.5, model_latency_seconds=0.2
    )
    assert gauge("orch_transform_records_per_second", "m-1") == 1.5
    metrics.record_transform_progress(
        "m-1", records=4, records_per_second=None, model_latency_seconds=None
    )
    assert gauge("orch_transform_records_total", "m-1") == 4
    assert gauge("orch_transform_records_per_second", "m-1") is None
    assert gauge("orch_transform_model_latency_seconds", "m-1") is None
    metrics.remove_transform_job("m-1")
    metrics.remove_transform_job("m-1")  # twice: nothing left to remove, no error
    assert gauge("orch_transform_records_total", "m-1") is None
