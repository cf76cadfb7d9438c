"""Job and Pod state -> ObservedJob, pure: the kind of a failure comes from the container that
failed, never from its text; on several hosts, the first host to fail decides."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.kube.objects import INDEX_ANNOTATION
from orchestrator.kube.observe import completed_indexes, job_observation, pod_host
from orchestrator.resources.failures import FailureReason, internal_error
from orchestrator.resources.training import SecondaryStatus

FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}


def indexed(hosts: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "j-1", "labels": {"orchestrator.dev/attempt": "1"}},
        "spec": {"completionMode": "Indexed", "completions": hosts, "parallelism": hosts},
        "status": status or {},
    }


def pod(
    index: int | str | None,
    *,
    download: dict[str, Any] | None = None,
    algo: dict[str, Any] | None = None,
    upload: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"j-1-{index}-x", "creationTimestamp": "2024-05-01T12:00:00Z"}
    if index is not None:
        meta["annotations"] = {INDEX_ANNOTATION: str(index)}
    init = [{"name": "download", "state": download}] if download else []
    main = [{"name": n, "state": st} for n, st in (("algo", algo), ("upload", upload)) if st]
    return {
        "metadata": meta,
        "status": {"initContainerStatuses": init, "containerStatuses": main, **status},
    }


def ended(code: int, at: str, message: str = "", start: str = "12:00:10") -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "message": message,
            "startedAt": f"2024-05-01T{start}Z",
            "finishedAt": f"2024-05-01T{at}Z",
        }
    }


def running(at: str) -> dict[str, Any]:
    return {"running": {"startedAt": f"2024-05-01T{at}Z"}}


def test_a_failing_host_other_than_the_first_fails_the_job_with_its_reason() -> None:
    pods = [
        # algo-1 was stopped by the Job controller after algo-2 failed (later, SIGTERM).
        pod(0, download=ended(0, "12:00:05", start="12:00:01"), algo=ended(143, "12:05:00")),
        pod(1, download=ended(0, "12:00:06"), algo=ended(1, "12:04:00", "NCCL error: peer gone")),
        pod(2, download=ended(0, "12:00:07"), algo=ended(143, "12:05:01")),
    ]
    seen = job_observation("j", indexed(3, FAILED), pods)
    assert seen.outcome == "failed"
    assert seen.failure == FailureReason(
        kind="AlgorithmError", message="algo-2: NCCL error: peer gone"
    )


def test_a_corrupt_termination_message_is_an_internal_error_not_a_crash() -> None:
    job = {"status": FAILED}
    bad = pod(None, download=ended(1, "12:00:05", '{"format": "orchestrator.dev/failure-re'))
    reason = job_observation("j", job, [bad]).failure
    assert reason is not None
    assert reason.kind == "InternalServerError"
    assert reason.message.startswith(
        "the download step exited with code 1 and an unreadable termination message (not JSON"
    )
    assert "orchestrator.dev/failure-re" in reason.message


def test_a_plain_text_message_of_a_step_is_not_taken_at_its_word() -> None:
    """No prefix guessing: only the encoding says a step's kind of failure."""
    job = {"status": FAILED}
    said = pod(
        None, upload=ended(1, "12:00:05", "ClientError: trust me"), algo=ended(0, "12:00:04")
    )
    reason = job_observation("j", job, [said]).failure
    assert reason is not None and reason.kind == "InternalServerError"
    assert "'ClientError: trust me'" in reason.message


def test_the_users_failure_file_is_an_algorithm_error_whatever_it_says() -> None:
    job = {"status": FAILED}
    text = FailureReason(kind="ClientError", message="forged").encode()
    reason = job_observation("j", job, [pod(None, algo=ended(3, "12:00:05", text))]).failure
    assert reason == FailureReason(kind="AlgorithmError", message=text)


def test_a_step_killed_without_a_message_says_how_it_ended() -> None:
    job = {"status": FAILED}
    killed = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    reason = job_observation("j", job, [pod(None, upload=killed)]).failure
    assert reason == internal_error(
        "the upload step failed: container upload exited with code 137 (out of memory)"
    )


def test_no_pod_to_blame_falls_back_to_the_jobs_own_condition() -> None:
    job = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        }
    }
    assert job_observation("j", job, []).failure == internal_error(
        "the Job failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
    )


def test_complete_only_when_every_host_succeeded() -> None:
    complete = [{"type": "Complete", "status": "True"}]
    pods = [pod(i, algo=ended(0, "12:01:00")) for i in range(3)]
    done = job_observation(
        "j", indexed(3, {"conditions": complete, "completedIndexes": "0-2", "succeeded": 3}), pods
    )
    assert done.outcome == "completed"
    short = job_observation(
        "j", indexed(3, {"conditions": complete, "completedIndexes": "0,2", "succeeded": 2}), pods
    )
    assert short.outcome == "failed"
    assert short.failure == internal_error("the Job says Complete, but algo-2 did not succeed")
    counted = job_observation("j", indexed(3, {"conditions": complete, "succeeded": 2}), pods)
    assert counted.failure == internal_error("the Job says Complete, but 2 of 3 hosts succeeded")
    garbage = job_observation(
        "j", indexed(3, {"conditions": complete, "completedIndexes": "zero"}), pods
    )
    assert garbage.failure is not None and "'zero'" in garbage.failure.message


