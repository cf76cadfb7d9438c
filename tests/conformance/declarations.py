"""What each conformance scenario is, and what it is expected to do on each backend: the one
place the suite declares support, from which ``docs/conformance.md`` is generated.

A scenario is written once (a function of a ``Harness``) and declared with ``@scenario``:

- ``Runs`` (the default): it runs and must pass; ``via`` says how (for real, or through the
  Kubernetes API emulator with the tests playing the cluster's part).
- ``Refused(kind, field)``: the backend refuses the spec by name, a 400 before anything is
  stored. That refusal *is* the expected outcome: the scenario runs and must end in a
  ``ValidationError`` naming ``field`` and the backend, with nothing created. The reason is
  ``orchestrator.controller.plan.support``'s own, never written here again.
- ``NotRunnable(reason)``: the suite cannot run it on that backend here; skipped with the
  reason (never without one).

A scenario that runs may leave *parts* unchecked on a backend: harness methods declared as
gaps (``harness.gap``). A scenario names the parts it uses (``uses``), asks ``h.checks(part)``
before each, and the table shows every cell's gaps with their reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.controller.plan.support import BACKENDS, RULES, Rule

if TYPE_CHECKING:
    from tests.conformance.harness import Harness

REAL = "real"
EMULATED = "emulator"


@dataclass(frozen=True)
class Runs:
    via: str = REAL

    def describe(self) -> str:
        return "runs" if self.via == REAL else "runs (emulator)"


@dataclass(frozen=True)
class Refused:
    kind: str
    field: str

    @property
    def rule(self) -> Rule:
        found = [r for r in RULES if r.kind == self.kind and r.field == self.field]
        assert found, f"no rule for {self.kind} {self.field} in plan/support.py"
        return found[0]

    def describe(self) -> str:
        return f"refused: {self.field}: {self.rule.reason}"


@dataclass(frozen=True)
class NotRunnable:
    reason: str

    def __post_init__(self) -> None:
        assert self.reason.strip(), "a scenario that cannot run says why"

    def describe(self) -> str:
        return f"not runnable here: {self.reason}"


Cell = Runs | Refused | NotRunnable


@dataclass(frozen=True)
class Scenario:
    id: str  # the function's name without test_
    title: str
    checks: str  # what it checks, in a phrase (the table's second column)
    cells: dict[str, Cell]
    uses: tuple[str, ...] = ()  # harness parts that may be gaps on a backend
    waits: bool = False  # waits for real time (a timeout, an idle period): slow everywhere
    # Runs real processes on every backend (the Kubernetes double runs a transform pod's
    # containers): slow everywhere.
    processes: bool = False
    run: Callable[[Harness], None] = field(default=lambda h: None, compare=False, repr=False)


REGISTRY: dict[str, Scenario] = {}


def scenario(
    title: str,
    checks: str,
    *,
    uses: tuple[str, ...] = (),
    waits: bool = False,
    processes: bool = False,
    **cells: Cell,
) -> Callable[[Callable[[Harness], None]], Callable[..., None]]:
    """Declare a scenario and turn it into a test parametrised over the backends (through the
    session fixture ``h``, one harness per backend); ``cells``: per backend, what is expected
    there (default: ``Runs`` for real on process and Docker, through the emulator on
    Kubernetes)."""
    unknown = set(cells) - set(BACKENDS)
    assert not unknown, f"not backends: {unknown}"

    def declare(fn: Callable[[Harness], None]) -> Callable[..., None]:
        sid = fn.__name__.removeprefix("test_")
        full = {b: cells.get(b, Runs(EMULATED if b == "kubernetes" else REAL)) for b in BACKENDS}
        s = Scenario(sid, title, checks, full, uses, waits, processes, fn)
        assert sid not in REGISTRY, f"two scenarios named {sid}"
        REGISTRY[sid] = s

        def test(h: Harness) -> None:
            from tests.conformance.harness import play

            play(s, h)

        test.__name__ = fn.__name__
        test.__qualname__ = fn.__qualname__
        test.__module__ = fn.__module__
        test.__doc__ = fn.__doc__
        marked: Any = test
        if waits or processes:
            marked = pytest.mark.slow(marked)
        return pytest.mark.scenario(sid)(marked)  # type: ignore[no-any-return]

    return declare
