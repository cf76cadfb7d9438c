"""Planning for hyperparameter tuning jobs: ``plan_tuning_job(desired, trials, now) -> Plan``.

Pure. A tuning job's trials are TrainingJobs in the same desired-state source; the reconciler
lists them (and a warm start's parents' trials) and reads the running ones' objective series,
and this function decides, from that alone, which trials to create (their hyperparameters from
``tuning.strategies``), which to stop (a stop of the tuning job, early stopping, Hyperband, a
completion criterion), and the status: the counters, the best trial, and whether it is over.
Nothing is remembered between passes, so the tuner is level-triggered: a control plane killed
between a trial's creation and the status write finds the trial on the next pass and goes on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.controller.plan.types import (
    Action,
    CreateRecord,
    DeleteRecord,
    Plan,
    RequestStop,
)
from orchestrator.resources.common import ConditionType, set_condition
from orchestrator.resources.failures import REASON_LIMIT
from orchestrator.resources.training import TrainingJobState, TrainingJobStatus
from orchestrator.resources.tuning import (
    TUNING_JOB_TAG,
    CreateHyperParameterTuningJobRequest,
    FinalHyperParameterTuningJobObjectiveMetric,
    HyperParameterTrainingJobSummary,
    HyperParameterTuningJobCompletionDetails,
    HyperParameterTuningJobConsumedResources,
    HyperParameterTuningJobState,
    ObjectiveStatusCounters,
    TrainingJobStatusCounters,
    TuningJobStatus,
)
from orchestrator.tuning.space import grid_size, space_of
from orchestrator.tuning.stopping import Curve, Point, brackets, hyperband, median_rule
from orchestrator.tuning.strategies import Observation, grid_remaining, suggest

# While trials run, look again this often (a finished trial frees a slot for the next one).
RUNNING_RESYNC = 0.5
# The static hyperparameters Hyperband reads MaxResource from when it is not given (SageMaker's).
EPOCH_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
# ConvergenceDetected: the best objective moved by this fraction or less over the last
# ``CONVERGENCE_WINDOW`` trials with an objective (SageMaker: "1% or less").
CONVERGENCE_TOLERANCE = 0.01
CONVERGENCE_WINDOW = 10
TRIAL_NAME = re.compile(r"^(?P<tuning>.+)-(?P<number>\d{3})-(?P<hash>[0-9a-f]{8})$")
_ACTIVE = {TrainingJobStatus.IN_PROGRESS.value, TrainingJobStatus.STOPPING.value}


def trial_name(tuning: str, uid: str, number: int) -> str:
    """``<tuning>-<NNN>-<8 hex>``: the hash ties the trial to this tuning job (by its uid), so a
    tuning job made again under an old name does not adopt the old one's trials."""
    digest = hashlib.sha256(f"{uid}:{number}".encode()).hexdigest()[:8]
    return f"{tuning}-{number:03d}-{digest}"


def trial_number(tuning: str, uid: str, name: str) -> int | None:
    """The trial's number if ``name`` is one of this tuning job's trials, else None."""
    m = TRIAL_NAME.match(name)
    if m is None or m["tuning"] != tuning:
        return None
    number = int(m["number"])
    return number if trial_name(tuning, uid, number) == name else None


@dataclass(frozen=True)
class ObservedTrial:
    """One trial (a TrainingJob) as stored: what it tried and how it went."""

    name: str
    number: int
    definition: int
    hyperparameters: dict[str, str]
    status: str  # TrainingJobStatus, or Stopping once a stop was asked for
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    stop_requested: bool = False
    # The objective's series so far (read for running trials when a rule needs it).
    series: tuple[Point, ...] = ()
    # The parent tuning job of a warm start's trial (None: one of this tuning job's own).
    parent: str | None = None

    @property
    def running(self) -> bool:
        return self.status in _ACTIVE


@dataclass(frozen=True)
class DesiredTuningJob:
    name: str
    uid: str
    spec: CreateHyperParameterTuningJobRequest
    status: HyperParameterTuningJobState
    created_at: datetime
    stop_requested: bool = False
    delete_requested: bool = False
    # The ARN of a trial, to show in the summaries.
    arn_prefix: str = ""

    @property
    def strategy(self) -> str:
        return self.spec.HyperParameterTuningJobConfig.Strategy


