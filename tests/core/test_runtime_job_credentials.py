"""The controller mints a training job's own credential at its launch and revokes it when the
job ends, also across a restart (fake backend, real SQLite store and keyring, fake clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from core_builders import JOB, FakeClock, training_doc

from orchestrator.api.aws.credentials import AccessKeys
from orchestrator.api.jobcreds import JobCredentials
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.runtime import Controller
from orchestrator.objects.keys import LocalKeyring
from orchestrator.resources.training import TrainingJobState
from orchestrator.settings import Settings
from orchestrator.store import StateStore


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(home=tmp_path, config_dir=tmp_path, backend="fake")
        self.store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        self.clock = FakeClock(datetime.now(tz=UTC))
        self.fake = FakeBackend()
        self.fake.clock = self.clock
        self.access = AccessKeys(self.store, LocalKeyring(tmp_path / "keyring.json"), ttl=0.0)
        self.ctl = self.controller()

    def controller(self) -> Controller:
        ctl = Controller(self.store, self.fake, self.settings, clock=self.clock)
        ctl.reconciler.executor.credentials = JobCredentials(
            self.store, self.access, endpoint_url="http://127.0.0.1:8686",
            region="us-east-1", account_id="000000000000", now=self.clock.now,
        )  # fmt: skip
        return ctl

    def add_job(self, name: str = JOB) -> None:
        self.store.create(
            "TrainingJob", name, training_doc(name), TrainingJobState().model_dump(mode="json"),
            phase="InProgress", active=True, now=self.clock.now(),
        )  # fmt: skip

    def live_keys(self, name: str = JOB) -> list[str]:
        identity = f"job/training/{name}"
        api = [k.name for k in self.store.list_api_keys() if k.identity == identity]
        live = [k for k in self.store.list_api_keys() if k.identity == identity and not k.revoked]
        sigv4 = [k for k in self.access.list() if k.identity == identity and not k.revoked]
        assert len(api) >= len(live)
        return [k.name for k in live] + [k.access_key_id for k in sigv4]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()


def test_the_launch_carries_the_credential_and_the_end_revokes_it(world: World) -> None:
    world.add_job()
    world.ctl.run_pass()
    (launch,) = world.fake.launches
    env = launch.credentials
    assert set(env) >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                        "ORCH_API_KEY", "ORCH_ENDPOINT_URL"}  # fmt: skip
    assert "job-secret" not in repr(launch) and env["AWS_SECRET_ACCESS_KEY"] not in repr(launch)
    live = world.live_keys()
    assert env["AWS_ACCESS_KEY_ID"] in live and len(live) == 2
    world.ctl.run_pass()  # running: nothing minted again
    assert world.live_keys() == live
    world.fake.complete(JOB)
    world.ctl.run_pass()
    assert world.store.get("TrainingJob", JOB).phase == "Completed"
    assert world.live_keys() == []


def test_a_job_that_ended_while_the_controller_was_down_loses_its_key_at_the_restart(
    world: World,
) -> None:
    world.add_job()
    world.add_job("other-job")
    world.ctl.run_pass()
    # The end was stored, then the controller died before revoking (the record is inactive).
    record = world.store.get("TrainingJob", JOB)
    world.store.update_status(record, {**record.status, "TrainingJobStatus": "Completed"},
                              phase="Completed", active=False, now=world.clock.now())  # fmt: skip
    assert len(world.live_keys()) == 2
    world.controller().run_pass()
    assert world.live_keys() == []
    assert len(world.live_keys("other-job")) == 2  # still running: kept