@pytest.mark.parametrize(
    ("text", "indexes"),
    [("", set()), ("0", {0}), ("0-2", {0, 1, 2}), ("1,3-4", {1, 3, 4}), ("1-", None), ("a", None)],
)
def test_completed_indexes(text: str, indexes: set[int] | None) -> None:
    assert completed_indexes(text) == indexes


@pytest.mark.parametrize(
    ("index", "name"),
    [
        (0, "algo-1"),
        (2, "algo-3"),
        (3, "pod j-1-3-x (completion index '3', not one of 0..2 of a job on 3 hosts)"),
        ("x", "pod j-1-x-x (completion index 'x', not one of 0..2 of a job on 3 hosts)"),
        (None, "pod j-1-None-x (completion index None, not one of 0..2 of a job on 3 hosts)"),
    ],
)
def test_a_pod_is_named_by_its_host_or_by_what_is_wrong_with_its_index(
    index: int | str | None, name: str
) -> None:
    assert pod_host(pod(index), 3) == name


def test_a_failure_of_a_pod_with_a_bad_index_names_the_pod() -> None:
    bad = pod(7, algo=ended(1, "12:00:05", "boom"))
    reason = job_observation("j", indexed(3, FAILED), [bad]).failure
    assert reason == FailureReason(
        kind="AlgorithmError",
        message="pod j-1-7-x (completion index '7', not one of 0..2 of a job on 3 hosts): boom",
    )


def test_a_disrupted_host_of_several_fails_the_attempt_as_ours() -> None:
    evicted = pod(
        1,
        algo=ended(137, "12:03:00"),
        conditions=[
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "lastTransitionTime": "2024-05-01T12:02:59Z",
            }
        ],
    )
    others = [pod(i, algo=ended(143, "12:03:30")) for i in (0, 2)]
    reason = job_observation("j", indexed(3, FAILED), [*others, evicted]).failure
    assert reason is not None and reason.kind == "InternalServerError"  # RetryStrategy retries
    assert reason.message.startswith(
        "algo-2: pod j-1-1-x was interrupted (PreemptionByScheduler); a job on several hosts"
    )


def test_the_phases_of_several_hosts_move_forward_once() -> None:
    pods = [
        pod(0, download=ended(0, "12:00:05", start="12:00:01"), algo=running("12:00:06")),
        pod(1, download=ended(0, "12:00:09", start="12:00:07"), algo=ended(0, "12:00:30")),
    ]
    seen = job_observation("j", indexed(2, {"active": 2}), pods)
    assert [(m.phase, m.at.strftime("%M:%S")) for m in seen.phases] == [
        (SecondaryStatus.DOWNLOADING, "00:01"),
        (SecondaryStatus.TRAINING, "00:06"),
    ]  # one host still trains: not Uploading yet
    pods[0] = pod(0, download=ended(0, "12:00:05", start="12:00:01"), algo=ended(0, "12:00:40"))
    seen = job_observation("j", indexed(2, {"active": 2}), pods)
    assert [m.phase for m in seen.phases][-1] == SecondaryStatus.UPLOADING
    assert seen.phases[-1].at.strftime("%M:%S") == "00:40"


def test_an_oom_killed_user_container_is_an_out_of_memory_failure_of_kind_oom() -> None:
    job = {"status": FAILED}
    killed = {
        "terminated": {
            "exitCode": 137,
            "reason": "OOMKilled",
            "finishedAt": "2024-05-01T12:00:09Z",
        }
    }
    seen = job_observation("j", job, [pod(None, download=ended(0, "12:00:05"), algo=killed)])
    assert (seen.outcome, seen.exit_code, seen.exit_kind) == ("failed", 137, "oom")
    assert seen.failure is not None and seen.failure.kind == "AlgorithmError"
    assert seen.failure.message.startswith(
        "OutOfMemory: container algo was OOM-killed at its memory limit (OOMKilled, exit code 137)"
    )


@pytest.mark.parametrize(
    ("algo", "kind"),
    [
        (ended(3, "12:00:09"), "exit"),
        ({"terminated": {"exitCode": 143, "signal": 15, "finishedAt": "2024-05-01T12:00:09Z"}},
         "signal"),
        (running("12:00:06"), None),
    ],
    ids=["exit code", "signal", "still running"],
)  # fmt: skip
def test_the_exit_kind_of_the_user_container(algo: dict[str, Any], kind: str | None) -> None:
    seen = job_observation("j", {"status": FAILED}, [pod(None, algo=algo)])
    assert seen.exit_kind == kind


def test_an_oom_kill_on_any_host_makes_the_attempt_oom() -> None:
    oom = {
        "terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2024-05-01T12:04:00Z"}
    }
    pods = [pod(0, algo=ended(143, "12:05:00")), pod(1, algo=oom)]
    seen = job_observation("j", indexed(2, FAILED), pods)
    assert seen.exit_kind == "oom"
    assert seen.failure is not None
    assert seen.failure.message.startswith("algo-2: OutOfMemory:")
