"""Hyperparameter tuning jobs' operations, independent of HTTP (``ControlPlane.tuning``).

A create is checked as far as it can be before anything runs: the request's own model (ranges,
limits, strategy), then each definition as the training jobs it will make (a trial at each
end of every range must be a training job this backend can run, with hyperparameters a
built-in algorithm accepts), the objective metric (a MetricDefinition or the built-in
algorithm must emit it), the channels (they must exist), and a warm start's parents. Every
refusal is a 400 naming the field. The tuner itself is the reconciler's
(``controller/plan/tuning.py``); trials are TrainingJobs read back by ``controller.trials``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from orchestrator import tenancy
from orchestrator.controller.plan.tuning import (
    EPOCH_KEYS,
    DesiredTuningJob,
    objective_value,
    trial_name,
    trial_summaries,
)
from orchestrator.controller.trials import observe_trials
from orchestrator.errors import ConflictError, ValidationError
from orchestrator.objects import buckets
from orchestrator.resources.kinds import HYPER_PARAMETER_TUNING_JOB, TRAINING_JOB
from orchestrator.resources.training import (
    SUBMIT_DIR_HYPERPARAMETER,
    CreateTrainingJobRequest,
    OutputDataConfig,
    TrainingJobStatus,
)
from orchestrator.resources.tuning import (
    TERMINAL_TUNING_STATUSES,
    CreateHyperParameterTuningJobRequest,
    DescribeHyperParameterTuningJobResponse,
    HyperParameterTrainingJobDefinition,
    HyperParameterTrainingJobSummary,
    HyperParameterTuningJobState,
    HyperParameterTuningJobSummary,
    TuningJobStatus,
)
from orchestrator.resources.validation import parse_spec
from orchestrator.store import Record
from orchestrator.training.contract import check_builtin_algorithm, metric_patterns

if TYPE_CHECKING:
    from orchestrator.api.service import ControlPlane, ListQuery

KIND = HYPER_PARAMETER_TUNING_JOB
TRIAL_SORT = ("Name", "CreationTime", "Status", "FinalObjectiveMetricValue")


class TrialQuery(BaseModel):
    MaxResults: int | None = None
    NextToken: str | None = None
    StatusEquals: str | None = None
    SortBy: str = "Name"
    SortOrder: str = "Ascending"


class TuningJobs:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    # --- create ------------------------------------------------------------------------------
    def create(self, req: CreateHyperParameterTuningJobRequest) -> tuple[str, bool]:
        req = self._with_own_outputs(req)
        if self.cp.store.find(KIND.name, req.HyperParameterTuningJobName) is None:
            self.check(req)
        return self.cp._create(KIND, req)

    @staticmethod
    def _with_own_outputs(
        req: CreateHyperParameterTuningJobRequest,
    ) -> CreateHyperParameterTuningJobRequest:
        """A definition with no ``OutputDataConfig`` of another account than the server's:
        its trials write to that account's default bucket (as a training job's do)."""
        account = tenancy.stamp()
        if account == tenancy.ROOT:
            return req
        path = f"s3://{buckets.default_bucket(account)}/training-jobs"

        def own(d: HyperParameterTrainingJobDefinition) -> HyperParameterTrainingJobDefinition:
            if d.OutputDataConfig is not None:
                return d
            return d.model_copy(update={"OutputDataConfig": OutputDataConfig(S3OutputPath=path)})

        if req.TrainingJobDefinition is not None:
            return req.model_copy(update={"TrainingJobDefinition": own(req.TrainingJobDefinition)})
        if req.TrainingJobDefinitions:
            return req.model_copy(
                update={"TrainingJobDefinitions": [own(d) for d in req.TrainingJobDefinitions]}
            )
        return req

    def check(self, req: CreateHyperParameterTuningJobRequest) -> None:
        if len(req.Tags) > 49:
            raise ValidationError(
                f"Tags: at most 49 tags on a tuning job (got {len(req.Tags)}): each trial "
                "carries them and one of its own (orchestrator:tuning-job)",
                field="Tags",
            )
        config = req.HyperParameterTuningJobConfig
        for i, (where, d) in enumerate(req.named_definitions()):
            ranges = req.ranges_of(i)
            ranges_at = (
                f"{where}.HyperParameterRanges"
                if d.HyperParameterRanges is not None
                else "HyperParameterTuningJobConfig.ParameterRanges"
            )
            if config.Strategy == "Hyperband":
                self._check_hyperband(req, where, d, ranges.names, ranges_at)
            for tuned in req.corner_values(i):
                trial = self._trial(req, where, d, tuned, ranges_at)
                self.cp._check_supported(TRAINING_JOB.name, trial)
            sample = self._trial(req, where, d, req.corner_values(i)[0], ranges_at)
            if sample.OutputDataConfig is not None:
                self.cp.check_kms_key(
                    sample.OutputDataConfig.KmsKeyId, f"{where}.OutputDataConfig.KmsKeyId"
                )
            self.cp.check_training_outputs(sample, where)
            emitted = [name for name, _ in metric_patterns(sample)]
            objective = req.objective_of(i)
            if objective.MetricName not in emitted:
                at = (
                    f"{where}.TuningObjective.MetricName"
                    if d.TuningObjective is not None
                    else "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.MetricName"
                )
                raise ValidationError(
                    f"{at}: {objective.MetricName!r} is not a metric the training job emits; "
                    "add a MetricDefinition with that Name and a regex for its value to "
                    f"{where}.AlgorithmSpecification.MetricDefinitions"
                    + (f" (it emits: {', '.join(emitted)})" if emitted else ""),
                    field=at,
                )
            self.cp._check_source(
                d.StaticHyperParameters,
                SUBMIT_DIR_HYPERPARAMETER,
                f"{where}.StaticHyperParameters.{SUBMIT_DIR_HYPERPARAMETER}",
            )
            for c_i, c in enumerate(d.InputDataConfig):
                self.cp._check_uri(
                    c.DataSource.S3DataSource.S3Uri,
                    f"{where}.InputDataConfig[{c_i}].DataSource.S3DataSource.S3Uri",
                    prefix=True,
                )
        if req.WarmStartConfig is not None:
            self._check_parents(req)

    def _trial(
        self,
        req: CreateHyperParameterTuningJobRequest,
        where: str,
        d: HyperParameterTrainingJobDefinition,
        tuned: dict[str, str],
        ranges_at: str,
    ) -> CreateTrainingJobRequest:
        name = trial_name(req.HyperParameterTuningJobName, "check", 1)
        doc = d.training_spec(name, tuned, [])
        try:
            trial = parse_spec(CreateTrainingJobRequest, doc)
        except ValidationError as e:
            raise ValidationError(f"{where}: {e.message}", field=where) from e
        try:
            check_builtin_algorithm(trial)
        except ValidationError as e:
            tuned_names = set(tuned)
            at = ranges_at if e.field in tuned_names else f"{where}.StaticHyperParameters"
            raise ValidationError(
                f"{at}: {e.message}" + (" (a tuned value)" if e.field in tuned_names else ""),
                field=at,
            ) from e
        return trial

    def _check_hyperband(
        self,
        req: CreateHyperParameterTuningJobRequest,
        where: str,
        d: HyperParameterTrainingJobDefinition,
        tuned: list[str],
        ranges_at: str,
    ) -> None:
        resource = sorted(set(tuned) & set(EPOCH_KEYS))
        if resource:
            raise ValidationError(
                f"{ranges_at}: {resource[0]!r} is Hyperband's resource (epochs), which the "
                "strategy sets itself; do not tune it",
                field=ranges_at,
            )
        given = req.HyperParameterTuningJobConfig.hyperband
        config = req.HyperParameterTuningJobConfig.StrategyConfig
        explicit = config.HyperbandStrategyConfig if config else None
        for key in EPOCH_KEYS:
            value = d.StaticHyperParameters.get(key)
            if value is None:
                continue
            if not value.isdigit() or int(value) < 1:
                raise ValidationError(
                    f"{where}.StaticHyperParameters.{key}: {value!r} is not a whole number of "
                    "epochs (Hyperband reads MaxResource from it)",
                    field=f"{where}.StaticHyperParameters",
                )
            if explicit and explicit.MaxResource and explicit.MaxResource != int(value):
                raise ValidationError(
                    "HyperParameterTuningJobConfig.StrategyConfig.HyperbandStrategyConfig."
                    f"MaxResource: {explicit.MaxResource} disagrees with {where}."
                    f"StaticHyperParameters.{key} ({value}); give one of them",
                    field="HyperParameterTuningJobConfig.StrategyConfig",
                )
            if given.MinResource and given.MinResource > int(value):
                raise ValidationError(
                    "HyperParameterTuningJobConfig.StrategyConfig.HyperbandStrategyConfig."
                    f"MinResource: {given.MinResource} is more than the {value} epochs of "
                    f"{where}.StaticHyperParameters.{key}",
                    field="HyperParameterTuningJobConfig.StrategyConfig",
                )

    def _check_parents(self, req: CreateHyperParameterTuningJobRequest) -> None:
        warm = req.WarmStartConfig
        assert warm is not None
        for i, p in enumerate(warm.ParentHyperParameterTuningJobs):
            field = f"WarmStartConfig.ParentHyperParameterTuningJobs[{i}]"
            name = p.HyperParameterTuningJobName
            if name == req.HyperParameterTuningJobName:
                raise ValidationError(
                    f"{field}: a tuning job cannot be its own parent", field=field
                )
            parent = self.cp.store.find(KIND.name, name)
            if parent is None:
                raise ValidationError(f"{field}: no tuning job named {name!r}", field=field)
            if parent.phase not in {s.value for s in TERMINAL_TUNING_STATUSES}:
                raise ValidationError(
                    f"{field}: {name!r} is {parent.phase}; a warm start's parents must have "
                    "ended (Completed, Stopped or Failed)",
                    field=field,
                )
            if warm.WarmStartType != "IdenticalDataAndAlgorithm":
                continue
            theirs = CreateHyperParameterTuningJobRequest.model_validate(parent.spec).definitions[0]
            mine = req.definitions[0]
            for aspect, a, b in (
                (
                    "AlgorithmSpecification",
                    mine.AlgorithmSpecification,
                    theirs.AlgorithmSpecification,
                ),
                ("InputDataConfig", mine.InputDataConfig, theirs.InputDataConfig),
                ("StaticHyperParameters", mine.StaticHyperParameters, theirs.StaticHyperParameters),
            ):
                if a != b:
                    raise ValidationError(
                        f"{field}: WarmStartType IdenticalDataAndAlgorithm needs the same "
                        f"{aspect} as the parent {name!r}; it differs (use TransferLearning "
                        "for a changed algorithm, data or static hyperparameters)",
                        field=field,
                    )

    # --- read ----------------------------------------------------------------------------------
    def describe(self, name: str) -> DescribeHyperParameterTuningJobResponse:
        r = self.cp.store.get(KIND.name, name)
        status = dict(r.status)
        if r.stop_requested and r.phase == TuningJobStatus.IN_PROGRESS.value:
            status["HyperParameterTuningJobStatus"] = TuningJobStatus.STOPPING.value
        return DescribeHyperParameterTuningJobResponse.model_validate(
            {
                **r.spec,
                **status,
                "HyperParameterTuningJobArn": self.cp.arn(KIND.name, name, r.account),
                "CreationTime": r.created_at,
                "LastModifiedTime": r.updated_at,
            }
        )

    def list_jobs(self, q: ListQuery) -> tuple[list[HyperParameterTuningJobSummary], str | None]:
        if q.StatusEquals is not None and q.StatusEquals not in {s.value for s in TuningJobStatus}:
            raise ValidationError(
                f"StatusEquals must be one of {[s.value for s in TuningJobStatus]}",
                field="StatusEquals",
            )

        def summarize(r: Record) -> HyperParameterTuningJobSummary:
            st = HyperParameterTuningJobState.model_validate(r.status)
            config = r.spec.get("HyperParameterTuningJobConfig") or {}
            return HyperParameterTuningJobSummary(
                HyperParameterTuningJobName=r.name,
                HyperParameterTuningJobArn=self.cp.arn(KIND.name, r.name, r.account),
                HyperParameterTuningJobStatus=st.HyperParameterTuningJobStatus,
                Strategy=config.get("Strategy", "Bayesian"),
                CreationTime=r.created_at,
                HyperParameterTuningEndTime=st.HyperParameterTuningEndTime,
                LastModifiedTime=r.updated_at,
                TrainingJobStatusCounters=st.TrainingJobStatusCounters,
                ObjectiveStatusCounters=st.ObjectiveStatusCounters,
                ResourceLimits=config.get("ResourceLimits"),
            )

        return self.cp._list(KIND.name, q, summarize)

    def trials(
        self, name: str, q: TrialQuery
    ) -> tuple[list[HyperParameterTrainingJobSummary], str | None]:
        """ListTrainingJobsForHyperParameterTuningJob: the trials, sorted, one page."""
        page = q.MaxResults or 50
        if not 1 <= page <= 100:
            raise ValidationError("MaxResults must be between 1 and 100", field="MaxResults")
        if q.SortBy not in TRIAL_SORT:
            raise ValidationError(
                f"SortBy must be one of {', '.join(TRIAL_SORT)}, not {q.SortBy!r}", field="SortBy"
            )
        if q.SortOrder not in {"Ascending", "Descending"}:
            raise ValidationError(
                "SortOrder must be 'Ascending' or 'Descending'", field="SortOrder"
            )
        statuses = {s.value for s in TrainingJobStatus}
        if q.StatusEquals is not None and q.StatusEquals not in statuses:
            raise ValidationError(
                f"StatusEquals must be one of {sorted(statuses)}", field="StatusEquals"
            )
        record = self.cp.store.get(KIND.name, name)
        spec = CreateHyperParameterTuningJobRequest.model_validate(record.spec)
        trials = observe_trials(self.cp.store, record, len(spec.definitions))
        desired = DesiredTuningJob(
            name=record.name,
            uid=record.uid,
            spec=spec,
            status=HyperParameterTuningJobState.model_validate(record.status),
            created_at=record.created_at,
            arn_prefix=self.cp.arn(TRAINING_JOB.name, "x")[:-1],
        )
        rows = trial_summaries(desired, trials)
        values = {t.name: objective_value(desired, t) for t in trials}
        if q.StatusEquals is not None:
            rows = [r for r in rows if r.TrainingJobStatus.value == q.StatusEquals]
        if q.SortBy == "FinalObjectiveMetricValue":
            # As SageMaker: sorted by the objective, the trials without one are left out.
            rows = [r for r in rows if values.get(r.TrainingJobName) is not None]
        descending = q.SortOrder == "Descending"

        def key(r: HyperParameterTrainingJobSummary) -> tuple[Any, ...]:
            if q.SortBy == "CreationTime":
                return (r.CreationTime.timestamp(), r.TrainingJobName)
            if q.SortBy == "Status":
                return (r.TrainingJobStatus.value, r.TrainingJobName)
            if q.SortBy == "FinalObjectiveMetricValue":
                return (values.get(r.TrainingJobName) or 0.0, r.TrainingJobName)
            return (r.TrainingJobName,)

        rows.sort(key=key, reverse=descending)
        start = 0
        if q.NextToken:
            try:
                start = int(q.NextToken.removeprefix("trials:"))
                if not q.NextToken.startswith("trials:") or start < 0:
                    raise ValueError(q.NextToken)
            except ValueError:
                raise ValidationError(
                    "NextToken is not one this list issued; pass the previous page's NextToken "
                    "unchanged",
                    field="NextToken",
                ) from None
        chunk = rows[start : start + page]
        token = f"trials:{start + page}" if start + page < len(rows) else None
        return chunk, token

    # --- stop, delete --------------------------------------------------------------------------
    def stop(self, name: str) -> None:
        r = self.cp.store.get(KIND.name, name)
        if r.phase in {s.value for s in TERMINAL_TUNING_STATUSES}:
            raise ConflictError(
                f"HyperParameterTuningJob {name!r} has already ended ({r.phase}); nothing to stop"
            )
        self.cp.store.set_flag(KIND.name, name, "stop_requested", self.cp.clock.now())
        self.cp.wake()

    def delete(self, name: str) -> None:
        r = self.cp.store.get(KIND.name, name)
        if r.phase not in {s.value for s in TERMINAL_TUNING_STATUSES}:
            raise ConflictError(
                f"HyperParameterTuningJob {name!r} is {r.phase}; stop it first "
                f"(orch tune stop {name})"
            )
        self.cp.store.set_flag(KIND.name, name, "delete_requested", self.cp.clock.now())
        self.cp.wake()
