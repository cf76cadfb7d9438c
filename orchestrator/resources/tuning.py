"""HyperParameterTuningJob: the spec (CreateHyperParameterTuningJob), its status, and the
Describe/List shapes, in SageMaker's names and limits. Pure.

A tuning job runs its trials as ordinary TrainingJobs (named ``<tuning>-<NNN>-<8 hex>`` and
tagged with the tuning job's name), so a trial runs wherever training jobs run: the process and
Docker backends, or a Kubernetes Job. What a trial is built from is one
``HyperParameterTrainingJobDefinition``: the training job's fields less its name and
hyperparameters, which are the definition's ``StaticHyperParameters`` plus the values the
strategy picked for its ``HyperParameterRanges``.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.resources.common import (
    Condition,
    EnvironmentMap,
    Output,
    Spec,
    TagList,
)
from orchestrator.resources.training import (
    PROGRAM_HYPERPARAMETER,
    AlgorithmSpecification,
    Channel,
    CheckpointConfig,
    HyperParameters,
    MetricDefinition,
    OutputDataConfig,
    ResourceConfig,
    RetryStrategy,
    StoppingCondition,
    TrainingJobStatus,
)

TUNING_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$"
TuningJobName = Annotated[str, StringConstraints(pattern=TUNING_NAME_PATTERN, max_length=32)]
TrainingJobDefinitionName = Annotated[
    str, StringConstraints(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}$", max_length=64)
]
ParameterKey = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ParameterValue = Annotated[str, StringConstraints(max_length=256)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=255)]

# The tag every trial carries: the tuning job it belongs to (SageMaker keeps the link as the
# training job's TuningJobArn; here it is in the spec, so every source shows it).
TUNING_JOB_TAG = "orchestrator:tuning-job"
# Trials are numbered in three digits (``<tuning>-001-<hash>``), so a tuning job has at most
# this many (SageMaker's default quota is 500).
MAX_TRIALS = 999
MAX_PARENTS = 5


class TuningJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


_TuningJobStatus = TuningJobStatus
TERMINAL_TUNING_STATUSES = frozenset(
    {TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED}
)

ScalingType = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
Strategy = Literal["Bayesian", "Random", "Hyperband", "Grid"]
_ScalingType = ScalingType
_OutputDataConfig = OutputDataConfig
_ResourceConfig = ResourceConfig
_StoppingCondition = StoppingCondition
_CheckpointConfig = CheckpointConfig
_RetryStrategy = RetryStrategy


class IntegerParameterRange(Spec):
    Name: ParameterKey
    MinValue: ParameterValue
    MaxValue: ParameterValue
    ScalingType: _ScalingType = "Auto"


class ContinuousParameterRange(Spec):
    Name: ParameterKey
    MinValue: ParameterValue
    MaxValue: ParameterValue
    ScalingType: _ScalingType = "Auto"


class CategoricalParameterRange(Spec):
    Name: ParameterKey
    Values: Annotated[list[ParameterValue], Field(min_length=1, max_length=30)]


class AutoParameter(Spec):
    Name: ParameterKey
    ValueHint: ParameterValue


class ParameterRanges(Spec):
    IntegerParameterRanges: Annotated[list[IntegerParameterRange], Field(max_length=30)] = []
    ContinuousParameterRanges: Annotated[list[ContinuousParameterRange], Field(max_length=30)] = []
    CategoricalParameterRanges: Annotated[
        list[CategoricalParameterRange], Field(max_length=30)
    ] = []
    AutoParameters: Annotated[list[AutoParameter], Field(max_length=100)] = []

    @property
    def names(self) -> list[str]:
        return [
            r.Name
            for group in (
                self.IntegerParameterRanges,
                self.ContinuousParameterRanges,
                self.CategoricalParameterRanges,
            )
            for r in group
        ]

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"a hyperparameter may be tuned by one range only; repeated: {dupes}")
        for i, r in enumerate(self.IntegerParameterRanges):
            _check_numeric(
                f"IntegerParameterRanges[{i}]", r.MinValue, r.MaxValue, r.ScalingType, True
            )
        for i, c in enumerate(self.ContinuousParameterRanges):
            _check_numeric(
                f"ContinuousParameterRanges[{i}]", c.MinValue, c.MaxValue, c.ScalingType, False
            )
        for i, cat in enumerate(self.CategoricalParameterRanges):
            if len(set(cat.Values)) != len(cat.Values):
                raise ValueError(f"CategoricalParameterRanges[{i}].Values: values repeat")
        if self.AutoParameters:
            raise ValueError(
                "AutoParameters: not supported here; give each hyperparameter an explicit "
                "Integer, Continuous or Categorical range"
            )
        return self


def _check_numeric(where: str, low: str, high: str, scaling: str, integer: bool) -> None:
    kind = "an integer" if integer else "a number"
    parsed: list[float] = []
    for field, text in (("MinValue", low), ("MaxValue", high)):
        try:
            value = float(int(text)) if integer else float(text)
        except ValueError:
            raise ValueError(f"{where}.{field}: {text!r} is not {kind}") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}.{field}: {text!r} is not a finite number")
        parsed.append(value)
    lo, hi = parsed
    if lo > hi:
        raise ValueError(f"{where}: MinValue {low} is greater than MaxValue {high}")
    if scaling == "Logarithmic" and lo <= 0:
        raise ValueError(
            f"{where}.ScalingType: Logarithmic needs MinValue > 0 (got {low}); use Linear, or "
            "a positive MinValue"
        )
    if scaling == "ReverseLogarithmic":
        if integer:
            raise ValueError(
                f"{where}.ScalingType: ReverseLogarithmic is for continuous ranges only"
            )
        if not (lo >= 0 and hi < 1):
            raise ValueError(
                f"{where}.ScalingType: ReverseLogarithmic needs 0 <= MinValue <= MaxValue < 1 "
                f"(got {low}..{high})"
            )


_ParameterRanges = ParameterRanges


class HyperParameterTuningJobObjective(Spec):
    Type: Literal["Maximize", "Minimize"]
    MetricName: MetricName


_Objective = HyperParameterTuningJobObjective


class ResourceLimits(Spec):
    MaxNumberOfTrainingJobs: Annotated[int, Field(ge=1, le=MAX_TRIALS)] | None = None
    MaxParallelTrainingJobs: Annotated[int, Field(ge=1, le=100)]
    MaxRuntimeInSeconds: Annotated[int, Field(ge=120, le=15768000)] | None = None


_ResourceLimits = ResourceLimits


class HyperbandStrategyConfig(Spec):
    MinResource: Annotated[int, Field(ge=1)] | None = None
    MaxResource: Annotated[int, Field(ge=1)] | None = None


_HyperbandStrategyConfig = HyperbandStrategyConfig


class HyperParameterTuningJobStrategyConfig(Spec):
    HyperbandStrategyConfig: _HyperbandStrategyConfig | None = None


class BestObjectiveNotImproving(Spec):
    MaxNumberOfTrainingJobsNotImproving: Annotated[int, Field(ge=3)] | None = None


class ConvergenceDetected(Spec):
    CompleteOnConvergence: Literal["Disabled", "Enabled"] | None = None


_BestObjectiveNotImproving = BestObjectiveNotImproving
_ConvergenceDetected = ConvergenceDetected


class TuningJobCompletionCriteria(Spec):
    TargetObjectiveMetricValue: float | None = None
    BestObjectiveNotImproving: _BestObjectiveNotImproving | None = None
    ConvergenceDetected: _ConvergenceDetected | None = None


_CompletionCriteria = TuningJobCompletionCriteria


class HyperParameterTuningJobConfig(Spec):
    Strategy: Strategy
    StrategyConfig: HyperParameterTuningJobStrategyConfig | None = None
    HyperParameterTuningJobObjective: _Objective | None = None
    ResourceLimits: _ResourceLimits
    ParameterRanges: _ParameterRanges | None = None
    TrainingJobEarlyStoppingType: Literal["Off", "Auto"] = "Off"
    TuningJobCompletionCriteria: _CompletionCriteria | None = None
    RandomSeed: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        limits = self.ResourceLimits
        total = limits.MaxNumberOfTrainingJobs
        if total is not None and limits.MaxParallelTrainingJobs > total:
            raise ValueError(
                f"ResourceLimits.MaxParallelTrainingJobs ({limits.MaxParallelTrainingJobs}) is "
                f"greater than ResourceLimits.MaxNumberOfTrainingJobs ({total}); at most as many "
                "trials run at once as there are in all"
            )
        if self.Strategy != "Grid" and total is None:
            raise ValueError(
                f"ResourceLimits.MaxNumberOfTrainingJobs: required for the {self.Strategy} "
                "strategy (only Grid derives it, from the number of combinations)"
            )
        if self.Strategy == "Hyperband" and self.TrainingJobEarlyStoppingType == "Auto":
            raise ValueError(
                "TrainingJobEarlyStoppingType: must be Off with the Hyperband strategy, which "
                "stops trials itself"
            )
        if self.StrategyConfig is not None and self.StrategyConfig.HyperbandStrategyConfig:
            if self.Strategy != "Hyperband":
                raise ValueError(
                    "StrategyConfig.HyperbandStrategyConfig: only for the Hyperband strategy"
                )
            hb = self.StrategyConfig.HyperbandStrategyConfig
            if hb.MinResource and hb.MaxResource and hb.MinResource > hb.MaxResource:
                raise ValueError(
                    "StrategyConfig.HyperbandStrategyConfig: MinResource "
                    f"({hb.MinResource}) is greater than MaxResource ({hb.MaxResource})"
                )
        if self.ParameterRanges is not None:
            _check_strategy_ranges(self.Strategy, self.ParameterRanges, "ParameterRanges")
        return self

    @property
    def hyperband(self) -> HyperbandStrategyConfig:
        """Hyperband's resource range in epochs (SageMaker's defaults when unset: 1..81)."""
        given = self.StrategyConfig.HyperbandStrategyConfig if self.StrategyConfig else None
        given = given or HyperbandStrategyConfig()
        return HyperbandStrategyConfig(
            MinResource=given.MinResource or 1, MaxResource=given.MaxResource or 81
        )


def _check_strategy_ranges(strategy: str, ranges: ParameterRanges, where: str) -> None:
    if strategy == "Grid":
        numeric = ranges.IntegerParameterRanges or ranges.ContinuousParameterRanges
        if numeric:
            field = (
                "IntegerParameterRanges"
                if ranges.IntegerParameterRanges
                else "ContinuousParameterRanges"
            )
            raise ValueError(
                f"{where}.{field}: the Grid strategy takes categorical ranges only (as "
                "SageMaker); list the values as a CategoricalParameterRange, or use Random or "
                "Bayesian"
            )
        if not ranges.CategoricalParameterRanges:
            raise ValueError(f"{where}: the Grid strategy needs at least one categorical range")


class HyperParameterAlgorithmSpecification(Spec):
    TrainingImage: Annotated[str, StringConstraints(max_length=255)] | None = None
    TrainingInputMode: Literal["File", "FastFile"] = "File"
    AlgorithmName: Annotated[str, StringConstraints(max_length=170)] | None = None
    MetricDefinitions: Annotated[list[MetricDefinition], Field(max_length=40)] = []


class VpcConfig(Spec):
    SecurityGroupIds: Annotated[list[str], Field(min_length=1, max_length=5)]
    Subnets: Annotated[list[str], Field(min_length=1, max_length=16)]


class HyperParameterTuningInstanceConfig(Spec):
    InstanceType: str
    InstanceCount: int
    VolumeSizeInGB: int


class HyperParameterTuningResourceConfig(Spec):
    InstanceType: str | None = None
    InstanceCount: int | None = None
    VolumeSizeInGB: int | None = None
    VolumeKmsKeyId: str | None = None
    AllocationStrategy: Literal["Prioritized"] | None = None
    InstanceConfigs: list[HyperParameterTuningInstanceConfig] | None = None


_VpcConfig = VpcConfig
_TuningResourceConfig = HyperParameterTuningResourceConfig


class HyperParameterTrainingJobDefinition(Spec):
    """What each trial is made from: a training job without its name and tuned values."""

    DefinitionName: TrainingJobDefinitionName | None = None
    TuningObjective: _Objective | None = None
    HyperParameterRanges: _ParameterRanges | None = None
    StaticHyperParameters: HyperParameters = {}
    AlgorithmSpecification: HyperParameterAlgorithmSpecification
    RoleArn: Annotated[str, StringConstraints(max_length=2048)] | None = None
    InputDataConfig: Annotated[list[Channel], Field(max_length=20)] = []
    OutputDataConfig: _OutputDataConfig | None = None
    ResourceConfig: _ResourceConfig = Field(default_factory=ResourceConfig)
    StoppingCondition: _StoppingCondition = Field(default_factory=StoppingCondition)
    EnableNetworkIsolation: bool = False
    EnableInterContainerTrafficEncryption: bool = False
    EnableManagedSpotTraining: bool = False
    CheckpointConfig: _CheckpointConfig | None = None
    RetryStrategy: _RetryStrategy | None = None
    Environment: EnvironmentMap = {}
    # SageMaker fields this server has no counterpart for: refused by name, never ignored.
    VpcConfig: _VpcConfig | None = None
    HyperParameterTuningResourceConfig: _TuningResourceConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_instance_type(cls, data: Any) -> Any:
        """SageMaker's SDK sends a definition's instances as HyperParameterTuningResourceConfig;
        with one instance type that is a ResourceConfig, and is kept as one."""
        if not isinstance(data, dict) or data.get("HyperParameterTuningResourceConfig") is None:
            return data
        given = data["HyperParameterTuningResourceConfig"]
        if not isinstance(given, dict):
            return data  # the model's own error names the field
        extra = sorted(set(given) - set(ResourceConfig.model_fields))
        if extra or data.get("ResourceConfig") is not None:
            raise ValueError(
                "HyperParameterTuningResourceConfig"
                + (f".{extra[0]}" if extra else "")
                + ": not supported by this server; give one instance type per definition "
                "(InstanceType, InstanceCount, VolumeSizeInGB), here or as ResourceConfig, not "
                "both"
            )
        rest = {k: v for k, v in data.items() if k != "HyperParameterTuningResourceConfig"}
        return {**rest, "ResourceConfig": given}

    @model_validator(mode="after")
    def _supported(self) -> Self:
        if self.VpcConfig is not None:
            raise ValueError(
                "VpcConfig: not supported by this server; leave it out (trials run on the "
                "backend's own network)"
            )
        return self

    def training_spec(
        self, name: str, tuned: dict[str, str], tags: list[dict[str, str]]
    ) -> dict[str, Any]:
        """The CreateTrainingJob request of one trial (a document: the API's shape)."""
        algo = AlgorithmSpecification(
            TrainingImage=self.AlgorithmSpecification.TrainingImage,
            AlgorithmName=self.AlgorithmSpecification.AlgorithmName,
            TrainingInputMode=self.AlgorithmSpecification.TrainingInputMode,
            MetricDefinitions=self.AlgorithmSpecification.MetricDefinitions,
        )
        doc = {
            "TrainingJobName": name,
            "AlgorithmSpecification": algo.model_dump(mode="json", exclude_defaults=True),
            "HyperParameters": {**self.StaticHyperParameters, **tuned},
            "InputDataConfig": [c.model_dump(mode="json") for c in self.InputDataConfig],
            "ResourceConfig": self.ResourceConfig.model_dump(mode="json"),
            "StoppingCondition": self.StoppingCondition.model_dump(mode="json"),
            "Tags": tags,
            "EnableNetworkIsolation": self.EnableNetworkIsolation,
            "EnableInterContainerTrafficEncryption": self.EnableInterContainerTrafficEncryption,
            "EnableManagedSpotTraining": self.EnableManagedSpotTraining,
            "Environment": dict(self.Environment),
        }
        for field in ("RoleArn", "OutputDataConfig", "CheckpointConfig", "RetryStrategy"):
            value = getattr(self, field)
            if value is not None:
                doc[field] = (
                    value.model_dump(mode="json") if hasattr(value, "model_dump") else value
                )
        return doc


class ParentHyperParameterTuningJob(Spec):
    HyperParameterTuningJobName: TuningJobName


class HyperParameterTuningJobWarmStartConfig(Spec):
    ParentHyperParameterTuningJobs: Annotated[
        list[ParentHyperParameterTuningJob], Field(min_length=1)
    ]
    WarmStartType: Literal["IdenticalDataAndAlgorithm", "TransferLearning"]

    @model_validator(mode="after")
    def _parents(self) -> Self:
        n = len(self.ParentHyperParameterTuningJobs)
        if n > MAX_PARENTS:
            raise ValueError(
                f"ParentHyperParameterTuningJobs: at most {MAX_PARENTS} parent tuning jobs "
                f"(got {n})"
            )
        names = [p.HyperParameterTuningJobName for p in self.ParentHyperParameterTuningJobs]
        if len(set(names)) != n:
            raise ValueError("ParentHyperParameterTuningJobs: a parent is named twice")
        return self


_WarmStart = HyperParameterTuningJobWarmStartConfig
_Definition = HyperParameterTrainingJobDefinition


class Autotune(Spec):
    Mode: Literal["Enabled"]


_Autotune = Autotune


class CreateHyperParameterTuningJobRequest(Spec):
    HyperParameterTuningJobName: TuningJobName
    HyperParameterTuningJobConfig: HyperParameterTuningJobConfig
    TrainingJobDefinition: _Definition | None = None
    TrainingJobDefinitions: (
        Annotated[list[_Definition], Field(min_length=1, max_length=10)] | None
    ) = None
    WarmStartConfig: _WarmStart | None = None
    Tags: TagList = []
    Autotune: _Autotune | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.Autotune is not None:
            raise ValueError(
                "Autotune: not supported by this server; give the strategy, ranges and limits "
                "in HyperParameterTuningJobConfig"
            )
        if (self.TrainingJobDefinition is None) == (self.TrainingJobDefinitions is None):
            raise ValueError("set exactly one of TrainingJobDefinition and TrainingJobDefinitions")
        config = self.HyperParameterTuningJobConfig
        for where, d in self.named_definitions():
            objective = d.TuningObjective or config.HyperParameterTuningJobObjective
            if objective is None:
                raise ValueError(
                    f"{where}.TuningObjective: no objective; set "
                    "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective or the "
                    "definition's TuningObjective"
                )
            ranges = d.HyperParameterRanges or config.ParameterRanges
            if ranges is None or not ranges.names:
                raise ValueError(
                    f"{where}.HyperParameterRanges: nothing to tune; give at least one range "
                    "(HyperParameterTuningJobConfig.ParameterRanges or the definition's)"
                )
            if d.HyperParameterRanges is not None:
                _check_strategy_ranges(
                    config.Strategy, d.HyperParameterRanges, f"{where}.HyperParameterRanges"
                )
            fixed = sorted(set(ranges.names) & set(d.StaticHyperParameters))
            if fixed:
                raise ValueError(
                    f"{where}.StaticHyperParameters: {fixed} are fixed there and also given a "
                    "range; a hyperparameter is either static or tuned"
                )
            if PROGRAM_HYPERPARAMETER in ranges.names:
                raise ValueError(
                    f"{where}.HyperParameterRanges: {PROGRAM_HYPERPARAMETER!r} names the script "
                    "and cannot be tuned"
                )
        defs = self.definitions
        if len(defs) > 1:
            named = [d.DefinitionName for d in defs]
            if any(n is None for n in named) or len(set(named)) != len(named):
                raise ValueError(
                    "TrainingJobDefinitions: each definition needs a DefinitionName, unique "
                    "among them"
                )
        return self

    @property
    def definitions(self) -> list[HyperParameterTrainingJobDefinition]:
        if self.TrainingJobDefinition is not None:
            return [self.TrainingJobDefinition]
        return list(self.TrainingJobDefinitions or [])

    def named_definitions(self) -> list[tuple[str, HyperParameterTrainingJobDefinition]]:
        if self.TrainingJobDefinition is not None:
            return [("TrainingJobDefinition", self.TrainingJobDefinition)]
        return [(f"TrainingJobDefinitions[{i}]", d) for i, d in enumerate(self.definitions)]

    def objective_of(self, definition: int) -> HyperParameterTuningJobObjective:
        d = self.definitions[definition]
        objective = (
            d.TuningObjective or self.HyperParameterTuningJobConfig.HyperParameterTuningJobObjective
        )
        assert objective is not None  # checked when the request was parsed
        return objective

    def corner_values(self, definition: int) -> list[dict[str, str]]:
        """Tuned values at the ranges' ends: every range at its min, then each at its max in
        turn, and each categorical value in turn. Trials made of these are what a create
        checks (a built-in algorithm must accept every one) before any trial runs."""
        ranges = self.ranges_of(definition)
        low = {
            **{r.Name: r.MinValue for r in ranges.IntegerParameterRanges},
            **{r.Name: r.MinValue for r in ranges.ContinuousParameterRanges},
            **{r.Name: r.Values[0] for r in ranges.CategoricalParameterRanges},
        }
        out = [low]
        for i in ranges.IntegerParameterRanges:
            out.append({**low, i.Name: i.MaxValue})
        for c in ranges.ContinuousParameterRanges:
            out.append({**low, c.Name: c.MaxValue})
        for cat in ranges.CategoricalParameterRanges:
            out += [{**low, cat.Name: v} for v in cat.Values[1:]]
        return out

    def ranges_of(self, definition: int) -> ParameterRanges:
        ranges = (
            self.definitions[definition].HyperParameterRanges
            or self.HyperParameterTuningJobConfig.ParameterRanges
        )
        assert ranges is not None  # checked when the request was parsed
        return ranges


# --- status ------------------------------------------------------------------------------------
class TrainingJobStatusCounters(Output):
    Completed: int = 0
    InProgress: int = 0
    RetryableError: int = 0
    NonRetryableError: int = 0
    Stopped: int = 0


class ObjectiveStatusCounters(Output):
    Succeeded: int = 0
    Pending: int = 0
    Failed: int = 0


class FinalHyperParameterTuningJobObjectiveMetric(Output):
    Type: Literal["Maximize", "Minimize"] | None = None
    MetricName: str
    Value: float


ObjectiveStatus = Literal["Succeeded", "Pending", "Failed"]
_FinalObjective = FinalHyperParameterTuningJobObjectiveMetric
_ObjectiveStatus = ObjectiveStatus


class HyperParameterTrainingJobSummary(Output):
    TrainingJobDefinitionName: str | None = None
    TrainingJobName: str
    TrainingJobArn: str
    TuningJobName: str | None = None
    CreationTime: datetime
    TrainingStartTime: datetime | None = None
    TrainingEndTime: datetime | None = None
    TrainingJobStatus: TrainingJobStatus
    TunedHyperParameters: dict[str, str]
    FailureReason: str | None = None
    FinalHyperParameterTuningJobObjectiveMetric: _FinalObjective | None = None
    ObjectiveStatus: _ObjectiveStatus | None = None


class HyperParameterTuningJobCompletionDetails(Output):
    NumberOfTrainingJobsObjectiveNotImproving: int | None = None
    ConvergenceDetectedTime: datetime | None = None


class HyperParameterTuningJobConsumedResources(Output):
    RuntimeInSeconds: int | None = None


_Counters = TrainingJobStatusCounters
_ObjectiveCounters = ObjectiveStatusCounters
_Summary = HyperParameterTrainingJobSummary
_CompletionDetails = HyperParameterTuningJobCompletionDetails
_Consumed = HyperParameterTuningJobConsumedResources


class HyperParameterTuningJobState(Output):
    """What the tuner observed and decided; written only by the controller."""

    HyperParameterTuningJobStatus: _TuningJobStatus = TuningJobStatus.IN_PROGRESS
    HyperParameterTuningEndTime: datetime | None = None
    TrainingJobStatusCounters: _Counters = Field(default_factory=TrainingJobStatusCounters)
    ObjectiveStatusCounters: _ObjectiveCounters = Field(default_factory=ObjectiveStatusCounters)
    BestTrainingJob: _Summary | None = None
    OverallBestTrainingJob: _Summary | None = None
    FailureReason: str | None = None
    TuningJobCompletionDetails: _CompletionDetails = Field(
        default_factory=HyperParameterTuningJobCompletionDetails
    )
    ConsumedResources: _Consumed = Field(default_factory=HyperParameterTuningJobConsumedResources)
    Conditions: list[Condition] = []
    # Why the tuner stopped launching trials (shown: a completion criterion, a stop, the limit).
    CompletionReason: str | None = None


class DescribeHyperParameterTuningJobResponse(
    CreateHyperParameterTuningJobRequest, HyperParameterTuningJobState
):
    model_config = Output.model_config
    HyperParameterTuningJobArn: str
    CreationTime: datetime
    LastModifiedTime: datetime

    @model_validator(mode="after")
    def _coherent(self) -> Self:  # a stored spec was checked when it was created
        return self


class HyperParameterTuningJobSummary(Output):
    HyperParameterTuningJobName: str
    HyperParameterTuningJobArn: str
    HyperParameterTuningJobStatus: _TuningJobStatus
    Strategy: Strategy
    CreationTime: datetime
    HyperParameterTuningEndTime: datetime | None = None
    LastModifiedTime: datetime
    TrainingJobStatusCounters: _Counters
    ObjectiveStatusCounters: _ObjectiveCounters
    ResourceLimits: _ResourceLimits | None = None


class ListHyperParameterTuningJobsResponse(Output):
    HyperParameterTuningJobSummaries: list[HyperParameterTuningJobSummary]
    NextToken: str | None = None


class ListTrainingJobsForHyperParameterTuningJobResponse(Output):
    TrainingJobSummaries: list[HyperParameterTrainingJobSummary]
    NextToken: str | None = None


class CreateHyperParameterTuningJobResponse(Output):
    HyperParameterTuningJobArn: str
