"""A tuning job's trials as the desired-state source holds them: the TrainingJobs named
``<tuning>-<NNN>-<hash>`` (``plan.tuning.trial_name``), read back as the planner's
``ObservedTrial``. The reconciler and the REST service read them the same way, so the trials
the API lists are the ones the tuner counts, on every source.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import pydantic

from orchestrator.controller.plan.tuning import ObservedTrial, trial_number
from orchestrator.resources.kinds import HYPER_PARAMETER_TUNING_JOB, TRAINING_JOB
from orchestrator.resources.training import CreateTrainingJobRequest, TrainingJobState
from orchestrator.store.source import DesiredState, ListFilter, Record
from orchestrator.tuning.stopping import Point

PAGE = 100
# Ended trials whose objective series are kept (the median rule compares with them).
FINAL_SERIES_KEPT = 4096


class MetricSeries(Protocol):
    """Where a running trial's metric series come from (``controller.jobmetrics``): points
    with ``timestamp``, ``value``, ``step`` and ``epoch``."""

    def series(self, name: str, spec: CreateTrainingJobRequest) -> Mapping[str, Sequence[Any]]: ...


class TrialSeries:
    """The objective series of trials: read from the job log while a trial runs, and once
    more when it has ended, then kept (an ended trial's log does not change), so a pass reads
    only the running trials' logs. A cache: after a restart the logs are read again."""

    def __init__(self, source: MetricSeries) -> None:
        self.source = source
        self._final: OrderedDict[str, tuple[Point, ...]] = OrderedDict()

    def points(
        self, name: str, spec: CreateTrainingJobRequest, metric: str, running: bool
    ) -> tuple[Point, ...]:
        if not running and name in self._final:
            self._final.move_to_end(name)
            return self._final[name]
        found = tuple(_point(p) for p in self.source.series(name, spec).get(metric, []))
        if not running:
            self._final[name] = found
            while len(self._final) > FINAL_SERIES_KEPT:
                self._final.popitem(last=False)
        return found


def trial_records(source: DesiredState, tuning: str, uid: str) -> list[tuple[int, Record]]:
    """The tuning job's trials (by number), every page of them."""
    out: list[tuple[int, Record]] = []
    token: str | None = None
    while True:
        page, token = source.list(
            TRAINING_JOB.name,
            ListFilter(limit=PAGE, next_token=token, name_contains=f"{tuning}-", ascending=True),
        )
        for r in page:
            number = trial_number(tuning, uid, r.name)
            if number is not None:
                out.append((number, r))
        if token is None:
            return sorted(out, key=lambda x: x[0])


def observe_trial(
    number: int,
    record: Record,
    definitions: int,
    *,
    objective: str | None = None,
    series: TrialSeries | None = None,
    parent: str | None = None,
) -> ObservedTrial:
    try:
        status = TrainingJobState.model_validate(record.status)
    except pydantic.ValidationError:
        status = TrainingJobState()
    phase = record.phase or status.TrainingJobStatus.value
    if record.stop_requested and phase == "InProgress":
        phase = "Stopping"
    points: tuple[Point, ...] = ()
    running = phase in ("InProgress", "Stopping")
    if series is not None and objective is not None:
        try:
            spec = CreateTrainingJobRequest.model_validate(record.spec)
        except pydantic.ValidationError:
            spec = None
        if spec is not None:
            points = series.points(record.name, spec, objective, running)
    return ObservedTrial(
        name=record.name,
        number=number,
        definition=(number - 1) % max(1, definitions),
        hyperparameters=dict(record.spec.get("HyperParameters") or {}),
        status=phase,
        created_at=record.created_at,
        started_at=status.TrainingStartTime,
        ended_at=status.TrainingEndTime,
        failure_reason=status.FailureReason,
        final_metrics={m.MetricName: m.Value for m in status.FinalMetricDataList},
        stop_requested=record.stop_requested,
        series=points,
        parent=parent,
    )


def _point(p: Any) -> Point:
    epoch = p.epoch if p.epoch is not None else p.step + 1
    at: datetime = p.timestamp
    return Point(epoch=int(epoch), value=float(p.value), at=at)


def observe_trials(
    source: DesiredState,
    record: Record,
    definitions: int,
    *,
    objective: Callable[[int], str] | None = None,
    series: TrialSeries | None = None,
    parents: Sequence[str] = (),
) -> list[ObservedTrial]:
    """The tuning job's own trials and, for a warm start, its parents' (marked with the
    parent's name). ``objective``: the metric whose series to read for a running trial of
    definition i (None: none read): every trial's, the ended ones' read once."""
    out = []
    for number, r in trial_records(source, record.name, record.uid):
        d = (number - 1) % max(1, definitions)
        out.append(
            observe_trial(
                number,
                r,
                definitions,
                objective=objective(d) if objective else None,
                series=series,
            )
        )
    for name in parents:
        parent = source.find(HYPER_PARAMETER_TUNING_JOB.name, name)
        if parent is None:
            continue
        for number, r in trial_records(source, parent.name, parent.uid):
            out.append(observe_trial(number, r, 1, parent=parent.name))
    return out
