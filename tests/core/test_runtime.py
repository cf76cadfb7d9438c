"""The controller's runtime over the fake backend, a real SQLite store and a fake clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from core_builders import ENDPOINT, JOB, FakeClock, config_spec, model_spec, training_doc

from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.plan.types import JobLaunch, ObservedJob, ReplicaLaunch
from orchestrator.controller.runtime import Controller
from orchestrator.errors import ValidationError
from orchestrator.resources.endpoints import CreateEndpointRequest, EndpointState
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    SecondaryStatus,
    TrainingJobState,
)
from orchestrator.settings import ControllerSettings, Settings
from orchestrator.store import StateStore


@dataclass
class Env:
    store: StateStore
    fake: FakeBackend
    clock: FakeClock
    settings: Settings
    ctl: Controller

    def new_controller(self) -> Controller:
        return Controller(self.store, self.fake, self.settings, clock=self.clock)

    def add_job(self, name: str = JOB, **overrides: Any) -> None:
        self.store.create(
            "TrainingJob",
            name,
            training_doc(name, **overrides),
            TrainingJobState().model_dump(mode="json"),
            phase="InProgress",
            active=True,
            now=self.clock.now(),
        )

    def job(self, name: str = JOB) -> TrainingJobState:
        return TrainingJobState.model_validate(self.store.get("TrainingJob", name).status)

    def add_endpoint(self, replicas: int = 2) -> None:
        now = self.clock.now()
        for kind, name, doc in (
            ("Model", "model-1", model_spec().model_dump(mode="json")),
            ("EndpointConfig", "cfg-1", config_spec(("v1", "model-1", replicas)).model_dump(mode="json")),
        ):  # fmt: skip
            self.store.create(kind, name, doc, {}, phase="Ready", active=False, now=now)
        spec = CreateEndpointRequest(EndpointName=ENDPOINT, EndpointConfigName="cfg-1")
        self.store.create(
            "Endpoint",
            ENDPOINT,
            spec.model_dump(mode="json"),
            EndpointState().model_dump(mode="json"),
            phase="Creating",
            active=True,
            now=now,
        )

    def endpoint(self) -> EndpointState:
        return EndpointState.model_validate(self.store.get("Endpoint", ENDPOINT).status)


def make_env(tmp_path: Path, fake: FakeBackend) -> Env:
    settings = Settings(
        home=tmp_path,
        config_dir=tmp_path,
        backend="fake",
        controller=ControllerSettings(stop_grace_seconds=30.0, replica_max_start_failures=3),
    )
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    clock = FakeClock(datetime.now(tz=UTC))
    fake.clock = clock  # the backend's times (starts, ends) and the planner's are one clock
    return Env(store, fake, clock, settings, Controller(store, fake, settings, clock=clock))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path, FakeBackend())
    yield e
    e.store.close()


@pytest.fixture
def stubborn(tmp_path: Path) -> Iterator[Env]:
    """A backend whose jobs ignore SIGTERM."""
    e = make_env(tmp_path, FakeBackend(honour_sigterm=False))
    yield e
    e.store.close()


def test_job_goes_starting_training_completed(env: Env) -> None:
    env.add_job()
    env.ctl.run_pass()
    assert [(x.name, x.attempt) for x in env.fake.launches] == [(JOB, 1)]
    assert env.fake.launches[0].output_uri == (
        f"s3://orchestrator/training-jobs/{JOB}/output/model.tar.gz"
    )
    assert (env.job().TrainingJobStatus, env.job().SecondaryStatus) == ("InProgress", "Starting")

    env.fake.set_phase(JOB, SecondaryStatus.TRAINING, "epoch 1")
    env.clock.advance(5)
    env.ctl.run_pass()
    assert env.job().SecondaryStatus == "Training"

    env.fake.complete(JOB, artifact="s3://b/model.tar.gz", metrics={"loss": 0.25})
    env.ctl.run_pass()
    st = env.job()
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("Completed", "Completed")
    assert st.ModelArtifacts.S3ModelArtifacts == "s3://b/model.tar.gz"
    assert [(m.MetricName, m.Value) for m in st.FinalMetricDataList] == [("loss", 0.25)]
    assert [t.Status for t in st.SecondaryStatusTransitions] == [
        "Starting",
        "Training",
        "Completed",
    ]
    record = env.store.get("TrainingJob", JOB)
    assert (record.phase, record.active) == ("Completed", False)
    assert env.store.list_active("TrainingJob") == []
    assert len(env.fake.launches) == 1


def test_stop_waits_the_grace_then_kills(stubborn: Env) -> None:
    e = stubborn
    e.add_job()
    e.ctl.run_pass()
    e.store.set_flag("TrainingJob", JOB, "stop_requested", e.clock.now())
    e.ctl.run_pass()
    assert e.fake.stops == [(JOB, False)]
    assert e.store.get("TrainingJob", JOB).phase == "Stopping"
    e.clock.advance(29)
    e.ctl.run_pass()
    assert e.fake.stops == [(JOB, False)]
    e.clock.advance(1)
    e.ctl.run_pass()
    assert e.fake.stops == [(JOB, False), (JOB, True)]
    e.ctl.run_pass()
    st = e.job()
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("Stopped", "Stopped")
    assert st.FailureReason is None
    assert st.SecondaryStatusTransitions[-1].StatusMessage == "Stopped by request (StopTrainingJob)"


def test_max_runtime_stops_the_job(env: Env) -> None:
    env.add_job(StoppingCondition={"MaxRuntimeInSeconds": 60})
    env.ctl.run_pass()
    env.clock.advance(30)
    env.ctl.run_pass()
    assert env.fake.stops == []
    env.clock.advance(31)
    env.ctl.run_pass()
    assert env.fake.stops == [(JOB, False)]
    env.ctl.run_pass()
    st = env.job()
    assert (st.TrainingJobStatus, st.SecondaryStatus) == ("Stopped", "MaxRuntimeExceeded")
    assert st.StopReason is not None
    assert "MaxRuntimeInSeconds=60" in st.StopReason


def test_restarted_controller_does_not_launch_again(env: Env) -> None:
    env.add_job()
    env.ctl.run_pass()
    env.new_controller().run_pass()
    assert len(env.fake.launches) == 1
    assert env.job().Attempt == 1


def test_launch_not_yet_recorded_is_adopted(env: Env) -> None:
    """The controller died after launching and before writing the status."""
    env.add_job()
    spec = CreateTrainingJobRequest.model_validate(env.store.get("TrainingJob", JOB).spec)
    env.fake.launch_job(JobLaunch(JOB, 1, spec, "s3://b/o"))
    assert env.job().Attempt == 0
    env.new_controller().run_pass()
    assert len(env.fake.launches) == 1
    assert env.job().Attempt == 1


def test_supervisor_crash_fails_honestly(env: Env) -> None:
    env.add_job()
    env.ctl.run_pass()
    env.fake.crash(JOB)
    env.ctl.run_pass()
    st = env.job()
    assert st.TrainingJobStatus == "Failed"
    assert st.FailureReason is not None
    assert st.FailureReason.startswith("InternalServerError:")
    assert len(env.fake.launches) == 1


def test_lost_job_fails_as_vanished(env: Env) -> None:
    env.add_job()
    env.ctl.run_pass()
    env.fake.lose(JOB)
    env.ctl.run_pass()
    assert "vanished" in (env.job().FailureReason or "")


def test_endpoint_reaches_in_service_and_publishes_routes(env: Env) -> None:
    env.add_endpoint(replicas=2)
    env.ctl.run_pass()
    assert [r.replica_id for r in env.fake.replica_launches] == ["v1-0-1", "v1-1-2"]
    assert env.endpoint().EndpointStatus == "Creating"
    env.ctl.run_pass()
    assert env.endpoint().EndpointStatus == "InService"
    route = env.ctl.routes.get(ENDPOINT)
    assert route is not None
    assert route.public is False
    assert [(v.name, v.weight, v.urls) for v in route.variants] == [
        ("v1", 1.0, (f"http://fake-replica/{ENDPOINT}/v1-0-1", f"http://fake-replica/{ENDPOINT}/v1-1-2"))
    ]  # fmt: skip
    assert route.ready


def test_a_route_carries_its_endpoints_account(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store stamps each record's account (orchestrator.tenancy); here one is put on.
    listed = env.store.list_active

    def of_account(kind: str) -> list[Any]:
        records = listed(kind)
        if kind != "Endpoint":
            return records
        return [dataclasses.replace(r, account="111111111111") for r in records]

    monkeypatch.setattr(env.store, "list_active", of_account)
    env.add_endpoint(replicas=1)
    env.ctl.run_pass()
    env.ctl.run_pass()
    route = env.ctl.routes.get(ENDPOINT)
    assert route is not None and route.ready and route.account == "111111111111"


def test_dead_replica_is_replaced_and_drops_out_of_routes(env: Env) -> None:
    env.add_endpoint(replicas=1)
    env.ctl.run_pass()
    env.ctl.run_pass()
    env.fake.set_replica_state(ENDPOINT, "v1-0-1", "dead", "exit code 1")
    env.ctl.run_pass()
    assert env.fake.removed_replicas == [(ENDPOINT, "v1-0-1")]
    assert [r.replica_id for r in env.fake.replica_launches] == ["v1-0-1", "v1-0-2"]
    route = env.ctl.routes.get(ENDPOINT)
    assert route is not None
    assert route.variants[0].urls == ()


def test_delete_endpoint_removes_replicas_then_the_record(env: Env) -> None:
    env.add_endpoint(replicas=2)
    env.ctl.run_pass()
    env.ctl.run_pass()
    env.store.set_flag("Endpoint", ENDPOINT, "delete_requested", env.clock.now())
    env.ctl.run_pass()
    assert sorted(env.fake.removed_replicas) == [(ENDPOINT, "v1-0-1"), (ENDPOINT, "v1-1-2")]
    assert env.ctl.routes.get(ENDPOINT) is None
    env.ctl.run_pass()
    assert env.store.find("Endpoint", ENDPOINT) is None
    assert env.fake.list_endpoints() == []


def test_orphan_replicas_are_removed(env: Env) -> None:
    ghost = ReplicaLaunch("ghost", "v1", 0, "v1-0-7", "model-1", model_spec(), "local", 7)
    env.fake.launch_replica(ghost)
    env.ctl.run_pass()
    assert env.fake.removed_replicas == [("ghost", "v1-0-7")]
    assert env.fake.list_endpoints() == []


class FlakyBackend(FakeBackend):
    def observe_job(self, name: str) -> ObservedJob | None:
        if name == "bad":
            raise RuntimeError("backend exploded")
        return super().observe_job(name)


def test_backend_error_in_one_resource_does_not_stop_others(tmp_path: Path) -> None:
    e = make_env(tmp_path, FlakyBackend())
    try:
        e.add_job("bad")
        e.add_job("good")
        e.add_endpoint(replicas=1)
        due = e.ctl.run_pass()
        assert [x.name for x in e.fake.launches] == ["good"]
        assert len(e.fake.replica_launches) == 1
        assert e.job("bad").Attempt == 0
        assert due <= e.settings.controller.resync_seconds
    finally:
        e.store.close()


class RefusingBackend(FakeBackend):
    def launch_job(self, launch: Any) -> None:
        raise ValidationError("this backend cannot run TrainingImage jobs")


def test_permanent_backend_refusal_fails_the_job(tmp_path: Path) -> None:
    e = make_env(tmp_path, RefusingBackend())
    try:
        e.add_job()
        e.ctl.run_pass()
        st = e.job()
        assert st.TrainingJobStatus == "Failed"
        assert st.FailureReason == "ClientError: this backend cannot run TrainingImage jobs"
        assert e.store.get("TrainingJob", JOB).active is False
    finally:
        e.store.close()


def test_stale_record_is_not_overwritten(env: Env) -> None:
    env.add_job()
    stale = env.store.get("TrainingJob", JOB)
    env.store.set_flag("TrainingJob", JOB, "stop_requested", env.clock.now())
    result = env.ctl.reconciler.reconcile_training_job(stale)
    assert result.requeue_after == 0.0  # plan again at once
    # The launch happened; its record did not, and the next pass adopts it.
    assert len(env.fake.launches) == 1
    assert env.job().Attempt == 0
    assert int(env.store.get("TrainingJob", JOB).version) == int(stale.version) + 1
    env.ctl.run_pass()
    assert (len(env.fake.launches), env.job().Attempt) == (1, 1)


class ProcessLikeBackend(FakeBackend):
    """Fake replicas that report this test's own process as theirs (for CPU/memory)."""

    def replica_processes(self, endpoint: str) -> list[tuple[str, str, int]]:
        import os

        return [(r.variant, r.replica_id, os.getpid()) for r in self.observe_replicas(endpoint)]


