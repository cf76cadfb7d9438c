"""The tuning planner as tables: (spec, stored trials, now) -> (actions, status). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.controller.plan.tuning import (
    DesiredTuningJob,
    ObservedTrial,
    plan_tuning_job,
    trial_name,
    trial_number,
)
from orchestrator.controller.plan.types import CreateRecord, DeleteRecord, RequestStop
from orchestrator.resources.tuning import (
    TUNING_JOB_TAG,
    CreateHyperParameterTuningJobRequest,
    HyperParameterTuningJobState,
)
from orchestrator.tuning.stopping import Point

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UID = "uid-1"


def spec(**config: Any) -> CreateHyperParameterTuningJobRequest:
    base: dict[str, Any] = {
        "Strategy": "Random",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
        },
    }
    base.update(config)
    return CreateHyperParameterTuningJobRequest.model_validate(
        {
            "HyperParameterTuningJobName": "tj",
            "HyperParameterTuningJobConfig": base,
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {
                    "TrainingImage": "img:1",
                    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
                },
                "StaticHyperParameters": {"fixed": "1"},
            },
            "Tags": [{"Key": "team", "Value": "ml"}],
        }
    )


def desired(s: CreateHyperParameterTuningJobRequest | None = None, **kw: Any) -> DesiredTuningJob:
    status = kw.pop("status", HyperParameterTuningJobState())
    return DesiredTuningJob(
        name="tj", uid=UID, spec=s or spec(), status=status, created_at=T0, **kw
    )


def trial(
    number: int, status: str = "Completed", loss: float | None = 0.5, **kw: Any
) -> ObservedTrial:
    return ObservedTrial(
        name=trial_name("tj", UID, number),
        number=number,
        definition=0,
        hyperparameters={"fixed": "1", "x": kw.pop("x", "0.5")},
        status=status,
        created_at=T0 + timedelta(seconds=number),
        ended_at=None
        if status in ("InProgress", "Stopping")
        else T0 + timedelta(seconds=10 + number),
        final_metrics={} if loss is None else {"loss": loss},
        **kw,
    )


def creates(plan: Any) -> list[CreateRecord]:
    return [a for a in plan.actions if isinstance(a, CreateRecord)]


def stops(plan: Any) -> list[str]:
    return [a.name for a in plan.actions if isinstance(a, RequestStop)]


def test_trial_names_are_numbered_and_tied_to_the_tuning_job() -> None:
    name = trial_name("tj", UID, 7)
    assert name.startswith("tj-007-") and len(name) == len("tj-007-") + 8
    assert trial_number("tj", UID, name) == 7
    assert trial_number("tj", "another-uid", name) is None  # a tuning job made again
    assert trial_number("tj2", UID, name) is None
    assert trial_number("tj", UID, "tj-007-zzzzzzzz") is None


def test_a_new_tuning_job_launches_max_parallel_trials_in_range() -> None:
    plan = plan_tuning_job(desired(), [], T0)
    made = creates(plan)
    assert [trial_number("tj", UID, c.name) for c in made] == [1, 2]
    for c in made:
        hp = c.spec["HyperParameters"]
        assert hp["fixed"] == "1" and 0 <= float(hp["x"]) <= 1
        assert {"Key": TUNING_JOB_TAG, "Value": "tj"} in c.spec["Tags"]
        assert {"Key": "team", "Value": "ml"} in c.spec["Tags"]
        assert c.spec["TrainingJobName"] == c.name and c.kind == "TrainingJob"
    assert plan.phase == "InProgress" and plan.active
    assert plan.status.TrainingJobStatusCounters.InProgress == 0


def test_planning_is_a_function_of_the_stored_trials() -> None:
    """Level-triggered: the same trials give the same plan; a pass that died after creating
    trial 1 is followed by one that creates only trial 2, with the values it would have had."""
    first = creates(plan_tuning_job(desired(), [], T0))
    again = creates(plan_tuning_job(desired(), [], T0))
    assert first == again
    one = trial(1, "InProgress", None, x=first[0].spec["HyperParameters"]["x"])
    resumed = creates(plan_tuning_job(desired(), [one], T0))
    assert [c.name for c in resumed] == [first[1].name]
    assert resumed[0].spec == first[1].spec


def test_no_launch_while_max_parallel_trials_run() -> None:
    plan = plan_tuning_job(
        desired(), [trial(1, "InProgress", None), trial(2, "InProgress", None)], T0
    )
    assert creates(plan) == [] and plan.phase == "InProgress"
    assert plan.status.TrainingJobStatusCounters.InProgress == 2
    assert plan.status.ObjectiveStatusCounters.Pending == 2


def test_a_finished_trial_frees_a_slot_for_the_next_number() -> None:
    plan = plan_tuning_job(desired(), [trial(1), trial(2, "InProgress", None)], T0)
    assert [trial_number("tj", UID, c.name) for c in creates(plan)] == [3]


def test_completed_at_max_with_the_best_trial() -> None:
    trials = [trial(1, loss=0.4), trial(2, loss=0.1), trial(3, loss=0.3), trial(4, loss=0.2)]
    plan = plan_tuning_job(desired(), trials, T0 + timedelta(minutes=1))
    assert plan.phase == "Completed" and not plan.active and creates(plan) == []
    best = plan.status.BestTrainingJob
    assert best is not None and best.TrainingJobName == trials[1].name
    assert best.FinalHyperParameterTuningJobObjectiveMetric is not None
    assert best.FinalHyperParameterTuningJobObjectiveMetric.Value == 0.1
    assert best.TunedHyperParameters == {"x": "0.5"}  # the tuned ones, not the static
    assert plan.status.TrainingJobStatusCounters.Completed == 4
    assert plan.status.HyperParameterTuningEndTime == T0 + timedelta(minutes=1)
    assert plan.status.CompletionReason == "MaxNumberOfTrainingJobs (4) reached"


def test_maximize_picks_the_largest() -> None:
    s = spec(HyperParameterTuningJobObjective={"Type": "Maximize", "MetricName": "loss"})
    trials = [trial(1, loss=0.4), trial(2, loss=0.9), trial(3, loss=0.3), trial(4, loss=0.2)]
    best = plan_tuning_job(desired(s), trials, T0).status.BestTrainingJob
    assert best is not None and best.TrainingJobName == trials[1].name


def test_a_failed_trial_counts_and_does_not_fail_the_tuning_job() -> None:
    trials = [
        trial(1, "Failed", None, failure_reason="AlgorithmError: boom"),
        trial(2, "Failed", None, failure_reason="InternalServerError: host lost"),
        trial(3, loss=0.3),
        trial(4, "Stopped", loss=0.2),
    ]
    plan = plan_tuning_job(desired(), trials, T0)
    c = plan.status.TrainingJobStatusCounters
    assert (c.NonRetryableError, c.RetryableError, c.Completed, c.Stopped) == (1, 1, 1, 1)
    o = plan.status.ObjectiveStatusCounters
    assert (o.Succeeded, o.Failed) == (2, 2)
    assert plan.phase == "Completed"
    assert plan.status.BestTrainingJob is not None
    assert plan.status.BestTrainingJob.TrainingJobName == trials[3].name


def test_every_trial_failed_fails_the_tuning_job_with_the_first_reason() -> None:
    trials = [
        trial(n, "Failed", None, failure_reason=f"AlgorithmError: bad {n}") for n in (1, 2, 3, 4)
    ]
    plan = plan_tuning_job(desired(), trials, T0)
    assert plan.phase == "Failed" and not plan.active
    assert (
        plan.status.FailureReason == "every training job failed; the first: AlgorithmError: bad 1"
    )


def test_a_trial_without_the_objective_is_an_objective_failure() -> None:
    plan = plan_tuning_job(desired(), [trial(1, loss=None), trial(2, "InProgress", None)], T0)
    o = plan.status.ObjectiveStatusCounters
    assert (o.Failed, o.Pending, o.Succeeded) == (1, 1, 0)


def test_stop_stops_every_running_trial_then_ends_stopped() -> None:
    running = [trial(1, "InProgress", None), trial(2, "InProgress", None, stop_requested=True)]
    plan = plan_tuning_job(desired(stop_requested=True), [*running, trial(3)], T0)
    assert stops(plan) == [running[0].name]  # the other was asked already
    assert creates(plan) == [] and plan.phase == "Stopping"
    done = plan_tuning_job(
        desired(stop_requested=True), [trial(1, "Stopped"), trial(2, "Stopped")], T0
    )
    assert done.phase == "Stopped" and not done.active


def test_an_ended_tuning_job_stays_as_it_is() -> None:
    status = HyperParameterTuningJobState(HyperParameterTuningJobStatus="Completed")
    plan = plan_tuning_job(desired(status=status), [trial(1)], T0)
    assert plan.actions == () and plan.phase == "Completed" and not plan.active


def test_delete_stops_trials_then_releases() -> None:
    plan = plan_tuning_job(desired(delete_requested=True), [trial(1, "InProgress", None)], T0)
    assert stops(plan) and plan.phase == "Stopping"
    gone = plan_tuning_job(desired(delete_requested=True), [trial(1)], T0)
    assert any(isinstance(a, DeleteRecord) for a in gone.actions)


def test_target_objective_stops_the_rest_and_completes() -> None:
    s = spec(TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 0.15})
    trials = [trial(1, loss=0.1), trial(2, "InProgress", None)]
    plan = plan_tuning_job(desired(s), trials, T0)
    assert stops(plan) == [trials[1].name] and creates(plan) == []
    assert plan.phase == "InProgress"
    assert plan.status.CompletionReason == "TargetObjectiveMetricValue 0.15 reached (0.1)"
    after = plan_tuning_job(
        desired(s, status=plan.status), [trials[0], trial(2, "Stopped", 0.3)], T0
    )
    assert after.phase == "Completed"


def test_best_objective_not_improving() -> None:
    s = spec(
        ResourceLimits={"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 1},
        TuningJobCompletionCriteria={
            "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}
        },
    )
    trials = [trial(1, loss=0.1), trial(2, loss=0.5), trial(3, loss=0.4)]
    plan = plan_tuning_job(desired(s), trials, T0)
    assert creates(plan), "two without improvement: go on"
    assert plan.status.TuningJobCompletionDetails.NumberOfTrainingJobsObjectiveNotImproving == 2
    plan = plan_tuning_job(desired(s), [*trials, trial(4, loss=0.3)], T0)
    assert plan.phase == "Completed" and creates(plan) == []


def test_convergence_detected() -> None:
    s = spec(
        ResourceLimits={"MaxNumberOfTrainingJobs": 50, "MaxParallelTrainingJobs": 1},
        TuningJobCompletionCriteria={"ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}},
    )
    flat = [trial(n, loss=1.0 - 0.0001 * n) for n in range(1, 21)]
    assert plan_tuning_job(desired(s), flat, T0).phase == "Completed"
    improving = [trial(n, loss=1.0 - 0.02 * n) for n in range(1, 21)]
    assert plan_tuning_job(desired(s), improving, T0).phase == "InProgress"


def test_max_runtime_ends_the_tuning_job() -> None:
    s = spec(
        ResourceLimits={
            "MaxNumberOfTrainingJobs": 4,
            "MaxParallelTrainingJobs": 2,
            "MaxRuntimeInSeconds": 120,
        }
    )
    running = trial(1, "InProgress", None)
    plan = plan_tuning_job(desired(s), [running], T0 + timedelta(seconds=121))
    assert stops(plan) == [running.name] and creates(plan) == []
    assert plan.status.CompletionReason == "ResourceLimits.MaxRuntimeInSeconds (120 s) reached"


def series(*values: float) -> tuple[Point, ...]:
    return tuple(Point(i + 1, v, T0 + timedelta(seconds=i)) for i, v in enumerate(values))


def test_early_stopping_auto_stops_a_trial_worse_than_the_median() -> None:
    s = spec(
        TrainingJobEarlyStoppingType="Auto",
        ResourceLimits={"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
    )
    done = [trial(n, loss=0.2, series=series(0.5, 0.3, 0.2)) for n in (1, 2, 3)]
    bad = trial(4, "InProgress", None, series=series(0.9, 0.8))
    good = trial(5, "InProgress", None, series=series(0.4, 0.3))
    plan = plan_tuning_job(desired(s), [*done, bad, good], T0)
    assert stops(plan) == [bad.name]
    assert plan_tuning_job(desired(spec()), [*done, bad, good], T0).actions == ()


def test_hyperband_tells_trials_the_epochs_and_stops_at_rungs() -> None:
    s = spec(
        Strategy="Hyperband",
        StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}},
        ResourceLimits={"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 10},
    )
    made = creates(plan_tuning_job(desired(s), [], T0))
    assert all(c.spec["HyperParameters"]["epochs"] == "9" for c in made)
    # Brackets: rungs 1 and 3 (< 9): trial n is in bracket (n - 1) % 2; bracket 0 first judged
    # at epoch 1. Trials 1, 3, 5 reached epoch 1 in that order; 5 is the worst of three.
    t = [
        trial(1, "InProgress", None, series=series(0.1)),
        trial(3, "InProgress", None, series=series(0.2)),
        trial(5, "InProgress", None, series=(Point(1, 0.9, T0 + timedelta(seconds=5)),)),
    ]
    plan = plan_tuning_job(desired(s), t, T0)
    assert stops(plan) == [t[2].name]


def test_grid_walks_every_combination_once() -> None:
    s = spec(
        Strategy="Grid",
        ResourceLimits={"MaxParallelTrainingJobs": 10},
        ParameterRanges={
            "CategoricalParameterRanges": [
                {"Name": "a", "Values": ["1", "2"]},
                {"Name": "b", "Values": ["x", "y", "z"]},
            ]
        },
    )
    made = creates(plan_tuning_job(desired(s), [], T0))
    combos = {(c.spec["HyperParameters"]["a"], c.spec["HyperParameters"]["b"]) for c in made}
    assert len(made) == 6 and len(combos) == 6
    trials = [
        ObservedTrial(
            c.name,
            n + 1,
            0,
            c.spec["HyperParameters"],
            "Completed",
            T0,
            final_metrics={"loss": 1.0},
        )
        for n, c in enumerate(made)
    ]
    plan = plan_tuning_job(desired(s), trials, T0)
    assert plan.phase == "Completed" and creates(plan) == []


def test_warm_start_parents_count_as_history_and_overall_best() -> None:
    s = spec()
    parent = ObservedTrial(
        "old-001-aaaaaaaa", 1, 0, {"fixed": "1", "x": "0.9"}, "Completed", T0,
        final_metrics={"loss": 0.01}, parent="old",
    )  # fmt: skip
    plan = plan_tuning_job(desired(s), [parent, trial(1, loss=0.3)], T0)
    assert plan.status.BestTrainingJob is not None
    assert plan.status.BestTrainingJob.TrainingJobName == trial(1).name
    assert plan.status.OverallBestTrainingJob is not None
    assert plan.status.OverallBestTrainingJob.TrainingJobName == "old-001-aaaaaaaa"
    assert plan.status.TrainingJobStatusCounters.Completed == 1  # its own trials only


@pytest.mark.parametrize("strategy", ["Random", "Bayesian"])
def test_multiple_definitions_take_turns(strategy: str) -> None:
    doc = spec(Strategy=strategy).model_dump(mode="json", exclude_none=True)
    definition = doc.pop("TrainingJobDefinition")
    doc["TrainingJobDefinitions"] = [
        {**definition, "DefinitionName": "a"},
        {**definition, "DefinitionName": "b", "StaticHyperParameters": {"fixed": "2"}},
    ]
    s = CreateHyperParameterTuningJobRequest.model_validate(doc)
    made = creates(plan_tuning_job(desired(s), [], T0))
    assert [c.spec["HyperParameters"]["fixed"] for c in made] == ["1", "2"]
