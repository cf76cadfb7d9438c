"""What one reconcile of one resource comes to, and the one policy that turns errors into it.

In the spirit of controller-runtime's ``Result`` and ``TerminalError``:

- **done** (``Result(requeue_after=None)``): nothing to do until something changes;
- **requeue after T**: the plan asked to look again (a job running, a replica starting);
- **temporary error** (``TemporaryError``, e.g. the backend's API unreachable): the status is
  not written (the actions did not all happen), and the resource is retried after the error's
  ``retry_after``, doubled for every failure in a row up to ``max_backoff``;
- **terminal error** (``PermanentError`` from an action, e.g. the cluster refused a Job for
  good): the planner's failure path records it as the resource's failure reason;
- anything else is a bug: logged, counted, retried after the resync period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import PermanentError, TemporaryError


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None


@dataclass
class Backoff:
    """Consecutive temporary failures per resource, for the exponential retry delay."""

    max_seconds: float = 60.0
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def failed(self, kind: str, name: str, error: TemporaryError) -> float:
        n = self._failures.get((kind, name), 0) + 1
        self._failures[(kind, name)] = n
        delay: float = max(0.05, float(error.retry_after)) * 2.0 ** (n - 1)
        return min(self.max_seconds, delay)

    def succeeded(self, kind: str, name: str) -> None:
        self._failures.pop((kind, name), None)

    def failures(self, kind: str, name: str) -> int:
        return self._failures.get((kind, name), 0)


def is_terminal(error: BaseException) -> bool:
    """An action's error that no retry will fix: the resource fails with its message."""
    return isinstance(error, PermanentError)
