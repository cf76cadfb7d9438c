"""Endpoint metrics off the hot path: requests append events, a flush hands them on in a batch.

A router worker's event loop owns its ``InvocationLog``: recording a request is appending a
tuple to a list (no lock, no Prometheus call, no time-series update). ``flush`` (every
``FLUSH_SECONDS``, and on shutdown) takes the list and gives it to a ``Sink``:

- ``LocalSink``: this process's ``SeriesStore`` (one lock per batch, ``record_events``) and
  Prometheus (counters and the in-flight gauge changed once per (endpoint, variant) per batch,
  OverheadLatency observed per request). The control plane's own front uses it.
- a worker process's sink sends the batch to the control plane, which applies it with a
  ``LocalSink`` of its own, so the autoscaler reads every worker's traffic and Prometheus
  counts each request once (``orchestrator.dataplane.workers``).

Events are those of ``SeriesStore.record_events``: ``(STARTED | FINISHED, endpoint,
variant, config, at)`` and ``(ANSWERED, endpoint, variant, config, at, status, model_us,
overhead_us)``, ``at`` in epoch seconds, latencies in microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from orchestrator import metrics
from orchestrator.monitoring.series import ANSWERED, FINISHED, STARTED, SeriesStore

FLUSH_SECONDS = 0.05
Event = tuple[Any, ...]


class Sink(Protocol):
    def apply(self, events: Sequence[Event]) -> None: ...


class InvocationLog:
    """The hot path's side: append only. ``drain`` takes what was recorded so far."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[Event] = []

    def started(self, endpoint: str, variant: str, config: str, at: float) -> None:
        self.events.append((STARTED, endpoint, variant, config, at))

    def finished(self, endpoint: str, variant: str, config: str, at: float) -> None:
        self.events.append((FINISHED, endpoint, variant, config, at))

    def answered(  # noqa: PLR0917 - once per request: positional
        self,
        endpoint: str,
        variant: str,
        config: str,
        at: float,
        status: int,
        model_us: float | None,
        overhead_us: float | None,
    ) -> None:
        self.events.append((ANSWERED, endpoint, variant, config, at, status, model_us, overhead_us))

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events


class LocalSink:
    """Into this process's series store and Prometheus registry. ``worker`` labels the
    per-worker count (0: the control plane's own front)."""

    def __init__(self, series: SeriesStore | None, *, worker: int = 0) -> None:
        self.series = series
        self.worker = worker

    def apply(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if self.series is not None:
            self.series.record_events(events, source=self.worker)
        apply_to_prometheus(events, worker=self.worker)


class _Tally:
    __slots__ = ("answered", "e4", "e5", "in_flight", "overhead")

    def __init__(self) -> None:
        self.answered = self.e4 = self.e5 = self.in_flight = 0
        self.overhead: list[float] = []


def apply_to_prometheus(events: Sequence[Event], *, worker: int) -> None:
    tallies: dict[tuple[str, str], _Tally] = {}
    answered = 0
    for e in events:
        key = (e[1], e[2])
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally()
        kind = e[0]
        if kind == ANSWERED:
            answered += 1
            tally.answered += 1
            status = e[5]
            if status >= 500:
                tally.e5 += 1
            elif status >= 400:
                tally.e4 += 1
            if e[7] is not None:
                tally.overhead.append(e[7] / 1e6)
        elif kind == STARTED:
            tally.in_flight += 1
        elif kind == FINISHED:
            tally.in_flight -= 1
    for (endpoint, variant), t in tallies.items():
        metrics.record_routed(
            endpoint,
            variant,
            answered=t.answered,
            errors_4xx=t.e4,
            errors_5xx=t.e5,
            overhead_seconds=t.overhead,
            in_flight_change=t.in_flight,
        )
    if answered:
        metrics.record_worker_invocations(worker, answered)