def objective_value(desired: DesiredTuningJob, trial: ObservedTrial) -> float | None:
    """The trial's final objective (its last reported value), once it has ended."""
    metric = desired.spec.objective_of(trial.definition).MetricName
    if trial.running:
        return None
    if metric in trial.final_metrics:
        return trial.final_metrics[metric]
    return trial.series[-1].value if trial.series else None


def max_trials(spec: CreateHyperParameterTuningJobRequest) -> int:
    """MaxNumberOfTrainingJobs, or for Grid (where it may be left out) the combinations."""
    given = spec.HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs
    if spec.HyperParameterTuningJobConfig.Strategy != "Grid":
        assert given is not None  # required for the other strategies
        return given
    combos = sum(grid_size(space_of(spec.ranges_of(i))) for i in range(len(spec.definitions)))
    return min(given, combos) if given is not None else combos


def max_resource(spec: CreateHyperParameterTuningJobRequest, definition: int) -> int:
    """Hyperband's MaxResource: given, else the static epochs, else SageMaker's default."""
    config = spec.HyperParameterTuningJobConfig
    given = config.StrategyConfig.HyperbandStrategyConfig if config.StrategyConfig else None
    if given is not None and given.MaxResource:
        return given.MaxResource
    static = spec.definitions[definition].StaticHyperParameters
    for key in EPOCH_KEYS:
        if key in static and static[key].isdigit():
            return int(static[key])
    return config.hyperband.MaxResource or 81


def min_resource(spec: CreateHyperParameterTuningJobRequest) -> int:
    return spec.HyperParameterTuningJobConfig.hyperband.MinResource or 1


def plan_tuning_job(
    desired: DesiredTuningJob, trials: Sequence[ObservedTrial], now: datetime
) -> Plan[HyperParameterTuningJobState]:
    spec = desired.spec
    config = spec.HyperParameterTuningJobConfig
    own = sorted((t for t in trials if t.parent is None), key=lambda t: t.number)
    parents = [t for t in trials if t.parent is not None]
    status = _summarize(desired, own, parents, now)
    current = desired.status.HyperParameterTuningJobStatus
    running = [t for t in own if t.running]
    actions: list[Action] = []

    if desired.delete_requested:
        actions += _stops(running, "the tuning job is being deleted")
        if not running:
            return Plan((DeleteRecord("HyperParameterTuningJob", desired.name),), status, "", False)
        return _plan(actions, status, TuningJobStatus.STOPPING, now)
    if current in (TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED):
        return Plan((), desired.status, current.value, False)
    if desired.stop_requested:
        actions += _stops(running, "the tuning job was stopped")
        if running:
            return _plan(actions, status, TuningJobStatus.STOPPING, now)
        return _end(status, TuningJobStatus.STOPPED, now, "StopHyperParameterTuningJob")

    done_because = status.CompletionReason or _completion(desired, own, status, now)
    if done_because is not None:
        status = status.model_copy(update={"CompletionReason": done_because})
        actions += _stops(running, done_because)
        if running:
            return _plan(actions, status, TuningJobStatus.IN_PROGRESS, now)
        return _finish(status, own, now, done_because)

    # Early stopping and Hyperband: running trials that are not worth finishing.
    for name, why in _rule_stops(desired, own):
        trial = next(t for t in own if t.name == name)
        if not trial.stop_requested:
            actions.append(RequestStop("TrainingJob", name, why))

    limit = max_trials(spec)
    launched = max((t.number for t in own), default=0)
    free = config.ResourceLimits.MaxParallelTrainingJobs - len(running)
    count = min(free, limit - launched)
    if config.Strategy == "Grid":
        count = min(count, _grid_left(desired, own, parents))
    if count > 0:
        actions += _launches(
            desired, own, parents, list(range(launched + 1, launched + 1 + count)), now
        )
    if count <= 0 and not running and launched >= limit:
        return _finish(status, own, now, f"MaxNumberOfTrainingJobs ({limit}) reached")
    if count <= 0 and not running and config.Strategy == "Grid":
        return _finish(status, own, now, "every combination of the grid was tried")
    return _plan(actions, status, TuningJobStatus.IN_PROGRESS, now)


def _plan(
    actions: list[Action],
    status: HyperParameterTuningJobState,
    phase: TuningJobStatus,
    now: datetime,
) -> Plan[HyperParameterTuningJobState]:
    status = status.model_copy(update={"HyperParameterTuningJobStatus": phase})
    return Plan(tuple(actions), status, phase.value, True, RUNNING_RESYNC)