def test_the_controller_feeds_instances_setup_times_and_replica_usage(tmp_path: Path) -> None:
    from orchestrator.monitoring.series import SeriesStore

    e = make_env(tmp_path, ProcessLikeBackend())
    series = SeriesStore(clock=e.clock)
    ctl = Controller(e.store, e.fake, e.settings, clock=e.clock, telemetry=series)
    e.add_endpoint(replicas=2)
    for _ in range(3):  # launch, see ready, sample CPU twice
        ctl.run_pass()
        sum(i * i for i in range(200_000))  # some CPU between the samples
        e.clock.advance(1.0)
    end = e.clock.now()

    def points(metric: str, stat: str) -> list[float]:
        answer = series.query(
            ENDPOINT,
            metric,
            start=end - timedelta(minutes=5),
            end=end + timedelta(seconds=1),
            period=60,
            statistics=[stat],
        )
        return [getattr(p, stat) for p in answer.Datapoints]

    assert points("CPUUtilization", "Average")
    assert points("MemoryUtilization", "Maximum")[0] > 0
    assert points("ModelSetupTime", "SampleCount") == [2]  # each replica once, not per pass


def _gauges() -> dict[tuple[str, str, str], float]:
    from orchestrator import metrics

    out = {}
    for metric, gauge in metrics.JOB_USAGE.items():
        for sample in gauge.collect()[0].samples:
            out[(sample.labels["job"], sample.labels["host"], metric)] = sample.value
    return out


