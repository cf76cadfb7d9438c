"""The cyclic garbage collector held off while the operator passes.

A pass decodes every listing of the namespace (at 1,000 TrainingJobs and 200 Endpoints about
12 MB of JSON) and keeps it until the pass ends. Those allocations set off collection after
collection, and each full one scans the whole, growing heap again: against the emulator,
0.45-0.5 s of a 1.6 s pass at that size, growing faster than the pass
(``benchmarks/operator_pass.py``, docs/benchmarks.md). What a pass makes is trees of dicts and
lists, freed by reference counting; so the collector is off during it, and one collection of
the young generations at its end scans what it left once (about 0.1 s at that size).

The switch is process-wide: passes that overlap (threads) share one pause, and the collector
comes back as it was when the last one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class _Pause:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                last = self._holders == 0
                if last and self._was_enabled:
                    gc.enable()
            if last:
                gc.collect(1)


_PAUSE = _Pause()


def collector_paused() -> AbstractContextManager[None]:
    """No automatic cyclic collection inside (in any thread); afterwards the collector is as
    it was, and the young generations are collected once."""
    return _PAUSE.held()


__all__ = ["collector_paused"]
