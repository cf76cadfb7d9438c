"""The training queue as the API shows it: each waiting job's ``QueuePosition``, and how many
wait (for the queued-jobs limit).

Computed on read from the active training jobs with the reconciler's own ordering
(``controller.plan.admission.queue_order``), never stored: a status write per queued job each
time the queue moves would cost 10,000 writes for 10,000 queued jobs. The view is kept for a
short time (``TTL_SECONDS``, and no longer than one reconcile pass of an in-process
controller), so a listing of 100 pending jobs reads the active jobs once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.controller.plan.admission import candidate_of, queue_order
from orchestrator.resources.kinds import TRAINING_JOB
from orchestrator.store import DesiredState

TTL_SECONDS = 1.0


@dataclass(frozen=True)
class QueueView:
    positions: dict[str, int]  # waiting job -> 1-based place
    queued: int  # jobs waiting (never launched, or back in the queue)


class TrainingQueue:
    def __init__(self, store: DesiredState, generation: Callable[[], int] | None = None) -> None:
        self.store = store
        # Changes with every pass of an in-process controller (the view is then stale).
        self.generation = generation or (lambda: 0)
        self._lock = threading.Lock()
        self._view: QueueView | None = None
        self._at = 0.0
        self._gen = -1
        self._created = 0

    def view(self) -> QueueView:
        with self._lock:
            fresh = time.monotonic() - self._at < TTL_SECONDS and self._gen == self.generation()
            if self._view is None or not fresh:
                self._gen = self.generation()
                self._view = self._read()
                self._at = time.monotonic()
                self._created = 0
            if not self._created:
                return self._view
            return QueueView(self._view.positions, self._view.queued + self._created)

    def created(self) -> None:
        """A job was just queued (counted until the next read of the store)."""
        with self._lock:
            self._created += 1

    def _read(self) -> QueueView:
        jobs = [
            candidate_of(r.name, r.created_at, r.spec, r.status)
            for r in self.store.list_active(TRAINING_JOB.name)
            if not (r.stop_requested or r.delete_requested)
        ]
        order = queue_order(jobs)
        return QueueView({j.name: i for i, j in enumerate(order, start=1)}, len(order))