def test_running_jobs_latest_usage_is_exported_and_dropped_when_they_end(env: Env) -> None:
    env.add_job()
    env.ctl.run_pass()
    env.fake.set_phase(JOB, SecondaryStatus.TRAINING)
    env.fake.write_usage(JOB, "algo-1", {"CPUUtilization": 150.0, "MemoryUtilization": 30.0})
    env.fake.write_usage(JOB, "algo-1", {"CPUUtilization": 175.0, "MemoryUtilization": 31.0})
    env.fake.write_usage(JOB, "algo-2", {"DiskUtilization": 2.5})
    env.ctl._last_counts = 0.0  # the counts are refreshed every 5 s; now
    env.ctl.run_pass()
    assert _gauges() == {
        (JOB, "algo-1", "CPUUtilization"): 175.0,
        (JOB, "algo-1", "MemoryUtilization"): 31.0,
        (JOB, "algo-2", "DiskUtilization"): 2.5,
    }
    env.clock.advance(60)  # no sample since: stale, dropped
    env.ctl._last_counts = 0.0
    env.ctl.run_pass()
    assert _gauges() == {}
    env.fake.write_usage(JOB, "algo-1", {"CPUUtilization": 10.0})
    env.fake.complete(JOB)
    env.ctl.run_pass()
    env.ctl._last_counts = 0.0
    env.ctl.run_pass()
    assert env.job().TrainingJobStatus == "Completed"
    assert _gauges() == {}  # the job ended: not active, not exported