def _end(
    status: HyperParameterTuningJobState, phase: TuningJobStatus, now: datetime, reason: str
) -> Plan[HyperParameterTuningJobState]:
    conditions = set_condition(
        status.Conditions,
        ConditionType.SUCCEEDED,
        "True" if phase == TuningJobStatus.COMPLETED else "False",
        reason=phase.value,
        message=reason,
        now=now,
    )
    ended = status.model_copy(
        update={
            "HyperParameterTuningJobStatus": phase,
            "HyperParameterTuningEndTime": status.HyperParameterTuningEndTime or now,
            "Conditions": conditions,
            "CompletionReason": status.CompletionReason or reason,
        }
    )
    return Plan((), ended, phase.value, False)


def _finish(
    status: HyperParameterTuningJobState,
    own: Sequence[ObservedTrial],
    now: datetime,
    reason: str,
) -> Plan[HyperParameterTuningJobState]:
    """Every trial has ended: Completed, unless no trial produced an objective because every
    one of them failed (SageMaker fails a tuning job only then)."""
    counters = status.TrainingJobStatusCounters
    failed = counters.RetryableError + counters.NonRetryableError
    if own and failed == len(own):
        first = next((t.failure_reason for t in own if t.failure_reason), "no reason given")
        why = f"every training job failed; the first: {first}"[:REASON_LIMIT]
        ended = status.model_copy(update={"FailureReason": why})
        return _end(ended, TuningJobStatus.FAILED, now, why)
    return _end(status, TuningJobStatus.COMPLETED, now, reason)


def _stops(running: Sequence[ObservedTrial], why: str) -> list[Action]:
    return [RequestStop("TrainingJob", t.name, why) for t in running if not t.stop_requested]


# --- the status ------------------------------------------------------------------------------
def _summary(
    desired: DesiredTuningJob, t: ObservedTrial, tuning: str
) -> HyperParameterTrainingJobSummary:
    spec = desired.spec
    definition = spec.definitions[t.definition] if t.parent is None else None
    ranges = set(spec.ranges_of(t.definition).names) if t.parent is None else set()
    tuned = {k: v for k, v in t.hyperparameters.items() if k in ranges or t.parent is not None}
    value = objective_value(desired, t) if t.parent is None else _parent_value(t, desired)
    objective = spec.objective_of(t.definition if t.parent is None else 0)
    final = (
        FinalHyperParameterTuningJobObjectiveMetric(
            Type=objective.Type, MetricName=objective.MetricName, Value=value
        )
        if value is not None
        else None
    )
    return HyperParameterTrainingJobSummary(
        TrainingJobDefinitionName=definition.DefinitionName if definition else None,
        TrainingJobName=t.name,
        TrainingJobArn=f"{desired.arn_prefix}{t.name.lower()}",
        TuningJobName=tuning,
        CreationTime=t.created_at,
        TrainingStartTime=t.started_at,
        TrainingEndTime=t.ended_at,
        TrainingJobStatus=TrainingJobStatus(t.status),
        TunedHyperParameters=tuned,
        FailureReason=t.failure_reason,
        FinalHyperParameterTuningJobObjectiveMetric=final,
        ObjectiveStatus=_objective_status(t, value),
    )


def _parent_value(t: ObservedTrial, desired: DesiredTuningJob) -> float | None:
    metric = desired.spec.objective_of(0).MetricName
    return None if t.running else t.final_metrics.get(metric)


def _objective_status(t: ObservedTrial, value: float | None) -> str:
    if t.running:
        return "Pending"
    return "Succeeded" if value is not None else "Failed"


def trial_summaries(
    desired: DesiredTuningJob, trials: Sequence[ObservedTrial]
) -> list[HyperParameterTrainingJobSummary]:
    """ListTrainingJobsForHyperParameterTuningJob's rows (the tuning job's own trials)."""
    return [_summary(desired, t, desired.name) for t in trials if t.parent is None]


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def _best(
    desired: DesiredTuningJob, summaries: Sequence[HyperParameterTrainingJobSummary]
) -> HyperParameterTrainingJobSummary | None:
    maximize = desired.spec.objective_of(0).Type == "Maximize"
    best: HyperParameterTrainingJobSummary | None = None
    for s in summaries:
        metric = s.FinalHyperParameterTuningJobObjectiveMetric
        if metric is None or s.ObjectiveStatus != "Succeeded":
            continue
        chosen = best.FinalHyperParameterTuningJobObjectiveMetric if best else None
        if chosen is None or _better(metric.Value, chosen.Value, maximize):
            best = s
    return best


