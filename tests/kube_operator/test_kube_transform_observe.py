"""Transform Jobs and their pods -> ObservedTransformInstance, pure: the runner's state and
exit decide; a pod that is gone or ended without the runner ending is an instance that died
without a word (the planner relaunches it); and the merged, tagged logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.kube.transforms import (
    host_tag,
    latest_jobs,
    merge_logs,
    transform_observations,
)
from orchestrator.resources.failures import client_error, internal_error


def job(instance: int, attempt: int, *, suspend: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"scores-{instance}-{attempt}",
            "labels": {
                "orchestrator.dev/transform-job": "scores",
                "orchestrator.dev/instance": str(instance),
                "orchestrator.dev/attempt": str(attempt),
            },
        },
        "spec": {"backoffLimit": 0, **({"suspend": True} if suspend else {})},
        "status": status,
    }


def pod(
    instance: int,
    attempt: int,
    *,
    runner: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    serve: dict[str, Any] | None = None,
    count: int = 2,
    created: str = "2024-05-01T12:00:00Z",
    **status: Any,
) -> dict[str, Any]:
    init = [{"name": n, "state": st} for n, st in (("model", model), ("serve", serve)) if st]
    return {
        "metadata": {
            "name": f"scores-{instance}-{attempt}-abcde",
            "creationTimestamp": created,
            "labels": job(instance, attempt)["metadata"]["labels"],
            "annotations": {"orchestrator.dev/instance-count": str(count)},
        },
        "status": {
            "initContainerStatuses": init,
            "containerStatuses": [{"name": "runner", "state": runner}] if runner else [],
            **status,
        },
    }


def at(clock: str) -> str:
    return f"2024-05-01T{clock}Z"


def when(clock: str) -> datetime:
    return datetime.fromisoformat(at(clock)).astimezone(UTC)


def running(clock: str) -> dict[str, Any]:
    return {"running": {"startedAt": at(clock)}}


def ended(code: int, clock: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "startedAt": at("12:00:10"),
            "finishedAt": at(clock),
            "message": message,
            **extra,
        }
    }


FAILED = {
    "failed": 1,
    "conditions": [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastTransitionTime": at("12:05:00"),
        }
    ],
}


def one(jobs: list[dict[str, Any]], pods: list[dict[str, Any]]) -> Any:
    [seen] = transform_observations("scores", jobs, pods)
    return seen


def test_a_created_job_is_starting_until_its_runner_runs() -> None:
    seen = one([job(0, 1)], [])
    assert (seen.state, seen.instance, seen.attempt, seen.outcome) == ("starting", 0, 1, None)
    seen = one(
        [job(0, 1, startTime=at("12:00:00"), active=1)],
        [pod(0, 1, model=ended(0, "12:00:05"), serve=running("12:00:05"))],
    )
    assert seen.state == "starting" and seen.message == ""
    assert seen.started_at == when("12:00:00")
    seen = one(
        [job(0, 1, active=1)], [pod(0, 1, serve=running("12:00:05"), runner=running("12:00:09"))]
    )
    assert (seen.state, seen.started_at) == ("running", when("12:00:09"))


def test_a_model_step_or_server_that_cannot_start_is_given_up_saying_why() -> None:
    stuck = {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}
    seen = one([job(0, 1, active=1)], [pod(0, 1, model=ended(0, "12:00:05"), serve=stuck)])
    assert (seen.state, seen.outcome) == ("exited", None)  # the planner launches it again
    assert seen.message == "container serve: ImagePullBackOff: pull access denied"
    # Still pulling, or being created: starting.
    creating = {"waiting": {"reason": "ContainerCreating"}}
    seen = one([job(0, 1, active=1)], [pod(0, 1, model=ended(0, "12:00:05"), serve=creating)])
    assert (seen.state, seen.message) == ("starting", "")


def test_a_model_artifact_the_model_step_refused_fails_the_job() -> None:
    refused = ended(2, "12:00:03", "ClientError: ModelDataUrl s3://m/x.tar.gz: no such object")
    seen = one([job(0, 1, **FAILED)], [pod(0, 1, model=refused, phase="Failed")])
    assert (seen.state, seen.outcome) == ("exited", "failed")
    assert seen.failure == client_error(
        "the Model's artifact cannot be used: ModelDataUrl s3://m/x.tar.gz: no such object"
    )
    # Any other failure of the step is said, and the instance launched again.
    crashed = ended(1, "12:00:03", "InternalServerError: the store did not answer")
    seen = one([job(0, 1, **FAILED)], [pod(0, 1, model=crashed, phase="Failed")])
    assert (seen.state, seen.outcome) == ("exited", None)
    assert seen.message == (
        "the model step exited with code 1: InternalServerError: the store did not answer"
    )


def test_a_runner_that_exits_0_completed_and_one_that_said_why_failed() -> None:
    done = one([job(1, 2, active=1)], [pod(1, 2, runner=ended(0, "12:09:00"))])
    assert (done.state, done.exit_code, done.outcome, done.failure) == (
        "exited",
        0,
        "completed",
        None,
    )
    assert (done.instance, done.attempt, done.ended_at) == (1, 2, when("12:09:00"))
    why = client_error("in/b.csv line 3: the model answered 400: bad row")
    failed = one([job(1, 2, **FAILED)], [pod(1, 2, runner=ended(1, "12:04:00", why.encode()))])
    assert (failed.outcome, failed.failure, failed.exit_code) == ("failed", why, 1)


def test_a_runner_killed_without_a_word_has_no_outcome() -> None:
    oom = ended(137, "12:04:00", "Traceback (most recent call last): ...", reason="OOMKilled")
    seen = one([job(0, 1, **FAILED)], [pod(0, 1, runner=oom)])
    assert (seen.state, seen.outcome, seen.failure, seen.exit_code) == ("exited", None, None, 137)
    assert seen.message == (
        "the runner exited with code 137 (OOMKilled): Traceback (most recent call last): ..."
    )


@pytest.mark.parametrize(
    ("jobs", "pods", "said"),
    [
        # The pod was deleted; the Job controller has not said so yet.
        ([job(0, 1, active=1)], [], "its pod is gone (deleted or evicted) before the runner ended"),
        # ... and once it has.
        (
            [job(0, 1, **FAILED)],
            [],
            "the Job failed (BackoffLimitExceeded): Job has reached the specified backoff limit",
        ),
        # Evicted: the pod failed, its runner never ended by itself.
        (
            [job(0, 1, active=1)],
            [
                pod(
                    0,
                    1,
                    runner=running("12:00:09"),
                    phase="Failed",
                    reason="Evicted",
                    message="low memory",
                )
            ],
            "pod scores-0-1-abcde was interrupted (Evicted: low memory)",
        ),
    ],
)
def test_an_instance_whose_pod_is_gone_exited_without_outcome(
    jobs: list[dict[str, Any]], pods: list[dict[str, Any]], said: str
) -> None:
    seen = one(jobs, pods)
    assert (seen.state, seen.outcome, seen.exit_code) == ("exited", None, None)
    assert seen.message == said


def test_a_pod_being_deleted_still_runs_until_its_runner_ends() -> None:
    going = pod(0, 1, runner=running("12:00:09"))
    going["metadata"]["deletionTimestamp"] = at("12:03:00")
    assert one([job(0, 1, active=1)], [going]).state == "running"


def test_a_suspended_job_is_a_stopped_instance() -> None:
    # Its pod deleted by the Job controller (SIGTERM, then gone) ...
    gone = one([job(0, 1, suspend=True, active=0)], [])
    assert (gone.state, gone.outcome) == ("exited", "stopped")
    # ... or seen as the runner ended from the signal.
    seen = one([job(0, 1, suspend=True)], [pod(0, 1, runner=ended(143, "12:03:00"))])
    assert (seen.state, seen.outcome, seen.exit_code) == ("exited", "stopped", 143)
    # A runner that completed before the stop reached it completed.
    done = one([job(0, 1, suspend=True)], [pod(0, 1, runner=ended(0, "12:03:00"))])
    assert done.outcome == "completed"


def test_the_latest_attempt_of_each_instance_with_its_own_pods() -> None:
    jobs = [job(1, 1, **FAILED), job(0, 1, active=1), job(1, 3, active=1), job(1, 2, **FAILED)]
    pods = [
        pod(1, 1, runner=ended(137, "12:01:00")),
        pod(0, 1, runner=running("12:00:09")),
        pod(1, 3, runner=running("12:06:00")),
    ]
    assert [j["metadata"]["name"] for j in latest_jobs(jobs)] == ["scores-0-1", "scores-1-3"]
    seen = transform_observations("scores", jobs, pods)
    assert [(s.instance, s.attempt, s.state) for s in seen] == [
        (0, 1, "running"),
        (1, 3, "running"),
    ]
    # Objects that are not a transform instance's are left out.
    stray = {"metadata": {"name": "other", "labels": {"orchestrator.dev/instance": "x"}}}
    assert transform_observations("scores", [*jobs, stray], [*pods, stray]) == seen


def test_unreadable_termination_message_is_shown_not_decoded() -> None:
    bad = '{"format": "orchestrator.dev/failure-reason/v1", "kind": "Nope", "message": "x"}'
    seen = one([job(0, 1, **FAILED)], [pod(0, 1, runner=ended(1, "12:01:00", bad))])
    assert (seen.outcome, seen.failure) == (None, None)
    assert bad in seen.message
    # An encoded internal error is read back exactly.
    why = internal_error("opening the object store: no bucket")
    seen = one([job(0, 1, **FAILED)], [pod(0, 1, runner=ended(1, "12:01:00", why.encode()))])
    assert seen.failure == why


def test_logs_merge_by_the_kubelets_stamps_and_tag_hosts_on_several_instances() -> None:
    runner = (
        b"2024-05-01T12:00:09.5Z waiting for GET /ping\n"
        b"2024-05-01T12:00:11.25Z scoring 3 ranges\n"
        b"  a continuation line\n"
    )
    serve = b"2024-05-01T12:00:09.123456789Z model loaded\n2024-05-01T12:00:11.3Z POST /invocations"
    other = b"2024-05-01T12:00:10Z scoring 2 ranges\n"
    tag0, tag1 = host_tag(pod(0, 1)), host_tag(pod(1, 1))
    assert (tag0, tag1) == (b"[algo-1] ", b"[algo-2] ")
    assert host_tag(pod(0, 1, count=1)) == b""
    merged = merge_logs([(tag0, runner), (tag0, serve), (tag1, other)])
    assert merged.decode().splitlines() == [
        "[algo-1] model loaded",
        "[algo-1] waiting for GET /ping",
        "[algo-2] scoring 2 ranges",
        "[algo-1] scoring 3 ranges",
        "[algo-1]   a continuation line",
        "[algo-1] POST /invocations",
    ]
    # What is appended later stays after what was read before.
    more = merge_logs(
        [(tag0, runner + b"2024-05-01T12:00:12Z done\n"), (tag0, serve), (tag1, other)]
    )
    assert more.startswith(merged)
