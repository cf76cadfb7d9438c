"""The training queue through the control plane (fake backend, REST client): jobs beyond the
slots wait as Pending in priority order, with their place and reason on read, a queued job
costs no status write per pass, freed capacity goes to the queue in the same pass; the
queued-jobs limit, a bad Priority, and preempt requests refused by name."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from orchestrator.controller.plan.admission import QUEUED
from orchestrator.controller.reconciler import Reconciler
from orchestrator.errors import LimitExceededError, ValidationError
from orchestrator.testing import FakeClock, local_control_plane, training_job_spec

SLOTS = {"controller": {"max_concurrent_training_jobs": 2}}


def upload(cp: Any) -> None:
    cp.client.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")


def test_jobs_beyond_the_slots_wait_in_priority_order(tmp_path: Any) -> None:
    with local_control_plane(tmp_path, **SLOTS) as cp:
        upload(cp)
        api = cp.client
        for name, priority in (("a", None), ("b", None), ("c", 5), ("d", None)):
            api.create_training_job(training_job_spec(name, Priority=priority))
        cp.controller.run_pass()
        assert sorted(x.name for x in cp.backend.launches) == ["a", "c"]
        b, d = api.describe_training_job("b"), api.describe_training_job("d")
        assert (b.SecondaryStatus, b.QueuePosition, d.QueuePosition) == ("Pending", 1, 2)
        assert b.SecondaryStatusTransitions[-1].StatusMessage == (
            "Waiting for a job slot: 2 of 2 in use (ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS)"
        )
        assert d.SecondaryStatusTransitions[-1].StatusMessage == QUEUED
        summaries = {s.TrainingJobName: s for s in api.list_training_jobs().TrainingJobSummaries}
        assert (summaries["d"].QueuePosition, summaries["d"].StatusMessage) == (2, QUEUED)
        assert summaries["c"].QueuePosition is None and summaries["c"].StatusMessage is None

        # A pass over an unchanged queue writes nothing for the waiting jobs.
        versions = {n: cp.plane.store.get("TrainingJob", n).version for n in "bd"}
        cp.controller.run_pass()
        assert {n: cp.plane.store.get("TrainingJob", n).version for n in "bd"} == versions

        # A job ends: its slot goes to the head of the queue in the same pass.
        cp.backend.complete("c")
        cp.controller.run_pass()
        assert [x.name for x in cp.backend.launches][2:] == ["b"]
        assert api.describe_training_job("d").QueuePosition == 1


def test_the_queued_jobs_limit_names_its_setting(tmp_path: Any) -> None:
    with local_control_plane(tmp_path, controller={"max_queued_training_jobs": 2}) as cp:
        upload(cp)
        cp.client.create_training_job(training_job_spec("one"))
        cp.client.create_training_job(training_job_spec("two"))
        with pytest.raises(LimitExceededError) as e:
            cp.client.create_training_job(training_job_spec("three"))
        assert "ORCH_CONTROLLER__MAX_QUEUED_TRAINING_JOBS" in str(e.value)
        cp.controller.run_pass()  # both start (five slots): nothing waits any more
        cp.client.create_training_job(training_job_spec("three"))


@pytest.mark.parametrize("priority", ["high", 1.5, 1001])
def test_a_priority_that_is_not_an_integer_in_range_is_refused(
    tmp_path: Any, priority: Any
) -> None:
    with local_control_plane(tmp_path) as cp, pytest.raises(ValidationError) as e:
        cp.client.create_training_job(training_job_spec("j", Priority=priority))
    assert "Priority" in str(e.value)


def test_preempt_is_refused_for_a_job_that_is_not_a_spot_job(tmp_path: Any) -> None:
    with local_control_plane(tmp_path) as cp:
        upload(cp)
        cp.client.create_training_job(training_job_spec("firm"))
        cp.controller.run_pass()
        with pytest.raises(ValidationError) as e:
            cp.client.preempt_training_job("firm")
        assert e.value.field == "EnableManagedSpotTraining"


def test_the_preempt_flag_is_set_and_withdrawn(tmp_path: Any) -> None:
    with local_control_plane(tmp_path) as cp:
        upload(cp)
        cp.client.create_training_job(training_job_spec("j"))
        store, now = cp.plane.store, cp.plane.clock.now()
        assert store.set_flag("TrainingJob", "j", "preempt_requested", now).preempt_requested
        r = store.set_flag("TrainingJob", "j", "preempt_requested", now, value=False)
        assert not r.preempt_requested
        with pytest.raises(ValueError, match="cannot be withdrawn"):
            store.set_flag("TrainingJob", "j", "stop_requested", now, value=False)


def test_a_preempt_request_on_a_waiting_job_is_withdrawn_by_the_pass(tmp_path: Any) -> None:
    with local_control_plane(tmp_path, controller={"max_concurrent_training_jobs": 1}) as cp:
        upload(cp)
        for name in ("a", "b"):
            cp.client.create_training_job(training_job_spec(name))
        cp.controller.run_pass()
        cp.plane.store.set_flag("TrainingJob", "b", "preempt_requested", cp.plane.clock.now())
        cp.controller.run_pass()
        assert not cp.plane.store.get("TrainingJob", "b").preempt_requested


def counting_observations(cp: Any) -> list[str]:
    """The names the backend is asked about, from now on."""
    seen: list[str] = []
    observe = cp.backend.observe_job

    def counted(name: str) -> Any:
        seen.append(name)
        return observe(name)

    cp.backend.observe_job = counted
    return seen


def test_a_pass_skips_waiting_jobs_whose_wait_did_not_change(tmp_path: Any) -> None:
    clock = FakeClock()
    with local_control_plane(tmp_path, clock=clock, **SLOTS) as cp:
        upload(cp)
        api = cp.client
        for name in ("a", "b", "c", "d", "e"):
            api.create_training_job(training_job_spec(name))
        api.create_training_job(
            training_job_spec("f", StoppingCondition={"MaxPendingTimeInSeconds": 7200})
        )
        seen = counting_observations(cp)
        cp.controller.run_pass()  # the first pass plans every job
        assert sorted(set(seen)) == ["a", "b", "c", "d", "e", "f"]
        seen.clear()
        cp.controller.run_pass()  # the waiting ones are neither observed nor planned
        assert sorted(seen) == ["a", "b"]

        # A stop asked of a waiting job is carried out by the next pass.
        api.stop_training_job("d")
        seen.clear()
        cp.controller.run_pass()
        assert sorted(seen) == ["a", "b", "d"]
        assert api.describe_training_job("d").TrainingJobStatus == "Stopped"

        # MaxPendingTimeInSeconds falls due: planned again, and stopped.
        clock.advance(7201)
        seen.clear()
        cp.controller.run_pass()
        assert sorted(seen) == ["a", "b", "f"]
        assert "MaxPendingTimeExceeded" in (api.describe_training_job("f").StopReason or "")

        # A slot frees: the head is admitted and launched, and the job behind it, now the
        # head, is planned for its new reason (it waits for a slot, no longer behind others).
        cp.backend.complete("a")
        seen.clear()
        cp.controller.run_pass()
        assert sorted(seen) == ["a", "b", "c", "e"]
        assert [x.name for x in cp.backend.launches] == ["a", "b", "c"]
        assert api.describe_training_job("e").QueuePosition == 1


def test_jobs_admitted_in_one_pass_launch_in_queue_order(tmp_path: Any) -> None:
    with local_control_plane(tmp_path, controller={"max_concurrent_training_jobs": 3}) as cp:
        upload(cp)
        for name, priority in (("late", None), ("low", -5), ("mid", 3), ("top", 9)):
            cp.client.create_training_job(training_job_spec(name, Priority=priority))
        cp.controller.run_pass()
        assert [x.name for x in cp.backend.launches] == ["top", "mid", "late"]


def test_an_attempt_launched_before_a_crash_and_never_recorded_holds_its_slot(
    tmp_path: Any,
) -> None:
    with local_control_plane(tmp_path, controller={"max_concurrent_training_jobs": 1}) as cp:
        upload(cp)
        cp.client.create_training_job(training_job_spec("first"))
        cp.controller.run_pass()
        cp.backend.complete("first")
        cp.client.create_training_job(training_job_spec("ran"))
        # The controller launched "ran" and died before writing its status; meanwhile a job
        # of higher priority arrived.
        cp.backend.launch_job(replace(cp.backend.launches[0], name="ran"))
        cp.client.create_training_job(training_job_spec("urgent", Priority=9))
        old = cp.controller.reconciler
        cp.controller.reconciler = Reconciler(
            cp.plane.store, cp.backend, policies=old.policies, clock=old.clock
        )
        cp.controller.run_pass()
        assert [x.name for x in cp.backend.launches] == ["first", "ran"]  # urgent waits
        ran = cp.client.describe_training_job("ran")
        assert (ran.TrainingJobStatus, ran.SecondaryStatus) == ("InProgress", "Starting")
        urgent = cp.client.describe_training_job("urgent")
        assert (urgent.SecondaryStatus, urgent.QueuePosition) == ("Pending", 1)
        cp.backend.complete("ran")
        cp.controller.run_pass()
        assert [x.name for x in cp.backend.launches] == ["first", "ran", "urgent"]