def _summarize(
    desired: DesiredTuningJob,
    own: Sequence[ObservedTrial],
    parents: Sequence[ObservedTrial],
    now: datetime,
) -> HyperParameterTuningJobState:
    counters = TrainingJobStatusCounters()
    objectives = ObjectiveStatusCounters()
    summaries = [_summary(desired, t, desired.name) for t in own]
    for t, s in zip(own, summaries, strict=True):
        if t.running:
            counters.InProgress += 1
        elif t.status == TrainingJobStatus.COMPLETED.value:
            counters.Completed += 1
        elif t.status == TrainingJobStatus.STOPPED.value:
            counters.Stopped += 1
        elif (t.failure_reason or "").startswith("InternalServerError"):
            counters.RetryableError += 1
        else:
            counters.NonRetryableError += 1
        if s.ObjectiveStatus == "Pending":
            objectives.Pending += 1
        elif s.ObjectiveStatus == "Succeeded":
            objectives.Succeeded += 1
        else:
            objectives.Failed += 1
    best = _best(desired, summaries)
    overall = best
    if parents:
        theirs = [_summary(desired, t, t.parent or "") for t in parents]
        overall = _best(desired, [*([best] if best else []), *theirs])
    end = desired.status.HyperParameterTuningEndTime
    runtime = int(((end or now) - desired.created_at).total_seconds())
    return desired.status.model_copy(
        update={
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objectives,
            "BestTrainingJob": best,
            "OverallBestTrainingJob": overall if parents else None,
            "ConsumedResources": HyperParameterTuningJobConsumedResources(
                RuntimeInSeconds=max(0, runtime)
            ),
            "TuningJobCompletionDetails": HyperParameterTuningJobCompletionDetails(
                NumberOfTrainingJobsObjectiveNotImproving=_not_improving(desired, own),
                ConvergenceDetectedTime=desired.status.TuningJobCompletionDetails.ConvergenceDetectedTime,
            ),
        }
    )


def _finished_values(desired: DesiredTuningJob, own: Sequence[ObservedTrial]) -> list[float]:
    """The trials' objectives in the order they ended."""
    done = [t for t in own if not t.running and objective_value(desired, t) is not None]
    done.sort(key=lambda t: (t.ended_at or t.created_at, t.number))
    return [v for t in done if (v := objective_value(desired, t)) is not None]


def _not_improving(desired: DesiredTuningJob, own: Sequence[ObservedTrial]) -> int:
    """How many trials have ended since the best objective last improved."""
    maximize = desired.spec.objective_of(0).Type == "Maximize"
    best: float | None = None
    since = 0
    for v in _finished_values(desired, own):
        if best is None or _better(v, best, maximize):
            best, since = v, 0
        else:
            since += 1
    return since


def _completion(
    desired: DesiredTuningJob,
    own: Sequence[ObservedTrial],
    status: HyperParameterTuningJobState,
    now: datetime,
) -> str | None:
    """Why the tuning job should launch no more trials (a completion criterion, the runtime
    limit), or None."""
    config = desired.spec.HyperParameterTuningJobConfig
    criteria = config.TuningJobCompletionCriteria
    maximize = desired.spec.objective_of(0).Type == "Maximize"
    best = (
        status.BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric
        if status.BestTrainingJob
        else None
    )
    limit = config.ResourceLimits.MaxRuntimeInSeconds
    if limit is not None and (now - desired.created_at).total_seconds() >= limit:
        return f"ResourceLimits.MaxRuntimeInSeconds ({limit} s) reached"
    if criteria is None:
        return None
    target = criteria.TargetObjectiveMetricValue
    reached = best is not None and target is not None and not _better(target, best.Value, maximize)
    if reached and best is not None and target is not None:
        return f"TargetObjectiveMetricValue {target:g} reached ({best.Value:g})"
    patience = (
        criteria.BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving
        if criteria.BestObjectiveNotImproving
        else None
    )
    stale = status.TuningJobCompletionDetails.NumberOfTrainingJobsObjectiveNotImproving or 0
    if patience is not None and stale >= patience:
        return f"BestObjectiveNotImproving: {stale} training jobs without a better objective"
    converge = criteria.ConvergenceDetected
    if converge is not None and converge.CompleteOnConvergence == "Enabled":
        values = _finished_values(desired, own)
        if len(values) >= 2 * CONVERGENCE_WINDOW:
            pick = max if maximize else min
            before = pick(values[:-CONVERGENCE_WINDOW])
            after = pick(values)
            scale = max(abs(before), 1e-12)
            if abs(after - before) / scale <= CONVERGENCE_TOLERANCE:
                return (
                    f"ConvergenceDetected: the best objective moved {abs(after - before):.3g} "
                    f"(<= {CONVERGENCE_TOLERANCE:.0%}) over the last {CONVERGENCE_WINDOW} "
                    "training jobs"
                )
    return None


