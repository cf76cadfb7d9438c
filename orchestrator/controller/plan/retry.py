"""Which failed attempts of a training job are retried, and after how long. Pure.

``RetryStrategy.MaximumRetryAttempts`` (SageMaker's) bounds the retries; what is retried is
explicit: infrastructure failures (an ``InternalServerError``: the supervisor or the container
died, a host was lost, an upload failed) and out-of-memory kills, which the backends report as
``ObservedJob.exit_kind == "oom"`` (never read from a message). A user error (the script's
non-zero exit, an ``AlgorithmError``) is retried only when its exit code is one of
``RetryStrategy.RetryableExitCodes``; a code killed by signal S counts as 128 + S, as a shell
and a container runtime report it. A ``ClientError`` or ``CapacityError`` is never retried: a
new attempt would only repeat it. Preempted attempts are not failures and are not counted.

Backoff: ``base x 2^n`` seconds before retry n + 1 (n = 0 for the first), at most six
minutes, as a Kubernetes Job backs off its pods.
"""

from __future__ import annotations

from orchestrator.resources.failures import ExitKind, FailureReason
from orchestrator.resources.training import RetryStrategy

BACKOFF_CAP_SECONDS = 360.0


def backoff_seconds(base: float, retries_done: int, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """How long retry ``retries_done + 1`` waits."""
    return float(min(base * 2 ** max(0, retries_done), cap))


def shell_exit_code(exit_code: int | None) -> int | None:
    """An exit code as a shell reports it: a process killed by signal S (code -S) is 128 + S."""
    if exit_code is None:
        return None
    return 128 - exit_code if exit_code < 0 else exit_code


def retry_cause(
    strategy: RetryStrategy | None,
    failure: FailureReason,
    exit_kind: ExitKind | None,
    exit_code: int | None,
) -> str | None:
    """Why the attempt that failed with ``failure`` may be retried (None: it may not). The
    count of retries left is the caller's."""
    if strategy is None:
        return None
    if failure.kind == "InternalServerError":
        return "an infrastructure failure"
    if exit_kind == "oom":
        return "an out-of-memory kill"
    code = shell_exit_code(exit_code)
    if failure.kind == "AlgorithmError" and code is not None and strategy.retries_exit_code(code):
        return f"exit code {code} is in RetryStrategy.RetryableExitCodes"
    return None


__all__ = ["BACKOFF_CAP_SECONDS", "backoff_seconds", "retry_cause", "shell_exit_code"]