# --- stopping rules ----------------------------------------------------------------------------
def _curves(desired: DesiredTuningJob, own: Sequence[ObservedTrial]) -> list[Curve]:
    n_brackets = brackets(min_resource(desired.spec), max_resource(desired.spec, 0))
    return [Curve(t.name, t.series, t.running, bracket=(t.number - 1) % n_brackets) for t in own]


def _rule_stops(desired: DesiredTuningJob, own: Sequence[ObservedTrial]) -> list[tuple[str, str]]:
    config = desired.spec.HyperParameterTuningJobConfig
    maximize = desired.spec.objective_of(0).Type == "Maximize"
    if config.Strategy == "Hyperband":
        return hyperband(
            _curves(desired, own),
            maximize,
            min_resource(desired.spec),
            max_resource(desired.spec, 0),
        )
    if config.TrainingJobEarlyStoppingType == "Auto":
        return median_rule(_curves(desired, own), maximize)
    return []


def needs_series(spec: CreateHyperParameterTuningJobRequest) -> bool:
    """Whether the running trials' objective series must be read (a rule reads them)."""
    config = spec.HyperParameterTuningJobConfig
    return config.Strategy == "Hyperband" or config.TrainingJobEarlyStoppingType == "Auto"


# --- launches ------------------------------------------------------------------------------------
def _history(
    desired: DesiredTuningJob,
    own: Sequence[ObservedTrial],
    parents: Sequence[ObservedTrial],
    definition: int,
) -> list[Observation]:
    out = []
    for t in [*parents, *own]:
        if t.parent is None and t.definition != definition:
            continue
        value = objective_value(desired, t) if t.parent is None else _parent_value(t, desired)
        out.append(Observation(dict(t.hyperparameters), value, t.running))
    return out


def _grid_left(
    desired: DesiredTuningJob, own: Sequence[ObservedTrial], parents: Sequence[ObservedTrial]
) -> int:
    spec = desired.spec
    return sum(
        grid_remaining(space_of(spec.ranges_of(i)), _history(desired, own, parents, i))
        for i in range(len(spec.definitions))
    )


def _launches(
    desired: DesiredTuningJob,
    own: Sequence[ObservedTrial],
    parents: Sequence[ObservedTrial],
    numbers: list[int],
    now: datetime,
) -> list[Action]:
    spec = desired.spec
    config = spec.HyperParameterTuningJobConfig
    seed = config.RandomSeed if config.RandomSeed is not None else _seed_of(desired.uid)
    n_defs = len(spec.definitions)
    actions: list[Action] = []
    for d in range(n_defs):
        mine = [n for n in numbers if (n - 1) % n_defs == d]
        if not mine:
            continue
        space = space_of(spec.ranges_of(d))
        values = suggest(
            config.Strategy,
            space,
            _history(desired, own, parents, d),
            mine,
            seed=seed + d,
            maximize=spec.objective_of(d).Type == "Maximize",
        )
        definition = spec.definitions[d]
        for number, picked in zip(mine, values, strict=False):
            tuned = dict(picked)
            if config.Strategy == "Hyperband" and not any(
                k in definition.StaticHyperParameters for k in EPOCH_KEYS
            ):
                # The resource is epochs: the trial is told the most it may use.
                tuned["epochs"] = str(max_resource(spec, d))
            name = trial_name(desired.name, desired.uid, number)
            tags = [{"Key": TUNING_JOB_TAG, "Value": desired.name}]
            tags += [t.model_dump(mode="json") for t in spec.Tags]
            actions.append(
                CreateRecord(
                    "TrainingJob",
                    name,
                    definition.training_spec(name, tuned, tags),
                    TrainingJobState().model_dump(mode="json"),
                    TrainingJobStatus.IN_PROGRESS.value,
                    now,
                )
            )
    actions.sort(key=lambda a: a.name if isinstance(a, CreateRecord) else "")
    return actions


def _seed_of(uid: str) -> int:
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)
